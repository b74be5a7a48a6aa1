"""netconsole on real kernels (Debian 12 / 6.1 and Debian 13 / 6.12 under QEMU), to an rsyslog collector on the lab host.

The harness configures rsyslog with the netconsole_collector role (one instance and UDP port per guest: QEMU user
networking delivers what both guests send to 10.0.2.2 from 127.0.0.1, so the port keeps them apart) and starts its
own rsyslogd on 127.0.0.1 only. Then, on both guests at once (module fixtures, chained; one reboot per guest):
  the netconsole role in check mode (nothing changes), then for real (console log level 8, which no boot of the lab
  image has, so that after the reboot the level read back is the role's) ->
  D-state writers (tests/lab/stuck.sh) and an in-band `w`: the dump arrives and parses with the writers' pids; a
  short hung_task_timeout_secs: the kernel's hung-task report arrives ->
  SSH wedged, wedged_host_dump.yml presses `w` through QMP and reads the dump back from netconsole ->
  2,000 extra threads (a transient unit: the SSH session's user slice allows fewer tasks) and a `t` dump, run
  detached on the guest (the dump keeps a one-CPU guest too busy for SSH): every sequence number between two
  markers is either received or reported lost (the kernel's own sequence numbers, from /dev/kmsg) ->
  an NMI panic (unknown_nmi_panic=1, panic=10): the panic arrives, the guest reboots, and netconsole is enabled
  again in configfs with no one having run anything; the new boot's messages arrive ->
  the role with netconsole_state absent: no target, no unit, no file, no module.
"""
from __future__ import annotations

import json
import os
import re
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
from tests.realkernel.support import HOSTS, REPO, assert_no_warnings, latest_dir, ok, parallel

FROZEN = "nc-frz"
THAW = 120       # seconds from the wedge to sshd's resumption
THREADS = 2000   # extra threads for the t dump
HUNG_SECS = 10   # hung_task_timeout_secs for the hung-task report
ROLE = "magic_sysrq.fleet.netconsole"  # the JSON callback names a role's tasks "<role> : <task>"

# sshd's listener stopped (SIGSTOP): new connections hang as on a host too sick to serve them. The resumer, started
# first, lets it go 10 s after the kernel logged the next "Show Blocked State" (the QMP w has been printed; the dump
# is read from the collector's file, not over SSH), or after THAW seconds at most.
RESUMER_PY = rf"""
import os, signal, time
fd = os.open("/dev/kmsg", os.O_RDONLY)
os.lseek(fd, 0, os.SEEK_END)
signal.alarm({THAW})
while True:
    try:
        if b"sysrq: Show Blocked State" in os.read(fd, 8192):
            break
    except OSError:  # EPIPE: records overwritten while reading
        continue
time.sleep(10)
"""
WEDGE = r"""
set -e
cat > /run/nc-resume.py
pid=$(cat /run/sshd.pid 2>/dev/null || pgrep -o -x sshd)
nohup sh -c "python3 /run/nc-resume.py; kill -CONT $pid" </dev/null >/dev/null 2>&1 &
nohup sh -c "sleep 1; kill -STOP $pid" </dev/null >/dev/null 2>&1 &
"""

# 2,000 sleeping threads in one process, run as a transient unit (TasksMax: root's user slice allows about 2,000
# tasks in all) for at most 15 minutes.
THREADS_PY = rf"""
import threading
threading.stack_size(64 * 1024)
stop = threading.Event()
for _ in range({THREADS}):
    threading.Thread(target=stop.wait, args=(900,), daemon=True).start()
stop.wait(900)
"""

