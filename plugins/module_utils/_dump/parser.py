# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Parse SysRq task dumps (``t``, ``w``, ``l``, hung-task reports) into tasks and their stacks.

Input is kernel log text as it reaches people: ``/dev/kmsg`` messages, ``dmesg`` with or without
``[   12.345678]`` timestamps (and the ``[T123]`` caller id, ``-T``, ``-x``, ``-r`` and ISO forms),
``journalctl -k`` lines, or a serial console capture with ANSI escapes and carriage returns.

Layouts understood (``sched_show_task()`` in kernel/sched/core.c):

* 5.8 and later: ``task:NAME state:D stack:0 pid:123 ppid:2 flags:0x00004000``; 6.x left-justifies the
  numbers; later kernels add ``tgid:`` (6.12 prints it) and ``task_flags:``. ``running task`` may sit
  between the state and ``stack:``. When another CPU's printk splits the continuation off, the
  ``stack: pid: ...`` part on the next line is joined back.
* before 5.8: ``NAME            D    0   123      2 0x00000000`` (comm padded to 15), with a saved-PC
  column or ``running task`` on old kernels.
* ``l`` (and NMI backtraces): ``NMI backtrace for cpu N`` then ``CPU: N [UID: u] PID: p Comm: c ...``;
  ``NMI backtrace for cpu N skipped: idling at SYM+off/len``; the fallback ``CPUn:`` form.

Frames are ``func+0x12/0x34 [module]`` (also ``[<address>] func+...`` from old kernels and user-mode Linux,
and bare addresses);
a ``? `` prefix marks an unreliable frame, kept apart in ``unreliable_frames``. Frames are reduced to the
function name, innermost first as printed. Register dumps (``RIP:``, ``RSP:``, ``RAX:``, ``Code:``),
``Call Trace:`` and ``<TASK>``/``<IRQ>``/``<NMI>`` markers are skipped.

