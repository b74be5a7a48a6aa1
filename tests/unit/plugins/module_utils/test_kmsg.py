"""/dev/kmsg records, the background capture, settling, timeouts and lost records (EPIPE)."""
from __future__ import annotations

import errno
import os
import threading
import time
import uuid

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import kmsg

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import parser as sysrq_tasks

from .kmsg_fakes import EPIPE, FakeKmsg, Flood, kmsg_file_records, messages, read_dump, record


def test_parse_record_plain():
    rec = kmsg.parse_record(b"6,512,84125057,-;task:dd              state:D stack:0     pid:316\n")
    assert rec["seq"] == 512 and rec["level"] == 6 and rec["facility"] == 0 and rec["usec"] == 84125057
    assert rec["flags"] == "-" and rec["fields"] == {}
    assert rec["message"] == "task:dd              state:D stack:0     pid:316"


def test_parse_record_caller_fields_and_escapes():
    raw = (b"14,7,1000,c,caller=T123;caf\\xc3\\xa9 \\x5c back\\x0asecond line\n"
           b" SUBSYSTEM=block\n DEVICE=+block:loop0\n")
    rec = kmsg.parse_record(raw)
    assert rec["facility"] == 1 and rec["level"] == 6 and rec["flags"] == "c" and rec["caller"] == "T123"
    assert rec["message"] == "caf\u00e9 \\ back\\x0asecond line"      # control characters stay escaped
    assert rec["fields"] == {"SUBSYSTEM": "block", "DEVICE": "+block:loop0"}


def test_record_helper_round_trips():
    text = "tab\there, \\ and \u00fc"
    assert kmsg.parse_record(record(5, text))["message"] == text
    assert kmsg.parse_record(record(5, "esc \x1b[0m"))["message"] == "esc \\x1b[0m"


@pytest.mark.parametrize("raw", [b"no separator", b"a,b,c;msg", b"6;msg", b""])
def test_parse_record_rejects_garbage(raw):
    assert kmsg.parse_record(raw) is None


def test_unescape_invalid_utf8_replaced():
    assert kmsg.unescape(b"bad \\xff byte") == "bad \ufffd byte"
    assert kmsg.unescape(b"plain") == "plain"


def run_capture(source, action=None, settle=0.05, timeout=5.0):
    cap = kmsg.Capture(source=source)
    cap.start()
    if action:
        action(cap)
    return cap.finish(settle=settle, timeout=timeout)


def test_capture_reads_after_the_end_and_settles():
    source = FakeKmsg(baseline=100)
    source.push(record(99, "before the trigger"), record(100, "still before"))
    result = run_capture(source, lambda cap: source.push(record(101, "sysrq: Show Blocked State"),
                                                         record(102, "line two\nline three")))
    assert source.sought and source.closed
    assert result["output"] == ["sysrq: Show Blocked State", "line two\\x0aline three"]
    assert result["records"] == 2 and result["lost_records"] == 0 and result["overruns"] == 0
    assert result["timed_out"] is False and result["first_seq"] == 101 and result["last_seq"] == 102
    assert result["error"] is None


def test_capture_nothing_printed():
    result = run_capture(FakeKmsg(baseline=5))
    assert result["output"] == [] and result["records"] == 0 and result["lost_records"] == 0
    assert result["first_seq"] is None


def test_lost_records_from_epipe_are_counted():
    """The ring buffer overwrote 40 records (seq 103-142): read() fails with EPIPE, then resumes at 143."""
    source = FakeKmsg(baseline=100)

    def action(_cap):
        source.push(record(101, "sysrq: Show State"), record(102, "task:a state:S stack:0 pid:1 ppid:0 flags:0x0"),
                    EPIPE, record(143, " schedule+0x1/0x2"), record(144, "task:b state:S stack:0 pid:2 ppid:0"))
    result = run_capture(source, action)
    assert result["lost_records"] == 40 and result["overruns"] == 1 and result["lost_count_exact"] is True
    assert result["records"] == 4


def test_seq_gap_without_epipe_is_counted():
    source = FakeKmsg(baseline=10)
    result = run_capture(source, lambda cap: source.push(record(11, "a"), record(15, "b"), record(16, "c")))
    assert result["lost_records"] == 3 and result["overruns"] == 0


def test_loss_before_the_first_record_is_counted_from_the_baseline():
    source = FakeKmsg(baseline=10)
    result = run_capture(source, lambda cap: source.push(EPIPE, record(20, "first survivor")))
    assert result["lost_records"] == 9 and result["output"] == ["first survivor"]


