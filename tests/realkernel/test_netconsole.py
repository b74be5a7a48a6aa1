"""netconsole on real kernels (Debian 12 / 6.1 and Debian 13 / 6.12 under QEMU), to an rsyslog collector on the lab host.

The harness configures rsyslog with the netconsole_collector role (one instance and UDP port per guest: QEMU user
networking delivers what both guests send to 10.0.2.2 from 127.0.0.1, so the port keeps them apart) and starts its
own rsyslogd on 127.0.0.1 only. Then, on both guests at once (module fixtures, chained; one reboot per guest):
  the netconsole role in check mode (nothing changes), then for real ->
  D-state writers (tests/lab/stuck.sh) and an in-band `w`: the dump arrives and parses with the writers' pids; a
  short hung_task_timeout_secs: the kernel's hung-task report arrives ->
  SSH wedged, wedged_host_dump.yml presses `w` through QMP and reads the dump back from netconsole ->
  2,000 extra threads and a `t` dump: every sequence number between two markers is either received or reported
  lost (checked against the kernel's own sequence numbers from /dev/kmsg) ->
  an NMI panic (unknown_nmi_panic=1, panic=10): the panic arrives, the guest reboots, and netconsole is enabled
  again in configfs with no one having run anything; the new boot's messages arrive ->
  the role with netconsole_state absent: no target, no unit, no file, no module.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import parser as sysrq_tasks
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._netconsole import record as nc_record
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import netconsole as oob_netconsole
from tests.lab.dumps import stuck as stuck_sh
from tests.realkernel.support import HOSTS, REPO, latest_dir, ok, parallel

FROZEN = "nc-frz"
THAW = 120       # seconds from the wedge to sshd's resumption
THREADS = 2000   # extra threads for the t dump
HUNG_SECS = 10   # hung_task_timeout_secs for the hung-task report

# sshd's listener stopped (SIGSTOP): new connections hang as on a host too sick to serve them; resumed after THAW.
WEDGE = rf"""
set -e
pid=$(cat /run/sshd.pid 2>/dev/null || pgrep -o -x sshd)
nohup sh -c "sleep {THAW}; kill -CONT $pid" </dev/null >/dev/null 2>&1 &
nohup sh -c "sleep 1; kill -STOP $pid" </dev/null >/dev/null 2>&1 &
"""

# 2,000 sleeping threads in one process (small stacks), for at most 15 minutes; prints the pid once all exist.
THREADS_PY = rf"""
import os, sys, threading, time
if os.fork():
    time.sleep(0.1); sys.exit(0)
os.setsid()
null = os.open("/dev/null", os.O_RDWR)
for fd in (0, 1, 2):
    os.dup2(null, fd)  # let the SSH session end
threading.stack_size(64 * 1024)
stop = threading.Event()
for _ in range({THREADS}):
    threading.Thread(target=stop.wait, args=(900,), daemon=True).start()
open("/run/nc-threads.pid", "w").write(str(os.getpid()))
stop.wait(900)
"""

# Write a marker into the kernel log and print its sequence number (read back from /dev/kmsg).
MARK_PY = r"""
import os, sys
marker = sys.argv[1]
with open("/dev/kmsg", "w") as kmsg:
    kmsg.write(marker + "\n")
seq = None
fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
while True:
    try:
        rec = os.read(fd, 8192).decode(errors="replace")
    except BlockingIOError:
        break
    except OSError:  # EPIPE: a record was overwritten while reading; go on
        continue
    header, _, text = rec.partition(";")
    if text.rstrip("\n") == marker:
        seq = int(header.split(",")[1])
print(seq)
"""


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(lab, name, timeout=15):
    try:
        return lab.ssh(name, "true", check=False, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def _wait_for(path, offset, until, limit, what):
    """Read a guest's collector file from ``offset`` until ``until(text)``; returns (text, reader)."""
    deadline = time.monotonic() + limit
    while True:
        reader = oob_netconsole.NetconsoleFile(str(path))
        text = reader.read(offset)[0]
        if until(text):
            return text, reader
        assert time.monotonic() < deadline, f"{what}: not at the collector after {limit}s ({path}):\n{text[-2000:]}"
        time.sleep(2)


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _changed_tasks(run, play_name, host):
    out = []
    for play in run.data.get("plays", []):
        if play["play"]["name"] != play_name:
            continue
        for t in play.get("tasks", []):
            r = t.get("hosts", {}).get(host)
            if r and r.get("changed"):
                out.append(t["task"]["name"])
    return out


