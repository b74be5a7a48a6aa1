"""Out-of-band SysRq and NMI on real kernels (Debian 12 / 6.1 and Debian 13 / 6.12 under QEMU), through QMP.

In order (module fixtures, chained):
  deb12 gets the debuggable mask (186), deb13 the recovery mask (176); sysrq_facts puts both in a jsonfile fact
  cache (the "last known mask") -> on both guests a writer blocked in D state (a frozen loop-mounted filesystem), then
  SSH wedged: sshd's listener stopped, so connections hang; a resumer started first lets it go after THAW seconds ->
  SSH does not answer ->
  wedged_host_dump.yml takes both out-of-band (QMP send-key, serial log read back): deb12's dump holds the blocked
  writer; deb13's console shows the kernel's refusal, in oob.json too -> the guests thaw and answer again ->
  oob_console re-reads deb12's dump after its header marker; oob_nmi refuses without consent, then delivers an
  NMI to deb13 (unknown_nmi_panic=0: the kernel logs it and goes on), read back from the console.
Then safe_reboot.yml reboots both: deb12 in-band (R-E-S-U-B), deb13 out-of-band (R-E-I-S-U-B on the keyboard).
The NMI that ends in kdump is in test_roles.py (through oob_nmi, by QMP and by IPMI).
"""
from __future__ import annotations

import json
import subprocess
import time

import pytest

from tests.lab.dumps import stuck as stuck_sh
from tests.realkernel.support import HOSTS, MODULE_WARNINGS, latest_dir, ok, parallel, run_playbook

DEBUGGABLE, RECOVERY = "deb12", "deb13"
MASKS = {DEBUGGABLE: 186, RECOVERY: 176}
THAW = 150  # seconds from the wedge to the thaw: the probe (20 s), the dump and the reads take about a minute
FROZEN = "oob-frz"
WRITER = "touch"  # the D-state writer stuck.sh starts

# SSH stops answering: sshd's listener is stopped (SIGSTOP), so a new connection gets no banner and times out, as
# with a host too sick to serve it. A resumer started first sends SIGCONT after THAW seconds. Runs detached.
WEDGE = rf"""
set -e
pid=$(cat /run/sshd.pid 2>/dev/null || pgrep -o -x sshd)
nohup sh -c "sleep {THAW}; kill -CONT $pid" </dev/null >/dev/null 2>&1 &
nohup sh -c "sleep 1; kill -STOP $pid" </dev/null >/dev/null 2>&1 &
echo $pid
"""


def _answers(lab, name, timeout=15):
    try:
        return lab.ssh(name, "true", check=False, timeout=timeout).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@pytest.fixture(scope="module")
def fact_cache(tmp_path_factory):
    where = tmp_path_factory.mktemp("facts")
    return {"ANSIBLE_CACHE_PLUGIN": "ansible.builtin.jsonfile", "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(where),
            "ANSIBLE_CACHE_PLUGIN_TIMEOUT": "3600"}


@pytest.fixture(scope="module")
def masks(lab, ansible, fact_cache):
    parallel(lambda n: lab.ssh(n, f"sysctl -q -w kernel.sysrq={MASKS[n]} kernel.unknown_nmi_panic=0"))
    run = ansible.playbook("oob-facts.yml", env=fact_cache, allow_warnings=MODULE_WARNINGS)
    assert run.rc == 0, run.summary()
    yield {n: ok(run, "Read the SysRq facts", n)["ansible_facts"]["magic_sysrq"]["mask"] for n in HOSTS}
    parallel(lambda n: lab.ssh(n, "sysctl -q --system", check=False, timeout=120))


