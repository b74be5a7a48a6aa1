"""The panic reason of crash logs: real kdump dmesg files from the lab and hand-made ones for other causes."""
from __future__ import annotations

import os

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump.panic_reason import headline, panic_reason

CRASH = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "crash")


def crash(name):
    with open(os.path.join(CRASH, name), encoding="utf-8") as handle:
        return handle.read()


def real_sysrq_crashes():
    return sorted(name for name in os.listdir(CRASH) if name.startswith("sysrq-crash-"))


@pytest.mark.parametrize("name", real_sysrq_crashes())
def test_real_kdump_dmesg_of_a_sysrq_crash(name):
    result = panic_reason(crash(name))
    assert result["panicked"] is True
    assert result["reason"] == "sysrq triggered crash"
    assert result["kind"] == "sysrq-crash"
    assert result["cause"].endswith("Trigger a crash")
    assert result["comm"] and result["pid"] > 0 and result["cpu"] == 0
    assert "sysrq_handle_crash" in result["frames"]
    assert result["kernel"].startswith(("6.1.", "6.12."))
    assert result["time"] > 0
    assert result["headline"].startswith("sysrq triggered crash")


def test_there_is_a_real_crash_from_each_kernel():
    names = real_sysrq_crashes()
    assert any("deb12" in n for n in names) and any("deb13" in n for n in names), names


def test_oops_then_fatal_exception_names_the_bug_line():
    result = panic_reason(crash("oops-null-6.1.dmesg.txt"))
    assert result["panicked"] and result["reason"] == "Fatal exception"
    assert result["kind"] == "null-pointer"
    assert result["cause"] == "BUG: kernel NULL pointer dereference, address: 0000000000000008"
    assert (result["comm"], result["pid"], result["cpu"]) == ("modprobe", 1234, 0)
    assert result["tainted"] == "G OE" and result["kernel"] == "6.1.0-50-amd64"
    # the unreliable "? __die_body" frames are left out, the trace stops at </TASK>
    assert result["frames"] == ["do_one_initcall", "do_init_module", "__do_sys_finit_module", "do_syscall_64",
                                "entry_SYSCALL_64_after_hwframe"]
    assert result["time"] == pytest.approx(402.12053)
    assert "tainted G OE" in result["headline"]


def test_unknown_nmi_on_6_12_with_uid_in_the_cpu_line():
    result = panic_reason(crash("nmi-unknown-6.12.dmesg.txt"))
    assert result["reason"] == "NMI: Not continuing" and result["kind"] == "nmi"
    assert (result["comm"], result["pid"], result["kernel"]) == ("swapper/0", 0, "6.12.107+deb13-amd64")
    assert result["tainted"] == ""
    assert result["frames"][:3] == ["dump_stack_lvl", "panic", "nmi_panic.cold"]


def test_hung_task_panic_is_told_by_khungtaskd():
    result = panic_reason(crash("hung-task-6.1.dmesg.txt"))
    assert result["kind"] == "hung-task" and result["reason"] == "hung_task: blocked tasks"
    assert result["cause"].startswith("INFO: task dd:316 blocked")
    assert result["comm"] == "khungtaskd"


def test_oops_without_panic_from_the_journal():
    result = panic_reason(crash("oops-no-panic.journal.txt"))
    assert result["panicked"] is False
    assert result["kind"] == "general-protection"
    assert result["reason"].startswith("general protection fault")
    assert result["comm"] == "kworker/1:2" and result["frames"] == ["free_work", "process_one_work", "worker_thread"]
    assert result["time"] is None


@pytest.mark.parametrize("text", [None, "", "[    0.000000] Linux version 6.1.0\n[    1.0] random: crng init done\n"])
def test_nothing_found(text):
    result = panic_reason(text)
    assert result["panicked"] is False and result["reason"] is None and result["kind"] is None
    assert result["headline"] == "no panic or oops found"


def test_panic_without_known_cause_is_other_and_first_panic_wins():
    text = ("[ 5.0] Kernel panic - not syncing: VFS: Unable to mount root fs on unknown-block(0,0)\n"
            "[ 5.1] CPU: 0 PID: 1 Comm: swapper/0 Not tainted 6.1.0-50-amd64 #1\n"
            "[ 5.2] Kernel panic - not syncing: Attempted to kill init!\n")
    result = panic_reason(text)
    assert result["kind"] == "other"
    assert result["reason"] == "VFS: Unable to mount root fs on unknown-block(0,0)"
    assert result["time"] == pytest.approx(5.0)
    assert result["comm"] == "swapper/0"


def test_end_marker_is_not_a_second_panic_and_lists_and_bytes_work():
    lines = ["sysrq: Trigger a crash", "Kernel panic - not syncing: sysrq triggered crash",
             "CPU: 0 PID: 9 Comm: sh Not tainted 6.12.1 #1", "---[ end Kernel panic - not syncing: sysrq triggered crash ]---"]
    assert panic_reason(lines)["panic"] == "Kernel panic - not syncing: sysrq triggered crash"
    assert panic_reason("\n".join(lines).encode())["kind"] == "sysrq-crash"


@pytest.mark.parametrize("line,kind", [
    ("watchdog: BUG: soft lockup - CPU#0 stuck for 22s! [stress:99]", "soft-lockup"),
    ("Watchdog detected hard LOCKUP on cpu 1", "hard-lockup"),
    ("Out of memory and no killable processes...", "oom"),
    ("rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:", "rcu-stall"),
    ("kernel BUG at mm/slub.c:431!", "bug"),
    ("BUG: unable to handle page fault for address: ffffa0b2c0000000", "page-fault"),
    ("WARNING: CPU: 0 PID: 1 at kernel/foo.c:12 foo+0x1/0x2", "warning"),
    ("mce: [Hardware Error]: CPU 0: Machine Check Exception: 5 Bank 4", "mce"),
])
def test_causes(line, kind):
    result = panic_reason("[ 1.0] %s\n[ 2.0] Kernel panic - not syncing: something\n" % line)
    assert result["kind"] == kind and result["cause"] == line


def test_headline_without_task():
    assert headline({"reason": "x", "cause": "x"}) == "x"
    assert headline({}) == "no panic or oops found"
