"""Kernel log levels, time filtering of dmesg --time-format=iso output, and the collect-dmesg summary."""
from __future__ import annotations

import datetime
import os

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import kernel_log as k

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
LOG = """2026-11-22T09:00:00,000001+00:00 Linux version 6.1.0-50-amd64
2026-11-22T10:29:59,999999+00:00 before
2026-11-22T10:30:00,000000+00:00 at the start
 a continuation of it
2026-11-22T11:30:00,500000+01:00 an hour earlier in UTC (10:30:00.5)
2026-11-22T11:59:00,000000+00:00 a minute ago"""


@pytest.mark.parametrize("level,expected", [
    ("err", ["emerg", "alert", "crit", "err"]), ("3", ["emerg", "alert", "crit", "err"]), (0, ["emerg"]),
    ("WARNING", ["emerg", "alert", "crit", "err", "warn"]), ("debug", list(k.LEVELS)), ("", []), (None, []),
])
def test_levels_at_or_above(level, expected):
    assert k.levels_at_or_above(level) == expected


@pytest.mark.parametrize("level", ["loud", "8", "-1"])
def test_bad_level_lists_the_names(level):
    with pytest.raises(k.KernelLogError, match="emerg, alert, crit, err, warn, notice, info, debug"):
        k.levels_at_or_above(level)


@pytest.mark.parametrize("since,expected", [
    (None, None), ("", None), ("boot", None),
    ("2h", NOW - datetime.timedelta(hours=2)), ("-30m", NOW - datetime.timedelta(minutes=30)),
    ("1d", NOW - datetime.timedelta(days=1)), ("90 seconds", NOW - datetime.timedelta(seconds=90)),
    ("2026-11-22", datetime.datetime(2026, 11, 22, tzinfo=UTC)),
    ("2026-11-22 10:30", datetime.datetime(2026, 11, 22, 10, 30, tzinfo=UTC)),
    ("2026-11-22T10:30:00Z", datetime.datetime(2026, 11, 22, 10, 30, tzinfo=UTC)),
    ("2026-11-22T11:30:00+01:00", datetime.datetime(2026, 11, 22, 10, 30, tzinfo=UTC)),
])
def test_parse_since(since, expected):
    assert k.parse_since(since, now=NOW) == expected


@pytest.mark.parametrize("since", ["yesterday", "2h ago", "22/11/2026"])
def test_bad_since_says_what_is_accepted(since):
    with pytest.raises(k.KernelLogError, match="30m, 2h, 1d"):
        k.parse_since(since)


def test_select_since_keeps_continuations_and_honours_offsets():
    kept = k.select_since(LOG, "2026-11-22 10:30", now=NOW)
    assert kept == LOG.splitlines()[2:]
    assert k.select_since(LOG, "2m", now=NOW) == ["2026-11-22T11:59:00,000000+00:00 a minute ago"]
    assert k.select_since(LOG, "boot") == LOG.splitlines()
    assert k.select_since(LOG.splitlines(), "2026-11-23") == []
    assert k.select_since(None, "2h") == []


def test_record_time_and_span():
    assert k.record_time("2026-11-22T11:30:00,500000+01:00 x") == datetime.datetime(
        2026, 11, 22, 10, 30, 0, 500000, tzinfo=UTC)
    assert k.record_time(" continuation") is None
    assert k.span(LOG.splitlines()) == ("2026-11-22T09:00:00,000001+00:00", "2026-11-22T11:59:00,000000+00:00")
    assert k.span([]) == (None, None)


def test_summary_reads_crash_copies_and_sorts_newest_first(tmp_path):
    crash_dir = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "crash")
    local = tmp_path / "dmesg.202611221030"
    with open(os.path.join(crash_dir, "oops-null-6.1.dmesg.txt"), encoding="utf-8") as handle:
        local.write_text(handle.read())
    fetched = {"item": {"path": "/var/crash/202611221030/dmesg.202611221030", "mtime": 2000.0, "size": 10},
               "dest": str(local), "changed": True}
    hosts = {
        "web1": {"status": "answered", "msg": "", "lines": LOG.splitlines(), "crash_msg": "",
                 "crash_files": [fetched]},
        "web2": {"status": "answered", "lines": [], "crash_files": [
            {"name": "vmcore-dmesg.txt", "path": "/var/crash/x/vmcore-dmesg.txt", "mtime": 1000,
             "text": "[ 1.0] sysrq: Trigger a crash\n[ 1.1] Kernel panic - not syncing: sysrq triggered crash\n"}]},
        "web3": {"status": "unreachable", "msg": "Failed to connect", "lines": [], "crash_files": []},
        "web4": None,
    }
    summary = k.summarize(hosts, since="2026-11-22 10:30", level="err", directory="/out")
    assert summary["since"] == "2026-11-22T10:30:00+00:00" and summary["levels"] == ["emerg", "alert", "crit", "err"]
    assert (summary["asked"], summary["answered"]) == (4, 2)
    assert summary["unreachable"] == ["web3"] and summary["not_run"] == ["web4"]
    assert [c["host"] for c in summary["crashes"]] == ["web1", "web2"]
    first = summary["crashes"][0]
    assert first["name"] == "dmesg.202611221030" and first["reason"] == "Fatal exception"
    assert first["kind"] == "null-pointer" and first["local"] == str(local)
    assert summary["crashes"][1]["kind"] == "sysrq-crash"
    web1 = summary["hosts"]["web1"]
    assert web1["lines"] == 6 and web1["first"].startswith("2026-11-22T09:00:00")
    assert "text" not in web1["crash_files"][0]
    assert summary["hosts"]["web4"]["status"] == "not run"
    assert k.summarize({})["since"] == "boot" and k.summarize({})["levels"] == "all"


def test_summary_with_an_unreadable_copy(tmp_path):
    crash = {"path": "/var/crash/a/dmesg.a", "local": str(tmp_path / "gone")}
    hosts = {"h": {"status": "answered", "lines": [], "crash_files": [crash]}}
    entry = k.summarize(hosts)["crashes"][0]
    assert entry["name"] == "dmesg.a" and entry["reason"] is None


def test_non_ascii_digits_are_not_a_level():
    with pytest.raises(k.KernelLogError, match="unknown kernel log level"):
        k.level_name("\u00b2")