# ------------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def collector(lab, ansible):
    """rsyslogd on 127.0.0.1 with the netconsole_collector role's configuration; the role's errors on the side."""
    root = lab.run_dir / "netconsole"
    shutil.rmtree(root, ignore_errors=True)
    (root / "rsyslog.d").mkdir(parents=True)
    (root / "logrotate.d").mkdir()
    (root / "work").mkdir()
    (root / "rsyslog.conf").write_text(f'global(workDirectory="{root}/work")\n'
                                       f'include(file="{root}/rsyslog.d/*.conf")\n')
    ports = {n: _free_udp_port() for n in HOSTS}
    busy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    busy.bind(("127.0.0.1", 0))
    try:
        run = ansible.playbook("netconsole-collector.yml",
                               {"nc_root": str(root), "nc_ports": ports, "nc_busy_port": busy.getsockname()[1]})
    finally:
        busy.close()
    assert run.rc == 0, run.summary()
    errors = ok(run, "The errors", "localhost")["msg"]
    rsyslogd = shutil.which("rsyslogd") or "/usr/sbin/rsyslogd"
    assert os.path.exists(rsyslogd), "rsyslogd is not installed (scripts/bootstrap installs rsyslog)"
    log = open(root / "rsyslogd.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([rsyslogd, "-n", "-f", str(root / "rsyslog.conf"), "-i", str(root / "rsyslogd.pid")],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    try:
        deadline = time.monotonic() + 30
        while True:
            out = subprocess.run(["ss", "-H", "-u", "-l", "-n", "-p"], capture_output=True, text=True,
                                 check=False).stdout
            if all(f"127.0.0.1:{p} " in out for p in ports.values()):
                break
            assert proc.poll() is None, (root / "rsyslogd.log").read_text()
            assert time.monotonic() < deadline, f"rsyslogd does not listen on {ports}: {out}"
            time.sleep(0.5)
        yield {"root": root, "ports": ports, "errors": errors,
               "files": {n: root / "logs" / n / "127.0.0.1.log" for n in HOSTS}}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def configured(lab, ansible, collector):
    run = ansible.playbook("netconsole-setup.yml", {"nc_ports": collector["ports"]})
    assert run.rc == 0, run.summary()
    return run


@pytest.fixture(scope="module")
def inband(lab, collector, configured):
    """D-state writers, an in-band w, then the kernel's hung-task report, all read back from the collector."""
    def one(name):
        path = collector["files"][name]
        writers = [int(p) for p in stuck_sh(lab, name, "make", FROZEN, "touch", "dd").split()]
        offset = _size(path)
        lab.ssh(name, "echo w > /proc/sysrq-trigger")
        text, reader = _wait_for(path, offset, lambda t: all(f"pid:{p} " in t for p in writers), 120, "w dump")
        lines = [line for line in text.split("\n") if line]
        dump = {"writers": writers, "lines": lines, "tasks": sysrq_tasks.parse_text(lines),
                "summary": reader.summary()}
        offset = _size(path)
        lab.ssh(name, f"sysctl -q -w kernel.hung_task_timeout_secs={HUNG_SECS}")
        try:
            hung = _wait_for(path, offset, lambda t: "blocked for more than" in t, 6 * HUNG_SECS + 60,
                             "hung-task report")[0]
        finally:
            lab.ssh(name, "sysctl -q -w kernel.hung_task_timeout_secs=120")
        dump["hung"] = hung
        return dump
    return parallel(one)


@pytest.fixture(scope="module")
def wedged_dump(lab, ansible, collector, inband, tmp_path_factory):
    """SSH wedged on both guests; wedged_host_dump.yml presses w through QMP and reads netconsole."""
    parallel(lambda n: lab.ssh(n, "sysctl -q -w kernel.sysrq=1"))
    offsets = {n: _size(collector["files"][n]) for n in HOSTS}
    parallel(lambda n: lab.ssh(n, WEDGE, timeout=60))
    wedged_at = time.monotonic()
    time.sleep(3)
    answers = parallel(lambda n: _answers(lab, n))
    inventory = collector["root"] / "netconsole-inventory.json"
    inventory.write_text(json.dumps({"all": {"hosts": {
        n: {"oob_console": {"netconsole": str(collector["files"][n])}} for n in HOSTS}}}))
    root = tmp_path_factory.mktemp("nc-wedged")
    env = dict(ansible.env, ANSIBLE_STDOUT_CALLBACK="default",
               ANSIBLE_SSH_CONTROL_PATH_DIR=str(tmp_path_factory.mktemp("cp")))
    cmd = ["ansible-playbook", "-i", str(lab.inventory_file), "-i", str(inventory),
           str(REPO / "playbooks" / "wedged_host_dump.yml"), "-e", json.dumps({"sysrq_dump_root": str(root)})]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, timeout=900, check=False)
    (ansible.logdir / "netconsole-wedged-host-dump.log").write_text(proc.stdout + proc.stderr)
    where = latest_dir(root)
    result = {"rc": proc.returncode, "text": proc.stdout + proc.stderr, "answers": answers, "dir": where,
              "oob": json.loads((where / "oob.json").read_text()), "offsets": offsets}
    deadline = wedged_at + THAW + 240
    for name in HOSTS:
        while not _answers(lab, name, timeout=20):
            assert time.monotonic() < deadline, f"{name} did not thaw"
            time.sleep(5)
    parallel(lambda n: stuck_sh(lab, n, "release", FROZEN, check=False))
    parallel(lambda n: lab.ssh(n, "sysctl -q -w kernel.sysrq=438"))
    return result


