"""The parser on real user-mode Linux dumps (Debian's user-mode-linux 6.1.176, the scale lab's kernels).

UML prints each frame as `` [<6006aed2>] kthreadd+0xaa/0x131`` (`` [<...>] ? sym+...`` when unreliable) after a
``Stack:`` block of raw words, and its ``t`` panics in print_worker_info (tests/unit/fixtures/dumps/README.md).
"""
from __future__ import annotations

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import parser as p

from .kmsg_fakes import kmsg_file_records, messages, read_dump

UML_FSFREEZE_WAIT = ["__switch_to", "__schedule", "schedule", "percpu_rwsem_wait", "__percpu_down_read",
                     "percpu_down_read", "mnt_want_write", "path_openat", "do_filp_open", "do_sys_openat2",
                     "do_sys_open", "sys_openat", "handle_syscall", "userspace", "fork_handler"]


def ps_d_state():
    out = set()
    for row in read_dump("uml-w.ps.txt").splitlines()[1:]:
        pid, _ppid, stat, comm = row.split(None, 3)
        if stat.startswith("D"):
            out.add((int(pid), comm))
    return out


@pytest.mark.parametrize("form", ["dmesg", "kmsg"])
def test_uml_w_dump(form):
    if form == "kmsg":
        tasks = p.parse_lines(messages(kmsg_file_records("uml-w.kmsg.txt")))
    else:
        tasks = p.parse_text(read_dump("uml-w.dmesg.txt", "rb"))
    assert [(t["comm"], t["pid"], t["ppid"], t["state"]) for t in tasks] == [("dd", 706, 1, "D")]
    assert {(t["pid"], t["comm"]) for t in tasks} == ps_d_state()
    task = tasks[0]
    assert task["frames"] == UML_FSFREEZE_WAIT
    assert task["unreliable_frames"][:3] == ["assert_clock_updated.isra.0", "__schedule", "schedule"]
    assert "interrupt_end" in task["unreliable_frames"]
    assert not [f for f in task["frames"] + task["unreliable_frames"] if f.startswith(("[", "?", "0x", "6"))]


def test_uml_stack_words_are_not_frames():
    text = ("task:sh state:D stack:0 pid:9 ppid:1 flags:0x00000000\nStack:\n 77568000 60070dff 776a3ad0 6002c2f1\n"
            "Call Trace:\n [<6002c2f1>] __switch_to+0x50/0x7f\n [<606a01b0>] ? __schedule+0x0/0x568\n")
    (task,) = p.parse_text(text)
    assert task["frames"] == ["__switch_to"] and task["unreliable_frames"] == ["__schedule"]


def test_x86_frames_in_the_same_text_still_parse():
    text = ("task:a state:D stack:0 pid:1 ppid:0 flags:0x0\n [<6002c2f1>] __switch_to+0x50/0x7f\n"
            "task:b state:D stack:0 pid:2 ppid:0 flags:0x0\n __schedule+0x34d/0x9e0\n ? foo+0x1/0x2\n")
    a, b = p.parse_text(text)
    assert a["frames"] == ["__switch_to"] and b["frames"] == ["__schedule"] and b["unreliable_frames"] == ["foo"]


def test_uml_has_no_l_it_prints_help_and_no_tasks():
    text = read_dump("uml-l.dmesg.txt")
    assert "sysrq: HELP" in text and p.parse_text(text) == []


def test_uml_t_panic_console_keeps_the_tasks_before_the_fault():
    """``t`` panics UML; the tasks printed before the panic parse, the panic's own stack is no task's."""
    text = read_dump("uml-t-panic.console.txt")
    tasks = p.parse_text(text)
    assert [t["comm"] for t in tasks] == ["scale-init", "kthreadd", "slub_flushwq"]
    assert tasks[1]["frames"][-2:] == ["kthreadd", "new_thread_handler"]
    assert "print_worker_info" not in tasks[-1]["frames"]
    assert "Kernel panic - not syncing: Kernel mode fault" in text