One ``findall`` of a precompiled scanner over the whole text (lines of no interest cost a failed match of
a few characters), then a loop over the matches only: a ``t`` dump of a small VM parses in about a millisecond.
"""

from __future__ import annotations

import re

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump.untrusted import printable_lines

# --- clean-up of captured text ------------------------------------------------------------------------

# The escape sequences of terminals and serial consoles (ECMA-48), removed only when whole: a CSI is ESC [,
# at most 32 parameter bytes (0x30-0x3F), at most 2 intermediate bytes (0x21-0x2F), a final byte (0x40-0x7E);
# an OSC (and a DCS, SOS, PM or APC string) ends with BEL or ST before the end of its line; the other two-byte
# escapes are ESC and one byte of 0x40-0x5F that starts no sequence. Anything else stays text, for
# printable() to show as \x1b: a comm of "x\x1b]" or "x\x1b[" must not eat the rest of its task's header.
# The space is a valid intermediate byte, but no intermediate byte, parameter byte or final byte here is a
# space: a sequence that starts in a comm ends before the space the kernel always prints after it (padding, or
# the one of " state:"), and a comm ending in "\x1b[" cannot take the "s" of "state:" as its final byte.
_ANSI = re.compile(r"\x1b(?:\[[0-?]{0,32}[!-/]{0,2}[@-~]|[\]PX^_][^\x07\x1b\n]{0,512}(?:\x07|\x1b\\)"
                   r"|[@-OQ-WYZ\\])")
# The common prefix: dmesg / console timestamps "[   12.345678] ", optionally with the caller id "[  T123]".
_TIMESTAMP = re.compile(r"\n\[[ 0-9.]+\](?:\[ *[TC][0-9]+\])? ?")
# Rarer prefixes, looked for near the start of the text and removed only when present.
# dmesg -x (util-linux): "%-6s:%-6s: " of the facility and level names, first on the line. Only those names: a
# looser "word:word: " takes "task:abc: " off the header of a task named "abc:".
_DMESG_X = (r"(?:kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|local[0-7]) *:"
            r"(?:emerg|alert|crit|err|warn|notice|info|debug) *: ")
_RARE_PREFIX_SEEN = re.compile(
    r"^(?:[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \S+ kernel: |\d{4}-\d\d-\d\dT\d|%s|<\d{1,3}>"
    r"|\[[A-Z][a-z]{2} [A-Z][a-z]{2} )" % _DMESG_X, re.M).search
_RARE_PREFIX = re.compile(
    r"^(?:%s)?" % _DMESG_X +                                              # dmesg -x: facility:level
    r"(?:"
    r"[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \S+ kernel: "               # journalctl / syslog
    # ISO: dmesg --time-format=iso, or journalctl -o short-iso with its host name (which holds no ":"; a
    # header "task:x kernel: ..." is not a host "task:x")
    r"|\d{4}-\d\d-\d\dT[0-9:.,]+(?:[+-]\d\d:?\d\d|Z)? (?:[^\s:]+ kernel: )?"
    r")?"
    r"(?:<\d{1,3}>)?"                                                     # dmesg -r: <prio>
    r"(?:\[ *\d+\.\d+\]|\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d \d{4}\])?"  # [ 12.3] / dmesg -T
    r"(?:\[ *[TC]\d+\])?"                                                 # CONFIG_PRINTK_CALLER
    r"(?<=[\]>: ]) ?",                                                    # one separating space, if any prefix
    re.M)

# --- the scanner ------------------------------------------------------------------------------------
#
# One findall over "\n" + text: every line is tried once against the alternatives below; lines of no
# interest (register dumps, markers, sched-debug tables) fail within a few characters and yield nothing.
# Groups: 1 a reliable frame's symbol, 2 an unreliable ("? ") frame's symbol, 3 "?" before a bare address,
# 4 a bare address; 5 a line that starts or ends a task; 6 the "stack: pid: ..." continuation of a split
# header; 7 an old-layout header (legacy scanner only). Reliable and unreliable frames are separate
# alternatives rather than an optional "? " group: that halves the cost of the commonest line.
_FRAME_ALT = (r"[ \t]*%(addr)s(?:([^ \t+?\n][^ \t+\n]*)|\? ([^ \t+\n]+))"
              r"\+0x[0-9a-f]+/0x[0-9a-f]+(?: \[[^\]\n]*\])?[ \t]*(?=\n)"
              r"|[ \t]*%(addr)s(\?? ?)(0x[0-9a-f]{6,16})[ \t]*(?=\n)")
_SPECIAL_ALT = (r"((?:task:|NMI backtrace|CPU[: 0-9]|Workqueue: |sysrq: |SysRq : |S(?:ched Debug|howing |ending NMI)"
                r"|INFO: task |---|BUG: |WARNING: |Kernel |Mem-Info|runnable tasks|Modules linked|Oops: "
                r"|watchdog: BUG|rcu: INFO)[^\n]*)")
_CONT_ALT = r"[ \t]*(stack:[^\n]*pid:[^\n]*)"
_OLD_ALT = (r"([^\n]{1,16}? [A-Za-z] +(?:running task +|[0-9a-f]{8,16} +)?\d+ +\d+ +\d+ 0x[0-9a-f]+)"
            r"[ \t]*(?=\n)")
# Modern kernels (a "task:" header anywhere): no old-layout headers, no "[<address>]" frame prefix.
_SCAN = re.compile(r"\n(?:%s|%s|%s|(x(?!x)x))" % (
    _FRAME_ALT % {"addr": ""}, _SPECIAL_ALT, _CONT_ALT)).findall
# User-mode Linux: modern headers, frames " [<6006aed2>] kthreadd+0xaa/0x131" (and " [<...>] ? sym+...").
_SCAN_UML = re.compile(r"\n(?:%s|%s|%s|(x(?!x)x))" % (
    _FRAME_ALT % {"addr": r"(?:\[<[0-9a-f]+>\] )?"}, _SPECIAL_ALT, _CONT_ALT)).findall
_SCAN_LEGACY = re.compile(r"\n(?:%s|%s|%s|%s)" % (
    _FRAME_ALT % {"addr": r"(?:\[<[0-9a-f]+>\] )?"}, _SPECIAL_ALT, _CONT_ALT, _OLD_ALT)).findall

# The kernel's own " state:X" is the last one on the line: the comm before it may spell "x state:R".
_MODERN = re.compile(r"task:(.*) +state:(\S)(.*)$").match
# A field name starts a word (the look-behind): without it every letter of a long word restarts the match.
_FIELDS = re.compile(r"(?<![a-z_])([a-z_]+):\s*(\S+)").findall
_OLD = re.compile(
    r"(.+?) +([A-Za-z]) +(?:running task +|[0-9a-f]{8,16} +)?(\d+) +(\d+) +(\d+) 0x([0-9a-f]+)\s*$").match
_NMI = re.compile(r"NMI backtrace for cpu (\d+)(?: skipped: idling at (?:pc )?([^\s+]+))?").match
_CPU_LINE = re.compile(r"CPU: (\d+) (?:UID: \d+ )?PID: (\d+) Comm: (.*?)(?: (?:Not tainted|Tainted:).*)?$").match
# print_worker_info(): "Workqueue: <wq name> <work function> (<worker description>)"; an idle kworker
# prints an empty name and 0x0: "Workqueue:  0x0 (kblockd)".
_WORKQUEUE = re.compile(r"Workqueue: (\S*) (\S+)(?: \((.*)\))?").match
_CPU_FALLBACK = re.compile(r"CPU(\d+):(?: (backtrace skipped as idling))?\s*$").match


# What ends the sched-debug tables a "t" dump prints after the tasks (CONFIG_SCHED_DEBUG).
_SCHED_DEBUG = "Sched Debug Version"
_SCHED_DEBUG_ENDS = ("Showing busy workqueues", "task:", "sysrq: ", "SysRq : ", "NMI backtrace", "INFO: task ")


def _without_sched_debug(text):
    """``text`` without its sched-debug tables: hundreds of long lines that never hold a task's stack."""
    start = text.find(_SCHED_DEBUG)
    if start < 0:
        return text
    pieces = []
    done = 0
    # The next position of each end marker, found once and searched again only once passed: the text is
    # read a bounded number of times however many tables it holds (linear, not tables x length).
    next_end = dict.fromkeys(_SCHED_DEBUG_ENDS, -1)
    while start >= 0:
        line_start = text.rfind("\n", 0, start) + 1
        pieces.append(text[done:line_start])
        line_end = text.find("\n", start)
        ends = []
        if line_end >= 0:
            for marker, pos in next_end.items():
                if pos is not None and pos < line_end:
                    pos = text.find(marker, line_end)
                    next_end[marker] = pos if pos >= 0 else None
                if pos is not None and pos >= 0:
                    ends.append(pos)
        if not ends:
            done = len(text)
            break
        done = text.rfind("\n", 0, min(ends)) + 1      # the start of the line that ends the tables
        pieces.append(_SCHED_DEBUG + "\n")          # keeps its role as the end of the last task's trace
        start = text.find(_SCHED_DEBUG, done)
    pieces.append(text[done:])
    return "".join(pieces)