@pytest.fixture(scope="module")
def t_dump(lab, collector, wedged_dump):
    """2,000 extra threads, a t dump between two markers whose sequence numbers the kernel gives."""
    def one(name):
        path = collector["files"][name]
        lab.ssh(name, "python3 -", input_data=THREADS_PY, timeout=120)
        count = 0
        deadline = time.monotonic() + 120
        while count < THREADS:
            out = lab.ssh(name, "p=$(cat /run/nc-threads.pid 2>/dev/null) && ls /proc/$p/task | wc -l",
                          check=False).stdout.strip()
            count = int(out or 0)
            assert time.monotonic() < deadline, f"{name}: only {count} threads"
            if count < THREADS:
                time.sleep(2)
        offset = _size(path)
        tag = f"nc-test-{name}-{int(time.time())}"
        begin = int(lab.ssh(name, f"python3 - {tag}-begin", input_data=MARK_PY).stdout.strip())
        lab.ssh(name, "echo t > /proc/sysrq-trigger", timeout=600)
        end = int(lab.ssh(name, f"python3 - {tag}-end", input_data=MARK_PY, timeout=300).stdout.strip())
        _wait_for(path, offset, lambda t: f"{tag}-end" in t, 300, "the end marker")
        lab.ssh(name, "kill $(cat /run/nc-threads.pid)", check=False)
        with open(path, "rb") as handle:
            handle.seek(offset)
            raw = handle.read().decode("utf-8", "replace")
        records = [r for r in (nc_record.parse_line(line) for line in raw.split("\n"))
                   if r is not None and r.seq is not None and begin <= r.seq <= end]
        assembly, pending = nc_record.assemble(records, after_seq=begin - 1)
        dropped = sum(int(line.split("** ")[1].split()[0]) for line in assembly.lines()
                      if "printk messages dropped" in line)
        return {"begin": begin, "end": end, "count": count, "summary": assembly.summary(), "pending": pending,
                "lines": assembly.lines(), "kernel_dropped": dropped}
    return parallel(one)


@pytest.fixture(scope="module")
def panicked(lab, collector, t_dump):
    """An NMI panic on both guests (unknown_nmi_panic=1, panic=10 s): the panic arrives, the guests reboot."""
    before = parallel(lab.boot_id)
    offsets = {n: _size(collector["files"][n]) for n in HOSTS}
    parallel(lambda n: lab.ssh(n, "sysctl -q -w kernel.unknown_nmi_panic=1 kernel.panic=10"))
    for name in HOSTS:
        lab.qmp(name, "inject-nmi")
    panics = parallel(lambda n: _wait_for(collector["files"][n], offsets[n], lambda t: "Kernel panic" in t, 180,
                                          "the panic")[0])
    lab.wait_reboot(list(HOSTS), before)
    after = parallel(lambda n: lab.ssh(n, "for a in enabled extended remote_port dev_name; do "
                                          "printf '%s=' $a; cat /sys/kernel/config/netconsole/fleet-1/$a; done; "
                                          "printf 'printk=%s\\n' \"$(cut -f1 /proc/sys/kernel/printk)\"; "
                                          "systemctl is-active magic-sysrq-netconsole.service; "
                                          "cat /proc/sys/kernel/random/boot_id").stdout)
    boot_records = {}
    for name in HOSTS:
        text, reader = _wait_for(collector["files"][name], offsets[name],
                                 lambda t: "sequence restarted" in t, 120, "the new boot's records")
        boot_records[name] = {"text": text, "summary": reader.summary()}
    return {"panics": panics, "after": after, "boot": boot_records}


@pytest.fixture(scope="module")
def removed(lab, ansible, panicked):
    run = ansible.playbook("netconsole-remove.yml")
    assert run.rc == 0, run.summary()
    state = parallel(lambda n: lab.ssh(n, "ls -A /sys/kernel/config/netconsole 2>&1; "
                                          "systemctl cat magic-sysrq-netconsole.service >/dev/null 2>&1 && echo UNIT; "
                                          "ls /etc/magic-sysrq/netconsole /usr/local/sbin/magic-sysrq-netconsole "
                                          "/etc/sysctl.d/90-magic-sysrq-netconsole.conf 2>/dev/null; "
                                          "test -e /sys/module/netconsole && echo MODULE; true").stdout)
    return {"run": run, "state": state}


