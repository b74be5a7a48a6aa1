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
"""

from __future__ import annotations

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump.untrusted import printable


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


def _tasks_of(value, where):
    if isinstance(value, dict):
        value = value.get("tasks", [])
    if value is None:
        return []
    if not isinstance(value, (list, tuple)):
        raise GroupError("%s is %s, not a task list: expected %s" % (where, type(value).__name__, ACCEPTED))
    return value


def iter_tasks(data):
    """Yield ``(host, task)`` pairs from any accepted input shape."""
    if data is None:
        return
    if isinstance(data, dict):
        for host in data:
            for task in _tasks_of(data[host], "the value for host %r" % (host,)):
                if isinstance(task, dict):
                    yield str(host), task
        return
    if not isinstance(data, (list, tuple)):
        raise GroupError("input is %s: expected %s" % (type(data).__name__, ACCEPTED))
    for item in data:
        if not isinstance(item, dict):
            raise GroupError("item %r is not a dict: expected %s" % (item, ACCEPTED))
        if "tasks" in item and "frames" not in item:
            host = _host_of(item)
            for task in _tasks_of(item["tasks"], "tasks of %r" % (host,)):
                if isinstance(task, dict):
                    yield host, task
        else:
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
