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

# log_buf_len= on the kernel command line: the size of the kernel's log ring buffer. A whole SysRq t dump must fit
# in it, because the kernel prints the dump inside the write to /proc/sysrq-trigger faster than any reader drains
# it. A t dump prints about 15 records a task (header, a dozen frames, markers: measured 31,000 records for
# 2,100 tasks); the ring stores each record's text with an 8-byte header, 8-byte aligned, about 56 bytes, so
# 15 * 56 = 840 bytes a task. The rule: 2 KiB a thread (the 840 bytes, room for the sched-debug tables and for
# other messages during the dump), times 2 for growth, rounded up to a power of two (the kernel rounds anyway),
# at least 1 MiB, at most the kernel's 2 GiB. 1,000 threads -> 4M; 2,000 -> 8M; 10,000 -> 64M; 50,000 -> 256M.
LOG_BUF_AUTO = "auto"
LOG_BUF_BYTES_PER_THREAD = 2048
LOG_BUF_GROWTH = 2
LOG_BUF_MIN = 1 << 20
LOG_BUF_MAX = 1 << 31
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


# The fields of a policy, as the sysrq_policy role and filter take them.
FIELDS = ("profile", "functions", "mask", "nmi", "always_enabled", "log_buf_len", "threads")


class PolicyError(ValueError):
    """A policy that cannot be applied; the message says what is wrong and what is allowed."""


def _size_text(size):
    for unit in ("G", "M", "K"):
        if size % _UNITS[unit] == 0:
            return "%d%s" % (size // _UNITS[unit], unit)
    return str(size)


def log_buf_len_for(threads):
    """The ``log_buf_len=`` value for a host running ``threads`` threads (the rule above), e.g. ``8M``."""
    threads = int(threads)
    if threads < 0:
        raise PolicyError("threads must be >= 0, got %d" % threads)
    want = max(LOG_BUF_MIN, threads * LOG_BUF_BYTES_PER_THREAD * LOG_BUF_GROWTH)
    size = 1 << (want - 1).bit_length()
    return _size_text(min(size, LOG_BUF_MAX))


def parse_log_buf_len(value):
    """``auto``, a size with an optional K/M/G suffix (``8M``), or bytes -> ``auto`` or the size as ``8M``.

    None stays None (the command line is left alone)."""
    if value is None:
        return None
    text = str(value).strip().upper()
    if text == LOG_BUF_AUTO.upper():
        return LOG_BUF_AUTO
    number, unit = (text[:-1], text[-1]) if text[-1:] in ("K", "M", "G") else (text, "")
    if not number.isdigit() or isinstance(value, bool):
        raise PolicyError("log_buf_len must be auto or a size such as 8M, 64M or 1G (bytes with an optional K, M or G "
                          "suffix), got %r" % (value,))
    size = int(number) * _UNITS[unit]
    if not LOG_BUF_MIN <= size <= LOG_BUF_MAX:
        raise PolicyError("log_buf_len must be between 1M and 2G (the kernel's limit), got %r" % (value,))
    if size & (size - 1):
        raise PolicyError("log_buf_len must be a power of two (the kernel rounds it up anyway): %r; for example %s"
                          % (value, _size_text(1 << (size - 1).bit_length())))
    return _size_text(size)


def normalize(profile="recovery", functions=None, mask=None, nmi=None, always_enabled=None, log_buf_len=None,
              threads=None):
    """Validate a policy and return it as ``{profile, mask, functions, nmi, always_enabled, log_buf_len}``.

    ``log_buf_len``: None (leave the command line alone), ``auto`` (sized from ``threads`` when given, see
    :func:`log_buf_len_for`) or a size."""
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
    buf = parse_log_buf_len(log_buf_len)
    if buf == LOG_BUF_AUTO and threads is not None:
        try:
            buf = log_buf_len_for(threads)
        except (TypeError, ValueError) as exc:
            raise PolicyError("threads must be a number of threads, got %r (%s)" % (threads, exc)) from None
    return {"profile": profile, "mask": value, "functions": decode(value), "nmi": settings,
            "always_enabled": always_enabled, "log_buf_len": buf}


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
