"""sysrq_trigger end to end: keys written to a fake /proc/sysrq-trigger, records from a scripted /dev/kmsg."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import kmsg

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysrq import keys as sysrq_keys
from ansible_collections.magic_sysrq.fleet.plugins.modules import sysrq_trigger

from ..conftest_helpers import warnings
from ..module_utils.kmsg_fakes import EPIPE, FakeKmsg, Flood, kmsg_file_records, messages, record

FAST = {"settle": 0.05, "timeout": 5}


@pytest.fixture
def lab(host_root, monkeypatch):
    """A host with SysRq: the trigger file, a scripted kmsg, and what each key makes the kernel print."""
    os.makedirs(str(host_root / "proc/sys/kernel"))
    (host_root / "proc/sys/kernel/sysrq").write_text("438\n")
    (host_root / "proc/sysrq-trigger").write_text("")

    class Lab:
        source = FakeKmsg(baseline=1000)
        opened = []
        written = []
        prints = {}          # key -> records the kernel prints for it

        @staticmethod
        def trigger_text():
            return (host_root / "proc/sysrq-trigger").read_text()

    real_write = sysrq_keys.write_key

    def write(key):
        real_write(key)
        Lab.written.append(key)
        Lab.source.push(*Lab.prints.get(key, [record(1001 + len(Lab.written), "sysrq: key %s" % key)]))

    def open_source(path=kmsg.KMSG):
        Lab.opened.append(path)
        return Lab.source

    monkeypatch.setattr(sysrq_keys, "write_key", write)
    monkeypatch.setattr(kmsg, "open_source", open_source)
    return Lab


def real_records(name, baseline_gap=0):
    records = kmsg_file_records(name)
    return records, kmsg.parse_record(records[0])["seq"] - 1 - baseline_gap


@pytest.mark.parametrize("guest, pids", [("deb12", [316, 317, 318]), ("deb13", [448, 449, 450])])
def test_w_returns_output_and_blocked_tasks(lab, run_module, guest, pids):
    records, baseline = real_records("%s-w.kmsg.txt" % guest)
    lab.source.baseline = baseline
    lab.prints["w"] = records
    result = run_module(sysrq_trigger, dict(keys="w", **FAST))
    assert result["changed"] is True and "failed" not in result
    assert lab.written == ["w"] and lab.trigger_text() == "w"
    assert result["keys"] == ["w"] and result["captured"] is True
    assert result["output"] == messages(records) and result["output"][0] == "sysrq: Show Blocked State"
    assert result["records"] == len(records) and result["lost_records"] == 0 and result["timed_out"] is False
    expected = list(zip(["dd", "touch", "mkdir"], pids, "DDD"))
    assert [(t["comm"], t["pid"], t["state"]) for t in result["tasks"]] == expected
    assert result["tasks"][0]["frames"][2] == "percpu_rwsem_wait"
    assert result["task_states"] == {"D": 3}
    assert result["actions"][0]["name"] == "show-blocked-tasks" and result["actions"][0]["function"] == "dumps"
    # (warnings of other modules' tests may linger in the shared warning list: look only for ours)
    assert not [w for w in warnings(result) if "overwrote" in w or "timeout=" in w or "not captured" in w]


def test_t_dump_with_lost_records_warns(lab, run_module):
    records, baseline = real_records("deb13-t.kmsg.txt")
    lab.source.baseline = baseline
    lab.prints["t"] = records[:200] + [EPIPE] + records[700:]
    result = run_module(sysrq_trigger, dict(keys="t", **FAST))
    assert result["lost_records"] == 500
    assert any("overwrote 500 log record(s)" in w and "log_buf_len" in w for w in warnings(result))
    assert 0 < len(result["tasks"]) < 81


def test_several_keys_with_delay(lab, run_module):
    result = run_module(sysrq_trigger, dict(keys="s u", delay=0.01, allow_destructive=True, **FAST))
    assert lab.written == ["s", "u"] and result["keys"] == ["s", "u"]
    assert result["output"] == ["sysrq: key s", "sysrq: key u"]
    assert result["tasks"] == [] and result["task_states"] == {}
    assert [a["destructive"] for a in result["actions"]] == [False, True]


def test_keys_without_task_dump_return_no_tasks(lab, run_module):
    lab.prints["m"] = [record(1001, "sysrq: Show Memory"), record(1002, "task:fake state:S stack:0 pid:1 ppid:0")]
    result = run_module(sysrq_trigger, dict(keys="m", **FAST))
    assert result["output"][0] == "sysrq: Show Memory" and result["tasks"] == []


def test_check_mode_writes_nothing_and_says_what_it_would_do(lab, run_module):
    result = run_module(sysrq_trigger, dict(keys="wl", **FAST), check_mode=True)
    assert result["changed"] is True
    assert result["msg"] == "would write 'w' (show-blocked-tasks), 'l' (show-backtrace-all-active-cpus) to " \
                            "/proc/sysrq-trigger"
    assert lab.written == [] and lab.trigger_text() == "" and lab.opened == []
    assert result["output"] == [] and result["captured"] is False


@pytest.mark.parametrize("keys, fragment", [
    ("wA", "unknown SysRq key(s) 'A'"),
    ("w,t", "unknown SysRq key(s) ','"),
    ("", "keys is empty"),
])
def test_bad_keys_fail_and_write_nothing(lab, run_module, keys, fragment):
    result = run_module(sysrq_trigger, dict(keys=keys, **FAST))
    assert result["failed"] is True and fragment in result["msg"]
    assert "valid keys: 0 1 2 3 4 5 6 7 8 9 b c d e f g h i j k l m n o p q r s t u v w x y z R" in result["msg"]
    assert lab.written == [] and lab.opened == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_destructive_keys_refused_without_consent(lab, run_module, check_mode):
    result = run_module(sysrq_trigger, dict(keys="reisub", **FAST), check_mode=check_mode)
    assert result["failed"] is True
    assert "'e', 'i', 'u', 'b'" in result["msg"] and "allow_destructive=true" in result["msg"]
    assert "destructive keys are: b c e f g i j k n o u x z" in result["msg"]
    assert lab.written == [] and lab.trigger_text() == ""


def test_keys_after_i_are_refused_before_anything_is_written(lab, run_module):
    result = run_module(sysrq_trigger, dict(keys="reisub", allow_destructive=True, **FAST))
    assert result["failed"] is True
    assert "'sub' after it would never be written" in result["msg"] and "oob_sysrq" in result["msg"]
    assert lab.written == [] and lab.trigger_text() == ""


def test_the_writer_survives_e_and_writes_the_keys_after_it(lab, run_module, monkeypatch):
    ignored = []
    monkeypatch.setattr(sysrq_keys.signal, "signal", lambda signum, handler: ignored.append((signum, handler)))
    result = run_module(sysrq_trigger, dict(keys="resub", allow_destructive=True, **FAST))
    assert not result.get("failed"), result
    assert lab.written == ["r", "e", "s", "u", "b"]
    assert sorted(ignored) == sorted((s, signal.SIG_IGN) for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE))


def test_destructive_allowed_in_check_mode_writes_nothing(lab, run_module):
    result = run_module(sysrq_trigger, dict(keys="b", allow_destructive=True), check_mode=True)
    assert result["changed"] is True and "'b' (reboot)" in result["msg"] and lab.written == []


@pytest.mark.parametrize("check_mode", [False, True])
def test_kernel_without_sysrq(host_root, run_module, check_mode):
    os.makedirs(str(host_root / "proc/sys/kernel"))
    result = run_module(sysrq_trigger, dict(keys="w"), check_mode=check_mode)
    assert result["failed"] is True
    assert "/proc/sysrq-trigger does not exist" in result["msg"] and "CONFIG_MAGIC_SYSRQ" in result["msg"]
    assert "no key was written" in result["msg"]


def test_read_only_proc_in_a_container(lab, run_module, monkeypatch):
    monkeypatch.setattr(sysrq_keys.os, "access", lambda path, mode: False)
    result = run_module(sysrq_trigger, dict(keys="w"))
    assert result["failed"] is True and "not writable" in result["msg"] and "read-only" in result["msg"]
    assert lab.written == []


def test_write_failure_is_reported(lab, run_module, monkeypatch):
    def refuse(key):
        raise sysrq_keys.TriggerError("writing 'w' to /proc/sysrq-trigger failed: Read-only file system")
    monkeypatch.setattr(sysrq_keys, "write_key", refuse)
    result = run_module(sysrq_trigger, dict(keys="w", **FAST))
    assert result["failed"] is True and "Read-only file system" in result["msg"]
    assert lab.source.closed


def test_a_later_key_that_fails_reports_the_keys_already_written_as_a_change(lab, run_module, monkeypatch):
    real = sysrq_keys.write_key

    def refuse_t(key):
        if key == "t":
            raise sysrq_keys.TriggerError("writing 't' to /proc/sysrq-trigger failed: Read-only file system")
        real(key)
    monkeypatch.setattr(sysrq_keys, "write_key", refuse_t)
    result = run_module(sysrq_trigger, dict(keys="wt", **FAST))
    assert result["failed"] is True and "Read-only file system" in result["msg"]
    assert "already written: 'w'" in result["msg"]
    assert result["changed"] is True and lab.written == ["w"]


def test_no_kmsg_still_triggers_with_a_warning(lab, run_module, monkeypatch):
    def missing(path=kmsg.KMSG):
        raise kmsg.KmsgError(2, "cannot open /dev/kmsg: No such file or directory")
    monkeypatch.setattr(kmsg, "open_source", missing)
    result = run_module(sysrq_trigger, dict(keys="w", **FAST))
    assert result["changed"] is True and lab.written == ["w"]
    assert result["captured"] is False and result["output"] == [] and result["tasks"] == []
    assert any("not captured" in w and "/dev/kmsg" in w for w in warnings(result))


def test_timeout_bounds_the_capture(lab, run_module, monkeypatch):
    monkeypatch.setattr(kmsg, "open_source", lambda path=kmsg.KMSG: Flood())
    result = run_module(sysrq_trigger, dict(keys="w", settle=1, timeout=0.2))
    assert result["timed_out"] is True and result["records"] > 0
    assert any("timeout=0.2" in w for w in warnings(result))


@pytest.mark.parametrize("args, fragment", [
    ({"delay": -1}, "delay must be >= 0"),
    ({"timeout": 0}, "timeout must be > 0"),
    ({"settle": -0.5}, "settle must be >= 0"),
    # nan passes a "< 0" check and inf never ends a wait
    ({"delay": "nan"}, "delay must be >= 0 seconds and finite (got nan)"),
    ({"delay": "inf"}, "delay must be >= 0 seconds and finite (got inf)"),
    ({"timeout": "inf"}, "timeout must be > 0 seconds and finite (got inf)"),
    ({"timeout": "nan"}, "timeout must be > 0 seconds and finite (got nan)"),
    ({"settle": "nan"}, "settle must be >= 0 seconds and finite (got nan)"),
    ({"console_loglevel": 0}, "console_loglevel must be from 1 to 8"),
    ({"console_loglevel": 9}, "console_loglevel must be from 1 to 8"),
])
def test_bad_numbers(lab, run_module, args, fragment):
    result = run_module(sysrq_trigger, dict(keys="w", **args))
    assert result["failed"] is True and fragment in result["msg"] and lab.written == []


# --- the end of the capture ------------------------------------------------------------------------

def test_w_without_settle_returns_when_the_write_returns(lab, run_module, monkeypatch):
    """No fixed settle second: w's records are all in the log when the write returns."""
    records, baseline = real_records("deb13-w.kmsg.txt")
    lab.source.baseline = baseline
    lab.prints["w"] = records
    ends = []
    finish = kmsg.Capture.finish

    def record_end(self, **kwargs):
        ends.append(kwargs)
        return finish(self, **kwargs)
    monkeypatch.setattr(kmsg.Capture, "finish", record_end)
    result = run_module(sysrq_trigger, dict(keys="w"))
    assert ends == [{"settle": 0.0, "timeout": 30.0, "done": None}]
    assert result["records"] == len(records) and result["task_states"] == {"D": 3}


