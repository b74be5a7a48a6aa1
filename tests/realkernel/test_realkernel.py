"""The core modules on real kernels: Debian 12 (6.1) and Debian 13 (6.12) under QEMU.

Phases, each one ansible-playbook run against both guests at once (forks run them in parallel):
  reset -> keyboard w refused (mask 438) -> 10-configure -> keyboard w allowed -> 20-cmdline-add
  -> reboot -> 30-after-reboot -> 50-trigger -> 40-cmdline-remove -> reboot -> 60-after-remove
Two reboots in all. Fixtures are module scoped and chained, so the phases run once, in order.
50-trigger also fires l (a backtrace of every CPU: deb13 has 2 vCPUs, the other one busy, so its backtrace arrives
asynchronously by NMI) and m (memory), parsed here. Every check after a reboot reads the kernel's own files over SSH.
"""
from __future__ import annotations

import re
import time

import pytest

from tests.lab import GUESTS
from tests.lab.config import MEMORY_MB
from tests.realkernel.support import HOSTS, MODULE_WARNINGS, keyboard_w, ok, parallel

MASK = 186  # log_level 2 + dumps 8 + sync 16 + remount 32 + reboot 128
FUNCTIONS = ["dumps", "log_level", "reboot", "remount", "sync"]
DROPIN = "/etc/sysctl.d/90-magic-sysrq.conf"
ARG = "console=ttyS0,115200n8"
NMI = {"unknown_nmi_panic": "1", "panic_on_unrecovered_nmi": "1", "panic": "10", "hung_task_timeout_secs": "240"}
KERNEL = {"deb12": "6.1.", "deb13": "6.12."}

pytestmark = pytest.mark.parametrize("host", HOSTS)


def _facts(run, task, host):
    r = ok(run, task, host)
    return r["ansible_facts"]["magic_sysrq"]


def _winner_path(winner):
    return (winner or {}).get("path")


# ----------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def keyboard_before(clean):
    return parallel(lambda n: keyboard_w(clean, n))


@pytest.fixture(scope="module")
def configure(ansible, keyboard_before):
    return ansible.playbook("10-configure.yml", allow_warnings=MODULE_WARNINGS)


@pytest.fixture(scope="module")
def keyboard_after(lab, configure):
    return parallel(lambda n: keyboard_w(lab, n))


@pytest.fixture(scope="module")
def cmdline_add(ansible, keyboard_after):
    return ansible.playbook("20-cmdline-add.yml", allow_warnings=MODULE_WARNINGS)


@pytest.fixture(scope="module")
def reboot1(lab, cmdline_add):
    before = parallel(lab.boot_id)
    t0 = time.monotonic()
    lab.reboot(*HOSTS)
    return {"before": before, "after": parallel(lab.boot_id), "seconds": time.monotonic() - t0}


@pytest.fixture(scope="module")
def after_reboot(ansible, reboot1):
    return ansible.playbook("30-after-reboot.yml", allow_warnings=MODULE_WARNINGS)


@pytest.fixture(scope="module")
def trigger(lab, ansible, after_reboot):
    before = parallel(lab.boot_id)
    run = ansible.playbook("50-trigger.yml", allow_warnings=MODULE_WARNINGS)
    run.boot_before = before
    run.boot_after = parallel(lambda n: lab.ssh(n, "cat /proc/sys/kernel/random/boot_id").stdout.strip())
    return run


@pytest.fixture(scope="module")
def cmdline_remove(ansible, trigger):
    return ansible.playbook("40-cmdline-remove.yml", allow_warnings=MODULE_WARNINGS)


@pytest.fixture(scope="module")
def reboot2(lab, cmdline_remove):
    before = parallel(lab.boot_id)
    lab.reboot(*HOSTS)
    return {"before": before, "after": parallel(lab.boot_id)}


@pytest.fixture(scope="module")
def after_remove(ansible, reboot2):
    return ansible.playbook("60-after-remove.yml", allow_warnings=MODULE_WARNINGS)


