"""The serial_console, kdump and sysrq_policy roles on real kernels: Debian 12 (6.1) and 13 (6.12) under QEMU.

One ansible-playbook run per phase, both guests at once; reboots and crashes happen on both guests together:
  baseline (GRUB off the serial line, kexec_load_disabled = 1 now and in a sysctl file)
  -> roles-kdump-refused (kdump refuses both hosts, nothing changed)
  -> roles-setup: sysrq_policy debuggable + unknown_nmi_panic, serial_console, kdump 256M kdump_wins with reboot;
     the same three roles again in a second play, which must change nothing           [reboot 1]
  -> keyboard alt+sysrq+w through QMP: the dump on the serial console
  -> roles-kdump-crash: the role's crash test, SysRq c, dmesg fetched                  [crash 1]
  -> roles-policy-recovery twice -> keyboard w refused by the kernel
  -> oob_nmi (deb12 by QMP inject-nmi, deb13 by IPMI chassis power diag through ipmi_sim): panic, kdump saves a
     vmcore whose dmesg names the NMI, guest back  [crash 2]
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.lab.ipmi_sim import IpmiSim
from tests.realkernel.support import HOSTS, MODULE_WARNINGS, keyboard_w, ok, parallel

IPMI_GUEST = "deb13"  # its NMI goes through a BMC (ipmi_sim); deb12 gets it through QMP

CRASHKERNEL = "256M"
SERIAL_ARGS = ["console=tty0", "console=ttyS0,115200n8"]
GRUB_SERIAL = 'GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1"'
HARDENING = "/etc/sysctl.d/60-lab-kexec-hardening.conf"
ROLE_PREFIX = "magic_sysrq.fleet."

# Off the serial line for GRUB (so its output after the role's reboot is the role's doing), the role's own
# drop-in gone, and kexec loading disabled now and at boot (so kdump must be refused, then win).
BASELINE = rf"""
set -e
sed -i '/^GRUB_TERMINAL=/d; /^GRUB_SERIAL_COMMAND=/d' /etc/default/grub
rm -f /etc/default/grub.d/99-magic-sysrq-serial.cfg
update-grub >/dev/null 2>&1
grep -c '^serial ' /boot/grub/grub.cfg || true
printf 'kernel.kexec_load_disabled = 1\n' > {HARDENING}
sysctl -q -w kernel.kexec_load_disabled=1
cat /proc/sys/kernel/kexec_load_disabled
"""

# What the three roles manage, read on the guest: the files' checksums (byte-for-byte), the kernel's own settings,
# the command line and the units. A run that "changed nothing" leaves this output identical.
SNAPSHOT = r"""
cd /
sha256sum etc/default/grub etc/default/grub.d/* boot/grub/grub.cfg etc/default/kdump-tools etc/sysctl.conf \
    etc/sysctl.d/* etc/systemd/system/getty.target.wants/* 2>&1
for f in /proc/sys/kernel/sysrq /proc/sys/kernel/unknown_nmi_panic /proc/sys/kernel/kexec_load_disabled \
    /sys/kernel/kexec_crash_loaded /sys/kernel/kexec_crash_size /proc/cmdline; do
  echo "$f: $(cat $f)"
done
echo "kdump-tools: $(systemctl is-enabled kdump-tools) $(systemctl is-active kdump-tools)"
echo "serial getty: $(systemctl is-enabled serial-getty@ttyS0) $(systemctl is-active serial-getty@ttyS0)"
true
"""

pytestmark = pytest.mark.parametrize("host", HOSTS)


def _role_task(run, role, task, host, play=0):
    """A role task's result on a host in one play of a run; it must have run and succeeded."""
    name = f"{ROLE_PREFIX}{role} : {task}"
    found = [t["hosts"][host] for t in run.data["plays"][play]["tasks"]
             if t["task"]["name"] == name and host in t["hosts"]]
    assert found, f"{run.playbook}: no result for {name!r} on {host} in play {play}\n{run.summary()}"
    r = found[-1]
    assert not r.get("failed"), f"{name} failed on {host}: {r.get('msg')}\n{run.summary()}"
    assert not r.get("skipped"), f"{name} was skipped on {host} in play {play}\n{run.summary()}"
    return r


def _play_changes(run, play_index, host):
    """Names of the tasks that reported a change on a host in one play of a run."""
    play = run.data["plays"][play_index]
    return [t["task"]["name"] for t in play["tasks"]
            if (r := t["hosts"].get(host)) and r.get("changed") and not r.get("skipped")]


def _snapshot(lab):
    return parallel(lambda n: lab.ssh(n, SNAPSHOT, timeout=120).stdout)


def _crash_dirs(lab, name):
    out = lab.ssh(name, "find /var/crash -mindepth 1 -maxdepth 1 -type d -printf '%f\\n'").stdout
    return set(out.split())


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def ansible_keepalive(ansible):
    """SSH keepalives for these runs: a connection open across a reboot or a crash dies instead of hanging.

    (The lab inventory has none; its own ssh commands do. Ansible's default ssh_args are kept.)
    """
    before = ansible.env.get("ANSIBLE_SSH_ARGS")
    ansible.env["ANSIBLE_SSH_ARGS"] = ("-C -o ControlMaster=auto -o ControlPersist=60s "
                                       "-o ServerAliveInterval=5 -o ServerAliveCountMax=6")
    yield ansible
    if before is None:
        ansible.env.pop("ANSIBLE_SSH_ARGS", None)
    else:
        ansible.env["ANSIBLE_SSH_ARGS"] = before


@pytest.fixture(scope="module")
def baseline(clean):
    lab = clean
    out = parallel(lambda n: lab.ssh(n, BASELINE, timeout=600).stdout.split())
    return {"lab": lab, "serial_lines_in_grub_cfg": {n: int(o[0]) for n, o in out.items()},
            "kexec_load_disabled": {n: o[-1] for n, o in out.items()}}


@pytest.fixture(scope="module")
def refused(ansible_keepalive, baseline):
    before = _snapshot(baseline["lab"])
    run = ansible_keepalive.playbook("roles-kdump-refused.yml")
    run.snapshot_before, run.snapshot_after = before, _snapshot(baseline["lab"])
    return run


@pytest.fixture(scope="module")
def setup(lab, ansible_keepalive, refused):
    offsets = {n: lab.serial_size(n) for n in HOSTS}
    before = parallel(lab.boot_id)
    run = ansible_keepalive.playbook("roles-setup.yml", {"lab_snapshot": SNAPSHOT})
    run.boot_before = before
    run.serial = {n: lab.serial_since(n, offsets[n]) for n in HOSTS}
    run.snapshot_after = _snapshot(lab)
    return run


@pytest.fixture(scope="module")
def keyboard_debuggable(lab, setup):
    return parallel(lambda n: keyboard_w(lab, n))


@pytest.fixture(scope="module")
def crash(lab, ansible_keepalive, keyboard_debuggable):
    fetch = lab.run_dir / "realkernel" / "crash-dmesg"
    before = parallel(lab.boot_id)
    run = ansible_keepalive.playbook("roles-kdump-crash.yml", {"lab_fetch_dir": str(fetch)})
    run.boot_before = before
    run.fetch_dir = fetch
    return run


@pytest.fixture(scope="module")
def recovery(lab, ansible_keepalive, crash):
    run = ansible_keepalive.playbook("roles-policy-recovery.yml", {"lab_snapshot": SNAPSHOT})
    run.snapshot_after = _snapshot(lab)
    return run


SNAPSHOT_TASK = "Snapshot the files and kernel settings the roles manage, before the second run"


def _snapshot_before_second_run(run, host):
    r = [t["hosts"][host] for t in run.data["plays"][1]["tasks"]
         if t["task"]["name"] == SNAPSHOT_TASK and host in t["hosts"]]
    assert r and not r[0].get("failed") and r[0]["stdout"], (r, run.summary())
    return r[0]["stdout"] + "\n"


@pytest.fixture(scope="module")
def keyboard_recovery(lab, recovery):
    return parallel(lambda n: keyboard_w(lab, n))


@pytest.fixture(scope="module")
def nmi(lab, ansible, keyboard_recovery):
    """An NMI from outside through oob_nmi, deb12 by QMP and deb13 by IPMI (ipmi_sim as its BMC):
    unknown_nmi_panic panics, kdump saves a dump, the guests come back."""
    dirs_before = parallel(lambda n: _crash_dirs(lab, n))
    boot_before = parallel(lab.boot_id)
    offsets = {n: lab.serial_size(n) for n in HOSTS}
    t0 = time.monotonic()
    with IpmiSim(lab.guest(IPMI_GUEST)["qmp"]) as bmc:
        via = {n: {"method": "qmp"} for n in HOSTS}
        via[IPMI_GUEST] = {"method": "ipmi", "ipmi": bmc.target}
        sent = ansible.playbook("oob-nmi.yml", {"nmi_via": via}, allow_warnings=MODULE_WARNINGS)
        bmc_log = bmc.log()
        password = bmc.target["password"]
    lab.wait_reboot(list(HOSTS), boot_before, timeout=900)
    seconds = time.monotonic() - t0
    out = {"sent": sent, "bmc_log": bmc_log, "password": password}
    logdir = lab.run_dir / "realkernel" / "nmi-dmesg"
    for n in HOSTS:
        new = sorted(_crash_dirs(lab, n) - dirs_before[n])
        files = lab.ssh(n, f"ls -1 /var/crash/{new[-1]}" if new else "true").stdout.split()
        dmesg_name = next((f for f in files if f.startswith("dmesg.")), None)
        dmesg = lab.ssh(n, f"cat /var/crash/{new[-1]}/{dmesg_name}").stdout if dmesg_name else ""
        if dmesg:
            path = logdir / n / new[-1] / dmesg_name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(dmesg)
        loaded = lab.ssh(n, "for i in $(seq 60); do [ \"$(cat /sys/kernel/kexec_crash_loaded)\" = 1 ] && break; "
                            "sleep 5; done; cat /sys/kernel/kexec_crash_loaded", timeout=400).stdout.strip()
        out[n] = {"new": new, "files": files, "dmesg": dmesg, "serial": lab.serial_since(n, offsets[n]),
                  "boot_before": boot_before[n], "boot_after": lab.boot_id(n), "loaded_after": loaded}
    out["seconds"] = seconds
    return out


# ----------------------------------------------------------------------------------------------- kdump refused
def test_baseline_has_no_grub_serial_and_kexec_loading_disabled(host, baseline):
    assert baseline["serial_lines_in_grub_cfg"][host] == 0
    assert baseline["kexec_load_disabled"][host] == "1"


def test_kdump_refuses_kexec_load_disabled_and_changes_nothing(host, refused):
    assert refused.rc != 0
    r = refused.result(f"{ROLE_PREFIX}kdump : Refuse a host where kernel.kexec_load_disabled = 1", host)
    assert r.get("failed"), r
    for text in ("kernel.kexec_load_disabled = 1", "running kernel", HARDENING, "kdump_on_kexec_load_disabled",
                 "hardening_wins", "kdump_wins"):
        assert text in r["msg"], (text, r["msg"])
    assert _play_changes(refused, 0, host) == []
    # read on the guest: /etc/default/kdump-tools, the GRUB files, sysctl files byte-for-byte, the kernel's settings
    assert "etc/default/kdump-tools" in refused.snapshot_before[host] and "boot/grub/grub.cfg" in \
        refused.snapshot_before[host]
    assert refused.snapshot_after[host] == refused.snapshot_before[host]


# ----------------------------------------------------------------------------------------------- serial_console
def test_serial_console_first_run_reports_the_reboot_it_needs(host, setup):
    assert setup.rc == 0, setup.summary()
    r = _role_task(setup, "serial_console", "Say that a reboot is needed", host)
    assert "takes effect at the next boot" in r["msg"]
    first_play = setup.data["plays"][0]["tasks"]
    reboot = [t["hosts"][host] for t in first_play
              if t["task"]["name"] == f"{ROLE_PREFIX}serial_console : Reboot into the serial console"]
    assert reboot and reboot[0].get("skipped"), reboot


def test_serial_console_after_the_reboot(host, hosts, setup):
    cmdline = hosts[host].file("/proc/cmdline").content_string.split()
    consoles = [a for a in cmdline if a.startswith("console=")]
    assert consoles == SERIAL_ARGS, cmdline  # the image's console=ttyS0,115200 replaced; serial last
    assert "console=ttyS0,115200" not in cmdline
    assert re.search(r"^ttyS0\s.*\(.*C.*\)", hosts[host].file("/proc/consoles").content_string, re.M), \
        "ttyS0 is not /dev/console"
    getty = hosts[host].service("serial-getty@ttyS0.service")
    assert getty.is_running
    assert hosts[host].run("systemctl is-enabled serial-getty@ttyS0.service").stdout.strip() == "enabled"
    dropin = hosts[host].file("/etc/default/grub.d/99-magic-sysrq-serial.cfg").content_string
    assert GRUB_SERIAL in dropin
    # the second play checked it too, with no reboot pending
    _role_task(setup, "serial_console", "Check that the running kernel has the console arguments, last", host, play=1)
    _role_task(setup, "serial_console", "Check that the serial getty runs", host, play=1)


def test_serial_line_shows_grub_and_a_login_prompt(host, setup):
    text = setup.serial[host].replace("\r", "")
    assert re.search(r"Loading Linux \S+ \.\.\.", text), "no GRUB output on the serial line after the reboot"
    grub_at = text.rindex("Loading Linux")
    assert re.search(rf"{host} login:", text[grub_at:]), text[-3000:]


# ----------------------------------------------------------------------------------------------- kdump
def test_kdump_wins_over_kexec_load_disabled(host, hosts, setup):
    h = hosts[host]
    assert h.file("/proc/sys/kernel/kexec_load_disabled").content_string.strip() == "0"
    line = h.file(HARDENING).content_string
    assert re.search(r"^# kdump_on_kexec_load_disabled=kdump_wins .*kernel\.kexec_load_disabled = 1", line, re.M), line
    assert not re.search(r"^\s*kernel\.kexec_load_disabled", line, re.M)


def test_kdump_reboots_then_the_crash_kernel_is_loaded(host, hosts, setup):
    assert _role_task(setup, "kdump", "Reboot for the crash kernel reservation", host)["changed"]
    _role_task(setup, "kdump", "Check that the crash kernel is loaded and the service active", host)
    _role_task(setup, "kdump", "Check that the crash kernel is loaded and the service active", host, play=1)
    h = hosts[host]
    assert h.file("/sys/kernel/kexec_crash_loaded").content_string.strip() == "1"
    assert int(h.file("/sys/kernel/kexec_crash_size").content_string) == 256 * 1024 * 1024
    assert f"crashkernel={CRASHKERNEL}" in h.file("/proc/cmdline").content_string.split()
    assert h.service("kdump-tools").is_running or h.run("systemctl is-active kdump-tools").stdout.strip() == "active"
    cfg = h.file("/etc/default/grub.d/kdump-tools.cfg").content_string
    assert f'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT crashkernel={CRASHKERNEL}"' in cfg
    assert "crashkernel" not in h.file("/etc/default/grub.d/magic_sysrq.cfg").content_string
    conf = h.file("/etc/default/kdump-tools").content_string
    assert re.search(r"^USE_KDUMP=1$", conf, re.M)
    assert re.search(r'^MAKEDUMP_ARGS="-l -d 31"$', conf, re.M)  # kdump_compression: lzo


def test_every_role_changes_nothing_on_the_second_run(host, setup):
    assert _play_changes(setup, 1, host) == []
    # and on the guest: the managed files byte-for-byte, the kernel's settings and the units, before and after it
    before = _snapshot_before_second_run(setup, host)
    assert "etc/default/grub.d/kdump-tools.cfg" in before and "/sys/kernel/kexec_crash_loaded: 1" in before, before
    assert setup.snapshot_after[host] == before
    first = _play_changes(setup, 0, host)
    for role in ("sysrq_policy", "serial_console", "kdump"):
        assert any(t.startswith(f"{ROLE_PREFIX}{role} :") for t in first), (role, first)


# ----------------------------------------------------------------------------------------------- sysrq_policy
def test_debuggable_profile_keyboard_w_dumps_on_the_serial_line(host, hosts, keyboard_debuggable):
    assert hosts[host].file("/proc/sys/kernel/sysrq").content_string.strip() == "186"
    assert hosts[host].file("/proc/sys/kernel/unknown_nmi_panic").content_string.strip() == "1"
    assert "Show Blocked State" in keyboard_debuggable[host], keyboard_debuggable[host][-2000:]


def test_recovery_profile_twice_then_keyboard_w_is_refused(host, hosts, recovery, keyboard_recovery):
    assert recovery.rc == 0, recovery.summary()
    assert _role_task(recovery, "sysrq_policy", "Set the SysRq enable mask", host)["changed"]
    assert _play_changes(recovery, 1, host) == []
    before = _snapshot_before_second_run(recovery, host)
    assert "/proc/sys/kernel/sysrq: 176" in before, before
    assert recovery.snapshot_after[host] == before
    assert hosts[host].file("/proc/sys/kernel/sysrq").content_string.strip() == "176"
    assert "This sysrq operation is disabled" in keyboard_recovery[host], keyboard_recovery[host][-2000:]
    assert "Show Blocked State" not in keyboard_recovery[host]


# ----------------------------------------------------------------------------------------------- crash tests
def test_kdump_crash_test_brings_back_a_dump_with_the_crash(host, crash):
    assert crash.rc == 0, crash.summary()
    r = _role_task(crash, "kdump", "Report the dump", host)["ansible_facts"]["kdump_test_crash_result"]
    assert Path(r["dump_dir"]).parent == Path("/var/crash")
    assert Path(r["vmcore"]).name.startswith("dump.") and int(r["vmcore_size"]) > 0
    fetched = Path(r["fetched"])
    assert fetched.is_file() and fetched.is_relative_to(crash.fetch_dir / host)
    assert "sysrq triggered crash" in fetched.read_text(errors="replace")
    after = _role_task(crash, "kdump", "Check that the host went through a new boot", host)
    assert after["content"] != crash.boot_before[host]
    _role_task(crash, "kdump", "Wait for the crash kernel to be loaded again", host)
    before = [t for t in _play_changes(crash, 0, host) if "Crash the kernel" not in t and "Fetch" not in t]
    assert before == [], before  # nothing else changed: the configuration was already in place


def test_nmi_panics_into_kdump_and_the_guest_comes_back(host, nmi):
    r = nmi[host]
    assert r["boot_after"] != r["boot_before"]
    assert len(r["new"]) == 1, r
    assert any(f.startswith("dump.") for f in r["files"]), r["files"]
    assert "NMI received for unknown reason" in r["dmesg"], r["dmesg"][-3000:]
    assert "Kernel panic - not syncing: NMI: Not continuing" in r["dmesg"], r["dmesg"][-3000:]
    # (a panic in NMI context goes straight to the capture kernel: the serial line shows the capture, not the panic)
    assert f"saved vmcore in /var/crash/{r['new'][-1]}" in r["serial"], r["serial"][-3000:]
    assert r["loaded_after"] == "1"


def test_nmi_sent_by_qmp_and_by_ipmi_without_showing_the_password(host, nmi):
    r = ok(nmi["sent"], "Send the NMI", host)
    if host == IPMI_GUEST:
        assert r["method"] == "ipmi" and "chassis power diag" in json.dumps(r["request"])
        assert [e for e in nmi["bmc_log"] if "diag" in json.dumps(e)], nmi["bmc_log"]
    else:
        assert r["method"] == "qmp" and r["request"]["execute"] == "inject-nmi"
    assert nmi["password"] not in nmi["sent"].stdout + nmi["sent"].stderr