def test_loss_without_a_baseline_is_reported_as_at_least_one():
    source = FakeKmsg(baseline=None)
    result = run_capture(source, lambda cap: source.push(EPIPE, record(500, "survivor"), record(501, "next")))
    assert result["lost_records"] == 1 and result["lost_count_exact"] is False and result["overruns"] == 1


def test_timeout_bounds_a_capture_that_never_settles():
    result = run_capture(Flood(), settle=0.5, timeout=0.3)
    assert result["timed_out"] is True and result["records"] > 0
    assert result["output"][0] == "flood 1"


def test_pump_keeps_reading_between_keys():
    source = FakeKmsg(baseline=0)

    def action(cap):
        source.push(record(1, "Emergency Sync"))
        cap.pump(0.05)
        assert cap.records and cap.records[0]["message"] == "Emergency Sync"
        source.push(record(2, "Emergency Sync complete"))
        cap.mark()
    result = run_capture(source, action)
    assert result["output"] == ["Emergency Sync", "Emergency Sync complete"]


def test_reader_errors_are_reported_not_raised():
    class Broken(FakeKmsg):
        def read(self):
            raise OSError(errno.EIO, "Input/output error")
    result = run_capture(Broken(baseline=0))
    assert "Input/output error" in result["error"]


def test_open_source_missing_device(host_root):
    with pytest.raises(kmsg.KmsgError) as err:
        kmsg.open_source()
    assert "/dev/kmsg" in str(err.value) and "container" in str(err.value)


@pytest.mark.parametrize("guest", ["deb12", "deb13"])
@pytest.mark.parametrize("key", ["w", "t", "l"])
def test_real_kmsg_records_through_the_capture(guest, key):
    """The raw /dev/kmsg records of the lab guests' dumps, read through Capture, parse like their dmesg."""
    records = kmsg_file_records("%s-%s.kmsg.txt" % (guest, key))
    first = kmsg.parse_record(records[0])["seq"]
    source = FakeKmsg(baseline=first - 1)
    result = run_capture(source, lambda cap: source.push(*records))
    assert result["lost_records"] == 0 and result["records"] == len(records)
    assert result["output"] == messages(records)
    from_dmesg = sysrq_tasks.parse_text(read_dump("%s-%s.dmesg.txt" % (guest, key)))
    assert sysrq_tasks.parse_lines(result["output"]) == from_dmesg


def test_real_kmsg_records_with_an_overrun_in_the_middle():
    """A t dump where the ring buffer overwrote 300 records: counted, and the tasks after it still parse."""
    records = kmsg_file_records("deb13-t.kmsg.txt")
    first = kmsg.parse_record(records[0])["seq"]
    kept = records[:100] + [EPIPE] + records[400:]
    source = FakeKmsg(baseline=first - 1)
    result = run_capture(source, lambda cap: source.push(*kept))
    assert result["lost_records"] == 300 and result["overruns"] == 1
    tasks = sysrq_tasks.parse_lines(result["output"])
    full = sysrq_tasks.parse_text(read_dump("deb13-t.dmesg.txt"))
    assert 0 < len(tasks) < len(full)
    assert tasks[-1] == full[-1]


kmsg_readable = os.access("/dev/kmsg", os.R_OK)


@pytest.mark.skipif(not kmsg_readable, reason="no readable /dev/kmsg here")
def test_real_device_seek_end_then_a_new_record():
    """The real device: after SEEK_END the baseline is the newest record's number, and a record written after it
    (one line of our own, to the machine's kernel log) wakes wait() and is read with a larger number."""
    source = kmsg.DevKmsg()
    try:
        source.seek_end()
        baseline = source.last_seq()
        assert isinstance(baseline, int) and baseline >= 0
        marker = "magic_sysrq.fleet unit test: /dev/kmsg reader check %s" % uuid.uuid4()
        fd = os.open("/dev/kmsg", os.O_WRONLY)
        try:
            os.write(fd, ("<6>%s\n" % marker).encode())
        finally:
            os.close(fd)
        assert source.wait(10) is True
        found = None
        for _attempt in range(10000):  # records others logged meanwhile come first; each is newer than the baseline
            try:
                record = kmsg.parse_record(source.read())
            except OSError as exc:
                assert exc.errno in (errno.EAGAIN, errno.EPIPE), exc  # EPIPE: older records overwritten meanwhile
                if exc.errno == errno.EAGAIN:
                    assert source.wait(10) is True
                continue
            assert record["seq"] > baseline, (record, baseline)
            if marker in record["message"]:
                found = record
                break
        assert found is not None and found["seq"] > baseline
    finally:
        source.close()


