"""Out-of-band core: keyboard keys and the mask, the QMP client (against a QMP speaker on a real unix socket),
and the console reader (files and journalctl output)."""

from __future__ import annotations

import json
import os
import socket
import threading

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import console as oob_console

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import qmp as oob_qmp


FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "dumps")


# --------------------------------------------------------------------------------------------- keys and mask
@pytest.mark.parametrize("key", list("bcefgijknouxz"))
def test_keyboard_keys_refuse_every_destructive_key_without_consent(key):
    with pytest.raises(Exception, match="refusing destructive SysRq key"):
        oob.keyboard_keys("w" + key)
    assert oob.keyboard_keys(key, allow_destructive=True) == [key]


def test_keyboard_keys_are_lower_case_letters_and_digits():
    assert oob.keyboard_keys("9 w") == ["9", "w"]
    with pytest.raises(oob.OobError, match=r"'R' cannot be pressed on a keyboard.*sysrq_trigger"):
        oob.keyboard_keys("R")


def test_keyboard_keys_keep_the_consent_rule():
    from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysrq.keys import SysRqKeyError
    with pytest.raises(SysRqKeyError, match="refusing destructive SysRq key.*'b'"):
        oob.keyboard_keys("sub")
    assert oob.keyboard_keys("sub", allow_destructive=True) == ["s", "u", "b"]


def test_chords():
    assert oob.linux_chord("w") == [56, 99, 17]
    assert oob.linux_chord("9") == [56, 99, 10]
    assert oob.linux_chord_names("t") == ["KEY_LEFTALT", "KEY_SYSRQ", "KEY_T"]
    assert oob.qcode_chord("l") == ["alt", "sysrq", "l"]


@pytest.mark.parametrize("mask, refused", [
    (438, ["w"]),        # Debian's default: log level yes, dumps no
    (186, []),           # debuggable profile
    (176, ["9", "w"]),   # recovery profile: sync, remount, reboot only
    (0, ["9", "w"]),
    (1, []),
])
def test_mask_verdict(mask, refused):
    verdict = oob.mask_verdict(["9", "w"], mask)
    assert verdict["refused"] == refused
    assert verdict["allowed"] == [k for k in ["9", "w"] if k not in refused]
    assert verdict["unknown"] is False


def test_mask_verdict_unknown_and_always_enabled():
    assert oob.mask_verdict(["w"], None) == {"mask": None, "allowed": ["w"], "refused": [], "unknown": True}
    assert oob.mask_verdict(["w"], 0, always_enabled=True)["refused"] == []


def test_refusal_text_names_the_bit_and_the_way_out():
    text = oob.refusal_text(["w"], 438)
    assert "mask 438" in text and "'w' (show-blocked-tasks) needs the dumps bit (8)" in text
    assert "debuggable" in text and oob.DISABLED_MARKER in text


def test_require_names_the_options():
    with pytest.raises(oob.OobError, match=r"method ipmi needs ipmi.host, ipmi.username"):
        oob.require({"password": "x"}, "ipmi", "host", "username")
    with pytest.raises(oob.OobError, match=r"needs one of qmp.socket, qmp.host"):
        oob.require_one({}, "qmp", "socket", "host")


# ----------------------------------------------------------------------------------------------------- QMP
def test_qmp_send_sysrq_presses_each_chord(speaker):
    qemu = speaker()
    sent = oob_qmp.send_sysrq(None, {"socket": qemu.path}, ["9", "w"], 150)
    executes = [c["execute"] for c in qemu.commands]
    assert executes == ["qmp_capabilities", "query-status", "send-key", "send-key"]
    assert qemu.commands[2]["arguments"] == {
        "keys": [{"type": "qcode", "data": "alt"}, {"type": "qcode", "data": "sysrq"}, {"type": "qcode", "data": "9"}],
        "hold-time": 150}
    assert [s["key"] for s in sent] == ["9", "w"]
    assert sent[1]["request"]["arguments"]["keys"][2] == {"type": "qcode", "data": "w"}