# ----------------------------------------------------------------------------------------------- the lab
def test_debian_default_mask_read_before_the_harness_touches_the_guest(host, lab, hosts):
    """The lab reads kernel.sysrq the moment a fresh overlay of the base image first answers SSH, before any fixture
    (the `clean` reset writes 438 itself): Debian's default is what the kernel and Debian's systemd make of it."""
    first = lab.guest(host).get("first_boot")
    assert first, f"{host}: the lab recorded no first-boot reading: {lab.guest(host)}"
    assert first["sysrq"] == 438, first
    assert first["cpus"] == GUESTS[host].cpus, first
    # where 438 comes from on the guest (files the harness never writes): the kernel's build default; Debian's
    # systemd ships no kernel.sysrq line in /usr/lib/sysctl.d (upstream's 50-default.conf sets 16)
    h = hosts[host]
    config = h.file(f"/boot/config-{h.run('uname -r').stdout.strip()}").content_string
    assert "CONFIG_MAGIC_SYSRQ_DEFAULT_ENABLE=0x01b6\n" in config
    assert h.run("grep -rs 'kernel\\.sysrq' /usr/lib/sysctl.d/ /lib/sysctl.d/").stdout == ""


def test_guest_runs_its_debian_kernel_booted_through_grub(host, hosts, clean):
    h = hosts[host]
    assert h.run("uname -r").stdout.startswith(KERNEL[host])
    cmdline = h.file("/proc/cmdline").content_string
    assert "BOOT_IMAGE=" in cmdline, "not booted through GRUB"
    assert "console=ttyS0,115200" in cmdline
    assert h.file("/proc/sys/kernel/sysrq").content_string.strip() == "438"  # what `clean` set
    assert int(h.run("nproc").stdout) == GUESTS[host].cpus


def test_keyboard_w_refused_under_debian_default_mask(host, keyboard_before):
    assert "This sysrq operation is disabled" in keyboard_before[host], keyboard_before[host][-2000:]


# ----------------------------------------------------------------------------------------------- sysrq_mask
def test_sysrq_mask_conflicting_sysctl_conf_is_detected(host, configure):
    r = configure.result("Set the mask while /etc/sysctl.conf overrides it", host)
    assert r.get("failed"), f"a conflicting /etc/sysctl.conf line was not detected: {r}"
    assert "/etc/sysctl.conf" in r["msg"], r["msg"]
    assert ok(configure, "Read the mask after the refused change", host)["stdout"].strip() == "438"
    assert not ok(configure, "Look for the drop-in after the refused change", host)["stat"]["exists"]


def test_sysrq_mask_check_mode_changes_nothing(host, configure):
    r = ok(configure, "Set the mask in check mode", host)
    assert r["changed"]
    assert ok(configure, "Read the mask after check mode", host)["stdout"].strip() == "438"


def test_sysrq_mask_is_live_at_once(host, configure):
    r = ok(configure, "Set the mask", host)
    assert r["changed"]
    assert r["mask"] == MASK
    assert sorted(r["functions"]) == FUNCTIONS
    assert r["previous"] == 438
    assert r["runtime"] == MASK
    assert _winner_path(r["winner"]) == DROPIN
    assert r["in_sync"] is True
    assert ok(configure, "Read the mask at once", host)["stdout"].strip() == str(MASK)


def test_sysrq_mask_second_run_changes_nothing(host, configure):
    r = ok(configure, "Set the mask again", host)
    assert r["changed"] is False


def test_sysrq_mask_dropin_file(host, hosts, configure):
    f = hosts[host].file(DROPIN)
    assert f.is_file
    assert f.mode == 0o644
    assert re.search(rf"^\s*kernel\.sysrq\s*=\s*{MASK}\s*$", f.content_string, re.M), f.content_string
    assert not re.search(r"^\s*kernel\.sysrq", hosts[host].file("/etc/sysctl.conf").content_string, re.M)


def test_keyboard_w_allowed_once_the_mask_has_dumps(host, keyboard_after):
    assert "Show Blocked State" in keyboard_after[host], keyboard_after[host][-2000:]


# ----------------------------------------------------------------------------------------------- nmi_panic
def test_nmi_panic_values_are_live_at_once(host, configure):
    r = ok(configure, "Set the NMI and panic settings", host)
    assert r["changed"]
    assert {k: str(v) for k, v in r["settings"].items()} == NMI
    assert not r["unsupported"]
    values = ok(configure, "Read the NMI settings at once", host)["stdout"].split()
    assert values[:4] == [NMI["unknown_nmi_panic"], NMI["panic_on_unrecovered_nmi"], NMI["panic"],
                          NMI["hung_task_timeout_secs"]]


def test_nmi_panic_second_run_changes_nothing(host, configure):
    assert ok(configure, "Set the NMI and panic settings again", host)["changed"] is False


