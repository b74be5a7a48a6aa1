# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Magic SysRq command keys: what each does, which enable-mask bit governs it, which are destructive.

Shared by every path that sends SysRq keys: ``/proc/sysrq-trigger`` (in-band) and the out-of-band paths
(serial BREAK, hypervisor send-key, BMC). The table follows the kernel's ``sysrq_key_table`` in
``drivers/tty/sysrq.c`` and the ops other subsystems register (``o`` power off, ``g`` kgdb, ``v`` DRM
framebuffer restore, ``R`` replay logs in newer kernels, ``x``/``y`` platform specific).

The enable mask (``kernel.sysrq``) only governs the keyboard, serial BREAK and other out-of-band paths;
writes to ``/proc/sysrq-trigger`` run every key whatever the mask. An op whose ``enable_mask`` is 0 in the
kernel (``d``, ``q``, ``g``, ``v``) runs from the keyboard only when the mask is ``1`` or the kernel runs with
``sysrq_always_enabled``.
"""

from __future__ import annotations

import math
import os
import signal
import time

from ansible_collections.magic_sysrq.fleet.plugins.module_utils import _host as host

TRIGGER = "/proc/sysrq-trigger"
SYSRQ_SYSCTL = "/proc/sys/kernel/sysrq"
# kernel.printk: console_loglevel, default_message_loglevel, minimum_console_loglevel, default_console_loglevel.
PRINTK_SYSCTL = "/proc/sys/kernel/printk"

# Enable-mask bits (include/linux/sysrq.h), by the collection's function names (module_utils/sysrq_mask.py).
LOG_LEVEL, KEYBOARD, DUMPS, SYNC, REMOUNT, SIGNAL, REBOOT, NICE = (
    "log_level", "keyboard", "dumps", "sync", "remount", "signal", "reboot", "nice")
BITS = {LOG_LEVEL: 2, KEYBOARD: 4, DUMPS: 8, SYNC: 16, REMOUNT: 32, SIGNAL: 64, REBOOT: 128, NICE: 256}

# Keys whose effect cannot be taken back: reboot/power off/crash, killing or signalling every process,
# OOM kill, SAK, remount read-only, thawing frozen filesystems; and the debugger keys, which stop the
# machine: g enters kgdb (every CPU halts and waits for a debugger when kgdboc is set), x enters xmon on
# powerpc (the same). n turns every real-time and deadline task into a normal one and resets negative nice
# values (normalize_rt_tasks()): nothing puts their priorities back. z (ftrace_dump()) turns tracing off, ending
# whatever trace was being recorded, and prints the whole ring buffer at KERN_EMERG with interrupts off, so it
# reaches every console whatever the log level and can stall a serial console for minutes.
DESTRUCTIVE = frozenset("bceioukfjgxnz")

# Keys whose output is a task dump the parser turns into tasks.
TASK_DUMP_KEYS = frozenset("twl")

# Keys whose op prints everything inside the write to /proc/sysrq-trigger (__handle_sysrq() calls the op
# directly and printk() stores each record before it returns), so every record is in the log when the write
# returns: show-task-states and show-blocked-tasks (show_state_filter()), memory (show_mem()), registers,
# timers, locks, ftrace, the log level digits, help, and the lines e/i/n/r print. The others finish later:
# l (backtraces from the other CPUs, by NMI or by a work item on kernels without NMI backtraces), s, u, j
# (emergency sync / remount / thaw run as work items and print "... complete" afterwards), f (OOM kill work),
# k (SAK work), and b/c/o (the machine goes away).
SYNCHRONOUS_OUTPUT_KEYS = frozenset("0123456789dehimnpqrtwzR")
# Quiet period that ends the capture of keys whose output arrives after the write (seconds).
ASYNC_SETTLE = 1.0


def _entry(name, description, function, note=None):
    return {"name": name, "description": description, "function": function,
            "mask_bit": BITS.get(function, 0), "note": note}


# key -> entry. ``function`` is the enable-mask function that governs the key on the keyboard path
# (None: the op has enable_mask 0, or it depends on the platform).
KEYS = {}
for _digit in "0123456789":
    KEYS[_digit] = _entry("loglevel", "Set the console log level to %s" % _digit, LOG_LEVEL)
KEYS.update({
    "b": _entry("reboot", "Reboot at once, without syncing or unmounting", REBOOT),
    "c": _entry("crash", "Crash the kernel (panic); with kdump loaded a crash dump is taken", DUMPS),
    "d": _entry("show-all-locks", "Show all locks held (kernels with lockdep)", None,
                "only with CONFIG_LOCKDEP"),
    "e": _entry("terminate-all-tasks", "Send SIGTERM to every process except init", SIGNAL),
    "f": _entry("memory-full-oom-kill", "Call the OOM killer to kill one memory hog", SIGNAL),
    "g": _entry("debug", "Enter the kernel debugger (kgdb/kdb)", None, "only with a kgdb I/O driver registered"),
    "h": _entry("help", "Print the SysRq help line", None, "any key without an op prints help"),
    "i": _entry("kill-all-tasks", "Send SIGKILL to every process except init", SIGNAL),
    "j": _entry("thaw-filesystems", "Thaw every filesystem frozen by FIFREEZE (fsfreeze)", SIGNAL),
    "k": _entry("sak", "Secure Access Key: kill every process on the current virtual console", KEYBOARD,
                "only with CONFIG_VT"),
    "l": _entry("show-backtrace-all-active-cpus", "Show a backtrace of every active CPU", DUMPS),
    "m": _entry("show-memory-usage", "Show memory usage", DUMPS),
    "n": _entry("nice-all-RT-tasks", "Make every real-time task a normal task", NICE),
    "o": _entry("poweroff", "Power the machine off", REBOOT),
    "p": _entry("show-registers", "Show the registers of the current CPU", DUMPS),
    "q": _entry("show-all-timers", "Show clockevent devices and pending hrtimers", None),
    "r": _entry("unraw", "Set the keyboard back to the system default mode", KEYBOARD, "only with CONFIG_VT"),
    "s": _entry("sync", "Emergency sync of every mounted filesystem", SYNC),
    "t": _entry("show-task-states", "Show every task and its stack", DUMPS),
    "u": _entry("unmount", "Emergency remount of every filesystem read-only", REMOUNT),
    "v": _entry("force-fb", "Restore the framebuffer console", None, "only with a DRM framebuffer console"),
    "w": _entry("show-blocked-tasks", "Show tasks in uninterruptible (D) state and their stacks", DUMPS),
    "x": _entry("platform-x", "Platform specific (powerpc xmon, sparc64 global PMU, mips TLB dump)", None,
                "not registered on x86"),
    "y": _entry("platform-y", "Platform specific (sparc64 global registers, RCU tree with rcutree.sysrq_rcu)",
                None, "not registered on x86 by default"),
    "z": _entry("dump-ftrace-buffer", "Dump the ftrace buffer", DUMPS, "only with CONFIG_TRACING"),
    "R": _entry("replay-kernel-logs", "Replay the kernel log on the consoles", DUMPS, "newer kernels only"),
})
del _digit

VALID_KEYS = "".join(sorted(KEYS, key=lambda k: (not k.isdigit(), k.isupper(), k)))


class SysRqKeyError(ValueError):
    """A keys string that is not valid or not allowed; the message says what is allowed."""


def valid_keys_text():
    return "valid keys: %s (0-9 set the console log level)" % " ".join(VALID_KEYS)


def destructive_text():
    return " ".join(sorted(DESTRUCTIVE))


def parse_keys(keys):
    """A keys string (``w``, ``reisub``; whitespace ignored) -> list of keys. Raises SysRqKeyError."""
    if keys is None:
        raise SysRqKeyError("keys is required: %s" % valid_keys_text())
    if isinstance(keys, (list, tuple)):
        keys = "".join(str(k) for k in keys)
    text = "".join(str(keys).split())
    if not text:
        raise SysRqKeyError("keys is empty: %s" % valid_keys_text())
    unknown = []
    for key in text:
        if key not in KEYS and key not in unknown:
            unknown.append(key)
    if unknown:
        raise SysRqKeyError("unknown SysRq key(s) %s in %r: %s"
                            % (", ".join(repr(k) for k in unknown), text, valid_keys_text()))
    return list(text)


def destructive_keys(keys):
    """The destructive keys among ``keys``, in order of first appearance."""
    out = []
    for key in keys:
        if key in DESTRUCTIVE and key not in out:
            out.append(key)
    return out


def validate(keys, allow_destructive=False):
    """Parse ``keys`` and refuse destructive ones without consent. Returns the list of keys."""
    parsed = parse_keys(keys)
    bad = destructive_keys(parsed)
    if bad and not allow_destructive:
        raise SysRqKeyError(
            "refusing destructive SysRq key(s) %s (%s) in %r without allow_destructive=true; "
            "destructive keys are: %s"
            % (", ".join(repr(k) for k in bad), ", ".join(KEYS[k]["name"] for k in bad), "".join(parsed),
               destructive_text()))
    return parsed


def describe(keys):
    """``[{key, name, description, function, mask_bit, destructive}]`` for the keys given."""
    out = []
    for key in keys:
        entry = KEYS[key]
        out.append({"key": key, "name": entry["name"], "description": entry["description"],
                    "function": entry["function"], "mask_bit": entry["mask_bit"],
                    "destructive": key in DESTRUCTIVE})
    return out


def keyboard_allowed(key, mask, always_enabled=False):
    """Whether the keyboard/out-of-band path would run ``key`` under enable mask ``mask``.

    The kernel's rule (``sysrq_on_mask``): ``sysrq_always_enabled``, or mask ``1``, or the op's bit set.
    A mask of 0 disables SysRq entirely. Ops with enable_mask 0 run only with mask 1 or always-enabled.
    """
    mask = int(mask)
    if always_enabled:
        return True
    if mask == 0:
        return False
    if mask == 1:
        return True
    return bool(mask & KEYS[key]["mask_bit"])


def blocked_by_mask(keys, mask, always_enabled=False):
    """Keys the mask would refuse on the keyboard/out-of-band path (``/proc/sysrq-trigger`` ignores the mask)."""
    return [key for key in keys if not keyboard_allowed(key, mask, always_enabled)]


def check_writer_survives(keys):
    """Refuse keys that would follow an ``i`` in one ``/proc/sysrq-trigger`` run.

    ``i`` sends SIGKILL to every process but init, the one writing the keys included, so nothing after it is
    ever written. (``e``, SIGTERM, is survived: see :func:`ignore_termination`.)
    """
    if "i" in keys[:-1]:
        after = "".join(keys[keys.index("i") + 1:])
        raise SysRqKeyError(
            "key 'i' (kill-all-tasks) kills the process that writes /proc/sysrq-trigger, so %r after it would never "
            "be written; put 'i' last or leave it out (r, e, s, u, b work in-band: the writer survives the SIGTERM of "
            "'e'), or press the whole REISUB on the keyboard with magic_sysrq.fleet.oob_sysrq" % after)


CPUINFO = "/proc/cpuinfo"


def user_mode_linux():
    """Whether this host's kernel is user-mode Linux (``vendor_id : User Mode Linux`` in ``/proc/cpuinfo``)."""
    try:
        with open(host.host_path(CPUINFO), "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return b"User Mode Linux" in head


def check_kernel_quirks(keys, allow_destructive=False):
    """Refuse keys that crash this kernel although they should only print.

    ``t`` panics user-mode Linux (Debian's 6.1 UML: a kernel mode fault in ``print_worker_info`` while it shows a
    kworker), so on UML it counts as destructive: refused without ``allow_destructive``.
    """
    if "t" in keys and not allow_destructive and user_mode_linux():
        raise SysRqKeyError(
            "refusing key 't' (show-task-states) on this user-mode Linux kernel: it panics UML (a kernel mode fault in "
            "print_worker_info while it shows a kworker) and the host goes down; use 'w' for the blocked tasks, or "
            "allow_destructive=true to crash it on purpose")


def ignore_termination():
    """Keep writing keys after ``e`` (SIGTERM to every process but init): ignore SIGTERM, SIGHUP (the SSH session
    that started this process ends) and SIGPIPE (its output has nowhere to go)."""
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(signum, signal.SIG_IGN)


def wants_tasks(keys):
    return any(key in TASK_DUMP_KEYS for key in keys)


def output_is_synchronous(keys):
    """Whether every record ``keys`` make the kernel print is in the log when the last write returned."""
    return all(key in SYNCHRONOUS_OUTPUT_KEYS for key in keys)


def default_settle(keys):
    """The capture's quiet period when the user sets none: 0 when the output is synchronous (read what is
    there and stop), :data:`ASYNC_SETTLE` otherwise."""
    return 0.0 if output_is_synchronous(keys) else ASYNC_SETTLE


# --- /proc/sysrq-trigger --------------------------------------------------------------------------------

class TriggerError(OSError):
    """``/proc/sysrq-trigger`` is missing or cannot be written; the message names the cause. ``written``: the keys
    :func:`write_keys` wrote before the one that failed (they have acted on the host)."""

    written = ()


def check_trigger():
    """Raise TriggerError when ``/proc/sysrq-trigger`` cannot take a key on this host; return its path."""
    path = host.host_path(TRIGGER)
    if not os.path.exists(path):
        if not os.path.isdir(host.host_path("/proc/sys")):
            cause = "/proc is not mounted (or is not procfs)"
        elif not os.path.exists(host.host_path(SYSRQ_SYSCTL)):
            cause = "this kernel has no Magic SysRq support (built without CONFIG_MAGIC_SYSRQ: no %s)" % SYSRQ_SYSCTL
        else:
            cause = "the trigger file is hidden (a container runtime masks it)"
        raise TriggerError("%s does not exist: %s; no key was written" % (TRIGGER, cause))
    if not os.access(path, os.W_OK):
        raise TriggerError("%s is not writable: run as root (become: true); in a container /proc may be "
                           "mounted read-only; no key was written" % TRIGGER)
    return path


def write_key(key):
    """Write one key to ``/proc/sysrq-trigger``. The kernel acts on the first character of each write."""
    path = host.host_path(TRIGGER)
    try:
        fd = os.open(path, os.O_WRONLY)
    except FileNotFoundError:
        raise TriggerError("%s does not exist: this kernel has no Magic SysRq support" % TRIGGER) from None
    except OSError as exc:
        raise TriggerError("cannot open %s for writing: %s (read-only /proc in a container, or not root)"
                           % (TRIGGER, exc.strerror)) from None
    try:
        os.write(fd, key.encode("ascii"))
    except OSError as exc:
        raise TriggerError("writing %r to %s failed: %s (read-only /proc in a container?)"
                           % (key, TRIGGER, exc.strerror)) from None
    finally:
        os.close(fd)


def write_keys(keys, delay=0.0, writer=None, pause=None):
    """Write ``keys`` one by one (``writer``, default :func:`write_key`), ``pause(delay)`` between them.

    Returns the keys written. A TriggerError says in ``written`` which keys were written before it.
    """
    writer = writer or write_key
    pause = pause or time.sleep
    written = []
    for index, key in enumerate(keys):
        if index and delay:
            pause(delay)
        try:
            writer(key)
        except TriggerError as exc:
            exc.written = tuple(written)
            raise
        written.append(key)
    return written


def seconds_problem(name, value, above_zero=False):
    """What is wrong with the time option ``name`` (seconds; None when unset), or None. NaN passes every
    comparison and infinity never ends a wait, so both are refused by name."""
    if value is None or (math.isfinite(value) and (value > 0 if above_zero else value >= 0)):
        return None
    return "%s must be %s seconds and finite (got %s)" % (name, "> 0" if above_zero else ">= 0", value)


# --- the console log level while keys run -----------------------------------------------------------------
#
# A record goes to the consoles when its level is below console_loglevel (the first field of kernel.printk). The
# dumps print at KERN_INFO (6): with Debian's default of 7 (no "quiet"), a t dump also goes out on every console,
# inside the write to /proc/sysrq-trigger. On a 115200-baud serial console that is about 11,500 bytes a second:
# the 4 MB t dump of a host with 2,000 threads holds the writer for about 6 minutes, in an RCU read-side critical
# section, and the kernel reports RCU stalls and hung tasks meanwhile. __handle_sysrq() raises the level only for
# its own header line, so a lower level keeps the dump itself off the consoles; /dev/kmsg still has all of it.
CONSOLE_LOGLEVEL_MIN = 1   # the kernel's minimum_console_loglevel default: below it nothing reaches a console
CONSOLE_LOGLEVEL_MAX = 8   # 8 shows everything, debug messages included


class ConsoleLogLevelError(OSError):
    """``kernel.printk`` cannot be read or written; the message names the cause."""


def read_console_loglevel():
    """The console log level now (the first field of ``/proc/sys/kernel/printk``)."""
    try:
        with open(host.host_path(PRINTK_SYSCTL)) as handle:      # pylint: disable=unspecified-encoding
            return int(handle.read().split()[0])
    except (OSError, ValueError, IndexError) as exc:
        raise ConsoleLogLevelError("cannot read the console log level from %s: %s" % (PRINTK_SYSCTL, exc)) from None


def write_console_loglevel(level):
    """Set the console log level (only the first field of ``kernel.printk`` is written: the others stay)."""
    try:
        with open(host.host_path(PRINTK_SYSCTL), "w") as handle:  # pylint: disable=unspecified-encoding
            handle.write("%d\n" % int(level))
    except OSError as exc:
        raise ConsoleLogLevelError("cannot set the console log level in %s: %s (read-only /proc/sys in a "
                                   "container, or not root)" % (PRINTK_SYSCTL, exc.strerror)) from None