def test_qmp_inject_nmi(speaker):
    qemu = speaker()
    answer = oob_qmp.inject_nmi(None, {"socket": qemu.path})
    assert qemu.commands[-1] == {"execute": "inject-nmi"}
    assert answer["response"] == {"return": {}, "run_state_before": "running"}


def test_qmp_refuses_a_paused_guest(speaker):
    qemu = speaker(status="paused")
    with pytest.raises(oob.OobError, match="is paused, not running"):
        oob_qmp.inject_nmi(None, {"socket": qemu.path})
    assert "inject-nmi" not in [c["execute"] for c in qemu.commands]


def test_qmp_error_carries_qemus_text(speaker):
    qemu = speaker(errors={"inject-nmi": "Injecting NMI is unsupported"})
    with pytest.raises(oob.OobError, match="QMP inject-nmi .* failed: Injecting NMI is unsupported"):
        oob_qmp.inject_nmi(None, {"socket": qemu.path})


def test_qmp_missing_socket_says_where_to_run(tmp_path):
    with pytest.raises(oob.OobError, match="cannot connect to the QMP socket .*delegate_to"):
        oob_qmp.send_sysrq(None, {"socket": str(tmp_path / "none.sock"), "timeout": 1}, ["w"])


def test_qmp_silent_socket_is_a_held_monitor(speaker):
    qemu = speaker(greet=False)
    with pytest.raises(oob.OobError, match="another client probably holds the monitor"):
        oob_qmp.send_sysrq(None, {"socket": qemu.path, "timeout": 0.5}, ["w"])


def test_qmp_over_tcp():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    got = []

    def serve():
        conn, _peer = server.accept()
        with conn:
            conn.sendall(b'{"QMP": {}}\n')
            for _round in range(2):
                got.append(json.loads(conn.recv(4096)))
                conn.sendall(b'{"return": {}}\n')
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    qmp = oob_qmp.QMPClient(host="127.0.0.1", port=port, timeout=5)
    qmp.connect()
    qmp.command("inject-nmi")
    qmp.close()
    server.close()
    assert got == [{"execute": "qmp_capabilities"}, {"execute": "inject-nmi"}]


# ------------------------------------------------------------------------------------------------- console
SERIAL = "\x1b[0m[  812.120000] sysrq: Show Blocked State\r\n" \
         "[  812.121000] task:dd              state:D stack:0     pid:812   ppid:790    flags:0x00004002\r\n" \
         "[  812.121100] Call Trace:\r\n[  812.121200]  <TASK>\r\n" \
         "[  812.121300]  __schedule+0x34d/0x9e0\r\n[  812.121400]  schedule+0x5a/0xd0\r\n" \
         "[  812.121500]  percpu_rwsem_wait+0x127/0x150\r\n[  812.121600]  </TASK>\r\n"


def test_file_console_reads_from_an_offset(tmp_path):
    log = tmp_path / "serial.log"
    log.write_bytes(b"boot noise\r\n")
    console = oob_console.FileConsole(str(log))
    start = console.position()
    with open(log, "ab") as handle:
        handle.write(SERIAL.encode())
    text, end = console.read(start)
    assert text == SERIAL and end == os.path.getsize(log)
    lines = oob_console.lines_of(text)
    assert lines[0] == "[  812.120000] sysrq: Show Blocked State"
    tasks = oob_console.parse(lines, ["w"])
    assert [(t["comm"], t["pid"], t["state"]) for t in tasks] == [("dd", 812, "D")]
    assert tasks[0]["frames"] == ["__schedule", "schedule", "percpu_rwsem_wait"]


def test_file_console_truncated_is_read_from_the_start(tmp_path):
    log = tmp_path / "serial.log"
    log.write_text("new boot\n")
    assert oob_console.FileConsole(str(log)).read(10 ** 6) == ("new boot\n", 9)


def test_file_console_refuses_a_time(tmp_path):
    with pytest.raises(oob.OobError, match="not a time"):
        oob_console.FileConsole(str(tmp_path / "x")).read(None, since="-5min")


