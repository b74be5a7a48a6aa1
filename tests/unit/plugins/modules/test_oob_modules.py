"""oob_sysrq, oob_nmi and oob_console run in-process against a QMP speaker and a console log file.

What the kernels do with the keys and the NMI is in tests/realkernel/test_oob.py; here: the options, the mask
verdict, consent, check mode, the console read back and parsed, the results."""

from __future__ import annotations

import threading

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.modules import oob_console, oob_nmi, oob_sysrq

from ..conftest_helpers import warnings

W_DUMP = ("[  812.120000] sysrq: Show Blocked State\r\n"
          "[  812.121000] task:dd              state:D stack:0     pid:812   ppid:790    flags:0x00004002\r\n"
          "[  812.121100] Call Trace:\r\n[  812.121200]  <TASK>\r\n"
          "[  812.121300]  __schedule+0x34d/0x9e0\r\n[  812.121400]  schedule+0x5a/0xd0\r\n"
          "[  812.121600]  </TASK>\r\n")
REFUSED = "[  900.000000] sysrq: This sysrq operation is disabled.\r\n"


def _console_after_keys(speaker_, log, text):
    """Append ``text`` to the console log once the speaker saw a send-key (as a kernel would print)."""
    def watch():
        for _tick in range(400):
            if any(c["execute"] == "send-key" for c in speaker_.commands):
                with open(log, "a") as handle:
                    handle.write(text)
                return
            threading.Event().wait(0.01)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_oob_sysrq_presses_and_reads_back(run_module, speaker, tmp_path):
    qemu = speaker()
    log = tmp_path / "serial.log"
    log.write_text("boot\r\n")
    _console_after_keys(qemu, log, W_DUMP)
    r = run_module(oob_sysrq, {"method": "qmp", "qmp": {"socket": qemu.path}, "console": {"path": str(log)},
                               "keys": "w", "settle": 0.3, "timeout": 10, "mask": 186})
    assert not r.get("failed"), r
    assert r["changed"] is True and r["keys"] == ["w"] and r["captured"] is True
    assert r["sent"][0]["request"]["arguments"]["keys"][1] == {"type": "qcode", "data": "sysrq"}
    assert r["output"][0].endswith("sysrq: Show Blocked State") and "boot" not in r["output"]
    assert [(t["comm"], t["state"]) for t in r["tasks"]] == [("dd", "D")]
    assert r["task_states"] == {"D": 1} and r["refused"] is False
    assert r["mask"] == {"mask": 186, "allowed": ["w"], "refused": [], "unknown": False}
    assert r["console_position"] == log.stat().st_size


def test_oob_sysrq_mask_warns_then_the_console_confirms(run_module, speaker, tmp_path):
    qemu = speaker()
    log = tmp_path / "serial.log"
    log.write_text("")
    _console_after_keys(qemu, log, REFUSED)
    r = run_module(oob_sysrq, {"method": "qmp", "qmp": {"socket": qemu.path}, "console": {"path": str(log)},
                               "keys": "w", "settle": 0.3, "timeout": 10, "mask": 438})
    assert r["mask"]["refused"] == ["w"]
    assert any("mask 438 refuses keyboard SysRq" in w for w in warnings(r))
    assert r["refused"] is True and any("This sysrq operation is disabled" in w for w in warnings(r))


def test_oob_sysrq_mask_refusal_fail_sends_nothing(run_module, speaker):
    qemu = speaker()
    r = run_module(oob_sysrq, {"method": "qmp", "qmp": {"socket": qemu.path}, "keys": "9w", "mask": 176,
                               "mask_refusal": "fail"})
    assert r["failed"] and "nothing was sent" in r["msg"] and "'9' (loglevel) needs the log_level bit (2)" in r["msg"]
    assert qemu.commands == []


def test_oob_sysrq_destructive_needs_consent(run_module, speaker):
    qemu = speaker()
    r = run_module(oob_sysrq, {"method": "qmp", "qmp": {"socket": qemu.path}, "keys": "sub"})
    assert r["failed"] and "allow_destructive=true" in r["msg"] and qemu.commands == []


def test_oob_sysrq_check_mode_presses_nothing(run_module, speaker):
    qemu = speaker()
    r = run_module(oob_sysrq, {"method": "qmp", "qmp": {"socket": qemu.path}, "keys": "t"}, check_mode=True)
    assert r["changed"] is True and "would press Alt+SysRq+t through qmp" in r["msg"]
    assert qemu.commands == []


def test_oob_sysrq_method_options_missing(run_module):
    r = run_module(oob_sysrq, {"method": "libvirt", "keys": "w"})
    assert r["failed"] and "method=libvirt needs its options in libvirt" in r["msg"]


