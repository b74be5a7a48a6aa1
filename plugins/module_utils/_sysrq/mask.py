# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SysRq enable mask codec: function names <-> the integer in ``kernel.sysrq``.

The kernel reads ``/proc/sys/kernel/sysrq`` as: ``0`` disables SysRq, ``1``
enables every function, any other value is a bitmask of the functions below
(``Documentation/admin-guide/sysrq.rst``). Bit 0 has a meaning only as the
whole value ``1``; in any other value it is ignored by the kernel.
"""

from __future__ import annotations

# Name -> bit, in bit order. These are the collection's names for the kernel's bits.
FUNCTIONS = {
    "log_level": 2,     # console log level control (0-9)
    "keyboard": 4,      # keyboard control (SAK, unraw: k, r)
    "dumps": 8,         # debugging dumps of processes etc. (t, w, l, m, p, ...)
    "sync": 16,         # sync command (s)
    "remount": 32,      # remount read-only (u)
    "signal": 64,       # signalling of processes (term, kill, oom-kill: e, i, f)
    "reboot": 128,      # reboot/poweroff (b, o)
    "nice": 256,        # nicing of all RT tasks (n)
}
ALL = "all"     # the whole value 1: every function enabled
NONE = "none"   # the whole value 0: SysRq disabled
MAX_MASK = 511
VALID_NAMES = (NONE, ALL) + tuple(FUNCTIONS)


class MaskError(ValueError):
    """A mask or function list that is not valid; the message names the valid set."""


def valid_set_text():
    pairs = ", ".join("%s (%d)" % (name, bit) for name, bit in FUNCTIONS.items())
    return "an integer 0 to %d, or function names: %s; 'all' (1) or 'none' (0) alone" % (MAX_MASK, pairs)


def parse_mask(value):
    """Return ``value`` as an int mask 0..511, or raise MaskError naming the valid set."""
    if isinstance(value, bool):
        raise MaskError("mask %r is not valid: expected %s" % (value, valid_set_text()))
    if isinstance(value, int):
        number = value
    else:
        text = str(value).strip()
        try:
            number = int(text, 0) if text.lower().startswith(("0x", "0o", "0b")) else int(text, 10)
        except ValueError:
            raise MaskError("mask %r is not an integer: expected %s" % (value, valid_set_text())) from None
    if not 0 <= number <= MAX_MASK:
        raise MaskError("mask %d is out of range: expected %s" % (number, valid_set_text()))
    return number


def encode(functions):
    """Function names -> integer mask. Raises MaskError on unknown or contradictory names."""
    if isinstance(functions, str):
        functions = [part for part in functions.replace(",", " ").split() if part]
    names = [str(name).strip().lower() for name in functions]
    if not names:
        raise MaskError("functions is empty: expected %s" % valid_set_text())
    unknown = [name for name in names if name not in VALID_NAMES]
    if unknown:
        raise MaskError("unknown SysRq function name(s) %s: expected %s"
                        % (", ".join(repr(n) for n in unknown), valid_set_text()))
    if (ALL in names or NONE in names) and len(set(names)) > 1:
        raise MaskError("'all' and 'none' stand alone and cannot be combined with %s: expected %s"
                        % (", ".join(sorted(set(names) - {ALL, NONE}) or [NONE if ALL in names else ALL]),
                           valid_set_text()))
    if names[0] == ALL:
        return 1
    if names[0] == NONE:
        return 0
    mask = 0
    for name in names:
        mask |= FUNCTIONS[name]
    return mask


def decode(mask):
    """Integer mask -> list of function names (``['all']``, ``['none']`` or bit names)."""
    mask = parse_mask(mask)
    if mask == 0:
        return [NONE]
    if mask == 1:
        return [ALL]
    return [name for name, bit in FUNCTIONS.items() if mask & bit]


def allows(mask, function):
    """Whether the keyboard path (not /proc/sysrq-trigger) may run a key governed by ``function``."""
    mask = parse_mask(mask)
    if mask == 1:
        return True
    return bool(mask & FUNCTIONS[function])
