# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Why a kernel went down: the panic reason in a crash dmesg (kdump's ``dmesg.<stamp>``, ``vmcore-dmesg.txt``).

A crash log tells its story in a few lines; this finds them:

* the panic line ``Kernel panic - not syncing: <reason>`` (the first one: later ones are panics
  while panicking);
* the cause the kernel reported just before it: ``sysrq: Trigger a crash``, ``BUG: kernel NULL pointer
  dereference``, ``kernel BUG at f.c:12!``, ``general protection fault``, ``Oops:``, ``watchdog: BUG: soft
  lockup``, ``Watchdog detected hard LOCKUP``, ``INFO: task x:1 blocked for more than N seconds``,
  ``Uhhuh. NMI received for unknown reason``, ``Out of memory``, ``WARNING:`` (panic_on_warn), RCU stalls;
* the task and CPU that panicked (``CPU: 0 PID: 812 Comm: bash Not tainted 6.1.0-50-amd64 ...``), the
  taint flags and kernel release printed there, and the reliable frames of its call trace.

A log with an Oops but no panic line (the machine carried on, or the log was cut) still gets a reason:
its cause line, with ``panicked`` false. Log prefixes (timestamps, caller ids, ``dmesg -x``, journal
forms) are removed first with the dump parser's :func:`sysrq_tasks.clean_text`.
"""

from __future__ import annotations

import re

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump.parser import clean_text

PANIC = "Kernel panic - not syncing: "

# (kind, pattern) in the order they are tried on a line; the first match names the line's kind.
_CAUSES = [
    ("sysrq-crash", re.compile(r"sysrq: (?:SysRq : )?Trigger a crash|SysRq : Trigger a crash")),
    ("null-pointer", re.compile(r"BUG: (?:kernel )?NULL pointer dereference")),
    ("page-fault", re.compile(r"BUG: unable to handle (?:page fault|kernel paging request)")),
    ("bug", re.compile(r"kernel BUG at |BUG: (?:scheduling while atomic|sleeping function|Bad page|KASAN|"
                       r"KFENCE|workqueue lockup|Dentry|spinlock|stack guard page|unable to handle)")),
    ("general-protection", re.compile(r"(?:Oops: )?general protection fault")),
    ("soft-lockup", re.compile(r"watchdog: BUG: soft lockup")),
    ("hard-lockup", re.compile(r"Watchdog detected hard LOCKUP|NMI watchdog: Watchdog detected hard LOCKUP")),
    ("hung-task", re.compile(r"INFO: task \S.* blocked for more than \d+ seconds")),
    ("nmi", re.compile(r"Uhhuh\. NMI received|NMI: (?:PCI system error|IOCK error)|NMI received for unknown reason")),
    ("oom", re.compile(r"Out of memory(?: and no killable processes)?|invoked oom-killer")),
    ("rcu-stall", re.compile(r"rcu: INFO: \S+ (?:self-)?detected stalls?")),
    ("warning", re.compile(r"WARNING: (?:CPU: \d+ PID: \d+ at |at )")),
    ("oops", re.compile(r"Oops: ")),
    ("mce", re.compile(r"mce: \[Hardware Error\]|Machine check")),
]
_OOPS = re.compile(r"Oops: ")
# "CPU: 0 PID: 812 Comm: bash Not tainted 6.1.0-50-amd64 #1 Debian 6.1.135-1", 6.x adds "UID: 0".
# The taint flags are a fixed-width field padded with spaces ("Tainted: G           OE     6.1.0-50-amd64").
_CPU = re.compile(r"CPU: (\d+) (?:UID: \d+ )?PID: (\d+) Comm: (.*?)(?: Kdump: loaded)? (?:Not tainted|Tainted: (.*?))\s+(\d+\.\d+\S*)")
_FRAME = re.compile(r"\s*(?:\[<[0-9a-f]+>\] )?([^\s?+][^\s+]*)\+0x[0-9a-f]+/0x[0-9a-f]+")
_TIME = re.compile(r"^\[ *(\d+\.\d+)\]")
# makedumpfile --dump-dmesg writes the caller id after a space: "[  103.082613] [    T589] message".
_SPACED_CALLER = re.compile(r"^(\[ *\d+\.\d+\]) \[ *[TC]\d+\]", re.M)
_STOP = ("</TASK>", "---[ end", "Kernel Offset", "Kernel panic", "Modules linked in", "RIP:", "CR2:")
# How far to look back from the panic line for its cause, and forward for the CPU line and trace.
_LOOK_BACK = 2000
_LOOK_AHEAD = 60
_MAX_FRAMES = 64


def _kind(line):
    for kind, pattern in _CAUSES:
        if pattern.search(line):
            return kind
    return None


def _panic_index(lines):
    for index, line in enumerate(lines):
        position = line.find(PANIC)
        if position >= 0 and "---[ end" not in line[:position]:
            return index
    return None


def _cause_index(lines, panic):
    """The line that reported why, nearest before the panic (an Oops defers to the BUG line above it)."""
    end = len(lines) if panic is None else panic
    for index in range(end - 1, max(-1, end - 1 - _LOOK_BACK), -1):
        kind = _kind(lines[index])
        if kind is None:
            continue
        if kind == "oops":
            for before in range(index - 1, max(-1, index - 8), -1):
                earlier = _kind(lines[before])
                if earlier not in (None, "oops", "warning"):
                    return before, earlier
        return index, kind
    return None, None


def _timestamp(raw_lines, needle):
    for line in raw_lines:
        if needle in line:
            match = _TIME.match(line.lstrip("<0123456789>"))
            return float(match.group(1)) if match else None
    return None


def _trace(lines, start):
    """Reliable frames of the first Call Trace at or after ``start`` (innermost first)."""
    frames = []
    index = start
    end = min(len(lines), start + _LOOK_AHEAD * 4)
    while index < end and not lines[index].lstrip().startswith("Call Trace:"):
        index += 1
    if index >= end:
        return frames
    for line in lines[index + 1:end]:
        stripped = line.strip()
        if stripped.startswith(_STOP):
            break
        if stripped.startswith(("<", "?")) or not stripped:
            continue
        match = _FRAME.match(line)
        if match is None:
            if frames:
                break
            continue
        frames.append(match.group(1))
        if len(frames) >= _MAX_FRAMES:
            break
    return frames


def panic_reason(text):
    """Crash log text (str, bytes or list of lines) -> what brought the kernel down.

    Returns a dict: ``panicked`` (a panic line was found), ``reason`` (the panic message, else the
    cause line, else None), ``kind`` (``sysrq-crash``, ``null-pointer``, ``page-fault``, ``bug``,
    ``general-protection``, ``soft-lockup``, ``hard-lockup``, ``hung-task``, ``nmi``, ``oom``,
    ``rcu-stall``, ``warning``, ``oops``, ``mce``, ``other`` or None), ``panic`` (the panic line),
    ``cause`` (the line that reported the cause), ``comm``, ``pid``, ``cpu``, ``tainted`` (the taint
    flags, '' when not tainted), ``kernel`` (the release), ``frames`` (reliable frames of the
    panicking task, innermost first), ``time`` (seconds since boot of the panic, when timestamped)
    and ``headline`` (one line for a summary).
    """
    if text is None:
        text = ""
    if isinstance(text, (list, tuple)):
        text = "\n".join(str(line) for line in text)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    raw_lines = text.splitlines()
    lines = clean_text(_SPACED_CALLER.sub(r"\1", text)).splitlines()
    panic = _panic_index(lines)
    cause, kind = _cause_index(lines, panic)
    result = {"panicked": panic is not None, "reason": None, "kind": kind, "panic": None, "cause": None,
              "comm": None, "pid": None, "cpu": None, "tainted": None, "kernel": None, "frames": [],
              "time": None, "headline": "no panic or oops found"}
    if panic is not None:
        line = lines[panic]
        result["panic"] = line[line.find(PANIC):].strip()
        result["reason"] = line[line.find(PANIC) + len(PANIC):].strip()
        result["time"] = _timestamp(raw_lines, result["panic"])
        if kind is None:
            result["kind"] = "other"
    if cause is not None:
        result["cause"] = lines[cause].strip()
        if result["reason"] is None:
            result["reason"] = result["cause"]
            result["time"] = _timestamp(raw_lines, result["cause"])
    if panic is None and cause is None:
        return result
    anchor = cause if cause is not None else panic
    stop = min(len(lines), (panic if panic is not None else anchor) + _LOOK_AHEAD)
    for index in range(anchor, stop):
        match = _CPU.search(lines[index])
        if match is not None:
            result.update(cpu=int(match.group(1)), pid=int(match.group(2)), comm=match.group(3),
                          tainted=" ".join((match.group(4) or "").split()), kernel=match.group(5))
            result["frames"] = _trace(lines, index + 1)
            break
    result["headline"] = headline(result)
    return result


def headline(result):
    """One line: reason, cause, and who panicked."""
    parts = [result.get("reason") or "no panic or oops found"]
    cause = result.get("cause")
    if cause and cause != result.get("reason"):
        parts.append("after: " + cause)
    if result.get("comm") is not None:
        parts.append("in %s (pid %s) on CPU %s" % (result["comm"], result["pid"], result["cpu"]))
    if result.get("tainted"):
        parts.append("tainted " + result["tainted"])
    return "; ".join(parts)