def test_nmi_watchdog_without_pmu_is_unsupported_and_not_written(host, configure):
    r = ok(configure, "Ask for the hardlockup detector (no PMU under TCG)", host)
    assert "nmi_watchdog" in r["unsupported"], r
    assert "nmi_watchdog" not in r.get("settings", {})
    assert ok(configure, "Read the NMI settings at once", host)["stdout"].split()[4] == "0"
    wd = configure.result("Read the NMI watchdog drop-in, if any", host)
    assert "nmi_watchdog" not in wd.get("stdout", "")


# ----------------------------------------------------------------------------------------------- sysrq_facts
def test_sysrq_facts_report_what_was_set(host, configure):
    f = _facts(configure, "Gather SysRq facts", host)
    assert f["available"] is True and f["trigger"] is True
    assert f["mask"] == MASK
    assert sorted(f["functions"]) == FUNCTIONS
    assert _winner_path(f["winner"]) == DROPIN
    assert f["persistent"] == MASK and f["in_sync"] is True
    assert f["boot_order"] == "systemd"
    for name, value in NMI.items():
        assert str(f["nmi"][name]["value"]) == value, (name, f["nmi"][name])
        assert f["nmi"][name]["supported"] is True
    # the file exists (the kernel has the hardlockup detector) but reads 0: no PMU under TCG
    assert f["nmi"]["nmi_watchdog"]["supported"] is True and str(f["nmi"]["nmi_watchdog"]["value"]) == "0"
    assert "console=ttyS0,115200" in f["cmdline_args"]
    assert any(c["name"] == "ttyS0" for c in f["consoles"])
    assert f["kexec_crash_size"] and f["kexec_crash_size"] > 0  # kdump-tools' crashkernel= reservation
    assert f["kexec_crash_loaded"] is False  # USE_KDUMP=0 in the lab image
    assert f["kdump_service"]["unit"] == "kdump-tools.service"


# ----------------------------------------------------------------------------------------------- kernel_cmdline
def test_kernel_cmdline_add_through_grub(host, hosts, cmdline_add):
    check = ok(cmdline_add, "Add the serial console argument in check mode", host)
    assert check["changed"]
    r = ok(cmdline_add, "Add the serial console argument", host)
    assert r["changed"], "check mode must not have written anything"
    assert r["reboot_required"] is True
    again = ok(cmdline_add, "Add the serial console argument again", host)
    assert again["changed"] is False
    assert again["reboot_required"] is True  # still not active until the reboot
    grub = ok(cmdline_add, "Read the generated GRUB configuration", host)
    assert int(grub["stdout"].strip() or 0) >= 1, "update-grub did not put the argument in grub.cfg"
    assert ARG not in hosts[host].file("/proc/cmdline").content_string


# ----------------------------------------------------------------------------------------------- after reboot 1
def test_reboot_happened(host, reboot1):
    assert reboot1["after"][host] != reboot1["before"][host]


def test_sysrq_mask_survives_reboot(host, hosts, after_reboot):
    assert hosts[host].file("/proc/sys/kernel/sysrq").content_string.strip() == str(MASK)
    f = _facts(after_reboot, "Gather SysRq facts", host)
    assert f["mask"] == MASK and f["in_sync"] is True
    assert _winner_path(f["winner"]) == DROPIN
    assert ok(after_reboot, "Set the mask again after the reboot", host)["changed"] is False


def test_nmi_panic_survives_reboot(host, hosts, after_reboot):
    h = hosts[host]
    for name, value in NMI.items():
        assert h.file(f"/proc/sys/kernel/{name}").content_string.strip() == value, name
    f = _facts(after_reboot, "Gather SysRq facts", host)
    for name, value in NMI.items():
        assert str(f["nmi"][name]["value"]) == value
        assert _winner_path(f["nmi"][name]["winner"]) == "/etc/sysctl.d/90-magic-sysrq-nmi.conf"
    r = ok(after_reboot, "Set the NMI and panic settings again after the reboot", host)
    assert r["changed"] is False


def test_kernel_cmdline_active_after_reboot(host, hosts, after_reboot, cmdline_remove):
    # the kernel's own files first (still the boot after reboot 1: cmdline_remove only changed the configuration)
    cmdline = hosts[host].file("/proc/cmdline").content_string.split()
    assert ARG in cmdline and "console=ttyS0,115200" in cmdline, cmdline
    assert re.search(r"^ttyS0\s", hosts[host].file("/proc/consoles").content_string, re.M)
    f = _facts(after_reboot, "Gather SysRq facts", host)
    assert f["cmdline_args"] == cmdline
    assert any(c["name"] == "ttyS0" for c in f["consoles"])
    again = ok(cmdline_remove, "Add the serial console argument after the reboot", host)
    assert again["changed"] is False
    assert again["reboot_required"] is False


