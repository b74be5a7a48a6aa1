from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.magic_sysrq.fleet.plugins.filter import sysrq_functions, sysrq_mask

FILTERS = dict(sysrq_mask.FilterModule().filters(), **sysrq_functions.FilterModule().filters())


@pytest.mark.parametrize("value, mask", [(["sync", "remount", "reboot"], 176), ("log_level,dumps", 10),
                                         (438, 438), ("16", 16), (["none"], 0)])
def test_sysrq_mask(value, mask):
    assert FILTERS["sysrq_mask"](value) == mask


def test_round_trip():
    for mask in range(512):
        names = FILTERS["sysrq_functions"](mask)
        assert FILTERS["sysrq_mask"](names) == (mask if mask in (0, 1) else mask & ~1)


@pytest.mark.parametrize("name, value", [("sysrq_mask", ["dump"]), ("sysrq_mask", 1024), ("sysrq_mask", "-1"),
                                         ("sysrq_functions", "abc"), ("sysrq_functions", 512)])
def test_errors_name_valid_set(name, value):
    with pytest.raises(AnsibleFilterError, match="dumps \\(8\\)"):
        FILTERS[name](value)
