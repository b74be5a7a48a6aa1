# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the kernel answers NMIs, lockups, hung tasks, oopses and panics: the settings and their valid values."""

from __future__ import annotations

# name -> (sysctl key, description of valid values, validator)
_FLAG = ("0 or 1", lambda v: v in (0, 1))
# The kernel's own limits: kernel.panic is a C int (proc_dointvec); hung_task_timeout_secs is capped at
# LONG_MAX / HZ seconds (proc_dohung_task_timeout_secs), here for HZ up to 1000, which covers every kernel
# configuration (Debian builds HZ=250, RHEL HZ=1000). A value past them is refused before anything is written.
INT_MIN, INT_MAX = -2 ** 31, 2 ** 31 - 1
HUNG_TASK_TIMEOUT_MAX = (2 ** 63 - 1) // 1000
SETTINGS = {
    "panic_on_unrecovered_nmi": ("kernel.panic_on_unrecovered_nmi",) + _FLAG,
    "unknown_nmi_panic": ("kernel.unknown_nmi_panic",) + _FLAG,
    "panic_on_io_nmi": ("kernel.panic_on_io_nmi",) + _FLAG,
    "nmi_watchdog": ("kernel.nmi_watchdog",) + _FLAG,
    "hardlockup_panic": ("kernel.hardlockup_panic",) + _FLAG,
    "softlockup_panic": ("kernel.softlockup_panic",) + _FLAG,
    "hung_task_panic": ("kernel.hung_task_panic",) + _FLAG,
    "hung_task_timeout_secs": ("kernel.hung_task_timeout_secs",
                               "an integer from 0 to %d (seconds; 0 disables the check)" % HUNG_TASK_TIMEOUT_MAX,
                               lambda v: 0 <= v <= HUNG_TASK_TIMEOUT_MAX),
    "panic": ("kernel.panic", "an integer from %d to %d: seconds before rebooting after a panic, 0 to hang, < 0 to "
                              "reboot at once" % (INT_MIN, INT_MAX),
              lambda v: INT_MIN <= v <= INT_MAX),
    "panic_on_oops": ("kernel.panic_on_oops",) + _FLAG,
}


def key_of(name):
    return SETTINGS[name][0]


def validate(values):
    """``{name: value}`` of the settings given (None = leave alone) -> ``{name: int}``; raises ValueError."""
    chosen = {}
    errors = []
    for name, value in values.items():
        if value is None:
            continue
        if name not in SETTINGS:
            errors.append("unknown setting %r: expected one of %s" % (name, ", ".join(SETTINGS)))
            continue
        _key, allowed, ok = SETTINGS[name]
        if isinstance(value, bool) or not isinstance(value, int) or not ok(value):
            errors.append("%s=%r is not valid: expected %s" % (name, value, allowed))
            continue
        chosen[name] = value
    if errors:
        raise ValueError("; ".join(errors))
    return chosen
