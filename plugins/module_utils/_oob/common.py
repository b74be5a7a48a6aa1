# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Out-of-band SysRq and NMI: what every method shares.

A wedged host cannot run a module, so the out-of-band modules (``oob_sysrq``, ``oob_nmi``, ``oob_console``) run
on the controller or on the host that owns the console: the hypervisor (QMP socket, libvirt), a host that
reaches the BMC, or anything with cloud credentials. Each method lives in its own file and offers the same
calls::

    send_sysrq(module, target, keys, hold_time_ms) -> [{"key": k, "request": {...}}, ...]
    inject_nmi(module, target) -> {"request": {...}, "response": {...}}

``target`` is the method's option dict (for example ``{"socket": "/run/qemu/web1.qmp"}``), ``module`` gives
``run_command`` to methods that run a tool. A method raises :class:`OobError` with a message that names what
is wrong and what would be allowed; the returned ``request`` never carries a credential.

The keyboard path, unlike ``/proc/sysrq-trigger``, honours the enable mask (``kernel.sysrq``): see
:func:`mask_verdict` and :data:`DISABLED_MARKER`.
"""

from __future__ import annotations

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysrq import keys as sysrq_keys

METHODS_SYSRQ = ("qmp", "libvirt", "sol", "azure")
METHODS_NMI = ("qmp", "libvirt", "ipmi", "redfish", "aws", "gcp", "azure")

# What the kernel prints when the enable mask refuses a keyboard SysRq (drivers/tty/sysrq.c, __handle_sysrq).
DISABLED_MARKER = "This sysrq operation is disabled"


class OobError(Exception):
    """An out-of-band request that could not be made; the message is for the person running the play."""


# Linux input event codes (include/uapi/linux/input-event-codes.h): what libvirt's "linux" codeset and
# other raw-keycode interfaces take.
KEY_LEFTALT = 56
KEY_LEFTSHIFT = 42
KEY_SYSRQ = 99
LINUX_KEYCODES = {
    "1": 2, "2": 3, "3": 4, "4": 5, "5": 6, "6": 7, "7": 8, "8": 9, "9": 10, "0": 11,
    "q": 16, "w": 17, "e": 18, "r": 19, "t": 20, "y": 21, "u": 22, "i": 23, "o": 24, "p": 25,
    "a": 30, "s": 31, "d": 32, "f": 33, "g": 34, "h": 35, "j": 36, "k": 37, "l": 38,
    "z": 44, "x": 45, "c": 46, "v": 47, "b": 48, "n": 49, "m": 50,
}


def keyboard_keys(keys, allow_destructive=False):
    """Validate ``keys`` for a keyboard chord: the in-band rules (consent for destructive keys) plus the
    keys a keyboard cannot press. Returns the list of keys."""
    parsed = sysrq_keys.validate(keys, allow_destructive=allow_destructive)
    unpressable = [k for k in parsed if k not in LINUX_KEYCODES]
    if unpressable:
        raise OobError(
            "SysRq key(s) %s cannot be pressed on a keyboard (the kernel maps keyboard chords to lower-case "
            "letters and digits); use magic_sysrq.fleet.sysrq_trigger over SSH for them. Keyboard keys: %s"
            % (", ".join(repr(k) for k in unpressable), " ".join(sorted(LINUX_KEYCODES))))
    return parsed


def linux_chord(key):
    """Alt+SysRq+key as Linux input keycodes, for example ``[56, 99, 17]`` for ``w``."""
    return [KEY_LEFTALT, KEY_SYSRQ, LINUX_KEYCODES[key]]


def linux_chord_names(key):
    """Alt+SysRq+key as the KEY_* names ``virsh send-key`` prints, for messages and results."""
    return ["KEY_LEFTALT", "KEY_SYSRQ", "KEY_" + key.upper()]


def qcode_chord(key):
    """Alt+SysRq+key as QEMU QKeyCode names, for example ``["alt", "sysrq", "w"]``."""
    return ["alt", "sysrq", key]


def mask_verdict(keys, mask, always_enabled=False):
    """What the host's enable mask will do with a keyboard chord of each key.

    ``mask`` is the host's last known ``kernel.sysrq`` (``None`` when unknown). Returns
    ``{"mask": mask, "allowed": [...], "refused": [...], "unknown": bool}``.
    """
    if mask is None:
        return {"mask": None, "allowed": list(keys), "refused": [], "unknown": True}
    refused = sysrq_keys.blocked_by_mask(keys, mask, always_enabled)
    return {"mask": int(mask), "allowed": [k for k in keys if k not in refused], "refused": refused,
            "unknown": False}


def refusal_text(refused, mask):
    """The message that says which keys a mask refuses and which function each would need."""
    parts = []
    for key in refused:
        function = sysrq_keys.KEYS[key]["function"]
        need = ("the %s bit (%d)" % (function, sysrq_keys.BITS[function])) if function in sysrq_keys.BITS \
            else "mask 1 or sysrq_always_enabled"
        parts.append("%r (%s) needs %s" % (key, sysrq_keys.KEYS[key]["name"], need))
    return ("the host's kernel.sysrq mask %s refuses keyboard SysRq: %s; the kernel would print %r. "
            "Allow it with the debuggable profile (magic_sysrq.fleet.sysrq_policy) or send it in-band with "
            "magic_sysrq.fleet.sysrq_trigger" % (mask, "; ".join(parts), DISABLED_MARKER))


def need_package(has, package, method, pip_name=None):
    """Raise OobError naming the Python package ``method`` needs when it did not import (``has`` is false)."""
    if not has:
        raise OobError("method %s needs the Python package %s on the host that runs the task (pip install %s)"
                       % (method, package, pip_name or package))


def require(target, method, *names):
    """Raise OobError naming the missing options of ``method`` (``target`` is its option dict)."""
    missing = [n for n in names if not (target or {}).get(n)]
    if missing:
        raise OobError("method %s needs %s" % (method, ", ".join("%s.%s" % (method, n) for n in missing)))


def require_one(target, method, *names):
    """Raise OobError unless ``target`` sets at least one of ``names`` (``method``'s options)."""
    if not any((target or {}).get(n) for n in names):
        raise OobError("method %s needs one of %s" % (method, ", ".join("%s.%s" % (method, n) for n in names)))