# On the guest, detached (a transient unit): a marker in the kernel log, `t`, a second marker; the markers' sequence
# numbers (read back from /dev/kmsg) and how long the write of `t` took, as JSON in /run/nc-t.json.
T_DUMP_PY = r"""
import json, os, sys, time

def mark(text):
    with open("/dev/kmsg", "w") as kmsg:
        kmsg.write(text + "\n")
    fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    seq = None
    while True:
        try:
            rec = os.read(fd, 8192).decode(errors="replace")
        except BlockingIOError:
            break
        except OSError:  # EPIPE: a record was overwritten while reading; go on
            continue
        header, _, body = rec.partition(";")
        if body.split("\n", 1)[0] == text:
            seq = int(header.split(",")[1])
    os.close(fd)
    return seq

tag = sys.argv[1]
begin = mark(tag + "-begin")
t0 = time.monotonic()
with open("/proc/sysrq-trigger", "w") as trigger:
    trigger.write("t")
seconds = time.monotonic() - t0
end = mark(tag + "-end")
with open("/run/nc-t.json.new", "w") as out:
    json.dump({"begin": begin, "end": end, "seconds": seconds}, out)
os.rename("/run/nc-t.json.new", "/run/nc-t.json")
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
    parallel(lambda n: lab.ssh(n, WEDGE, input_data=RESUMER_PY, timeout=60))
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
    assert_no_warnings("wedged_host_dump.yml", proc.stdout + proc.stderr)
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


def _guest_json(lab, name, path, limit, what):
    """A JSON file the guest writes when a detached job ends; SSH may not answer while the job runs."""
    deadline = time.monotonic() + limit
    while True:
        try:
            r = lab.ssh(name, f"cat {path} 2>/dev/null", check=False, timeout=30)
        except subprocess.TimeoutExpired:
            r = None
        if r is not None and r.returncode == 0 and r.stdout.strip():
            return json.loads(r.stdout)
        assert time.monotonic() < deadline, f"{name}: {what} not done after {limit}s"
        time.sleep(5)


@pytest.fixture(scope="module")
def t_dump(lab, collector, wedged_dump):
    """2,000 extra threads, a t dump between two markers whose sequence numbers the kernel gives."""
    def one(name):
        path = collector["files"][name]
        lab.ssh(name, "cat > /run/nc-threads.py && rm -f /run/nc-t.json && systemd-run --quiet --collect "
                      "--unit nc-threads -p TasksMax=infinity -p RuntimeMaxSec=900 python3 /run/nc-threads.py",
                input_data=THREADS_PY)
        count = 0
        deadline = time.monotonic() + 180
        while count < THREADS + 1:
            out = lab.ssh(name, "systemctl show -P TasksCurrent nc-threads", check=False).stdout.strip()
            count = int(out) if out.isdigit() else 0
            assert time.monotonic() < deadline, f"{name}: only {count} tasks in nc-threads"
            if count < THREADS + 1:
                time.sleep(2)
        offset = _size(path)
        serial = lab.serial_size(name)
        tag = f"nc-test-{name}-{int(time.time())}"
        lab.ssh(name, f"cat > /run/nc-t.py && systemd-run --quiet --collect --unit nc-tdump python3 /run/nc-t.py {tag}",
                input_data=T_DUMP_PY)
        started = time.monotonic()
        marks = _guest_json(lab, name, "/run/nc-t.json", 600, "the t dump")
        serial = lab.serial_size(name) - serial
        begin, end = marks["begin"], marks["end"]
        _wait_for(path, offset, lambda t: f"{tag}-end" in t, 300, "the end marker")
        waited = time.monotonic() - started
        lab.ssh(name, "systemctl stop nc-threads", check=False)
        with open(path, "rb") as handle:
            handle.seek(offset)
            raw = handle.read().decode("utf-8", "replace")
        records = [r for r in (nc_record.parse_line(line) for line in raw.split("\n"))
                   if r is not None and r.seq is not None and begin <= r.seq <= end]
        assembly, pending = nc_record.assemble(records, after_seq=begin - 1)
        said = [re.search(r"\*\* (\d+) printk messages dropped", line) for line in assembly.lines()]
        dropped = sum(int(m.group(1)) for m in said if m)
        return {"begin": begin, "end": end, "count": count - 1, "summary": assembly.summary(), "pending": pending,
                "lines": assembly.lines(), "kernel_dropped": dropped, "seconds": marks["seconds"],
                "waited": waited, "serial_bytes": serial, "bytes": len(raw)}
    return parallel(one)


@pytest.fixture(scope="module")
def panicked(lab, collector, t_dump):
    """An NMI panic on both guests (unknown_nmi_panic=1, panic=10 s): the panic arrives, the guests reboot."""
    before = parallel(lab.boot_id)
    offsets = {n: _size(collector["files"][n]) for n in HOSTS}
    # the lab image has kdump-tools; a crash kernel loaded (by test_roles.py) would take the panic elsewhere
    parallel(lambda n: lab.ssh(n, "if [ \"$(cat /sys/kernel/kexec_crash_loaded)\" = 1 ]; then kexec -p -u; fi; "
                                  "sysctl -q -w kernel.unknown_nmi_panic=1 kernel.panic=10"))
    for name in HOSTS:
        lab.qmp(name, "inject-nmi")
    panics = parallel(lambda n: _wait_for(collector["files"][n], offsets[n], lambda t: "Kernel panic" in t, 180,
                                          "the panic")[0])
    lab.wait_reboot(list(HOSTS), before)
    after = parallel(lambda n: lab.ssh(n, "for a in enabled extended remote_port dev_name; do "
                                          "printf '%s=' $a; cat /sys/kernel/config/netconsole/fleet-1/$a; done; "
                                          "printf 'printk=%s\\n' \"$(cut -f1 /proc/sys/kernel/printk)\"; "
                                          "systemctl is-active magic-sysrq-netconsole.service; "
                                          "cat /proc/sys/kernel/random/boot_id; "
                                          # a message printed now, after the boot unit enabled the target: the
                                          # kernel may have printed nothing since (netconsole never replays the
                                          # log from before its target was enabled)
                                          "echo \"<5>magic-sysrq-test: after the reboot, boot $(cat "
                                          "/proc/sys/kernel/random/boot_id)\" > /dev/kmsg").stdout)
    boot_records = {}
    for name in HOSTS:
        boot_id = after[name].split()[-1]
        text, reader = _wait_for(collector["files"][name], offsets[name],
                                 lambda t, b=boot_id: f"after the reboot, boot {b}" in t, 120,
                                 "the new boot's marker")
        boot_records[name] = {"text": text, "summary": reader.summary()}
    return {"panics": panics, "after": after, "boot": boot_records}


@pytest.fixture(scope="module")
def removed(lab, ansible, panicked):
    run = ansible.playbook("netconsole-remove.yml")
    assert run.rc == 0, run.summary()
    state = parallel(lambda n: lab.ssh(n, "ls -A /sys/kernel/config/netconsole 2>&1; "
                                          "systemctl cat magic-sysrq-netconsole.service >/dev/null 2>&1 && echo UNIT; "
                                          "ls -d /etc/magic-sysrq /usr/local/sbin/magic-sysrq-netconsole "
                                          "/etc/sysctl.d/90-magic-sysrq-netconsole.conf "
                                          "/etc/modprobe.d/magic-sysrq-netconsole.conf 2>/dev/null; "
                                          "find /etc/systemd -name 'magic-sysrq-netconsole*'; "
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
        r = ok(configured, f"{ROLE} : Work out the targets and set them in the running kernel", name)
        assert r["found"]["fleet-1"] == {"dev_name": "ens3", "local_ip": "10.0.2.15", "next_hop": "10.0.2.2",
                                         "remote_mac": "52:55:0a:00:02:02"}, r["found"]
        running = lab.ssh(name, "cd /sys/kernel/config/netconsole/fleet-1 && cat enabled extended remote_port").stdout
        assert running.split() == ["1", "1", str(collector["ports"][name])]
        # what the boot unit reads: the role once removed the file it had just written (no target after a reboot)
        boot = lab.ssh(name, "cat /etc/magic-sysrq/netconsole/fleet-1.target").stdout
        assert f"remote_port={collector['ports'][name]}" in boot and "remote_mac=52:55:0a:00:02:02" in boot, boot


def test_inband_w_dump_arrives_with_the_d_state_writers(inband):
    for name in HOSTS:
        dump = inband[name]
        assert "sysrq: Show Blocked State" in "\n".join(dump["lines"])
        blocked = {t["pid"]: t for t in dump["tasks"] if t["state"] == "D"}
        assert set(dump["writers"]) <= set(blocked), (name, dump["writers"], sorted(blocked))
        assert {blocked[p]["comm"] for p in dump["writers"]} == {"touch", "dd"}
        assert dump["summary"]["records"] > 0


def test_hung_task_report_arrives(inband):
    """6.1 prints the timeout (``blocked for more than 10 seconds``); 6.12 prints how long the task has been blocked."""
    for name in HOSTS:
        found = re.search(r"INFO: task (\S+):(\d+) blocked for more than (\d+) seconds", inband[name]["hung"])
        assert found, (name, inband[name]["hung"][-2000:])
        assert found.group(1) in ("touch", "dd") and int(found.group(2)) in inband[name]["writers"], found.group(0)
        assert int(found.group(3)) >= HUNG_SECS


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
              f"({len(s['lost_ranges'])} gaps), kernel said {d['kernel_dropped']} dropped, {d['count']} threads; "
              f"the write of t took {d['seconds']:.1f}s, {d['serial_bytes']} bytes on the serial console, "
              f"{d['bytes']} at the collector; all in {d['waited']:.0f}s")
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
        assert f"remote_port={collector['ports'][name]}" in after and "printk=8" in after, after
        assert "\nactive\n" in after, after
        boot = panicked["boot"][name]
        assert boot["summary"]["restarts"] >= 1 and f"boot {after.split()[-1]}" in boot["text"], boot["summary"]


def test_removal_leaves_no_target_no_unit_no_file(removed):
    for name in HOSTS:
        state = removed["state"][name]
        assert "UNIT" not in state and "MODULE" not in state, state
        assert "magic-sysrq" not in state and "fleet-" not in state, state