def test_oob_sysrq_bad_numbers(run_module, speaker):
    r = run_module(oob_sysrq, {"method": "qmp", "qmp": {"socket": "/x"}, "keys": "w", "mask": 999, "hold_time": 0})
    assert r["failed"] and "hold_time must be > 0" in r["msg"] and "mask must be 0-511" in r["msg"]


@pytest.mark.parametrize("args, fragment", [
    # nan passes a "< 0" check and inf never ends a wait
    ({"delay": "nan"}, "delay must be >= 0 seconds and finite (got nan)"),
    ({"settle": "inf"}, "settle must be >= 0 seconds and finite (got inf)"),
    ({"timeout": "inf"}, "timeout must be > 0 seconds and finite (got inf)"),
    ({"timeout": "nan"}, "timeout must be > 0 seconds and finite (got nan)"),
])
def test_oob_sysrq_nan_and_inf_are_refused(run_module, speaker, args, fragment):
    qemu = speaker()
    r = run_module(oob_sysrq, dict({"method": "qmp", "qmp": {"socket": qemu.path}, "keys": "w"}, **args))
    assert r["failed"] and fragment in r["msg"] and r["changed"] is False
    assert qemu.commands == []


def test_oob_nmi_needs_consent_then_sends(run_module, speaker):
    qemu = speaker()
    refused = run_module(oob_nmi, {"method": "qmp", "qmp": {"socket": qemu.path}})
    assert refused["failed"] and "allow_crash=true" in refused["msg"] and qemu.commands == []
    sent = run_module(oob_nmi, {"method": "qmp", "qmp": {"socket": qemu.path}, "allow_crash": True})
    assert sent["changed"] and sent["request"]["execute"] == "inject-nmi"
    assert [c["execute"] for c in qemu.commands][-1] == "inject-nmi"


def test_oob_nmi_check_mode(run_module, speaker):
    qemu = speaker()
    r = run_module(oob_nmi, {"method": "qmp", "qmp": {"socket": qemu.path}, "allow_crash": True}, check_mode=True)
    assert r["changed"] and qemu.commands == []


def test_oob_nmi_ipmi_password_is_never_returned(run_module):
    r = run_module(oob_nmi, {"method": "ipmi", "ipmi": {"host": "127.0.0.1", "port": 1, "username": "admin",
                                                        "password": "s3cret-pw"}, "allow_crash": True},
                   check_mode=True)
    assert "s3cret-pw" not in str(r)


def test_oob_console_marker_and_position(run_module, tmp_path):
    log = tmp_path / "serial.log"
    log.write_text("old\r\n" + W_DUMP + "later\r\n" + W_DUMP)
    r = run_module(oob_console, {"console": {"path": str(log)}, "marker": "sysrq: Show Blocked State"})
    assert r["changed"] is False and r["marker_found"] is True
    assert r["lines"][0].endswith("task:dd              state:D stack:0     pid:812   ppid:790    flags:0x00004002")
    assert r["position"] == log.stat().st_size
    again = run_module(oob_console, {"console": {"path": str(log)}, "since_position": str(r["position"])})
    assert again["lines"] == [] and again["tasks"] == []


def test_oob_console_bad_position(run_module, tmp_path):
    r = run_module(oob_console, {"console": {"path": str(tmp_path / "x")}, "since_position": "abc"})
    assert r["failed"] and "byte offset" in r["msg"]


def test_oob_console_cuts_and_reports_overlong_lines(run_module, tmp_path):
    log = tmp_path / "console.log"
    log.write_text("x" * 5000 + "\r\n[  1.0] task:dd              state:D stack:0 pid:5 ppid:2 flags:0x0\r\n"
                   "\x1b]0;never ended\x07 bell\x07\r\n")
    r = run_module(oob_console, {"console": {"path": str(log)}})
    assert r["lines_cut"] == 1 and len(r["lines"][0]) == 1024
    assert [t["pid"] for t in r["tasks"]] == [5]
    assert r["lines"][2] == " bell\\x07"                       # no control character reaches the result
    assert any("longer than 1024 characters" in w for w in warnings(r))


@pytest.mark.parametrize("position", ["\u00b2", "\u0663", "-1", "1.5"])
def test_oob_console_position_is_ascii_digits(run_module, tmp_path, position):
    (tmp_path / "x").write_text("")
    r = run_module(oob_console, {"console": {"path": str(tmp_path / "x")}, "since_position": position})
    assert r["failed"] and "a whole number >= 0" in r["msg"]
