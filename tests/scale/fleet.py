"""The scale lab: N user-mode-linux kernels, each with its own /proc/sysrq-trigger, /dev/kmsg and SSH.

Each kernel is Debian's ``linux.uml`` (package ``user-mode-linux``) run as an ordinary process. They share one
read-only root tree (hostfs) debootstrapped once into the cache, with tmpfs over the writable places. Their
network lives in a network namespace this harness creates (``msf-scale-<id>``): a bridge with 10.213.0.1/16
and one tap per kernel, nothing on the machine's own network. The controller reaches a kernel's sshd with an SSH
``ProxyCommand`` that runs ``socat`` inside the namespace, so ``ansible``/``ssh`` run from the ordinary shell.

Every kernel has a small ext4 disk (ubd) that its init freezes with ``fsfreeze`` before starting a writer, so a
``w`` dump always shows a blocked task.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.lab.config import REPO, cache_dir
from tests.lab.image import ssh_key

UML = "/usr/bin/linux.uml"
RELEASE = "bookworm"
PACKAGES = ["openssh-server", "python3", "e2fsprogs", "util-linux", "iproute2", "procps"]
MEMORY_MB = int(os.environ.get("MAGIC_SYSRQ_SCALE_MEM", "128"))
LOG_BUF = "1M"                      # the package's kernel has a 16 KiB log buffer (CONFIG_LOG_BUF_SHIFT=14)
SUBNET = "10.213"
MAX_HOSTS = 500
BOOT_PARALLEL = 8                   # kernels started at once (2 cores: more only thrashes)

INIT = r"""#!/bin/sh
# PID 1 of a scale-lab kernel (tests/scale/fleet.py). The root tree is read-only and shared.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mountpoint -q /dev || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts && mount -t devpts -o ptmxmode=0666 devpts /dev/pts
for dir in /run /tmp /root /var/tmp /var/log /var/lib/python; do mount -t tmpfs -o mode=0755 tmpfs "$dir"; done
chmod 1777 /tmp /var/tmp
mkdir -p /run/sshd /run/stuck
hostname "${scale_name:-uml}"
ip link set lo up
ip addr add "$scale_ip" dev eth0 && ip link set eth0 up
if [ -b /dev/ubdb ] && mount -t ext4 /dev/ubdb /run/stuck && fsfreeze -f /run/stuck; then
  (dd if=/dev/zero of=/run/stuck/blocked bs=4k count=1 conv=fsync 2>/dev/null &)