def test_l_waits_for_the_backtraces_of_the_other_cpus(lab, host_root, run_module):
    (host_root / "sys/devices/system/cpu").mkdir(parents=True)
    (host_root / "sys/devices/system/cpu/online").write_text("0-1\n")
    lab.prints["l"] = [record(1001, "sysrq: Show backtrace of all active CPUs"), record(1002, "CPU0:"),
                       record(1003, " show_stack+0x1/0x2")]
    late = threading.Timer(0.4, lambda: lab.source.push(record(1004, "CPU1:"), record(1005, " showacpu+0x3/0x4")))
    late.start()
    started = time.monotonic()
    result = run_module(sysrq_trigger, dict(keys="l", settle=30, timeout=60))
    assert 0.4 <= time.monotonic() - started < 10.0           # ended by CPU1's backtrace, not the 30 s quiet period
    assert [t["cpu"] for t in result["tasks"]] == [0, 1] and result["tasks"][1]["frames"] == ["showacpu"]


@pytest.mark.parametrize("keys, settle, expect_settle, expect_done", [
    ("w", None, 0.0, False), ("tm", None, 0.0, False), ("s", None, 1.0, False), ("l", None, 1.0, True),
    ("wl", None, 1.0, True), ("ls", None, 1.0, False), ("w", 2.5, 2.5, False), ("l", 0.3, 0.3, True),
])
def test_end_condition(host_root, keys, settle, expect_settle, expect_done):
    (host_root / "sys/devices/system/cpu").mkdir(parents=True)
    (host_root / "sys/devices/system/cpu/online").write_text("0-3\n")
    cond = sysrq_trigger.end_condition(list(keys), settle, 30.0)
    assert cond["settle"] == expect_settle and cond["timeout"] == 30.0
    assert (cond["done"] is not None) is expect_done
    if expect_done:
        assert cond["done"].cpus == {0, 1, 2, 3}


