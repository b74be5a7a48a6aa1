"""netconsole on real kernels (Debian 12 / 6.1 and Debian 13 / 6.12 under QEMU), to an rsyslog collector on the lab host.

The harness configures rsyslog with the netconsole_collector role (one instance and UDP port per guest: QEMU user
networking delivers what both guests send to 10.0.2.2 from 127.0.0.1, so the port keeps them apart) and starts its
own rsyslogd on 127.0.0.1 only. Then, on both guests at once (module fixtures, chained):
  the netconsole role in check mode, then for real ->
  D-state writers (tests/lab/stuck.sh) and an in-band `w`: the dump arrives at the collector and parses with the
  writers' pids; a short hung_task_timeout_secs: the kernel's hung-task report arrives.

Not proven here yet (docs/netconsole.md says so): the QMP `w` of a wedged guest read back by wedged_host_dump.yml,
a `t` dump of 2,000 extra threads counted against the kernel's sequence numbers, an NMI panic, the targets back
after a reboot, and removal; they did not pass on this machine in the time there was.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import parser as sysrq_tasks
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import netconsole as oob_netconsole
from tests.lab.dumps import stuck as stuck_sh
from tests.realkernel.support import HOSTS, ok, parallel

FROZEN = "nc-frz"
HUNG_SECS = 10   # hung_task_timeout_secs for the hung-task report


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
            stuck_sh(lab, name, "release", FROZEN, check=False)
        dump["hung"] = hung
        return dump
    return parallel(one)


# --------------------------------------------------------------------------------------------------------- tests
def test_collector_refuses_a_busy_port_and_an_unwritable_directory(collector):
    errors = collector["errors"]
    assert "is already in use" in errors["busy"] and "choose another netconsole_collector_port" in errors["busy"]
    assert "cannot hold the received files" in errors["dir"] and "Not a directory" in errors["dir"]


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
