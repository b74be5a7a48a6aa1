# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel log selection for ``collect_dmesg.yml``: levels at or above a threshold, records since a time,
and the fleet summary of what was collected (with the panic reason of every crash dmesg).

Records come from ``dmesg --time-format=iso``: ``2026-11-22T10:31:02,123456+00:00 message``. The time
filter runs on the controller, so it works with any util-linux that prints ISO times (2.26 and later).
"""

from __future__ import annotations

import datetime
import re

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump.panic_reason import panic_reason
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump.report_files import report_name
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump.untrusted import is_number, kind_of, printable

# syslog severities, most severe first, as dmesg --level names them.
LEVELS = ("emerg", "alert", "crit", "err", "warn", "notice", "info", "debug")
_ALIASES = {"emergency": "emerg", "critical": "crit", "error": "err", "warning": "warn", "panic": "emerg"}
_RELATIVE = re.compile(r"^-?\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?|w|weeks?)$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# dmesg --time-format=iso: 2026-11-22T10:31:02,123456+00:00 (comma or dot before the fraction).
_ISO_RECORD = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:[,.](\d+))?([+-]\d\d:?\d\d|Z)? ")


class KernelLogError(ValueError):
    """A level or time that cannot be understood; the message lists what is accepted."""


def level_name(level):
    """A level name or number (0-7) -> its dmesg name; raises KernelLogError."""
    if level is None:
        return None
    text = str(level).strip().lower()
    if text.isascii() and text.isdigit() and int(text) < len(LEVELS):
        return LEVELS[int(text)]
    text = _ALIASES.get(text, text)
    if text not in LEVELS:
        raise KernelLogError("unknown kernel log level %r: use one of %s, or 0-7" % (level, ", ".join(LEVELS)))
    return text


def levels_at_or_above(level):
    """``err`` -> ``['emerg', 'alert', 'crit', 'err']``; None or '' -> [] (every level)."""
    if level is None or str(level).strip() == "":
        return []
    name = level_name(level)
    return list(LEVELS[:LEVELS.index(name) + 1])


def _aware(moment):
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.timezone.utc)


def parse_since(since, now=None):
    """When to start: None/'' /'boot' -> None (the whole log since boot); ``-2h``/``30m``/``1d`` -> that long
    before ``now`` (UTC); an ISO date or time (``2026-11-22``, ``2026-11-22 10:30``, ``2026-11-22T10:30:00+01:00``;
    UTC when no offset is given) -> that moment. Raises KernelLogError."""
    if since is None:
        return None
    if isinstance(since, datetime.datetime):
        return _aware(since)
    text = str(since).strip()
    if text.lower() in ("", "boot", "since-boot", "all"):
        return None
    match = _RELATIVE.match(text.lower())
    if match:
        seconds = float(match.group(1)) * _UNITS[match.group(2)[0]]
        now = _aware(now) if now is not None else datetime.datetime.now(datetime.timezone.utc)
        return now - datetime.timedelta(seconds=seconds)
    candidate = text.replace(" ", "T", 1)
    if candidate.endswith("Z"):
        candidate = candidate[:-1] + "+00:00"
    try:
        return _aware(datetime.datetime.fromisoformat(candidate))
    except ValueError:
        raise KernelLogError(
            "cannot read since=%r: use 'boot', a duration back from now (30m, 2h, 1d), or an ISO date or time "
            "(2026-11-22, '2026-11-22 10:30', 2026-11-22T10:30:00+01:00; UTC unless an offset is given)"
            % (since,)) from None


def record_time(line):
    """The time of a ``dmesg --time-format=iso`` line, or None for a line without one."""
    match = _ISO_RECORD.match(line)
    if match is None:
        return None
    stamp, fraction, offset = match.groups()
    moment = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S")
    if fraction:
        moment = moment.replace(microsecond=int(fraction[:6].ljust(6, "0")))
    if offset and offset != "Z":
        sign = -1 if offset[0] == "-" else 1
        digits = offset[1:].replace(":", "")
        delta = datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:4]))
        return moment.replace(tzinfo=datetime.timezone(sign * delta))
    return moment.replace(tzinfo=datetime.timezone.utc)


def select_since(text, since=None, now=None):
    """The lines of ``text`` (dmesg ISO output) at or after ``since``. A line without a time (a continuation)
    goes with the record before it. Returns a list of lines."""
    if text is None:
        return []
    # a host's log lines, written to <host>/dmesg.txt: control characters escaped (docs/threat-model.md)
    lines = [printable(line) for line in (text.splitlines() if isinstance(text, str) else text)]
    start = parse_since(since, now=now)
    if start is None:
        return lines
    kept = []
    keep = False
    for line in lines:
        moment = record_time(line)
        if moment is not None:
            keep = moment >= start
        if keep:
            kept.append(line)
    return kept


def span(lines):
    """``(first, last)``: the ISO times of the first and last lines that carry one (None when none do)."""
    first = last = None
    for line in lines or ():
        moment = _ISO_RECORD.match(str(line))
        if moment:
            first = first or moment.group(0).strip()
            last = moment.group(0).strip()
    return first, last


def _read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError as exc:
        return "(cannot read %s on the controller: %s)" % (path, exc.strerror)


# The latest time a crash file's mtime may say (9999-12-31, the last a datetime or strftime shows).
_MTIME_MAX = 253402300799


def _crash_problem(item):
    """What in a crash file's record is not the shape collect_dmesg.yml gives it ('' when nothing)."""
    if not isinstance(item, dict) or not isinstance(item.get("item") or {}, dict):
        return "a crash file is not a dict"
    entry, text = _crash_entry(item)
    for key in ("name", "path", "local"):
        if not isinstance(entry[key], (str, type(None))):
            return "a crash file's %s is not text" % key
    if not isinstance(text, (str, type(None))):
        return "a crash file's text is not text"
    if entry["mtime"] is not None and not is_number(entry["mtime"], _MTIME_MAX):
        return "a crash file's mtime is not a time"
    if entry["size"] is not None and not is_number(entry["size"], 2 ** 63):
        return "a crash file's size is not a size"
    return ""