def test_l_without_sysfs_uses_the_quiet_period(host_root):
    assert sysrq_trigger.end_condition(["l"], None, 30.0)["done"] is None


@pytest.mark.parametrize("check_mode", [False, True])
def test_t_is_refused_on_user_mode_linux(lab, host_root, run_module, check_mode):
    (host_root / "proc/cpuinfo").write_text("processor\t: 0\nvendor_id\t: User Mode Linux\nmodel name\t: UML\n")
    result = run_module(sysrq_trigger, dict(keys="t", **FAST), check_mode=check_mode)
    assert result["failed"] is True and "user-mode Linux" in result["msg"] and "print_worker_info" in result["msg"]
    assert "use 'w'" in result["msg"] and lab.written == []
    assert not run_module(sysrq_trigger, dict(keys="w", **FAST), check_mode=check_mode).get("failed")


def test_t_on_user_mode_linux_with_consent(lab, host_root, run_module):
    (host_root / "proc/cpuinfo").write_text("vendor_id\t: User Mode Linux\n")
    result = run_module(sysrq_trigger, dict(keys="t", allow_destructive=True, **FAST))
    assert not result.get("failed") and lab.written == ["t"]


def test_t_elsewhere_is_not_destructive(lab, host_root, run_module):
    (host_root / "proc/cpuinfo").write_text("vendor_id\t: GenuineIntel\n")
    assert run_module(sysrq_trigger, dict(keys="t", **FAST))["keys"] == ["t"]