fi
/usr/sbin/sshd -E /run/sshd.log
echo "SCALE-READY $scale_name"
while :; do sleep 3600; done
"""

SSHD_CONFIG = """# scale lab (tests/scale/fleet.py)
AuthorizedKeysFile /etc/scale/authorized_keys
PermitRootLogin prohibit-password
UseDNS no
PrintLastLog no
PrintMotd no
MaxStartups 200
"""


class FleetError(RuntimeError):
    pass


def scale_cache() -> Path:
    return cache_dir().parent / "scale"


def _run(cmd: list[str], check: bool = True, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, **kw)
    if check and proc.returncode:
        raise FleetError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return proc


def recipe_hash(pubkey: str) -> str:
    text = json.dumps({"release": RELEASE, "packages": PACKAGES, "init": INIT, "sshd": SSHD_CONFIG,
                       "key": pubkey}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def build_tree(say=print) -> Path:
    """The shared root tree, debootstrapped once (the lab's package cache is reused)."""
    key = ssh_key()
    pubkey = key.with_suffix(".pub").read_text()
    tree = scale_cache() / f"{RELEASE}-{recipe_hash(pubkey)}"
    if (tree / "etc/scale/READY").exists():
        return tree
    if os.geteuid() != 0:
        raise FleetError("building the scale lab's root tree needs root (debootstrap)")
    work = tree.with_name(tree.name + ".tmp")
    started = time.monotonic()
    if not (work / ".debootstrap-done").exists():      # a finished debootstrap is kept if a later step failed
        if work.exists():
            shutil.rmtree(work)
        debs = cache_dir() / f"debs-{RELEASE}"
        debs.mkdir(parents=True, exist_ok=True)
        say(f"scale: debootstrap {RELEASE} into {work} (once; a few minutes)")
        _run(["debootstrap", "--variant=minbase", f"--cache-dir={debs}", "--include=" + ",".join(PACKAGES),
              RELEASE, str(work)], timeout=3600)
        (work / ".debootstrap-done").write_text("")
    (work / "etc/scale").mkdir(parents=True, exist_ok=True)
    (work / "etc/scale/authorized_keys").write_text(pubkey)
    (work / "etc/ssh/sshd_config.d").mkdir(parents=True, exist_ok=True)
    (work / "etc/ssh/sshd_config.d/scale.conf").write_text(SSHD_CONFIG)
    for old in (work / "etc/ssh").glob("ssh_host_*"):
        old.unlink()
    _run(["chroot", str(work), "ssh-keygen", "-A"])
    (work / "var/lib/python").mkdir(parents=True, exist_ok=True)
    init = work / "sbin/scale-init"
    init.write_text(INIT)
    init.chmod(0o755)
    stuck = work / "etc/scale/stuck.img"
    _run(["mkfs.ext4", "-q", "-F", "-O", "^has_journal", str(stuck), "8M"])
    (work / "etc/scale/READY").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
    os.replace(work, tree)
    say(f"scale: root tree ready ({time.monotonic() - started:.0f}s)")
    return tree


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _mem_available_kib() -> int:
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


class Fleet:
    """``Fleet(run_dir).up(n)`` boots n kernels; ``.down()`` stops them and removes the namespace."""

    def __init__(self, run_dir: Path | str | None = None):
        self.run_dir = Path(run_dir or os.environ.get("MAGIC_SYSRQ_SCALE_DIR", REPO / ".scale")).resolve()
        self.ns = "msf-scale-" + hashlib.sha256(str(self.run_dir).encode()).hexdigest()[:6]

    # ------------------------------------------------------------------ state
    @property
    def state_file(self) -> Path:
        return self.run_dir / "state.json"

    @property
    def inventory_file(self) -> Path:
        return self.run_dir / "inventory.ini"

    def state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {"hosts": {}}

    def _save(self, state: dict) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1))
        os.replace(tmp, self.state_file)

    @staticmethod
    def host_name(index: int) -> str:
        return "uml%03d" % index

    @staticmethod
    def host_ip(index: int) -> str:
        return f"{SUBNET}.{index // 250}.{index % 250 + 2}"

    # ------------------------------------------------------------------ network
    def _ns_exists(self) -> bool:
        return self.ns in _run(["ip", "netns", "list"], check=False).stdout.split()

    def _net_up(self) -> None:
        if not self._ns_exists():
            _run(["ip", "netns", "add", self.ns])
        _run(["ip", "-n", self.ns, "link", "set", "lo", "up"])
        if _run(["ip", "-n", self.ns, "link", "show", "br0"], check=False).returncode:
            _run(["ip", "-n", self.ns, "link", "add", "br0", "type", "bridge"])
            _run(["ip", "-n", self.ns, "addr", "add", f"{SUBNET}.255.1/16", "dev", "br0"])
        _run(["ip", "-n", self.ns, "link", "set", "br0", "up"])

    def _tap(self, index: int) -> str:
        tap = "tap%d" % index
        if _run(["ip", "-n", self.ns, "link", "show", tap], check=False).returncode:
            _run(["ip", "-n", self.ns, "tuntap", "add", "dev", tap, "mode", "tap"])
            _run(["ip", "-n", self.ns, "link", "set", tap, "master", "br0", "up"])
        return tap

    # ------------------------------------------------------------------ kernels
    def _start(self, index: int, tree: Path) -> dict:
        name, ip = self.host_name(index), self.host_ip(index)
        hdir = self.run_dir / name
        hdir.mkdir(parents=True, exist_ok=True)
        disk = hdir / "stuck.img"
        if not disk.exists():
            _run(["cp", "--sparse=always", str(tree / "etc/scale/stuck.img"), str(disk)])
        console = hdir / "console.log"
        tap = self._tap(index)
        argv = ["ip", "netns", "exec", self.ns, UML, f"umid={name}", f"uml_dir={self.run_dir / 'uml'}",
                f"mem={MEMORY_MB}M", f"log_buf_len={LOG_BUF}", "root=/dev/root", "rootfstype=hostfs",
                f"rootflags={tree}", "ro", "init=/sbin/scale-init", f"eth0=tuntap,{tap}", f"ubd1={disk}",
                "con=null", "con0=null,fd:1", "ssl=null", f"scale_name={name}", f"scale_ip={ip}/16"]
        (self.run_dir / "uml").mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, TMPDIR="/dev/shm")
        with open(console, "wb") as out, open(os.devnull, "rb") as devnull:
            proc = subprocess.Popen(argv, stdin=devnull, stdout=out, stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True, cwd=str(hdir))
        return {"index": index, "ip": ip, "pid": proc.pid, "pgid": proc.pid, "tap": tap,
                "console": str(console), "started": time.time()}

    def up(self, count: int, timeout: float = 600.0, say=print) -> dict:
        """Boot ``count`` kernels (reusing running ones); wait until each answers SSH. Returns timings."""
        if not 1 <= count <= MAX_HOSTS:
            raise FleetError(f"count must be 1..{MAX_HOSTS} (got {count})")
        if not os.path.exists(UML):
            raise FleetError(f"{UML} not found: apt-get install user-mode-linux (scripts/bootstrap does)")
        if os.geteuid() != 0:
            raise FleetError("the scale lab needs root (network namespace, taps)")
        tree = build_tree(say)
        self._net_up()
        state = self.state()
        state.update(ns=self.ns, tree=str(tree), memory_mb=MEMORY_MB)
        mem_before = _mem_available_kib()
        started = time.monotonic()
        wanted = [self.host_name(i) for i in range(count)]
        pending = [i for i in range(count) if not self.running(self.host_name(i), state)]
        booting: dict[str, dict] = {}
        deadline = time.monotonic() + timeout
        while pending or booting:
            while pending and len(booting) < BOOT_PARALLEL:
                index = pending.pop(0)
                info = self._start(index, tree)
                state["hosts"][self.host_name(index)] = info
                booting[self.host_name(index)] = info
                self._save(state)
            for name, info in list(booting.items()):
                text = Path(info["console"]).read_bytes()[-4096:]
                if b"SCALE-READY" in text:
                    info["ready"] = time.time()
                    del booting[name]
                elif not _alive(info["pid"]):
                    raise FleetError(f"{name} exited while booting; console:\n"
                                     + Path(info["console"]).read_text(errors="replace")[-3000:])
            if time.monotonic() > deadline:
                raise FleetError(f"{len(booting) + len(pending)} kernel(s) not ready after {timeout:.0f}s: "
                                 + ", ".join(sorted(booting)))
            time.sleep(0.1)
        self._save(state)
        booted = time.monotonic() - started
        self.write_inventory(wanted)
        self.wait_ssh(wanted, max(30.0, deadline - time.monotonic()))
        total = time.monotonic() - started
        mem_used = mem_before - _mem_available_kib()
        result = {"hosts": count, "started": len([1 for n in wanted if "ready" in state["hosts"][n]]),
                  "boot_to_init_s": round(booted, 1), "boot_to_ssh_s": round(total, 1),
                  "mem_available_drop_mib": round(mem_used / 1024), "rss_mib_per_kernel": self.rss_per_kernel()}
        state["last_up"] = result
        self._save(state)
        return result

    def running(self, name: str, state: dict | None = None) -> bool:
        """Whether kernel ``name`` runs: its process is alive and it has not panicked (a panicked UML hangs)."""
        info = (state or self.state())["hosts"].get(name)
        if not info or not _alive(info["pid"]):
            return False
        try:
            with open(info["console"], "rb") as handle:
                handle.seek(max(0, os.path.getsize(info["console"]) - 65536))
                panicked = b"Kernel panic - not syncing" in handle.read()
        except OSError:
            panicked = False
        if panicked:
            try:
                os.killpg(info["pgid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
        return not panicked

    def names(self) -> list[str]:
        return sorted(self.state()["hosts"])

    def write_inventory(self, names: list[str] | None = None) -> Path:
        state = self.state()
        names = names or sorted(state["hosts"])
        key = ssh_key()
        proxy = f"ip netns exec {self.ns} socat - TCP:%h:%p"
        lines = ["# Written by `python -m tests.scale up N`: the running user-mode-linux kernels.", "[scale]"]
        for name in names:
            lines.append(" ".join([
                name, f"ansible_host={state['hosts'][name]['ip']}", "ansible_user=root",
                f"ansible_ssh_private_key_file={key}", "ansible_python_interpreter=/usr/bin/python3",
                f"ansible_ssh_common_args='-o ProxyCommand=\"{proxy}\" -o StrictHostKeyChecking=no "
                "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ServerAliveInterval=5 -o ServerAliveCountMax=6'",
            ]))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.inventory_file.write_text("\n".join(lines) + "\n")
        return self.inventory_file

    def ssh_argv(self, name: str, connect_timeout: int = 10) -> list[str]:
        info = self.state()["hosts"][name]
        return ["ssh", "-i", str(ssh_key()), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", f"ConnectTimeout={connect_timeout}",
                "-o", f"ProxyCommand=ip netns exec {self.ns} socat - TCP:%h:%p", f"root@{info['ip']}"]

    def ssh(self, name: str, cmd: str, timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(self.ssh_argv(name) + [cmd], capture_output=True, text=True, timeout=timeout,
                              check=False)
        if check and proc.returncode:
            raise FleetError(f"ssh {name} {cmd!r}: rc {proc.returncode}: {proc.stderr.strip()}")
        return proc

    def wait_ssh(self, names: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        left = list(names)
        while left:
            procs = {n: subprocess.Popen(self.ssh_argv(n, 5) + ["true"], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL) for n in left[:BOOT_PARALLEL * 2]}
            for name, proc in procs.items():
                try:
                    if proc.wait(30) == 0:
                        left.remove(name)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if left and time.monotonic() > deadline:
                raise FleetError(f"no SSH after {timeout:.0f}s: {', '.join(left)}")
            if left:
                time.sleep(0.5)

    def rss_per_kernel(self) -> float:
        """Mean resident memory (MiB, proportional: Pss) of one kernel: all host processes of its session."""
        state = self.state()
        totals = []
        sessions = {info["pgid"] for info in state["hosts"].values() if _alive(info["pid"])}
        per = dict.fromkeys(sessions, 0)
        seen = set()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                sid = os.getsid(int(entry))
            except OSError:
                continue
            if sid in per:
                try:
                    with open(f"/proc/{entry}/smaps_rollup") as handle:
                        rollup = handle.read()
                except OSError:
                    continue
                # UML's helper processes share the kernel's address space (CLONE_VM) and report the same
                # rollup: count each address space once
                if (sid, rollup) in seen:
                    continue
                seen.add((sid, rollup))
                for line in rollup.splitlines():
                    if line.startswith("Pss:"):
                        per[sid] += int(line.split()[1])
        totals = list(per.values())
        return round(sum(totals) / len(totals) / 1024, 1) if totals else 0.0

    # ------------------------------------------------------------------ faults
    def signal(self, name: str, signum: int) -> None:
        """Send ``signum`` to every host process of kernel ``name`` (its session)."""
        info = self.state()["hosts"][name]
        try:
            os.killpg(info["pgid"], signum)
        except ProcessLookupError:
            pass

    def _kernel_pids(self, name: str) -> list[int]:
        """The host processes of kernel ``name`` that are the kernel itself, not its user processes.

        UML runs each of its user processes as a host process it traces (ptrace): those must not get job-control
        signals (a SIGSTOP becomes a ptrace stop the kernel does not expect). Stopping the kernel's own processes
        freezes the whole machine, user processes included, like a hypervisor pausing a VM."""
        sid = self.state()["hosts"][name]["pgid"]
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                if os.getsid(int(entry)) != sid:
                    continue
                with open(f"/proc/{entry}/status") as handle:
                    tracer = [line for line in handle if line.startswith("TracerPid:")]
            except OSError:
                continue
            if tracer and tracer[0].split()[1] == "0":
                pids.append(int(entry))
        return pids

    def stop(self, name: str) -> None:
        """Freeze kernel ``name`` (SIGSTOP to the kernel's own processes): it answers nothing until :meth:`resume`."""
        for pid in self._kernel_pids(name):
            try:
                os.kill(pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass

    def resume(self, name: str) -> None:
        for pid in self._kernel_pids(name):
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def kill(self, name: str) -> None:
        self.signal(name, signal.SIGKILL)

    # ------------------------------------------------------------------ down
    def down(self) -> list[str]:
        state = self.state()
        stopped = []
        for name, info in state["hosts"].items():
            if _alive(info["pid"]):
                for signum in (signal.SIGCONT, signal.SIGKILL):
                    try:
                        os.killpg(info["pgid"], signum)
                    except ProcessLookupError:
                        pass
                stopped.append(name)
        for name, info in state["hosts"].items():
            for _attempt in range(100):
                if not _alive(info["pid"]):
                    break
                time.sleep(0.05)
        if self._ns_exists():
            _run(["ip", "netns", "delete", self.ns], check=False)
        state["hosts"] = {}
        self._save(state)
        shutil.rmtree(self.run_dir / "uml", ignore_errors=True)
        return stopped


def capture_dumps(fleet: Fleet, name: str = "uml000", out: Path | None = None) -> list[dict]:
    """Real UML dumps as parser fixtures: ``uml-w`` and ``uml-l`` (dmesg, kmsg, ps), then ``uml-t-panic``: the
    console of the kernel that ``t`` panics (it is dead afterwards: run ``down``/``up`` to get it back)."""
    from tests.lab.dumps import GUEST_CAPTURE, OUT
    out = out or OUT
    results = []
    for key in "wl":
        proc = subprocess.run(fleet.ssh_argv(name) + ["python3 - " + key], input=GUEST_CAPTURE, capture_output=True,
                              text=True, timeout=300, check=True)
        data = json.loads(proc.stdout)
        (out / f"uml-{key}.dmesg.txt").write_text(data["dmesg"])
        (out / f"uml-{key}.kmsg.txt").write_text(data["kmsg"])
        if key == "w":
            (out / "uml-w.ps.txt").write_text(data["ps"])
        results.append({"key": key, "kernel": data["uname"], "lost": data["lost"],
                        "dmesg_lines": len(data["dmesg"].splitlines())})
    console = Path(fleet.state()["hosts"][name]["console"])
    offset = console.stat().st_size
    # the panicked kernel does not exit (it hangs, like a wedged host): wait for the panic, then kill it
    writer = subprocess.Popen(fleet.ssh_argv(name, 5) + ["echo t > /proc/sysrq-trigger"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    text = ""
    while time.monotonic() < deadline:
        time.sleep(0.5)
        with open(console, "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", "replace")
        if "Kernel panic" in text and text.rstrip().endswith(("fork_handler+0x92/0x94", "]")):
            time.sleep(1.0)
            with open(console, "rb") as handle:
                handle.seek(offset)
                text = handle.read().decode("utf-8", "replace")
            break
    fleet.kill(name)
    writer.kill()
    writer.wait()
    (out / "uml-t-panic.console.txt").write_text(text)
    results.append({"key": "t", "console_lines": len(text.splitlines()),
                    "panicked": "Kernel panic" in text, "alive": _alive(fleet.state()["hosts"][name]["pid"])})
    return results


def main(argv: list[str]) -> int:
    import argparse
    parser = argparse.ArgumentParser(prog="python -m tests.scale", description=__doc__.split("\n", maxsplit=1)[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="boot N kernels (default 50) and write .scale/inventory.ini")
    up.add_argument("count", type=int, nargs="?", default=50)
    up.add_argument("--timeout", type=float, default=600)
    sub.add_parser("down", help="stop every kernel and remove the network namespace")
    sub.add_parser("status", help="list the kernels; exit 0 when all run")
    sub.add_parser("capture-dumps", help="refresh the uml-* fixtures in tests/unit/fixtures/dumps (kills uml000)")
    ssh = sub.add_parser("ssh", help="run a command on one kernel")
    ssh.add_argument("name")
    ssh.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    fleet = Fleet()
    if args.cmd == "up":
        print(json.dumps(fleet.up(args.count, timeout=args.timeout)))
        print(f"inventory: {fleet.inventory_file}")
        return 0
    if args.cmd == "down":
        print("scale: stopped %d kernel(s)" % len(fleet.down()))
        return 0
    if args.cmd == "status":
        state = fleet.state()
        down = [n for n in sorted(state["hosts"]) if not fleet.running(n, state)]
        print(f"{len(state['hosts']) - len(down)} running, {len(down)} not running {' '.join(down)}")
        return 1 if down or not state["hosts"] else 0
    if args.cmd == "capture-dumps":
        print(json.dumps(capture_dumps(fleet)))
        return 0
    if args.cmd == "ssh":
        proc = subprocess.run(fleet.ssh_argv(args.name) + [" ".join(args.command)], check=False)
        return proc.returncode
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