def _problem(data):
    """What in one host's collected data is not the shape collect_dmesg.yml gives it ('' when nothing). A
    compromised host's find result (path, mtime, size) and messages are any JSON it likes: a bad one fails that
    host's row, not the summary of every host."""
    if not isinstance(data, dict):
        return "the collected data is %s, not a dict" % kind_of(data)
    if not isinstance(data.get("status") or "", str):
        return "status is not text"
    if not isinstance(data.get("lines") or [], list):
        return "lines is not a list"
    if not isinstance(data.get("crash_files") or [], list):
        return "crash_files is not a list"
    for item in data.get("crash_files") or []:
        problem = _crash_problem(item)
        if problem:
            return problem
    return ""


def _crash_entry(item):
    """A crash file as collect_dmesg.yml records it: a ``fetch`` result (``item`` is the ``find`` entry,
    ``dest`` the copy on the controller) or a plain ``{name, path, mtime, local|text}``."""
    found = item.get("item") if isinstance(item.get("item"), dict) else {}
    path = found.get("path") or item.get("path") or item.get("file")
    entry = {
        "name": item.get("name") or (path.rstrip("/").rsplit("/", 1)[-1] if isinstance(path, str) else None),
        "path": path,
        "mtime": found.get("mtime", item.get("mtime")),
        "size": found.get("size", item.get("size")),
        "local": item.get("dest") or item.get("local"),
    }
    return entry, item.get("text")


def summarize(hosts, since=None, level=None, directory=None, now=None):
    """The fleet summary of one collection.

    ``hosts``: ``{host: None or {"status": "answered"|"unreachable"|"failed", "msg": str, "lines": [kept
    log lines], "crash_msg": str, "crash_files": [fetch results, or {name, path, mtime, local|text}]}}``.
    Each crash file's text is read from its copy on the controller (``local``/``dest``) and replaced by its
    panic reason. The log lines are counted, not copied. Returns a JSON-able dict; ``crashes`` lists every
    crash file of the fleet, newest first.
    """
    start = parse_since(since, now=now)
    levels = levels_at_or_above(level)
    out_hosts = {}
    crashes = []
    for host in sorted(hosts or {}):
        data = hosts[host]
        if data is None:
            out_hosts[host] = {"status": "not run", "msg": "no result: the host was not run", "lines": 0,
                               "first": None, "last": None, "crash_files": []}
            continue
        problem = _problem(data)
        if problem:
            out_hosts[host] = {"status": "failed", "msg": "malformed result: %s" % problem, "lines": 0,
                               "first": None, "last": None, "crash_msg": "", "crash_files": []}
            continue
        lines = data.get("lines") or []
        first, last = span(lines)
        files = []
        for item in data.get("crash_files") or []:
            entry, text = _crash_entry(item)
            if text is None and entry["local"]:
                text = _read(entry["local"])
            reason = panic_reason(text or "")
            for key in ("reason", "kind", "panicked", "cause", "headline", "comm", "pid", "cpu", "kernel", "tainted",
                        "time"):
                entry[key] = reason[key]
            entry["frames"] = reason["frames"][:16]
            files.append(entry)
            crashes.append(dict(entry, host=host))
        out_hosts[host] = {"status": data.get("status") or "failed", "msg": data.get("msg") or "",
                           "lines": len(lines), "first": first, "last": last,
                           "crash_msg": data.get("crash_msg") or "", "crash_files": files}
    by_status = {}
    for host, data in out_hosts.items():
        by_status.setdefault(data["status"], []).append(host)
    crashes.sort(key=lambda crash: (-float(crash.get("mtime") or 0), crash["host"], str(crash.get("name"))))
    return {
        "directory": directory,
        "since": "boot" if start is None else start.isoformat(),
        "levels": levels or "all",
        "asked": len(out_hosts),
        "answered": len(by_status.get("answered", [])),
        "unreachable": by_status.get("unreachable", []),
        "failed": by_status.get("failed", []),
        "not_run": by_status.get("not run", []),
        "crash_count": len(crashes),
        "crashes": crashes,
        "hosts": out_hosts,
        # hosts whose directory is not their name (a name that is not a safe file name, see report_name)
        "host_dirs": {host: report_name(host) for host in out_hosts if report_name(host) != host},
    }


def host_files(hosts):
    """``{"<host>/dmesg.txt": [lines]}`` for every host of ``hosts`` (as :func:`summarize` takes them) that
    answered; ``<host>`` is :func:`report_name` of the host name."""
    files = {}
    for host, data in (hosts or {}).items():
        if isinstance(data, dict) and data.get("status") == "answered" and not _problem(data):
            files["%s/dmesg.txt" % report_name(host)] = [printable(line) for line in data.get("lines") or []]
    return files
