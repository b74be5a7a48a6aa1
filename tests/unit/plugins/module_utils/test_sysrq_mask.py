from __future__ import annotations

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysrq.mask import (
    MaskError, allows, decode, encode, parse_mask,
)


@pytest.mark.parametrize("names, mask", [
    (["sync", "remount", "reboot"], 176),           # Ubuntu's default
    (["log_level", "keyboard", "sync", "remount", "signal", "nice"], 374),
    (["log_level", "dumps", "sync", "remount", "reboot"], 186),
    (["all"], 1),
    (["none"], 0),
    ("sync, remount reboot", 176),
    (["SYNC"], 16),
])
def test_encode(names, mask):
    assert encode(names) == mask


@pytest.mark.parametrize("mask, names", [
    (438, ["log_level", "keyboard", "sync", "remount", "reboot", "nice"]),  # Debian's kernel default
    (16, ["sync"]),                                                          # systemd's 50-default.conf
    (176, ["sync", "remount", "reboot"]),
    (0, ["none"]),
    (1, ["all"]),
    (511, ["log_level", "keyboard", "dumps", "sync", "remount", "signal", "reboot", "nice"]),
])
def test_decode(mask, names):
    assert decode(mask) == names
    # bit 0 in a larger value is ignored by the kernel: 511 decodes to the eight functions, which encode to 510
    assert encode(names) == (mask & ~1 if mask > 1 else mask)


@pytest.mark.parametrize("value", [1024, 512, -1, "abc", "", True, "1.5", None])
def test_bad_mask_names_valid_set(value):
    with pytest.raises(MaskError) as info:
        parse_mask(value)
    assert "0 to 511" in str(info.value)
    assert "dumps (8)" in str(info.value)


@pytest.mark.parametrize("names, fragment", [
    (["dump"], "'dump'"),
    (["all", "sync"], "stand alone"),
    (["none", "reboot"], "stand alone"),
    ([], "empty"),
])
def test_bad_functions(names, fragment):
    with pytest.raises(MaskError) as info:
        encode(names)
    assert fragment in str(info.value)
    assert "log_level (2)" in str(info.value)


def test_parse_mask_accepts_strings_and_hex():
    assert parse_mask("176") == 176
    assert parse_mask("0x1b6") == 438


def test_allows_keyboard_path():
    assert allows(1, "dumps")
    assert not allows(438, "dumps")      # why QMP send-key w is refused on stock Debian
    assert allows(186, "dumps")
    assert not allows(0, "sync")