# --- the console log level while the keys run ------------------------------------------------------

@pytest.fixture
def printk(host_root):
    path = host_root / "proc/sys/kernel/printk"
    path.write_text("7\t4\t1\t7\n")
    return path


def test_console_loglevel_is_lowered_during_the_write_and_put_back(lab, printk, run_module, monkeypatch):
    """The dump goes to the kernel log only: the console level is 4 while the key is written, 7 again after."""
    seen = []
    real_write = sysrq_keys.write_key
    monkeypatch.setattr(sysrq_keys, "write_key", lambda key: (seen.append(printk.read_text()), real_write(key)))
    result = run_module(sysrq_trigger, dict(keys="t", console_loglevel=4, **FAST))
    assert "failed" not in result and lab.written == ["t"]
    assert seen == ["4\n"]                 # the kernel takes one number as the first field and keeps the others
    assert printk.read_text() == "7\n" and result["console_loglevel"] == 7


def test_console_loglevel_is_put_back_when_the_write_fails(lab, printk, run_module, monkeypatch):
    def refuse(key):
        raise sysrq_keys.TriggerError("writing 't' to /proc/sysrq-trigger failed: Read-only file system")
    monkeypatch.setattr(sysrq_keys, "write_key", refuse)
    result = run_module(sysrq_trigger, dict(keys="t", console_loglevel=4, **FAST))
    assert result["failed"] is True and "Read-only file system" in result["msg"]
    assert printk.read_text() == "7\n"


def test_console_loglevel_left_alone_when_not_asked(lab, printk, run_module):
    result = run_module(sysrq_trigger, dict(keys="w", **FAST))
    assert printk.read_text() == "7\t4\t1\t7\n" and result["console_loglevel"] is None


def test_console_loglevel_unreadable_writes_no_key(lab, run_module):
    result = run_module(sysrq_trigger, dict(keys="t", console_loglevel=4, **FAST))
    assert result["failed"] is True and "console log level" in result["msg"] and "no key was written" in result["msg"]
    assert lab.written == []


def test_console_loglevel_in_check_mode_changes_nothing(lab, printk, run_module):
    result = run_module(sysrq_trigger, dict(keys="t", console_loglevel=4, **FAST), check_mode=True)
    assert "console log level at 4" in result["msg"] and lab.written == []
    assert printk.read_text() == "7\t4\t1\t7\n"