def test_real_serial_capture_parses():
    """A real 6.12 serial capture (CRLF, escapes) of a w dump: the reader's lines parse as the module's."""
    path = os.path.join(FIXTURES, "deb13-w.serial.txt")
    text = oob_console.FileConsole(path).read(0)[0]
    tasks = oob_console.parse(oob_console.lines_of(text), ["w"])
    expected = [("dd", 448, "D"), ("touch", 449, "D"), ("mkdir", 450, "D")]
    assert [(t["comm"], t["pid"], t["state"]) for t in tasks] == expected
    assert all(t["frames"] for t in tasks)


def test_after_marker():
    assert oob_console.after_marker("a\nMARK x\nb\nMARK y\nc\n", "MARK") == ("c\n", True)
    assert oob_console.after_marker("a\n", "MARK") == ("a\n", False)


def test_refusals_count():
    lines = ["[ 1.0] sysrq: This sysrq operation is disabled.", "[ 2.0] sysrq: Show Blocked State"]
    assert oob_console.refusals(lines) == 1


class Journal:
    """A stand-in for AnsibleModule: records journalctl command lines, answers with journalctl's own format."""

    def __init__(self, out, rc=0, err=""):
        self.out, self.rc, self.err, self.cmds = out, rc, err, []

    def get_bin_path(self, name, required=False):
        return "/usr/bin/" + name

    def run_command(self, cmd, environ_update=None):
        self.cmds.append(cmd)
        return self.rc, self.out, self.err


def test_journal_console_after_cursor():
    module = Journal("[  812.12] sysrq: Show Blocked State\n-- cursor: s=abc;i=2f\n")
    console = oob_console.JournalConsole(module, "qemu-system@web1.service", user=True)
    text, cursor = console.read("s=abc;i=2e")
    assert text == "[  812.12] sysrq: Show Blocked State\n" and cursor == "s=abc;i=2f"
    assert module.cmds[0] == ["/usr/bin/journalctl", "--user-unit", "qemu-system@web1.service", "--no-pager",
                              "--all", "--output=cat", "--show-cursor", "--after-cursor=s=abc;i=2e"]


def test_journal_console_since_and_no_entries():
    module = Journal("-- No entries --\n")
    text, cursor = oob_console.JournalConsole(module, "qemu.service").read(None, since="-10min")
    assert (text, cursor) == ("", None)
    assert module.cmds[0][1:3] == ["--unit", "qemu.service"] and module.cmds[0][-1] == "--since=-10min"


def test_journal_console_error():
    with pytest.raises(oob.OobError, match="journalctl for unit q.service failed .*permission denied"):
        oob_console.JournalConsole(Journal("", rc=1, err="permission denied"), "q.service").read(None)


def test_wait_for_output_settles(tmp_path):
    log = tmp_path / "serial.log"
    log.write_text("")
    console = oob_console.FileConsole(str(log))
    calls = []

    def sleep(_seconds):
        calls.append(1)
        if len(calls) == 1:
            log.write_text(SERIAL)
    waited = oob_console.wait_for_output(console, 0, settle=0.05, timeout=5, sleep=sleep)
    assert waited["text"] == SERIAL and waited["timed_out"] is False


def test_wait_for_output_times_out_on_silence(tmp_path):
    log = tmp_path / "serial.log"
    log.write_text("")
    waited = oob_console.wait_for_output(oob_console.FileConsole(str(log)), 0, settle=0.01, timeout=0.1)
    assert waited["timed_out"] is True and waited["text"] == ""


def test_wait_for_output_reads_a_journal_after_its_cursor():
    class Growing(Journal):
        def run_command(self, cmd, environ_update=None):
            self.cmds.append(cmd)
            if len(self.cmds) == 1:
                return 0, "-- No entries --\n", ""
            if len(self.cmds) == 2:
                return 0, "[ 1.0] sysrq: Show Blocked State\n-- cursor: c1\n", ""
            return 0, "-- No entries --\n", ""
    module = Growing("")
    console = oob_console.JournalConsole(module, "qemu.service")
    waited = oob_console.wait_for_output(console, None, settle=0.05, timeout=5, sleep=lambda _s: None)
    assert waited["text"] == "[ 1.0] sysrq: Show Blocked State\n" and waited["position"] == "c1"
    assert all(cmd[-1] == "--after-cursor=c1" for cmd in module.cmds[2:]) and len(module.cmds) > 2
