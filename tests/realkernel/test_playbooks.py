"""The incident playbooks on real kernels (Debian 12 / 6.1 and Debian 13 / 6.12 under QEMU).

In order (module fixtures, chained):
  the collection built and installed from its tarball into an empty collections path ->
  D-state tasks made on deb12 -> magic_sysrq.fleet.sysrq_dump (by name, from the installed tarball) on both guests
  at once, with sysrq_dump_console_loglevel=4 while deb12's console is at 7: the summary groups the three tasks as
  one stack on deb12 and shows none on deb13, the dump stays off deb12's serial console, and both console levels
  are put back -> harden_sysrq.yml ->
  the mask changed by hand on deb13 -> magic_sysrq.fleet.check_sysrq_policy (by name, installed) fails with a JUnit
  failure for deb13 only -> harden_sysrq.yml -> check passes ->
  a real kdump crash dmesg (tests/unit/fixtures/crash) put in deb13's /var/crash -> collect_dmesg.yml brings it
  back and names its panic reason; it also brings back, byte for byte, the dumps of the real crashes test_roles.py
  caused earlier in the run on both guests (SysRq c through the kdump role's crash test, then an NMI panic: the
  suite's order runs test_roles.py first) -> deb13 stopped (QMP stop) ->
  sysrq_dump.yml reports it unreachable and still writes deb12's summary -> deb13
  resumed (QMP cont).
The other runs go by path from this checkout. No run may warn (tests/realkernel/support.py).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import tempfile
import time
import xml.etree.ElementTree as ET

import pytest

from tests.lab.dumps import stuck as stuck_sh
from tests.realkernel.support import REPO, installed_collection, latest_dir, run_playbook

PLAYBOOKS = REPO / "playbooks"
STUCK = "deb12"
QUIET = "deb13"


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def stuck(lab):
    """Three `touch` processes blocked in D state on deb12 (writers into a frozen filesystem), released after."""
    stuck_sh(lab, QUIET, "release", "pb-frz", check=False)
    pids = sorted(int(p) for p in stuck_sh(lab, STUCK, "make", "pb-frz", "touch", "touch", "touch").split())
    assert len(pids) == 3, pids
    yield pids
    stuck_sh(lab, STUCK, "release", "pb-frz", check=False)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The collection as a user gets it: the built tarball installed into an empty collections path."""
    return installed_collection(tmp_path_factory.mktemp("installed"))


def _console_level(lab, name):
    return lab.ssh(name, "cut -f1 /proc/sys/kernel/printk").stdout.strip()


@pytest.fixture(scope="module")
def dump_both(lab, ansible, stuck, installed, tmp_path_factory):
    """The dump with sysrq_dump_console_loglevel=4 while deb12's console is at 7, where its w dump would print on
    the serial console: the dump must stay off the console and each host's level must be put back."""
    root = tmp_path_factory.mktemp("sysrq-dumps")
    levels = {name: _console_level(lab, name) for name in (STUCK, QUIET)}
    lab.ssh(STUCK, "echo 7 > /proc/sys/kernel/printk")  # the first field only: the console log level
    serial_from = lab.serial_size(STUCK)
    try:
        rc, text, seconds = run_playbook(ansible, "sysrq_dump.yml", {"sysrq_dump_root": str(root),
                                                                     "sysrq_dump_console_loglevel": 4},
                                         out="sysrq-dump-both", collections=installed)
        after = {name: _console_level(lab, name) for name in (STUCK, QUIET)}
    finally:
        lab.ssh(STUCK, f"echo {levels[STUCK]} > /proc/sys/kernel/printk")
    where = latest_dir(root)
    return {"rc": rc, "text": text, "seconds": seconds, "dir": where, "levels": levels, "after": after,
            "serial": lab.serial_since(STUCK, serial_from),
            "summary": json.loads((where / "summary.json").read_text())}


@pytest.fixture(scope="module")
def policy(lab, ansible, dump_both, installed, tmp_path_factory):
    """harden, change deb13's mask by hand, check (fails), harden again, check (passes)."""
    reports = tmp_path_factory.mktemp("policy")
    out = {"harden1": run_playbook(ansible, "harden_sysrq.yml", out="harden-1")}
    lab.ssh(QUIET, "sysctl -q -w kernel.sysrq=1")
    out["check_bad"] = run_playbook(ansible, "check_sysrq_policy.yml", {"sysrq_report_dir": str(reports / "bad")},
                                    out="check-bad", collections=installed)
    out["junit_bad"] = ET.parse(reports / "bad" / "sysrq-policy.junit.xml")
    out["harden2"] = run_playbook(ansible, "harden_sysrq.yml", out="harden-2")
    out["check_good"] = run_playbook(ansible, "check_sysrq_policy.yml", {"sysrq_report_dir": str(reports / "good")},
                                     out="check-good", collections=installed)
    out["junit_good"] = ET.parse(reports / "good" / "sysrq-policy.junit.xml")
    return out


