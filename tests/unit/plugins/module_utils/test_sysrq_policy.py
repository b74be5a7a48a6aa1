from __future__ import annotations

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysrq.policy import PolicyError, normalize, problems


@pytest.mark.parametrize("args, mask", [
    ({"profile": "hardened"}, 0), ({"profile": "recovery"}, 176), ({"profile": "debuggable"}, 186),
    ({}, 176), ({"profile": "custom", "mask": 438}, 438), ({"profile": "custom", "functions": ["dumps"]}, 8),
])
def test_profiles(args, mask):
    assert normalize(**args)["mask"] == mask


@pytest.mark.parametrize("args, fragment", [
    ({"profile": "paranoid"}, "expected one of hardened, recovery, debuggable, custom"),
    ({"profile": "custom"}, "exactly one of functions"),
    ({"profile": "custom", "mask": 1, "functions": ["sync"]}, "got both"),
    ({"profile": "custom", "mask": 600}, "0 to 511"),
    ({"profile": "custom", "functions": ["dump"]}, "dumps (8)"),
    ({"nmi": {"unknown_nmi_panic": 2}}, "expected 0 or 1"),
    ({"nmi": {"nmi_panic": 1}}, "expected one of panic_on_unrecovered_nmi"),
    ({"always_enabled": "yes"}, "true, false or null"),
])
def test_invalid_policies(args, fragment):
    with pytest.raises(PolicyError) as info:
        normalize(**args)
    assert fragment in str(info.value)


def facts(mask=176, persistent=176, always=False, nmi=None):
    return {"available": True, "mask": mask, "functions": [], "persistent": persistent, "always_enabled": always,
            "winner": {"path": "/etc/sysctl.d/90-magic-sysrq.conf", "line": 2, "value": str(persistent)},
            "nmi": nmi or {}}


def test_compliant_host():
    assert problems(facts(), normalize(profile="recovery")) == []


def test_drift_is_named():
    found = problems(facts(mask=438, persistent=438), normalize(profile="recovery"))
    assert found[0].startswith("running mask is 438") and "policy is 176" in found[0]
    assert "mask after reboot is 438 (/etc/sysctl.d/90-magic-sysrq.conf:2)" in found[1]


def test_unreachable_and_no_sysrq():
    assert "unreachable" in problems(None, normalize())[0]
    no_sysrq = dict(facts(), available=False, mask=None)
    assert "no Magic SysRq" in problems(no_sysrq, normalize())[0]


def test_nmi_and_always_enabled():
    nmi = {"unknown_nmi_panic": {"value": "0", "supported": True, "winner": None},
           "nmi_watchdog": {"value": None, "supported": False, "winner": None}}
    policy = normalize(nmi={"unknown_nmi_panic": 1, "nmi_watchdog": 0}, always_enabled=False)
    found = problems(facts(always=True, nmi=nmi), policy)
    assert found == ["sysrq_always_enabled is on the kernel command line, policy says it must not be there",
                     "unknown_nmi_panic is 0, policy is 1",
                     "unknown_nmi_panic after reboot is the kernel default, policy is 1"]


# --- log_buf_len: a kernel log big enough for a whole t dump -------------------------------------------------

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysrq import policy as policy_mod  # noqa: E402


@pytest.mark.parametrize("threads, size", [
    (0, "1M"), (100, "1M"), (256, "1M"), (257, "2M"), (1000, "4M"), (2000, "8M"), (2100, "16M"), (10000, "64M"),
    (50000, "256M"), (10 ** 7, "2G"),
])
def test_log_buf_len_rule(threads, size):
    assert policy_mod.log_buf_len_for(threads) == size


def test_log_buf_len_rule_covers_the_measured_t_dump():
    """2,100 tasks printed about 31,000 records (15 a task) of about 56 bytes each in the ring: 1.7 MB."""
    needed = 31000 * 56
    assert policy_mod.log_buf_len_for(2100) == "16M" and 16 << 20 >= 4 * needed


@pytest.mark.parametrize("value, expected", [
    (None, None), ("auto", "auto"), ("AUTO", "auto"), ("8M", "8M"), ("8m", "8M"), ("16384K", "16M"),
    ("1G", "1G"), (1048576, "1M"), ("2G", "2G"),
])
def test_log_buf_len_values(value, expected):
    assert normalize(profile="debuggable", log_buf_len=value)["log_buf_len"] == expected


@pytest.mark.parametrize("value, fragment", [
    ("12M", "power of two (the kernel rounds it up anyway): '12M'; for example 16M"),
    ("512K", "between 1M and 2G"), ("4G", "between 1M and 2G"), ("lots", "auto or a size such as 8M"),
    ("-8M", "auto or a size"), (True, "auto or a size"),
])
def test_bad_log_buf_len(value, fragment):
    with pytest.raises(PolicyError, match=None) as err:
        normalize(profile="debuggable", log_buf_len=value)
    assert fragment in str(err.value)


def test_auto_resolved_with_the_thread_count():
    assert normalize(profile="debuggable", log_buf_len="auto", threads=2000)["log_buf_len"] == "8M"
    assert normalize(profile="debuggable", log_buf_len="16M", threads=2000)["log_buf_len"] == "16M"
    assert normalize(profile="debuggable")["log_buf_len"] is None