# Kernel lines are shorter than 1 KB (a printk record holds at most 1024 bytes); a longer line is not the
# kernel's, and is cut here so that no line costs more than a bounded amount of work.
MAX_LINE = 1024
_LONG_LINE = re.compile(r"^([^\n]{%d})[^\n]+" % MAX_LINE, re.M)
# A comm holding a newline (prctl(PR_SET_NAME) allows it): dmesg and consoles print the rest of the task's
# header on the next line(s). A "task:" line this short is never a whole header; it is joined to what
# follows, with the newline shown as the kernel escapes it, so the task (and its state) is not lost.
_SPLIT_HEADER = re.compile(r"^(task:[^\n]{0,15})\n[ \t]*(?=(?:[^\n]{0,15}\n){0,14}[^\n]{0,15} state:\S)", re.M)


# Frames kept per task (reliable and unreliable each): kernel stacks are far shallower (a 16 KB stack holds a
# few dozen frames), and a made-up one of thousands would make every report of it grow with its depth.
# The frames cut are counted in the task's ``frames_cut``.
MAX_FRAMES = 256


def cut_long_lines(text):
    """``(text, cut)``: ``text`` with every line longer than ``MAX_LINE`` characters cut to that length;
    ``cut`` is how many lines were cut."""
    if len(text) <= MAX_LINE:
        return text, 0
    return _LONG_LINE.subn(r"\1", text)


