"""/dev/kmsg records, the background capture, settling, timeouts and lost records (EPIPE)."""
from __future__ import annotations

import errno
import os

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
def test_real_device_seek_end_and_nothing_new():
    """The real device: after SEEK_END a non-blocking read fails with EAGAIN; the baseline is a number."""
    source = kmsg.DevKmsg()
    try:
        source.seek_end()
        baseline = source.last_seq()
        assert baseline is None or baseline >= 0
        try:
            data = source.read()
        except OSError as exc:
            assert exc.errno in (errno.EAGAIN, errno.EPIPE)
        else:   # something was logged meanwhile: it must be newer than the baseline
            assert kmsg.parse_record(data)["seq"] > (baseline or -1)
        assert source.wait(0.01) in (True, False)
    finally:
        source.close()
