"""The SysRq key table, key validation, destructive refusal, the keyboard mask rule, the trigger file."""
from __future__ import annotations

import os

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysrq import keys as k
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysrq.mask import FUNCTIONS


# The enable_mask of each op in drivers/tty/sysrq.c (and the ops registered elsewhere: o in
# kernel/power/poweroff.c, g in kernel/debug/debug_core.c, v in the DRM fb helper, R replay logs).
@pytest.mark.parametrize("keys, function, bit", [
    ("0123456789", "log_level", 2),
    ("kr", "keyboard", 4),
    ("cltwmpzR", "dumps", 8),
    ("s", "sync", 16),
    ("u", "remount", 32),
    ("efij", "signal", 64),
    ("bo", "reboot", 128),
    ("n", "nice", 256),
    ("dqgvhxy", None, 0),
])
def test_enable_mask_of_each_key(keys, function, bit):
    for key in keys:
        assert k.KEYS[key]["function"] == function, key
        assert k.KEYS[key]["mask_bit"] == bit, key
        if function:
            assert FUNCTIONS[function] == bit


def test_table_covers_the_kernel_keys_and_names():
    assert set(k.KEYS) == set("0123456789abcdefghijklmnopqrstuvwxyzR") - {"a"}
    assert k.KEYS["w"]["name"] == "show-blocked-tasks"
    assert k.KEYS["t"]["name"] == "show-task-states"
    assert k.KEYS["l"]["name"] == "show-backtrace-all-active-cpus"
    assert k.VALID_KEYS.startswith("0123456789b") and k.VALID_KEYS.endswith("zR")
    assert k.DESTRUCTIVE == frozenset("bceioukfjgxnz")


@pytest.mark.parametrize("key", ["g", "x"])
def test_debugger_keys_need_consent(key):
    # g: kgdb stops every CPU until a debugger attaches (with kgdboc set); x: xmon on powerpc does the same
    with pytest.raises(k.SysRqKeyError, match="refusing destructive SysRq key"):
        k.validate("w" + key)
    assert k.validate(key, allow_destructive=True) == [key]


@pytest.mark.parametrize("key", ["n", "z"])
def test_keys_that_change_the_running_system_need_consent(key):
    # n: every real-time task becomes SCHED_NORMAL for good; z: tracing off, the ftrace buffer on every console
    # with interrupts off
    with pytest.raises(k.SysRqKeyError, match="refusing destructive SysRq key.*'%s'" % key):
        k.validate(" w %s " % key)
    assert k.validate(key, allow_destructive=True) == [key]


@pytest.mark.parametrize("text, expected", [
    ("w", ["w"]),
    ("reisub", list("reisub")),
    (" t  w\n", ["t", "w"]),
    (["l", "m"], ["l", "m"]),
    ("9", ["9"]),
    ("R", ["R"]),
])
def test_parse_keys(text, expected):
    assert k.parse_keys(text) == expected


@pytest.mark.parametrize("text, fragment", [
    ("wA", "'A'"),
    ("a", "'a'"),
    ("w,t", "','"),
    ("W", "'W'"),
    ("", "empty"),
    ("   ", "empty"),
    (None, "required"),
])
def test_bad_keys_name_the_valid_ones(text, fragment):
    with pytest.raises(k.SysRqKeyError) as err:
        k.parse_keys(text)
    assert fragment in str(err.value)
    assert "valid keys: 0 1 2 3 4 5 6 7 8 9 b c d" in str(err.value)


def test_unknown_keys_listed_once_in_order():
    with pytest.raises(k.SysRqKeyError) as err:
        k.parse_keys("wAXAQ")
    assert "'A', 'X', 'Q'" in str(err.value)


@pytest.mark.parametrize("text, bad", [
    ("b", ["b"]),
    ("reisub", ["e", "i", "u", "b"]),
    ("wc", ["c"]),
    ("o", ["o"]),
    ("kfj", ["k", "f", "j"]),
    ("bb", ["b"]),
])
def test_destructive_refused_without_consent(text, bad):
    with pytest.raises(k.SysRqKeyError) as err:
        k.validate(text)
    msg = str(err.value)
    assert "allow_destructive" in msg
    assert ", ".join(repr(key) for key in bad) in msg
    assert "destructive keys are: b c e f g i j k n o u x z" in msg
    assert k.validate(text, allow_destructive=True) == list(text)


def test_harmless_keys_need_no_consent():
    assert k.validate("twlmpqs0123456789hr") == list("twlmpqs0123456789hr")


def test_unknown_key_reported_before_destructive():
    with pytest.raises(k.SysRqKeyError) as err:
        k.validate("bA")
    assert "unknown" in str(err.value)