# --- end conditions: synchronous output, CPU backtraces, quiet period --------------------------------

def test_settle_zero_reads_what_is_there_and_returns_at_once():
    """w/t/m print inside the write: every record is stored when it returns, so nothing is waited for."""
    source = FakeKmsg(baseline=100)
    slept = []
    cap = kmsg.Capture(source=source, sleep=slept.append)
    cap.start()
    source.push(*[record(101 + i, "line %d" % i) for i in range(500)])   # stored "inside the write"
    result = cap.finish(settle=0, timeout=30)
    assert slept == []                       # not one wait: the records are read and the capture ends
    assert result["records"] == 500 and result["output"][-1] == "line 499" and result["timed_out"] is False


def test_settle_zero_does_not_wait_for_late_records():
    source = FakeKmsg(baseline=0)
    cap = kmsg.Capture(source=source)
    cap.start()
    source.push(record(1, "sysrq: Show Blocked State"))
    late = threading.Timer(5.0, lambda: source.push(record(2, "printed later")))
    late.start()
    try:
        result = cap.finish(settle=0, timeout=30)
    finally:
        late.cancel()
    assert result["output"] == ["sysrq: Show Blocked State"]


def backtrace(seq, cpu, nmi=True):
    head = "NMI backtrace for cpu %d" % cpu if nmi else "CPU%d:" % cpu
    return [record(seq, head), record(seq + 1, "CPU: %d PID: 9 Comm: sh Not tainted 6.1.0 #1" % cpu),
            record(seq + 2, " show_stack+0x1/0x2"), record(seq + 3, " showacpu+0x3/0x4")]


@pytest.mark.parametrize("nmi", [True, False])
def test_l_ends_when_every_cpu_reported_not_after_the_quiet_period(nmi):
    """CPU 1's backtrace arrives 0.3 s after the write: it is waited for, then 0.2 s of quiet ends the capture."""
    source = FakeKmsg(baseline=10)
    cap = kmsg.Capture(source=source)
    cap.start()
    source.push(record(11, "sysrq: Show backtrace of all active CPUs"), *backtrace(12, 0, nmi))
    late = threading.Timer(0.3, lambda: source.push(*backtrace(16, 1, nmi)))
    late.start()
    started = time.monotonic()
    result = cap.finish(settle=30.0, timeout=60, done=kmsg.CpuBacktraces({0, 1}))
    elapsed = time.monotonic() - started
    assert 0.3 <= elapsed < 10.0              # ended by the last CPU's backtrace, not by the 30 s quiet period
    assert result["records"] == 9 and result["output"][-1] == " showacpu+0x3/0x4"
    assert [t["cpu"] for t in sysrq_tasks.parse_lines(result["output"])] == [0, 1]


def test_l_with_a_missing_cpu_falls_back_to_the_quiet_period():
    source = FakeKmsg(baseline=10)
    cap = kmsg.Capture(source=source)
    cap.start()
    source.push(*backtrace(11, 0))
    started = time.monotonic()
    result = cap.finish(settle=0.4, timeout=30, done=kmsg.CpuBacktraces({0, 1}))
    assert 0.4 <= time.monotonic() - started < 10.0 and result["records"] == 4 and not result["timed_out"]


def test_cpu_backtraces_is_incremental():
    done = kmsg.CpuBacktraces({0, 2})
    records = [kmsg.parse_record(r) for r in backtrace(1, 0)]
    assert done(records) is False and done.seen == {0}
    records += [kmsg.parse_record(record(9, "NMI backtrace for cpu 2 skipped: idling at intel_idle+0x1/0x2"))]
    assert done(records) is True and done.seen == {0, 2}


@pytest.mark.parametrize("text, cpus", [("0\n", {0}), ("0-3\n", {0, 1, 2, 3}), ("0-1,4,6-7", {0, 1, 4, 6, 7}),
                                        ("", None), ("x", None), ("3-1", None)])
def test_parse_cpu_list(text, cpus):
    assert kmsg.parse_cpu_list(text) == cpus


def test_online_cpus_from_sysfs(host_root):
    assert kmsg.online_cpus() is None
    (host_root / "sys/devices/system/cpu").mkdir(parents=True)
    (host_root / "sys/devices/system/cpu/online").write_text("0-1\n")
    assert kmsg.online_cpus() == {0, 1}