CRASH_FIXTURE = REPO / "tests" / "unit" / "fixtures" / "crash" / "sysrq-crash-deb13-6.12.dmesg.txt"
CRASH_STAMP = "202611220930"


# Every kdump dmesg on a guest, with its checksum, read over SSH.
CRASH_FILES = 'for f in /var/crash/*/dmesg.*; do [ -f "$f" ] && sha256sum "$f"; done; true'


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def collected(lab, ansible, policy, tmp_path_factory):
    """A kdump crash dmesg in deb13's crash directory, then collect_dmesg.yml on both guests."""
    root = tmp_path_factory.mktemp("kernel-logs")
    real = {n: dict(reversed(line.split()) for line in lab.ssh(n, CRASH_FILES).stdout.splitlines())
            for n in (STUCK, QUIET)}
    lab.ssh(QUIET, f"mkdir -p /var/crash/{CRASH_STAMP} && cat > /var/crash/{CRASH_STAMP}/dmesg.{CRASH_STAMP}",
            input_data=CRASH_FIXTURE.read_text())
    try:
        rc, text, seconds = run_playbook(ansible, "collect_dmesg.yml",
                                         {"collect_dmesg_root": str(root), "level": "warn", "crash_files": 20},
                                         out="collect-dmesg")
    finally:
        lab.ssh(QUIET, f"rm -rf /var/crash/{CRASH_STAMP}", check=False)
    where = latest_dir(root)
    return {"rc": rc, "text": text, "seconds": seconds, "dir": where, "real": real,
            "summary": json.loads((where / "summary.json").read_text())}


@pytest.fixture(scope="module")
def one_stopped(lab, ansible, collected, tmp_path_factory):
    """deb13 stopped (QEMU `stop`: the guest freezes, its SSH no longer answers) during a fleet dump."""
    root = tmp_path_factory.mktemp("sysrq-dumps-stopped")
    lab.qmp(QUIET, "stop")
    try:
        # A fresh control path: no SSH master left from earlier runs that would hang instead of failing.
        with tempfile.TemporaryDirectory() as control:
            rc, text, seconds = run_playbook(ansible, "sysrq_dump.yml", {"sysrq_dump_root": str(root)},
                                             env={"ANSIBLE_SSH_CONTROL_PATH_DIR": control}, out="sysrq-dump-stopped")
    finally:
        with contextlib.suppress(Exception):
            lab.qmp(QUIET, "cont")
    where = latest_dir(root)
    return {"rc": rc, "text": text, "seconds": seconds, "dir": where,
            "summary": json.loads((where / "summary.json").read_text())}


# ----------------------------------------------------------------------------------------------- sysrq-dump
def test_dump_of_both_guests_groups_the_stuck_tasks_as_one_stack_on_one_host(dump_both, stuck):
    s = dump_both["summary"]
    assert dump_both["rc"] == 0, dump_both["text"][-3000:]
    assert (s["asked"], s["answered"], s["unreachable"], s["failed"]) == (2, 2, [], {})
    blocked = [g for g in s["groups"] if g["state"] == "D"]
    assert len(blocked) == 1, blocked
    group = blocked[0]
    assert (group["count"], group["hosts"], group["host_count"], group["comms"]) == (3, [STUCK], 1, ["touch"])
    assert {"percpu_rwsem_wait", "mnt_want_write"} <= set(group["frames"])
    assert s["blocked_per_host"] == {STUCK: 3, QUIET: 0}
    md = (dump_both["dir"] / "summary.md").read_text()
    # host-controlled text (states, comms, host names) is in code spans (docs/threat-model.md)
    assert "### 1. 3 task(s) in state `D` on 1 host(s): `touch`" in md and f"Hosts: `{STUCK}`\n" in md


def test_dump_writes_each_host_and_the_fleet_files(dump_both, stuck):
    where = dump_both["dir"]
    tasks = json.loads((where / STUCK / "tasks.json").read_text())
    assert sorted(t["pid"] for t in tasks if t["state"] == "D") == stuck
    assert "Show Blocked State" in (where / STUCK / "output.txt").read_text()
    assert json.loads((where / QUIET / "tasks.json").read_text()) == []
    folded = (where / "stacks.folded").read_text().splitlines()
    assert len(folded) == 1 and folded[0].startswith("touch;entry_SYSCALL_64") and folded[0].endswith(" 3")
    flame = where / "flamegraph.html"
    summary = dump_both["summary"]
    assert flame.exists() is (not summary["flamegraph_missing"])
    if flame.exists():
        assert "mnt_want_write" in flame.read_text()


def test_dump_stays_off_the_console_when_asked_and_the_level_is_put_back(dump_both):
    assert dump_both["after"] == {STUCK: "7", QUIET: dump_both["levels"][QUIET]}
    serial = dump_both["serial"]
    # __handle_sysrq prints its header at the default console level, so the console was live during the dump ...
    assert "sysrq: Show Blocked State" in serial, serial[-2000:]
    # ... and the tasks and frames, printed at KERN_INFO, stayed in the kernel log (where tasks.json came from)
    assert "mnt_want_write" not in serial and "task:touch" not in serial, serial[-2000:]