# --------------------------------------------------------------------------------------------------------- tests
def test_collector_refuses_a_busy_port_and_an_unwritable_directory(collector):
    errors = collector["errors"]
    assert "is already in use" in errors["busy"] and "choose another netconsole_collector_port" in errors["busy"]
    assert "cannot hold the received files" in errors["dir"] and "Not a directory" in errors["dir"]


def test_check_mode_changes_nothing(configured):
    for name in HOSTS:
        assert ok(configured, "Read configfs after check mode", name)["stdout"] == "", name
        assert _changed_tasks(configured, "Netconsole (first run)", name), name


def test_targets_found_from_the_route(configured, collector, lab):
    for name in HOSTS:
        r = ok(configured, "Work out the targets and set them in the running kernel", name)
        assert r["found"]["fleet-1"] == {"dev_name": "ens3", "local_ip": "10.0.2.15", "next_hop": "10.0.2.2",
                                         "remote_mac": "52:55:0a:00:02:02"}, r["found"]
        running = lab.ssh(name, "cd /sys/kernel/config/netconsole/fleet-1 && cat enabled extended remote_port").stdout
        assert running.split() == ["1", "1", str(collector["ports"][name])]


def test_inband_w_dump_arrives_with_the_d_state_writers(inband):
    for name in HOSTS:
        dump = inband[name]
        assert "sysrq: Show Blocked State" in "\n".join(dump["lines"])
        blocked = {t["pid"]: t for t in dump["tasks"] if t["state"] == "D"}
        assert set(dump["writers"]) <= set(blocked), (name, dump["writers"], sorted(blocked))
        assert {blocked[p]["comm"] for p in dump["writers"]} == {"touch", "dd"}
        assert dump["summary"]["records"] > 0


def test_hung_task_report_arrives(inband):
    for name in HOSTS:
        assert f"blocked for more than {HUNG_SECS} seconds" in inband[name]["hung"], name


def test_wedged_host_dump_reads_the_qmp_w_dump_from_netconsole(wedged_dump, inband):
    assert wedged_dump["answers"] == {n: False for n in HOSTS}
    assert wedged_dump["rc"] == 0, wedged_dump["text"][-3000:]
    for name in HOSTS:
        assert wedged_dump["oob"][name]["path"] == "out-of-band" and wedged_dump["oob"][name]["method"] == "qmp"
        output = (wedged_dump["dir"] / name / "output.txt").read_text()
        assert "sysrq: Show Blocked State" in output, output[-2000:]
        tasks = json.loads((wedged_dump["dir"] / name / "tasks.json").read_text())
        assert set(inband[name]["writers"]) <= {t["pid"] for t in tasks if t["state"] == "D"}, name


def test_t_dump_of_2000_threads_counted_against_the_kernel_sequence(t_dump):
    for name in HOSTS:
        d = t_dump[name]
        s = d["summary"]
        print(f"{name}: t dump seq {d['begin']}-{d['end']}: {s['records']} received, {s['lost']} lost "
              f"({len(s['lost_ranges'])} gaps), kernel said {d['kernel_dropped']} dropped, {d['count']} threads")
        assert d["count"] >= THREADS
        assert not d["pending"] and s["incomplete"] == []
        assert s["first_seq"] == d["begin"] and s["last_seq"] == d["end"]
        assert s["records"] + s["lost"] == d["end"] - d["begin"] + 1  # every record: received or reported lost
        assert s["lost"] >= d["kernel_dropped"]
        assert (s["lost"] == 0) == (not any(line.startswith("netconsole: ") and "lost" in line for line in d["lines"]))
        assert s["records"] > THREADS  # at least a line per thread arrived


def test_nmi_panic_arrives(panicked):
    for name in HOSTS:
        assert "Kernel panic - not syncing" in panicked["panics"][name], name


def test_netconsole_is_back_after_the_reboot_without_login(panicked, collector):
    for name in HOSTS:
        after = panicked["after"][name]
        assert "enabled=1" in after and "extended=1" in after, after
        assert f"remote_port={collector['ports'][name]}" in after and "printk=7" in after, after
        assert "\nactive\n" in after, after
        assert panicked["boot"][name]["summary"]["restarts"] >= 1


def test_removal_leaves_no_target_no_unit_no_file(removed):
    for name in HOSTS:
        state = removed["state"][name]
        assert "UNIT" not in state and "MODULE" not in state, state
        assert "magic-sysrq" not in state and "fleet-" not in state, state
