# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The fleet summary of a SysRq dump: which hosts answered, which did not and why, what they are stuck on.

Input is what ``sysrq_dump.yml`` has on the controller after the dump: for every host asked, the result
registered from :mod:`sysrq_trigger` (``None`` when the host has no result at all). A result is one of:

* answered: a dict with ``tasks`` (and ``output``, ``lost_records``, ``timed_out``...);
* unreachable: ``unreachable: true`` (registered because the play sets ``ignore_unreachable``);
* failed: ``failed: true`` with ``msg`` (a module error, or the task's ``timeout`` running out); or an
  answer of the wrong shape (``tasks`` that are not the parser's, ``lost_records`` that is not a count,
  ``output`` that is not lines): a compromised host can answer any JSON, and it must fail that host's row,
  not the report of every host (``malformed result: ...``).

:func:`summarize` returns a JSON-able dict; the playbook writes it as ``summary.json`` and renders
``summary.md`` from it.
"""

from __future__ import annotations

import json

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump.parser import MAX_FRAMES
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump.report_files import report_name
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump.stack_groups import group_stacks, tasks_problem
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump.untrusted import is_number, printable

NO_RESULT = "no result: the host was not run (skipped, or the play stopped before it)"


class ReportError(ValueError):
    """Input that is not a dict of host -> registered result."""


def _msg(result, default):
    msg = result.get("msg") if isinstance(result, dict) else None
    if not msg:
        return default
    return " ".join(str(msg).split())


def _problem(result):
    """What in an answered result is not the shape sysrq_trigger gives it ('' when nothing)."""
    problem = tasks_problem(result["tasks"])
    if problem:
        return problem
    lost = result.get("lost_records")
    if lost is not None and not is_number(lost, 2 ** 63 - 1, whole=True):
        return "lost_records is not a count"
    output = result.get("output")
    if output is not None and not (isinstance(output, list) and all(isinstance(line, str) for line in output)):
        return "output is not a list of lines"
    return ""


def classify(result):
    """``(status, message)`` of one host's registered result: answered, unreachable, failed or missing. Every
    reader of a result asks this first: only an ``answered`` result is read further, and its shape is checked."""
    if result is None:
        return "missing", NO_RESULT
    if not isinstance(result, dict):
        raise ReportError("a host's result is %s, not a registered task result (dict)" % type(result).__name__)
    if result.get("unreachable"):
        return "unreachable", _msg(result, "the host could not be reached")
    if result.get("failed"):
        return "failed", _msg(result, "the task failed without a message")
    if result.get("skipped"):
        return "missing", _msg(result, "the task was skipped on this host")
    if not isinstance(result.get("tasks"), list):
        return "failed", _msg(result, "the result has no parsed tasks")
    problem = _problem(result)
    if problem:
        return "failed", "malformed result: %s" % problem
    return "answered", ""


def summarize(results, asked=None, key="w", directory=None, states=None, group_limit=None):
    """The fleet summary of one dump.

    ``results``: ``{host: registered result or None}``. ``asked``: the hosts the dump was meant for, in
    order (default: the keys of ``results``); an asked host missing from ``results`` counts as not run.
    ``states``: keep only groups of tasks in these states (default all). ``group_limit``: at most so many
    groups (default all).
    """
    if results is None:
        results = {}
    if not isinstance(results, dict):
        raise ReportError("results must be a dict of host -> registered result, got %s" % type(results).__name__)
    hosts = [str(h) for h in (asked if asked is not None else results)]
    answered, unreachable, failed, missing = [], {}, {}, {}
    tasks_per_host, blocked_per_host, states_per_host = {}, {}, {}
    lost_records, timed_out, not_captured, frames_cut = {}, [], [], {}
    answered_tasks = {}
    for host in hosts:
        result = results.get(host)
        status, message = classify(result)
        if status == "unreachable":
            unreachable[host] = message
        elif status == "failed":
            failed[host] = message
        elif status == "missing":
            missing[host] = message
        else:
            answered.append(host)
            tasks = result["tasks"]
            answered_tasks[host] = tasks
            tasks_per_host[host] = len(tasks)
            counts = {}
            for task in tasks:
                state = task.get("state") or "?"
                counts[state] = counts.get(state, 0) + 1
            states_per_host[host] = counts
            blocked_per_host[host] = counts.get("D", 0)
            lost = result.get("lost_records") or 0
            if lost:
                lost_records[host] = lost
            cut = sum(task.get("frames_cut") or 0 for task in tasks)
            if cut:
                frames_cut[host] = cut
            if result.get("timed_out"):
                timed_out.append(host)
            if result.get("captured") is False:
                not_captured.append(host)
    groups = group_stacks(answered_tasks, states=states, limit=group_limit)
    return {
        "key": key,
        "directory": directory,
        "asked": len(hosts),
        "answered": len(answered),
        "hosts_asked": hosts,
        "hosts_answered": answered,
        "unreachable": sorted(unreachable),
        "unreachable_reasons": unreachable,
        "failed": failed,
        "not_run": missing,
        "lost_records": lost_records,
        "timed_out": timed_out,
        "not_captured": not_captured,
        "frames_cut": frames_cut,       # frames past the parser's MAX_FRAMES, per host that had some
        "max_frames": MAX_FRAMES,
        "tasks_total": sum(tasks_per_host.values()),
        "blocked_total": sum(blocked_per_host.values()),
        "tasks_per_host": tasks_per_host,
        "blocked_per_host": blocked_per_host,
        "states_per_host": states_per_host,
        "groups": groups,
        # hosts whose directory is not their name (a name that is not a safe file name, see report_name)
        "host_dirs": {host: report_name(host) for host in hosts if report_name(host) != host},
    }


def host_files(results, hosts=None):
    """The per-host files of a dump: ``{"<host>/output.txt": [lines], "<host>/tasks.json": json text}`` for
    every answering host of ``hosts`` (default all of ``results``). ``<host>`` is :func:`report_name` of the
    host name: one directory of the report whatever the name holds."""
    files = {}
    for host in (hosts if hosts is not None else list(results or {})):
        result = (results or {}).get(host)
        if classify(result)[0] != "answered":
            continue
        # the host's text, with control characters escaped: whoever runs `cat output.txt` gets no escapes
        files["%s/output.txt" % report_name(host)] = [printable(line) for line in result.get("output") or []]
        files["%s/tasks.json" % report_name(host)] = json.dumps(result["tasks"], indent=4, sort_keys=True) + "\n"
    return files