def cut_lines(lines):
    """``(lines, cut)``: a list of lines, each at most ``MAX_LINE`` characters; ``cut`` counts the cut ones."""
    cut = sum(1 for line in lines if len(line) > MAX_LINE)
    if not cut:
        return list(lines), 0
    return [line[:MAX_LINE] for line in lines], cut


def _join_split_headers(text):
    if "task:" not in text:
        return text
    for _round in range(15):            # a comm has at most 15 bytes, so at most 14 newlines
        joined = _SPLIT_HEADER.sub("\\1\\\\x0a", text)
        if joined == text:
            break
        text = joined
    return text


def strip_terminal(text):
    """A serial or terminal capture without its ANSI escapes, with carriage returns turned into line ends."""
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def clean_text(text):
    """Text as captured -> kernel messages, one a line: ANSI escapes, CRs and log prefixes removed."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = printable_lines(strip_terminal(_without_sched_debug(cut_long_lines(text)[0])))
    if _RARE_PREFIX_SEEN(text, 0, 4096):
        text = _RARE_PREFIX.sub("", text)
    elif text.startswith("[") or "\n[" in text:
        text = _TIMESTAMP.sub("\n", "\n" + text)[1:]
    return _join_split_headers(text)


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _apply_fields(task, rest):
    """Fill pid/tgid/ppid/flags from the ``stack:... pid:... ppid:... flags:...`` part of a header."""
    for name, value in _FIELDS(rest):
        if name == "pid":
            task["pid"] = _int(value)
        elif name == "ppid":
            task["ppid"] = _int(value)
        elif name == "tgid":
            task["tgid"] = _int(value)
        elif name == "flags":
            task["flags"] = value
        elif name == "task_flags":
            task["task_flags"] = value


def _new_task(comm, pid, ppid, state):
    return {"comm": comm, "pid": pid, "ppid": ppid, "state": state, "frames": [], "unreliable_frames": []}


def _idle_task(cpu):
    task = _new_task("swapper/%d" % cpu, 0, None, "R")
    task["cpu"] = cpu
    task["idle"] = True
    return task


def parse_messages(text):
    """Kernel messages (no log prefixes), newline separated -> list of task dicts, in dump order.

    Each task: ``comm``, ``pid``, ``ppid`` (None where the dump does not print it), ``state`` (one
    letter), ``frames`` (function names, innermost first, reliable only), ``unreliable_frames`` (the
    ``?`` ones); when printed: ``tgid``, ``flags``, ``task_flags``, ``workqueue`` (the workqueue a
    kworker runs, or last ran when idle) and ``work`` (the work function it runs); for CPU backtraces:
    ``cpu`` (and ``idle: true`` for a CPU the kernel skipped as idling); ``frames_cut``: how many frames
    past the first ``MAX_FRAMES`` (of each kind) were left out, when any were.
    """
    text = cut_long_lines(text)[0]
    scan = (_SCAN_UML if "\n [<" in text else _SCAN) if "task:" in text else _SCAN_LEGACY
    tasks = []
    append_task = tasks.append
    cur = None           # the task whose trace lines are being read
    frames = unrel = None
    incomplete = False   # a modern header whose "stack: pid: ..." continuation is still to come
    nmi_cpu = None       # "NMI backtrace for cpu N" seen, waiting for its "CPU: N PID:" line
    for symbol, unreliable, mark, address, special, cont, old in scan("\n" + text + "\n"):
        if symbol:
            if frames is not None:
                frames.append(symbol)
            continue
        if unreliable:
            if frames is not None:
                unrel.append(unreliable)
            continue
        if address:
            if frames is not None:
                (unrel if mark.startswith("?") else frames).append(address)
            continue
        if special:
            first = special[0]
            if first == "t":
                header = _MODERN(special)
                if header is None:
                    continue
                cur = _new_task(header.group(1).rstrip(), None, None, header.group(2))
                rest = header.group(3)
                _apply_fields(cur, rest)
                incomplete = "pid:" not in rest
                frames, unrel = cur["frames"], cur["unreliable_frames"]
                append_task(cur)
                nmi_cpu = None
                continue
            if first == "W" and special.startswith("Workqueue: "):
                worker = _WORKQUEUE(special)
                if worker is not None and cur is not None and not frames and "workqueue" not in cur:
                    name = worker.group(1) or worker.group(3)
                    if name:
                        cur["workqueue"] = name
                    if worker.group(2) != "0x0":
                        cur["work"] = worker.group(2)
                continue
            incomplete = False
            if first == "N":
                nmi = _NMI(special)
                cur = frames = unrel = None
                if nmi is not None:
                    cpu = int(nmi.group(1))
                    if nmi.group(2):
                        task = _idle_task(cpu)
                        task["frames"].append(nmi.group(2))
                        append_task(task)
                        nmi_cpu = None
                    else:
                        nmi_cpu = cpu
                continue
            if first == "C":
                if special.startswith("CPU: "):
                    cpu_line = _CPU_LINE(special)
                    if cpu_line is not None and nmi_cpu is not None:
                        cur = _new_task(cpu_line.group(3).rstrip(), int(cpu_line.group(2)), None, "R")
                        cur["cpu"] = int(cpu_line.group(1))
                        frames, unrel = cur["frames"], cur["unreliable_frames"]
                        append_task(cur)
                    else:               # a dump_stack() of something else: its frames are not a task's
                        cur = frames = unrel = None
                    nmi_cpu = None
                    continue
                fallback = _CPU_FALLBACK(special)
                if fallback is not None:
                    cpu = int(fallback.group(1))
                    if fallback.group(2):
                        append_task(_idle_task(cpu))
                        cur = frames = unrel = None
                    else:
                        cur = _new_task(None, None, None, "R")
                        cur["cpu"] = cpu
                        frames, unrel = cur["frames"], cur["unreliable_frames"]
                        append_task(cur)
                continue
            # Anything else matched is a line that ends the current trace.
            cur = frames = unrel = None
            if not special.startswith("Sending NMI"):
                nmi_cpu = None
            continue
        if cont:
            if incomplete:
                _apply_fields(cur, cont)
                incomplete = False
            continue
        if old:
            header = _OLD(old)
            if header is not None:
                cur = _new_task(header.group(1).strip(), int(header.group(4)), int(header.group(5)),
                                header.group(2))
                cur["flags"] = "0x" + header.group(6)
                frames, unrel = cur["frames"], cur["unreliable_frames"]
                append_task(cur)
                incomplete = False
                nmi_cpu = None
    for task in tasks:
        if len(task["frames"]) > MAX_FRAMES or len(task["unreliable_frames"]) > MAX_FRAMES:
            task["frames_cut"] = (max(0, len(task["frames"]) - MAX_FRAMES)
                                  + max(0, len(task["unreliable_frames"]) - MAX_FRAMES))
            del task["frames"][MAX_FRAMES:], task["unreliable_frames"][MAX_FRAMES:]
    return tasks


def parse_lines(lines):
    """Kernel message lines (no log prefixes, as read from ``/dev/kmsg``) -> list of tasks."""
    return parse_messages(_without_sched_debug("\n".join(cut_lines(lines)[0])))


def parse_text(text):
    """Raw dmesg / console / kmsg text (str, bytes, or a list of lines) -> list of tasks."""
    if text is None:
        return []
    if isinstance(text, (list, tuple)):
        text = "\n".join(str(line) for line in text)
    return parse_messages(clean_text(text))


def state_counts(tasks):
    """``{state: count}`` over ``tasks``."""
    counts = {}
    for task in tasks:
        state = task.get("state")
        counts[state] = counts.get(state, 0) + 1
    return counts