def test_describe():
    described = k.describe(["w", "b"])
    assert described[0] == {"key": "w", "name": "show-blocked-tasks",
                            "description": k.KEYS["w"]["description"], "function": "dumps", "mask_bit": 8,
                            "destructive": False}
    assert described[1]["destructive"] is True and described[1]["function"] == "reboot"


@pytest.mark.parametrize("key, mask, always, allowed", [
    ("w", 438, False, False),       # Debian's default has no dumps bit: a keyboard w is refused
    ("s", 438, False, True),
    ("b", 438, False, True),
    ("w", 176, False, False),       # Ubuntu
    ("s", 16, False, True),         # systemd's 50-default.conf
    ("b", 16, False, False),
    ("w", 1, False, True),
    ("q", 1, False, True),
    ("q", 511, False, False),       # enable_mask 0: only mask 1 or sysrq_always_enabled
    ("q", 0, True, True),
    ("w", 0, False, False),
    ("w", 0, True, True),
    ("3", 2, False, True),
])
def test_keyboard_allowed(key, mask, always, allowed):
    assert k.keyboard_allowed(key, mask, always) is allowed


def test_blocked_by_mask_and_wants_tasks():
    assert k.blocked_by_mask(list("sutw"), 438) == ["t", "w"]
    assert k.wants_tasks(["m", "w"]) and k.wants_tasks(["l"]) and not k.wants_tasks(["m", "s"])


def _proc(root, trigger=True, sysrq=True):
    os.makedirs(str(root / "proc/sys/kernel"), exist_ok=True)
    if sysrq:
        (root / "proc/sys/kernel/sysrq").write_text("438\n")
    if trigger:
        (root / "proc/sysrq-trigger").write_text("")


def test_check_trigger_ok(host_root):
    _proc(host_root)
    assert k.check_trigger() == str(host_root / "proc/sysrq-trigger")


def test_check_trigger_kernel_without_sysrq(host_root):
    _proc(host_root, trigger=False, sysrq=False)
    with pytest.raises(k.TriggerError) as err:
        k.check_trigger()
    assert "CONFIG_MAGIC_SYSRQ" in str(err.value) and "/proc/sysrq-trigger does not exist" in str(err.value)


def test_check_trigger_no_proc(host_root):
    with pytest.raises(k.TriggerError) as err:
        k.check_trigger()
    assert "/proc is not mounted" in str(err.value)


def test_check_trigger_masked(host_root):
    _proc(host_root, trigger=False)
    with pytest.raises(k.TriggerError) as err:
        k.check_trigger()
    assert "hidden" in str(err.value)


def test_check_trigger_read_only(host_root, monkeypatch):
    _proc(host_root)
    monkeypatch.setattr(k.os, "access", lambda path, mode: False)
    with pytest.raises(k.TriggerError) as err:
        k.check_trigger()
    assert "not writable" in str(err.value) and "read-only" in str(err.value)


def test_write_key_and_keys(host_root):
    _proc(host_root)
    k.write_key("w")
    assert (host_root / "proc/sysrq-trigger").read_text() == "w"
    written, pauses = [], []
    assert k.write_keys(list("sub"), 0.5, writer=written.append, pause=pauses.append) == list("sub")
    assert written == list("sub") and pauses == [0.5, 0.5]
    assert k.write_keys(["t"], 2.0, writer=written.append, pause=pauses.append) == ["t"]
    assert pauses == [0.5, 0.5]


def test_write_key_errors(host_root, monkeypatch):
    with pytest.raises(k.TriggerError) as err:
        k.write_key("w")
    assert "does not exist" in str(err.value)
    _proc(host_root)

    def refuse(fd, data):
        raise OSError(30, "Read-only file system")
    monkeypatch.setattr(k.os, "write", refuse)
    with pytest.raises(k.TriggerError) as err:
        k.write_key("w")
    assert "Read-only file system" in str(err.value)


@pytest.mark.parametrize("keys, synchronous, settle", [
    ("w", True, 0.0), ("t", True, 0.0), ("m", True, 0.0), ("tw5", True, 0.0), ("l", False, 1.0),
    ("s", False, 1.0), ("wu", False, 1.0), ("b", False, 1.0),
])
def test_which_keys_print_inside_the_write(keys, synchronous, settle):
    assert k.output_is_synchronous(list(keys)) is synchronous
    assert k.default_settle(list(keys)) == settle


def test_synchronous_keys_are_real_keys_and_exclude_the_late_ones():
    assert k.SYNCHRONOUS_OUTPUT_KEYS <= set(k.KEYS)
    assert not k.SYNCHRONOUS_OUTPUT_KEYS & set("lsujfkbco")
