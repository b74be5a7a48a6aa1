"""The dump parser on hostile input (issue #13, item 4): it never raises, and its work grows linearly with
the input whatever the input holds. Property-based (Hypothesis): dumps built from the pieces the parser looks
for, in any order and length. The growth checks compare the time of a text and of the same text four times
over (linear: about 4x; quadratic: 16x); the absolute speed is measured in benchmarks/parser_hostile.py."""
from __future__ import annotations

import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import parser as sysrq_tasks
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump.untrusted import UNSAFE

# Pieces of kernel dumps, and of what a hostile comm, console or log line can add to them.
PIECES = ["task:", " state:", "D", "S", "R", " stack:0", " pid:", "12", " ppid:", " flags:0x0", " tgid:",
          "Sched Debug Version", "Call Trace:", "<TASK>", "</TASK>", " __schedule+0x1a/0x2b", "+0x", "/0x",
          " ? ", "[<ffffffff>] ", " [ext4]", "NMI backtrace for cpu ", " skipped: idling at ", "CPU: ", " PID: ",
          " Comm: ", " Tainted:", "Workqueue: ", "sysrq: ", "INFO: task ", "CPU1:", "running task",
          "[   12.345678] ", "[  T42] ", "<6>", "kern  :info  : ", "Nov 22 10:31:02 h kernel: ",
          "2026-11-22T10:31:02,123456+00:00 ", "\x1b[31m", "\x1b]0;", "\x1b", "\x07", "\r", "\n", "\t", " ", "  ",
          "a", "x" * 40, "`", "<b>", "\\x0a", "\u202e", "\x00", ":", ";", "0123456789abcdef", "          "]

dumps = st.lists(st.sampled_from(PIECES), max_size=300).map("".join)
lines = st.lists(dumps, max_size=30)


def check_tasks(tasks):
    for task in tasks:
        assert set(task) >= {"comm", "pid", "ppid", "state", "frames", "unreliable_frames"}
        assert task["state"] is None or len(task["state"]) == 1
        assert all(isinstance(frame, str) and "\n" not in frame for frame in task["frames"])
        assert task["comm"] is None or "\n" not in task["comm"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dumps)
def test_parse_text_never_raises(text):
    tasks = sysrq_tasks.parse_text(text)
    check_tasks(tasks)
    for task in tasks:        # text from a console or dmesg: no control character reaches a task
        assert not UNSAFE.search(task["comm"] or ""), task
        assert not any(UNSAFE.search(frame) for frame in task["frames"]), task


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines)
def test_parse_lines_never_raises(kmsg_lines):
    check_tasks(sysrq_tasks.parse_lines(kmsg_lines))


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=3000))
def test_any_unicode_text(text):
    check_tasks(sysrq_tasks.parse_text(text))
    check_tasks(sysrq_tasks.parse_text(text.encode("utf-8", "surrogatepass")))


def _seconds(text, parse=sysrq_tasks.parse_text):
    best = None
    for _attempt in range(3):
        start = time.process_time()
        parse(text)
        spent = time.process_time() - start
        best = spent if best is None else min(best, spent)
    return best


def assert_linear(text, parse=sysrq_tasks.parse_text, floor=0.02):
    """Four times the text costs at most about four times as much (ratio below 10; quadratic is 16)."""
    small = _seconds(text, parse)
    large = _seconds(text * 4, parse)
    assert large <= max(small, floor) * 10, "%.3f s for %d chars, %.3f s for 4x" % (small, len(text), large)


def test_a_long_header_line_is_linear():
    # the case: "task:x state:D " then 16,000 letters took 0.8 s, four times more per doubling
    assert_linear("task:x state:D " + "a" * 16000 + "\n")
    assert_linear(("task:x state:D " + "a" * 1000 + "\n") * 50)


def test_repeated_sched_debug_headers_are_linear():
    # the case: 20,000 x "Sched Debug Version\ntask:\n" (520 KB) took 8 s
    assert_linear("Sched Debug Version\ntask:\n" * 5000)
    assert_linear("Sched Debug Version\n" * 5000 + "task:\n")
    assert_linear(["Sched Debug Version", "task:"] * 5000, parse=sysrq_tasks.parse_lines)


def test_long_lines_of_every_kind_are_linear():
    for line in ("x" * 20000, " " * 20000, "task:" + " " * 20000, "stack:" + "pid:" * 5000, "\x1b]" * 8000,
                 "[" + " " * 20000, "CPU: 1 PID: 2 Comm: " + " Tainted:" * 2000, "a A " + " " * 20000 + "1",
                 " " + "a" * 20000 + "+0x", "Workqueue: " + " " * 20000, "? " * 10000):
        assert_linear(line + "\n")
        assert_linear((line[:3000] + "\n") * 20)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES), min_size=1, max_size=40).map("".join))
def test_growth_is_linear_for_generated_units(unit):
    assert_linear(unit * max(1, 20000 // len(unit)))


def test_lines_over_1_kb_are_cut_and_counted():
    text, cut = sysrq_tasks.cut_long_lines("short\n" + "y" * 5000 + "\nend")
    assert cut == 1 and text == "short\n" + "y" * sysrq_tasks.MAX_LINE + "\nend"
    out, cut = sysrq_tasks.cut_lines(["a" * 2000, "b", "c" * 1024])
    assert cut == 1 and [len(line) for line in out] == [1024, 1, 1024]
    # a real header after a cut line is still read
    tasks = sysrq_tasks.parse_text("z" * 5000 + "\ntask:dd              state:D stack:0 pid:5 ppid:2 flags:0x0\n")
    assert [(t["comm"], t["pid"]) for t in tasks] == [("dd", 5)]
