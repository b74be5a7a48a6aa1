# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tasks from many hosts -> groups of identical stacks, and folded-stack lines for flame graphs.

Input (any of):

* ``{host: [task, ...]}`` or ``{host: result}`` where ``result`` has a ``tasks`` list (a registered
  ``sysrq_trigger`` result);
* ``[{"host": h, "tasks": [...]}, ...]`` (also ``inventory_hostname`` instead of ``host``);
* ``[task, ...]`` where each task may carry its own ``host``.

A task is a dict as :mod:`sysrq_tasks` makes it: ``comm``, ``pid``, ``state``, ``frames`` (innermost
first). Two tasks share a group when their state and reliable frames are equal.

A host's tasks arrive as JSON the host wrote, and a compromised host can write any: the tasks of a host
(or a result) whose list holds anything but such tasks (:func:`tasks_problem`) are left out, not an error
that loses every host's stacks; :mod:`report` lists that host as failed, with why.
"""

from __future__ import annotations

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump.untrusted import is_number, kind_of, printable


class GroupError(ValueError):
    """Input that is not tasks; the message says what is accepted."""


ACCEPTED = ("a dict of host -> task list (or -> a result with 'tasks'), a list of {host, tasks} items, "
            "or a list of tasks")


def _host_of(item):
    for key in ("host", "inventory_hostname", "hostname"):
        value = item.get(key)
        if value is not None:
            return str(value)
    return None


def task_problem(task):
    """What makes ``task`` not a task as the parser makes it ('' when nothing): what the reports read of it
    must have the parser's types (text, a list of text, a count)."""
    if not isinstance(task, dict):
        return "a task is %s, not a dict" % kind_of(task)
    for key in ("comm", "state"):
        if not isinstance(task.get(key), (str, type(None))):
            return "a task's %s is %s, not text" % (key, kind_of(task[key]))
    frames = task.get("frames")
    if frames is not None and not (isinstance(frames, (list, tuple)) and all(isinstance(f, str) for f in frames)):
        return "a task's frames are not a list of text"
    if task.get("frames_cut") is not None and not is_number(task["frames_cut"], 2 ** 63 - 1, whole=True):
        return "a task's frames_cut is not a count"
    return ""


def tasks_problem(tasks):
    """What makes ``tasks`` (one host's) not a list of tasks ('' when nothing)."""
    if not isinstance(tasks, (list, tuple)):
        return "tasks is %s, not a list" % kind_of(tasks)
    for task in tasks:
        problem = task_problem(task)
        if problem:
            return problem
    return ""


def _tasks_of(value, where):
    if isinstance(value, dict):
        # a registered result: what its host answered; a malformed answer is that host's failure (report)
        tasks = value.get("tasks")
        return [] if tasks is None or tasks_problem(tasks) else tasks
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise GroupError("%s is %s, not a task list: expected %s" % (where, type(value).__name__, ACCEPTED))
    return [] if tasks_problem(value) else value


def iter_tasks(data):
    """Yield ``(host, task)`` pairs from any accepted input shape."""
    if data is None:
        return
    if isinstance(data, dict):
        for host in data:
            for task in _tasks_of(data[host], "the value for host %r" % (host,)):
                yield str(host), task
        return
    if not isinstance(data, (list, tuple)):
        raise GroupError("input is %s: expected %s" % (type(data).__name__, ACCEPTED))
    for item in data:
        if not isinstance(item, dict):
            raise GroupError("item %r is not a dict: expected %s" % (item, ACCEPTED))
        if "tasks" in item and "frames" not in item:
            yield from ((_host_of(item), task) for task in _tasks_of(item, None))
        elif not task_problem(item):
            yield _host_of(item), item


def _tasks_in_states(data, states):
    """``(host, task)`` from :func:`iter_tasks`, only the tasks in ``states`` (a list, or ``"D,R"``; None: all)."""
    if isinstance(states, str):
        states = [part for part in states.replace(",", " ").split() if part]
    wanted = None if states is None else frozenset(str(state) for state in states)
    for host, task in iter_tasks(data):
        if wanted is None or task.get("state") in wanted:
            yield host, task


def group_stacks(data, states=None, limit=None, max_depth=None):
    """Groups of identical stacks, biggest first.

    Each group: ``state``, ``frames`` (innermost first), ``count`` (tasks), ``hosts`` (sorted, unique),
    ``host_count``, ``comms`` (sorted, unique). ``states`` keeps only tasks in those states (``['D']``);
    ``max_depth`` compares only the innermost N frames; ``limit`` returns only the first N groups.
    Ties are broken by state then frames, so the order does not depend on the order hosts arrive in.
    """
    groups = {}
    for host, task in _tasks_in_states(data, states):
        state = task.get("state")
        frames = tuple(task.get("frames") or ())
        if max_depth:
            frames = frames[:int(max_depth)]
        key = (state or "", frames)
        group = groups.get(key)
        if group is None:
            group = groups[key] = [0, set(), set()]
        group[0] += 1
        if host is not None:
            group[1].add(host)
        comm = task.get("comm")
        if comm is not None:
            group[2].add(str(comm))
    ordered = sorted(groups.items(), key=lambda item: (-item[1][0], item[0][0], item[0][1]))
    if limit:
        ordered = ordered[:int(limit)]
    out = []
    for (state, frames), (count, hosts, comms) in ordered:
        out.append({"state": state, "frames": list(frames), "count": count, "hosts": sorted(hosts),
                    "host_count": len(hosts), "comms": sorted(comms)})
    return out


def _folded_name(text):
    return printable(text).replace(";", ":")


def folded_lines(data, states=None, with_comm=True, with_host=False, with_state=False):
    """Folded stacks as flame-graph tools read them: ``[host;][state;]comm;outer;...;inner count``.

    Frames are written outermost first (the reverse of the dump). Lines are sorted; equal stacks are
    summed. Tasks without frames are left out.
    """
    counts = {}
    for host, task in _tasks_in_states(data, states):
        state = task.get("state")
        frames = task.get("frames") or ()
        if not frames:
            continue
        parts = []
        if with_host:
            parts.append(_folded_name(host if host is not None else "unknown"))
        if with_state:
            parts.append(_folded_name(state or "?"))
        if with_comm:
            parts.append(_folded_name(task.get("comm") or "unknown"))
        parts.extend(_folded_name(frame) for frame in reversed(frames))
        line = ";".join(parts)
        counts[line] = counts.get(line, 0) + 1
    return ["%s %d" % (line, counts[line]) for line in sorted(counts)]