@pytest.fixture(scope="module")
def wedged(lab, masks):
    """Both guests: a writer stuck in D state (tests/lab/stuck.sh), then SSH wedged."""
    writers = parallel(lambda n: [int(p) for p in stuck_sh(lab, n, "make", FROZEN, "touch").split()])
    parallel(lambda n: lab.ssh(n, WEDGE, timeout=60))
    wedged_at = time.monotonic()
    time.sleep(3)
    answers = parallel(lambda n: _answers(lab, n))
    yield {"answers": answers, "wedged_at": wedged_at, "writers": writers}
    deadline = wedged_at + THAW + 240
    for name in HOSTS:
        while not _answers(lab, name, timeout=20):
            assert time.monotonic() < deadline, f"{name} did not thaw"
            time.sleep(5)
        stuck_sh(lab, name, "release", FROZEN, check=False)


# oob_sysrq's warnings when the mask refuses the key: before sending, and after, from the console
REFUSAL_WARNINGS = (r"refuses keyboard SysRq", r"kernel\.sysrq mask refused \d+ key")


@pytest.fixture(scope="module")
def dump(ansible, wedged, fact_cache, tmp_path_factory):
    root = tmp_path_factory.mktemp("wedged")
    # a fresh ControlPath directory: no SSH master connection from an earlier run carries the probe through
    env = dict(fact_cache, ANSIBLE_SSH_CONTROL_PATH_DIR=str(tmp_path_factory.mktemp("cp")))
    rc, text, seconds = run_playbook(ansible, "wedged_host_dump.yml", {"sysrq_dump_root": str(root)},
                                     env=env, out="wedged-host-dump",
                                     allow_warnings=REFUSAL_WARNINGS)  # deb13's mask: on purpose
    where = latest_dir(root)
    return {"rc": rc, "text": text, "seconds": seconds, "dir": where,
            "summary": json.loads((where / "summary.json").read_text()),
            "oob": json.loads((where / "oob.json").read_text())}


@pytest.fixture(scope="module")
def thawed(lab, wedged, dump):
    """After the dump: wait for the thaw, then the guests answer again."""
    deadline = wedged["wedged_at"] + THAW + 240
    for name in HOSTS:
        while not _answers(lab, name, timeout=20):
            assert time.monotonic() < deadline, f"{name} did not thaw"
            time.sleep(5)
    return True


@pytest.fixture(scope="module")
def after(ansible, thawed):
    run = ansible.playbook("oob-console-nmi.yml", allow_warnings=MODULE_WARNINGS)
    assert run.rc == 0, run.summary()
    return run


# -------------------------------------------------------------------------------------------------- tests
def test_masks_cached(masks):
    assert masks == MASKS


def test_wedged_guests_do_not_answer_ssh(wedged):
    assert wedged["answers"] == {n: False for n in HOSTS}


def test_wedged_host_dump_goes_out_of_band_for_both(dump):
    assert dump["rc"] == 0, dump["text"][-3000:]
    assert {n: dump["oob"][n]["path"] for n in HOSTS} == {n: "out-of-band" for n in HOSTS}
    assert {n: dump["oob"][n]["method"] for n in HOSTS} == {n: "qmp" for n in HOSTS}
    assert {n: int(dump["oob"][n]["mask"]) for n in HOSTS} == MASKS  # the cached facts were used


def test_debuggable_guest_dump_holds_the_blocked_writer(dump, wedged):
    summary = dump["summary"]
    assert DEBUGGABLE in summary["hosts_answered"]
    tasks = json.loads((dump["dir"] / DEBUGGABLE / "tasks.json").read_text())
    writers = [t for t in tasks if t["pid"] in wedged["writers"][DEBUGGABLE]]
    assert len(writers) == 1 and writers[0]["comm"] == WRITER and writers[0]["state"] == "D", tasks
    output = (dump["dir"] / DEBUGGABLE / "output.txt").read_text()
    assert "sysrq: Show Blocked State" in output
    assert "Changing Loglevel" in output  # the 9 pressed first: the mask allows log_level
    assert dump["oob"][DEBUGGABLE]["refused"] is False
    groups = [g for g in summary["groups"] if WRITER in g.get("comms", [])]
    assert groups and groups[0]["hosts"] == [DEBUGGABLE], summary["groups"]


