"""The running lab: boot guests on copy-on-write overlays, wait for SSH, write an inventory, stop them.

State lives in .lab/state.json so that `python -m tests.lab down` in another process stops what
`up` started. In-process users (pytest) get atexit and signal handlers that stop every guest this
process started, and the qemu processes they start die with the starting thread's process
(PR_SET_PDEATHSIG), so an interrupted run leaves no qemu behind.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import fcntl
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from . import image
from .config import GUESTS, RUN_DIR, boot_timeout
from .qemu import QMP, qemu_cmd, send_keys_args


class LabError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as dead
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _is_our_qemu(pid: int, name: str) -> bool:
    """The pid still belongs to the qemu we started (pids get reused)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return b"-name" in argv and name.encode() in argv and any(b"qemu-system" in a for a in argv[:1])


def _pdeathsig() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def tail(path: Path | str, lines: int = 40) -> str:
    try:
        data = Path(path).read_bytes().decode(errors="replace").replace("\r", "")
    except OSError:
        return f"(no serial log at {path})"
    return "\n".join(data.splitlines()[-lines:])


_LIVE_LABS: list[Lab] = []
_HANDLERS_SET = False


def _cleanup_all() -> None:
    for lab in list(_LIVE_LABS):
        with contextlib.suppress(Exception):
            lab.down()


