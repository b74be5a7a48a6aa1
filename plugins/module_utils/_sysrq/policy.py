# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet's SysRq policy: named profiles, validation, and the comparison of a host's facts with it."""

from __future__ import annotations

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysctl import nmi_panic
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysrq.mask import MaskError, decode, encode, parse_mask

PROFILES = {
    # SysRq disabled from the keyboard, serial BREAK and out-of-band consoles.
    "hardened": ["none"],
    # Sync, remount read-only and reboot: a wedged host can be brought down cleanly (176, Ubuntu's default).
    "recovery": ["sync", "remount", "reboot"],
    # Recovery plus console log level and dumps: out-of-band w, t, l and m work (186).
    "debuggable": ["log_level", "dumps", "sync", "remount", "reboot"],
}
CUSTOM = "custom"


# The fields of a policy, as the sysrq_policy role and filter take them.
FIELDS = ("profile", "functions", "mask", "nmi", "always_enabled")


class PolicyError(ValueError):
    """A policy that cannot be applied; the message says what is wrong and what is allowed."""


def normalize(profile="recovery", functions=None, mask=None, nmi=None, always_enabled=None):
    """Validate a policy and return it as ``{profile, mask, functions, nmi, always_enabled}``."""
    if profile not in PROFILES and profile != CUSTOM:
        raise PolicyError("unknown profile %r: expected one of %s" % (profile, ", ".join(list(PROFILES) + [CUSTOM])))
    try:
        if profile == CUSTOM:
            if bool(functions) == (mask is not None):
                raise PolicyError("the custom profile takes exactly one of functions (names) and mask (0 to 511), "
                                  "got %s" % ("both" if functions else "neither"))
            value = parse_mask(mask) if mask is not None else encode(functions)
        else:
            value = encode(PROFILES[profile])
    except MaskError as exc:
        raise PolicyError(str(exc)) from None
    try:
        settings = nmi_panic.validate(dict(nmi or {}))
    except ValueError as exc:
        raise PolicyError("nmi: %s" % exc) from None
    if always_enabled not in (None, True, False):
        raise PolicyError("always_enabled must be true, false or null, got %r" % (always_enabled,))
    return {"profile": profile, "mask": value, "functions": decode(value), "nmi": settings,
            "always_enabled": always_enabled}


def problems(facts, policy):
    """How a host's facts (the ``magic_sysrq`` fact of ``sysrq_facts``) differ from a normalized policy."""
    if not facts:
        return ["no SysRq facts: the host was unreachable or sysrq_facts failed"]
    found = []
    want = policy["mask"]
    if not facts.get("available"):
        found.append("the kernel has no Magic SysRq (/proc/sys/kernel/sysrq missing)")
    elif facts.get("mask") != want:
        found.append("running mask is %s (%s), policy is %d (%s)" % (
            facts.get("mask"), ",".join(facts.get("functions") or []), want, ",".join(decode(want))))
    if facts.get("persistent") != want:
        winner = facts.get("winner") or {}
        found.append("mask after reboot is %s (%s), policy is %d" % (
            facts.get("persistent"),
            "%s:%s" % (winner["path"], winner["line"]) if winner else "kernel default, no file sets it", want))
    if policy.get("always_enabled") is not None and bool(facts.get("always_enabled")) != policy["always_enabled"]:
        found.append("sysrq_always_enabled is %s the kernel command line, policy says it %s" % (
            "on" if facts.get("always_enabled") else "not on",
            "must be there" if policy["always_enabled"] else "must not be there"))
    for name, value in sorted(policy.get("nmi", {}).items()):
        state = (facts.get("nmi") or {}).get(name) or {}
        if not state.get("supported"):
            continue  # reported as unsupported when applied; nothing to compare
        if str(state.get("value")) != str(value):
            found.append("%s is %s, policy is %s" % (name, state.get("value"), value))
        winner = state.get("winner")
        if not winner or str(winner.get("value")) != str(value):
            found.append("%s after reboot is %s, policy is %s" % (
                name, winner.get("value") if winner else "the kernel default", value))
    return found