def test_recovery_guest_refusal_is_recorded(dump):
    record = dump["oob"][RECOVERY]
    assert record["refused"] is True
    assert record["refused_by_mask"] == ["w"]  # 176 has no log_level bit either: no 9 was pressed
    output = (dump["dir"] / RECOVERY / "output.txt").read_text()
    assert "This sysrq operation is disabled" in output
    assert "Show Blocked State" not in output
    assert "refuses keyboard SysRq" in dump["text"]  # the warning before sending


def test_console_reread_after_marker(after, wedged):
    r = ok(after, "Read the console after the last dump header", DEBUGGABLE)
    assert r["marker_found"] is True
    # the dump's task, and the same task again in the kernel's own hung-task report once it was blocked 120 s
    assert {t["pid"] for t in r["tasks"] if t["state"] == "D"} == set(wedged["writers"][DEBUGGABLE]), r["tasks"]
    assert {t["comm"] for t in r["tasks"] if t["state"] == "D"} == {WRITER}


def test_nmi_needs_consent_then_reaches_the_kernel(after):
    refused = after.result("NMI without consent is refused", RECOVERY)
    assert refused.get("failed") and "allow_crash=true" in refused["msg"]
    sent = ok(after, "NMI", RECOVERY)
    assert sent["request"]["execute"] == "inject-nmi" and sent["response"]["run_state_before"] == "running"
    lines = "\n".join(ok(after, "The console since the NMI", RECOVERY)["lines"])
    assert "NMI received for unknown reason" in lines, lines[-2000:]


# ----------------------------------------------------------------------------------------------- safe_reboot.yml
@pytest.fixture(scope="module")
def reboots(lab, ansible, after):
    """safe_reboot.yml on both guests at once: deb12 in-band (R-E-S-U-B over SSH: the writer outlives E),
    deb13 out-of-band (the whole R-E-I-S-U-B on its keyboard through QMP; mask 1 allows every key)."""
    parallel(lambda n: stuck_sh(lab, n, "release", FROZEN, check=False))
    lab.ssh(RECOVERY, "sysctl -q -w kernel.sysrq=1")
    before = parallel(lab.boot_id)
    offsets = {n: lab.serial_size(n) for n in HOSTS}
    extra = {DEBUGGABLE: {}, RECOVERY: {"safe_reboot_via": "oob"}}
    runs = parallel(lambda n: run_playbook(
        ansible, "safe_reboot.yml", dict(target=n, confirm="yes", safe_reboot_delay=2, **extra[n]),
        out=f"safe-reboot-{n}"))
    return {n: {"rc": runs[n][0], "text": runs[n][1], "before": before[n], "after": lab.boot_id(n),
                "serial": lab.serial_since(n, offsets[n])} for n in HOSTS}


def test_safe_reboot_in_band_resub(reboots):
    r = reboots[DEBUGGABLE]
    assert r["rc"] == 0, r["text"][-3000:]
    assert r["after"] != r["before"] and f"{DEBUGGABLE} rebooted (boot id" in r["text"]
    for header in ("Terminate All Tasks", "Emergency Sync", "Emergency Remount R/O", "Resetting"):
        assert f"sysrq: {header}" in r["serial"], header
    assert "Kill All Tasks" not in r["serial"]


def test_safe_reboot_out_of_band_reisub(reboots):
    r = reboots[RECOVERY]
    assert r["rc"] == 0, r["text"][-3000:]
    assert r["after"] != r["before"] and f"{RECOVERY} rebooted (boot id" in r["text"]
    for header in ("Terminate All Tasks", "Kill All Tasks", "Emergency Sync", "Emergency Remount R/O", "Resetting"):
        assert f"sysrq: {header}" in r["serial"], header