# ----------------------------------------------------------------------------------------------- policy
def _cases(tree):
    return {case.get("name"): case.find("failure") for case in tree.getroot().iter("testcase")}


def test_check_policy_fails_for_the_guest_changed_by_hand(policy):
    assert policy["harden1"][0] == 0, policy["harden1"][1][-3000:]
    rc, text = policy["check_bad"][:2]
    assert rc != 0, text[-3000:]
    cases = _cases(policy["junit_bad"])
    assert set(cases) == {STUCK, QUIET}
    assert cases[STUCK] is None
    assert cases[QUIET] is not None and "running mask is 1" in cases[QUIET].get("message")


def test_check_policy_passes_after_harden(policy):
    assert policy["harden2"][0] == 0, policy["harden2"][1][-3000:]
    rc, text = policy["check_good"][:2]
    assert rc == 0, text[-3000:]
    assert all(failure is None for failure in _cases(policy["junit_good"]).values())


# ----------------------------------------------------------------------------------------------- collect-dmesg
def test_collect_dmesg_brings_back_the_crash_dmesg_and_names_its_panic_reason(collected):
    s = collected["summary"]
    assert collected["rc"] == 0, collected["text"][-3000:]
    assert (s["asked"], s["answered"]) == (2, 2)
    # a reused lab may hold real crash-test dumps too; the file put there just now is the newest
    crash = s["crashes"][0]
    assert crash["host"] == QUIET and crash["path"] == f"/var/crash/{CRASH_STAMP}/dmesg.{CRASH_STAMP}", s["crashes"]
    assert (crash["reason"], crash["kind"], crash["panicked"]) == ("sysrq triggered crash", "sysrq-crash", True)
    copy = collected["dir"] / QUIET / "crash" / CRASH_STAMP / f"dmesg.{CRASH_STAMP}"
    assert copy.read_text() == CRASH_FIXTURE.read_text()
    md = (collected["dir"] / "summary.md").read_text()
    assert f"### `{QUIET}`: `sysrq triggered crash`" in md


@pytest.mark.parametrize("host", [STUCK, QUIET])
def test_collect_dmesg_brings_back_the_real_crashes_of_this_run(collected, host):
    """The dumps kdump saved when test_roles.py crashed the guests (SysRq c, then an NMI with unknown_nmi_panic):
    every one comes back byte for byte, with the reason the kernel gave."""
    real = collected["real"][host]  # path -> sha256, read on the guest before the run
    assert real, f"{host}: no kdump dmesg in /var/crash: the real crashes come from test_roles.py, run before this"
    crashes = {c["path"]: c for c in collected["summary"]["crashes"]
               if c["host"] == host and CRASH_STAMP not in c["path"]}  # not the file planted on deb13
    assert set(crashes) == set(real), (sorted(crashes), sorted(real))
    for path, digest in real.items():
        stamp, name = path.split("/")[-2:]
        assert _sha256(collected["dir"] / host / "crash" / stamp / name) == digest, path
        assert crashes[path]["panicked"] is True, crashes[path]
    kinds = {c["kind"]: c["reason"] for c in crashes.values()}
    assert kinds.get("sysrq-crash") == "sysrq triggered crash", kinds
    assert kinds.get("nmi") == "NMI: Not continuing", kinds


def test_collect_dmesg_writes_each_kernel_log_with_iso_times_and_levels(collected):
    assert collected["summary"]["levels"] == ["emerg", "alert", "crit", "err", "warn"]
    for host in (STUCK, QUIET):
        text = (collected["dir"] / host / "dmesg.txt").read_text()
        assert all(line[:4].isdigit() and line[10] == "T" for line in text.splitlines()[:5]), text[:500]


# ----------------------------------------------------------------------------------------------- unreachable
def test_a_stopped_guest_is_unreachable_and_the_other_is_still_summarised(one_stopped):
    s = one_stopped["summary"]
    assert one_stopped["rc"] == 0, one_stopped["text"][-3000:]
    assert s["unreachable"] == [QUIET] and s["hosts_answered"] == [STUCK]
    assert s["unreachable_reasons"][QUIET]
    assert any(g["hosts"] == [STUCK] and g["state"] == "D" for g in s["groups"])
    md = (one_stopped["dir"] / "summary.md").read_text()
    assert f"- Unreachable: `{QUIET}`: " in md
    assert (one_stopped["dir"] / STUCK / "tasks.json").exists() and not (one_stopped["dir"] / QUIET).exists()


def test_the_stopped_guest_answers_again_after_cont(lab, one_stopped):
    deadline = time.monotonic() + 60
    while lab.ssh(QUIET, "true", check=False, timeout=20).returncode != 0:
        assert time.monotonic() < deadline, f"{QUIET} did not answer after QMP cont"
        time.sleep(2)