def _install_handlers() -> None:
    global _HANDLERS_SET
    if _HANDLERS_SET:
        return
    _HANDLERS_SET = True
    atexit.register(_cleanup_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in (signal.SIGTERM, signal.SIGHUP):
        prev = signal.getsignal(sig)

        def handler(signum, frame, prev=prev):
            _cleanup_all()
            if callable(prev):
                prev(signum, frame)
            raise SystemExit(128 + signum)

        signal.signal(sig, handler)


class Lab:
    """The QEMU lab. `Lab().up()` boots (or reuses) the guests; `.down()` stops those it started."""

    def __init__(self, names: list[str] | None = None, run_dir: Path | str | None = None,
                 say: Callable[[str], None] | None = None):
        self.names = list(names or GUESTS)
        for n in self.names:
            if n not in GUESTS:
                raise LabError(f"unknown guest {n!r}; the lab has {', '.join(GUESTS)}")
        self.run_dir = Path(run_dir or RUN_DIR)
        self.say = say or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self.started: set[str] = set()
        self._procs: dict[str, subprocess.Popen] = {}

    # ---------------------------------------------------------------- state
    @property
    def state_file(self) -> Path:
        return self.run_dir / "state.json"

    @property
    def inventory_file(self) -> Path:
        return self.run_dir / "inventory.ini"

    def _lock(self):
        self.run_dir.mkdir(parents=True, exist_ok=True)
        f = open(self.run_dir / "lock", "w")  # noqa: SIM115 - closed by the caller's context
        fcntl.flock(f, fcntl.LOCK_EX)
        return f

    def state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def _save(self, state: dict) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2, sort_keys=True))
        os.replace(tmp, self.state_file)

    def guest(self, name: str) -> dict:
        st = self.state().get(name)
        if not st:
            raise LabError(f"guest {name} is not running (no entry in {self.state_file})")
        return st

    def running(self, name: str) -> bool:
        st = self.state().get(name)
        return bool(st) and _alive(st["pid"]) and _is_our_qemu(st["pid"], st["qemu_name"])

    # ---------------------------------------------------------------- up
    def up(self, detach: bool = False, timeout: float | None = None) -> list[str]:
        """Boot every guest not already running, wait for SSH, write the inventory.

        detach=False (the API default): the guests belong to this process and are stopped by
        .down(), at exit, on SIGTERM/SIGHUP, and if this process dies. detach=True (the CLI):
        they keep running until `python -m tests.lab down`.
        Returns the names of the guests this call started.
        """
        timeout = boot_timeout() if timeout is None else timeout
        if not detach:
            _install_handlers()
            if self not in _LIVE_LABS:
                _LIVE_LABS.append(self)
        t0 = time.monotonic()
        todo: list[str] = []
        try:
            with self._lock():
                state = self.state()
                todo = [n for n in self.names if not self.running(n)]
                reuse = [n for n in self.names if n not in todo]
                if reuse:
                    self.say(f"lab: reusing running guests {', '.join(reuse)}")
                if todo:
                    images = image.build_all(todo, say=self.say)
                    self.say(f"lab: base images ready ({time.monotonic() - t0:.0f}s)")
                key = image.ssh_key()
                for name in todo:
                    state.pop(name, None)
                    state[name] = self._start(name, images[name], key, detach)
                    self.started.add(name)
                    self._save(state)
                self._write_inventory(state)
            self.wait_ssh(self.names, timeout)  # reused guests too: a hung one is an error, not a pass
            if todo:
                self._first_boot(todo)
        except BaseException:
            # a guest that did not come up, an interrupt: stop what this call started, also for the CLI
            self.down()
            raise
        if todo:
            self.say(f"lab: {', '.join(todo)} up in {time.monotonic() - t0:.0f}s; inventory {self.inventory_file}")
        return todo

    def _start(self, name: str, base: Path, key: Path, detach: bool) -> dict:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        overlay = self.run_dir / f"{name}.qcow2"
        serial = self.run_dir / f"{name}.serial.log"
        qmp = self.run_dir / f"{name}.qmp"
        for p in (overlay, serial, qmp):
            p.unlink(missing_ok=True)
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(overlay)],
                       check=True)
        port = _free_port()
        qemu_name = f"magic-sysrq-lab-{name}"
        cmd = qemu_cmd(qemu_name, overlay, serial, qmp_socket=qmp, ssh_port=port, cpus=GUESTS[name].cpus)
        log = open(self.run_dir / f"{name}.qemu.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, preexec_fn=None if detach else _pdeathsig)
        log.close()
        self._procs[name] = proc
        self.say(f"lab: started {name} (pid {proc.pid}, ssh 127.0.0.1:{port}, base {base.name})")
        return {"pid": proc.pid, "qemu_name": qemu_name, "port": port, "qmp": str(qmp), "serial": str(serial),
                "overlay": str(overlay), "base": str(base), "key": str(key), "started_at": time.time(),
                "detached": detach, "owner_pid": os.getpid()}

    def wait_ssh(self, names: list[str], timeout: float, boot_id_not: dict[str, str] | None = None) -> None:
        """Wait until every named guest answers SSH (with a new boot id, if given)."""
        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            for name in list(pending):
                st = self.guest(name)
                if not _alive(st["pid"]):
                    raise LabError(f"{name}: qemu exited before SSH came up; serial log {st['serial']}:\n"
                                   f"{tail(st['serial'])}\nqemu log:\n{tail(self.run_dir / (name + '.qemu.log'), 10)}")
                r = self._ssh_raw(st, "cat /proc/sys/kernel/random/boot_id", timeout=20, connect_timeout=5)
                if r.returncode == 0 and r.stdout.strip():
                    if boot_id_not and r.stdout.strip() == boot_id_not.get(name):
                        continue
                    pending.remove(name)
            if not pending:
                break
            if time.monotonic() > deadline:
                msgs = []
                for name in pending:
                    st = self.guest(name)
                    msgs.append(f"{name}: no SSH on 127.0.0.1:{st['port']} after {timeout:.0f}s; "
                                f"tail of serial log {st['serial']}:\n{tail(st['serial'])}")
                raise LabError("\n\n".join(msgs))
            time.sleep(2)

    FIRST_BOOT = "cat /proc/sys/kernel/random/boot_id /proc/sys/kernel/sysrq; nproc"

    def _first_boot(self, names: list[str]) -> None:
        """What a fresh boot of the base image has, read the moment SSH first answers, before any test or fixture
        touches the guest: boot id, kernel.sysrq (the distribution's default mask), CPUs. Kept in the state as
        `first_boot` for as long as the guest runs (a reused lab keeps what its first boot had)."""
        with self._lock():
            state = self.state()
            for name in names:
                out = self._ssh_raw(state[name], self.FIRST_BOOT, timeout=60).stdout.split()
                if len(out) == 3:
                    state[name]["first_boot"] = {"boot_id": out[0], "sysrq": int(out[1]), "cpus": int(out[2])}
            self._save(state)

    # ---------------------------------------------------------------- down
    def down(self, all_guests: bool = False) -> list[str]:
        """Stop the guests this Lab started (every guest in the state file with all_guests=True)."""
        stopped = []
        with self._lock():
            state = self.state()
            names = [n for n in state if (all_guests or n in self.started)]
            for name in names:
                st = state[name]
                self._stop(name, st)
                stopped.append(name)
                state.pop(name, None)
                self.started.discard(name)
            self._save(state)
            self._write_inventory(state)
        if self in _LIVE_LABS and not self.started:
            _LIVE_LABS.remove(self)
        return stopped

    def _stop(self, name: str, st: dict) -> None:
        pid = st["pid"]
        if _alive(pid) and _is_our_qemu(pid, st["qemu_name"]):
            with contextlib.suppress(Exception), QMP(st["qmp"], timeout=3) as q:
                q.command("quit")
            deadline = time.monotonic() + 10
            while _alive(pid) and time.monotonic() < deadline:
                self._reap(name)
                time.sleep(0.1)
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 5
                while _alive(pid) and time.monotonic() < deadline:
                    self._reap(name)
                    time.sleep(0.1)
        self._reap(name)
        for key in ("overlay", "qmp"):
            with contextlib.suppress(OSError):
                Path(st[key]).unlink()
        self.say(f"lab: stopped {name}")

    def _reap(self, name: str) -> None:
        proc = self._procs.get(name)
        if proc is not None and proc.poll() is not None:
            self._procs.pop(name, None)

    # ---------------------------------------------------------------- inventory
    def _write_inventory(self, state: dict) -> None:
        lines = ["# Written by `python -m tests.lab up`; the running QEMU lab guests.", "[lab]"]
        for name in GUESTS:
            st = state.get(name)
            if not st:
                continue
            lines.append(" ".join([
                name, "ansible_host=127.0.0.1", f"ansible_port={st['port']}", "ansible_user=root",
                f"ansible_ssh_private_key_file={st['key']}", "ansible_python_interpreter=/usr/bin/python3",
                "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
                " -o LogLevel=ERROR -o ServerAliveInterval=5 -o ServerAliveCountMax=6'",
                f"lab_qmp_socket={st['qmp']}", f"lab_serial_log={st['serial']}",
                # how the out-of-band modules reach it, as a user's inventory says it for a QEMU guest
                "oob_method=qmp", f"oob_qmp=\"{{'socket': '{st['qmp']}'}}\"",
                f"oob_console=\"{{'path': '{st['serial']}'}}\"",
                f"lab_release={GUESTS[name].release}", f"lab_kernel_series={GUESTS[name].kernel}",
            ]))
        self.run_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.inventory_file.with_suffix(".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self.inventory_file)

    def inventory(self) -> str:
        return str(self.inventory_file)

    # ---------------------------------------------------------------- access
    def ssh_argv(self, name: str, connect_timeout: int = 10) -> list[str]:
        st = self.guest(name)
        return self._ssh_argv(st, connect_timeout)

    @staticmethod
    def _ssh_argv(st: dict, connect_timeout: int = 10) -> list[str]:
        return ["ssh", "-i", st["key"], "-p", str(st["port"]), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", f"ConnectTimeout={connect_timeout}", "-o", "ServerAliveInterval=5",
                "-o", "ServerAliveCountMax=3", "root@127.0.0.1"]

    def _ssh_raw(self, st: dict, cmd: str, timeout: float = 120, connect_timeout: int = 10,
                 input_data: str | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(self._ssh_argv(st, connect_timeout) + ["--", cmd], capture_output=True,
                                  text=True, timeout=timeout, input=input_data,
                                  stdin=None if input_data is not None else subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired as exc:
            return subprocess.CompletedProcess(exc.cmd, 255, exc.stdout or "", f"ssh timed out after {timeout}s")

    def ssh(self, name: str, cmd: str | list[str], check: bool = True, timeout: float = 120,
            input_data: str | None = None) -> subprocess.CompletedProcess:
        """Run a shell command on a guest as root; returns CompletedProcess (text)."""
        if not isinstance(cmd, str):
            cmd = shlex.join(cmd)
        r = self._ssh_raw(self.guest(name), cmd, timeout=timeout, input_data=input_data)
        if check and r.returncode != 0:
            raise LabError(f"{name}: `{cmd}` failed (exit {r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def boot_id(self, name: str) -> str:
        return self.ssh(name, "cat /proc/sys/kernel/random/boot_id").stdout.strip()

    def reboot(self, *names: str, timeout: float | None = None) -> None:
        """Reboot guests (in parallel) through the guest's own `systemctl reboot` and wait for SSH again."""
        names = names or tuple(self.names)
        before = {n: self.boot_id(n) for n in names}
        for n in names:
            self.ssh(n, "systemctl reboot", check=False, timeout=30)
        self.wait_ssh(list(names), boot_timeout() if timeout is None else timeout, boot_id_not=before)

    def wait_reboot(self, names: list[str], before: dict[str, str], timeout: float | None = None) -> None:
        """After something else rebooted the guests (ansible, a crash): wait for a new boot id."""
        self.wait_ssh(names, boot_timeout() if timeout is None else timeout, boot_id_not=before)

    def qmp(self, name: str, command: str, arguments: dict | None = None) -> object:
        with QMP(self.guest(name)["qmp"]) as q:
            return q.command(command, arguments)

    def send_keys(self, name: str, *keys: str) -> None:
        """Press keys together on the guest's keyboard, e.g. send_keys('deb12', 'alt', 'sysrq', 'w')."""
        self.qmp(name, "send-key", send_keys_args(list(keys)))

    def serial_log(self, name: str) -> str:
        """The guest's serial console as captured (CR and ANSI escapes kept)."""
        return Path(self.guest(name)["serial"]).read_bytes().decode(errors="replace")

    def serial_size(self, name: str) -> int:
        return Path(self.guest(name)["serial"]).stat().st_size

    def serial_since(self, name: str, offset: int) -> str:
        with open(self.guest(name)["serial"], "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def status(self) -> dict[str, dict]:
        out = {}
        for name, st in self.state().items():
            out[name] = dict(st, running=self.running(name))
        return out

    def __enter__(self) -> Lab:
        self.up()
        return self

    def __exit__(self, *exc) -> None:
        self.down()