# ----------------------------------------------------------------------------------------------- sysrq_trigger
def test_sysrq_trigger_w_returns_exactly_the_blocked_tasks(host, trigger):
    made = ok(trigger, "Freeze a loop-mounted ext4 and start writers into it", host)
    writers = {int(p) for p in made["stdout"].split()}
    assert len(writers) == 3
    ps = ok(trigger, "List D-state tasks with ps before the dump", host)["stdout"]
    ps_d = {int(fields[0]) for fields in (ln.split() for ln in ps.splitlines()) if fields[1].startswith("D")}
    assert writers <= ps_d, f"writers {writers} not all in D state: {ps}"
    r = ok(trigger, "Dump blocked tasks", host)
    assert any("Show Blocked State" in line for line in r["output"])
    tasks = r["tasks"]
    assert {t["pid"] for t in tasks} == writers, tasks
    assert {t["comm"] for t in tasks} == {"dd", "touch", "mkdir"}
    for t in tasks:
        assert t["state"] == "D"
        assert t["frames"], t
        assert "ppid" in t
        if host == "deb13":
            assert t.get("tgid") == t["pid"]  # 6.12 prints tgid: in the task header


def test_sysrq_trigger_t_matches_ps(host, trigger):
    before = len(ok(trigger, "List threads with ps before the t dump", host)["stdout"].split())
    after = len(ok(trigger, "List threads with ps after the t dump", host)["stdout"].split())
    r = ok(trigger, "Dump all tasks", host)
    assert not r.get("lost_records"), "the t dump overflowed the ring buffer"
    n = len(r["tasks"])
    tolerance = max(5, (before + after) // 40)
    assert min(before, after) - tolerance <= n <= max(before, after) + tolerance, (n, before, after)
    comms = {t["comm"] for t in r["tasks"]}
    assert {"systemd", "kthreadd", "sshd"} <= comms, sorted(comms)
    by_pid = {t["pid"]: t["comm"] for t in r["tasks"]}
    assert (by_pid[1], by_pid[2]) == ("systemd", "kthreadd")
    assert all(t["pid"] >= 1 for t in r["tasks"])


def test_sysrq_trigger_l_parses_a_backtrace_of_every_cpu(host, trigger):
    """l on a 1-CPU and a 2-CPU guest: one parsed backtrace a CPU. The CPU that writes the key prints its own at
    once; on deb13 the other CPU, busy in a dd pinned to it, prints its own when the NMI reaches it, asynchronously."""
    made = dict(line.split(" ", 1) for line in ok(trigger, "Keep every CPU busy in a bounded dd pinned to it (none "
                                                           "on a 1-CPU guest)", host)["stdout"].splitlines())
    cpus = int(made["cpus"])
    assert cpus == GUESTS[host].cpus
    r = ok(trigger, "Backtrace all active CPUs", host)
    assert any("sysrq: Show backtrace of all active CPUs" in line for line in r["output"]), r["output"]
    assert r["lost_records"] == 0 and r["timed_out"] is False
    by_cpu = {t["cpu"]: t for t in r["tasks"]}
    assert len(r["tasks"]) == cpus and sorted(by_cpu) == list(range(cpus)), r["tasks"]
    # the CPU that wrote the key: the module's own python, in the write to /proc/sysrq-trigger
    writer = [t for t in r["tasks"] if {"nmi_trigger_cpumask_backtrace", "write_sysrq_trigger"} <= set(t["frames"])]
    assert len(writer) == 1 and writer[0]["comm"] == "python3" and writer[0]["state"] == "R", r["tasks"]
    # every CPU is busy (the writer, or a dd pinned to each CPU): none is skipped as idle, each names its task
    assert all(not t.get("idle") and t["comm"] and t["pid"] > 0 for t in r["tasks"]), r["tasks"]
    if cpus > 1:
        # the other CPU's backtrace, printed by that CPU in its NMI handler: whatever ran there (the dd, or
        # journald woken by the dump's own records); a task in user mode has registers and no kernel frames
        assert len({int(made[f"busy{cpu}"]) for cpu in range(cpus)}) == cpus, made  # one busy dd a CPU
        assert any(line.startswith(f"Sending NMI from CPU {writer[0]['cpu']} to CPUs") for line in r["output"])
        others = [t for t in r["tasks"] if t is not writer[0]]
        assert sorted(t["cpu"] for t in others) == sorted(set(range(cpus)) - {writer[0]["cpu"]}), r["tasks"]


def _show_mem_pages(lines):
    """'N pages RAM' / 'N pages reserved' ... lines of show_mem() -> {'RAM': N, 'reserved': N, ...}."""
    pages = {}
    for line in lines:
        m = re.match(r"^\s*(\d+) pages (\S.*?)\s*$", line)
        if m:
            pages[m.group(2)] = int(m.group(1))
    return pages


def test_sysrq_trigger_m_shows_the_memory_the_kernel_counts(host, trigger):
    r = ok(trigger, "Show memory usage", host)
    out = r["output"]
    assert any("sysrq: Show Memory" in line for line in out), out
    assert any(line.strip() == "Mem-Info:" for line in out), out
    assert r["tasks"] == [] and r["lost_records"] == 0
    meminfo = {k: int(v.split()[0]) for k, v in (ln.split(":", 1) for ln in
                                                 ok(trigger, "Read the memory the kernel counts", host)[
                                                     "stdout"].splitlines())}
    pages = _show_mem_pages(out)
    # show_mem(): RAM = present pages, reserved = present - managed; /proc/meminfo's MemTotal = managed pages
    assert (pages["RAM"] - pages["reserved"]) * 4 == meminfo["MemTotal"], (pages, meminfo)
    assert 0.8 * MEMORY_MB * 256 < pages["RAM"] <= MEMORY_MB * 256, pages  # 4 KiB pages of the guest's 1 GiB
    node = [line for line in out if re.match(r"^Node 0 active_anon:\d+kB", line)]
    assert len(node) == 1, out


def test_sysrq_trigger_refuses_destructive_keys_and_the_guest_stays_up(host, trigger):
    for task in ("Reboot without consent", "Send reisub without consent"):
        r = trigger.result(task, host)
        assert r.get("failed"), f"{task}: not refused: {r}"
        assert "allow_destructive" in r["msg"], r["msg"]
        assert not r.get("changed")
    check = ok(trigger, "Crash with consent in check mode", host)
    assert check["msg"] == "would write 'c' (crash) to /proc/sysrq-trigger", check
    assert (check["changed"], check["keys"], check["output"], check["captured"]) == (True, ["c"], [], False)
    boot = ok(trigger, "Read the boot id after the refused keys", host)["stdout"].strip()
    assert boot == trigger.boot_before[host] == trigger.boot_after[host]


# ----------------------------------------------------------------------------------------------- removal
def test_kernel_cmdline_remove(host, cmdline_remove):
    r = ok(cmdline_remove, "Remove the serial console argument", host)
    assert r["changed"]
    assert r["reboot_required"] is True
    again = ok(cmdline_remove, "Remove the serial console argument again", host)
    assert again["changed"] is False


def test_kernel_cmdline_gone_after_reboot(host, hosts, reboot2, after_remove):
    assert reboot2["after"][host] != reboot2["before"][host]
    cmdline = hosts[host].file("/proc/cmdline").content_string
    assert ARG not in cmdline.split()
    assert "console=ttyS0,115200" in cmdline.split()  # the image's own argument is kept
    r = ok(after_remove, "Remove the serial console argument after the reboot", host)
    assert r["changed"] is False
    assert r["reboot_required"] is False


def test_settings_survive_a_second_reboot(host, hosts, reboot2, after_remove):
    h = hosts[host]
    assert h.run("cat /proc/sys/kernel/random/boot_id").stdout.strip() == reboot2["after"][host]
    assert h.file("/proc/sys/kernel/sysrq").content_string.strip() == str(MASK)
    for name, value in NMI.items():
        assert h.file(f"/proc/sys/kernel/{name}").content_string.strip() == value, name
    assert ARG not in h.file("/proc/cmdline").content_string.split()
    # and the module's report agrees with the kernel
    f = _facts(after_remove, "Gather SysRq facts", host)
    assert f["mask"] == MASK and f["in_sync"] is True
    assert str(f["nmi"]["unknown_nmi_panic"]["value"]) == "1"
    assert ARG not in f["cmdline_args"]
