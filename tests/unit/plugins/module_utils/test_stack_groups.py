"""Grouping the tasks of many hosts by stack, and folded stacks for flame graphs."""
from __future__ import annotations

import random

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import stack_groups as g
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import parser as sysrq_tasks

from .kmsg_fakes import read_dump


def task(comm, state, frames, pid=1, **extra):
    out = {"comm": comm, "pid": pid, "ppid": 1, "state": state, "frames": list(frames), "unreliable_frames": []}
    out.update(extra)
    return out


WAIT = ["__schedule", "schedule", "percpu_rwsem_wait"]
IO = ["__schedule", "schedule", "io_schedule"]
FLEET = {
    "web1": [task("dd", "D", WAIT), task("touch", "D", WAIT), task("sshd", "S", IO)],
    "web2": [task("dd", "D", WAIT), task("kworker/0:1", "D", IO)],
    "db1": {"tasks": [task("postgres", "D", IO)], "changed": True},    # a registered sysrq_trigger result
    "idle": {"tasks": []},
}


def test_groups_biggest_first_with_hosts_and_comms():
    groups = g.group_stacks(FLEET)
    assert groups[0] == {"state": "D", "frames": WAIT, "count": 3, "hosts": ["web1", "web2"], "host_count": 2,
                         "comms": ["dd", "touch"]}
    assert groups[1] == {"state": "D", "frames": IO, "count": 2, "hosts": ["db1", "web2"], "host_count": 2,
                         "comms": ["kworker/0:1", "postgres"]}
    assert groups[2]["state"] == "S" and groups[2]["count"] == 1
    assert len(groups) == 3


def test_same_frames_other_state_is_another_group():
    groups = g.group_stacks({"h": [task("a", "D", IO), task("b", "S", IO)]})
    assert [(gr["state"], gr["count"]) for gr in groups] == [("D", 1), ("S", 1)]


def test_input_shapes_give_the_same_groups():
    as_items = [{"host": host, "tasks": value["tasks"] if isinstance(value, dict) else value}
                for host, value in FLEET.items()]
    flat = [dict(t, host=item["host"]) for item in as_items for t in item["tasks"]]
    via_inventory = [{"inventory_hostname": item["host"], "tasks": item["tasks"]} for item in as_items]
    expected = g.group_stacks(FLEET)
    assert g.group_stacks(as_items) == expected
    assert g.group_stacks(flat) == expected
    assert g.group_stacks(via_inventory) == expected


def test_tasks_without_host():
    groups = g.group_stacks([task("a", "D", IO), task("b", "D", IO)])
    assert groups == [{"state": "D", "frames": IO, "count": 2, "hosts": [], "host_count": 0, "comms": ["a", "b"]}]


def test_order_does_not_depend_on_input_order():
    items = [("h%02d" % n, [task("t%d" % n, random.choice("DS"), random.choice([WAIT, IO, WAIT[:2]]))])
             for n in range(40)]
    expected = g.group_stacks(dict(items))
    for _round in range(5):
        random.shuffle(items)
        assert g.group_stacks(dict(items)) == expected


def test_ties_broken_by_state_then_frames():
    groups = g.group_stacks({"h": [task("a", "S", IO), task("b", "D", WAIT), task("c", "D", IO)]})
    assert [(gr["state"], gr["frames"]) for gr in groups] == [("D", IO), ("D", WAIT), ("S", IO)]


def test_states_limit_and_depth():
    assert [gr["state"] for gr in g.group_stacks(FLEET, states=["S"])] == ["S"]
    assert [gr["state"] for gr in g.group_stacks(FLEET, states="D")] == ["D", "D"]
    assert len(g.group_stacks(FLEET, limit=1)) == 1
    shallow = g.group_stacks(FLEET, states=["D"], max_depth=2)
    assert shallow == [{"state": "D", "frames": ["__schedule", "schedule"], "count": 5,
                        "hosts": ["db1", "web1", "web2"], "host_count": 3,
                        "comms": ["dd", "kworker/0:1", "postgres", "touch"]}]


@pytest.mark.parametrize("bad, fragment", [
    ("text", "input is str"),
    ([1, 2], "is not a dict"),
    ({"h": "oops"}, "not a task list"),
])
def test_bad_input(bad, fragment):
    with pytest.raises(g.GroupError) as err:
        g.group_stacks(bad)
    assert fragment in str(err.value) and "a dict of host -> task list" in str(err.value)


def test_a_result_whose_tasks_are_not_a_task_list_is_left_out():
    # a registered result is what its host answered: a compromised host's bad answer fails that host's row
    # of the summary (report.classify), it does not lose every host's stacks
    assert g.group_stacks({"h": {"tasks": "oops"}, "web1": {"tasks": [{"state": "D", "frames": ["f"]}]}}) == [
        {"state": "D", "frames": ["f"], "count": 1, "hosts": ["web1"], "host_count": 1, "comms": []}]
    assert g.folded_lines([{"host": "h", "tasks": "oops"}]) == []


def test_none_and_empty():
    assert g.group_stacks(None) == [] and g.group_stacks({}) == [] and g.group_stacks([]) == []


def test_folded_lines():
    lines = g.folded_lines(FLEET)
    assert lines == [
        "dd;percpu_rwsem_wait;schedule;__schedule 2",
        "kworker/0:1;io_schedule;schedule;__schedule 1",
        "postgres;io_schedule;schedule;__schedule 1",
        "sshd;io_schedule;schedule;__schedule 1",
        "touch;percpu_rwsem_wait;schedule;__schedule 1",
    ]
    assert g.folded_lines(FLEET, states=["S"]) == ["sshd;io_schedule;schedule;__schedule 1"]
    assert g.folded_lines(FLEET, with_comm=False, states="D") == [
        "io_schedule;schedule;__schedule 2", "percpu_rwsem_wait;schedule;__schedule 3"]
    with_host_and_state = g.folded_lines(FLEET, with_host=True, with_state=True)
    assert "web2;D;dd;percpu_rwsem_wait;schedule;__schedule 1" in with_host_and_state


def test_folded_lines_sanitize_and_skip_frameless():
    data = {"h;x": [task("a;b", "S", ["f"]), task("empty", "S", [])]}
    assert g.folded_lines(data, with_host=True) == ["h:x;a:b;f 1"]


def test_real_w_dumps_of_both_kernels_group_together():
    fleet = {guest: sysrq_tasks.parse_text(read_dump("%s-w.dmesg.txt" % guest)) for guest in ("deb12", "deb13")}
    groups = g.group_stacks(fleet, states=["D"])
    assert groups[0]["count"] == 4 and groups[0]["hosts"] == ["deb12", "deb13"]
    assert groups[0]["comms"] == ["dd", "touch"] and groups[0]["frames"][5] == "path_openat"
    assert groups[1]["count"] == 2 and groups[1]["comms"] == ["mkdir"]
    assert len(groups) == 2
    folded = g.folded_lines(fleet)
    assert folded[0].startswith("dd;entry_SYSCALL_64_after_hwframe;do_syscall_64;") and folded[0].endswith(" 2")


def test_real_t_dumps_many_hosts():
    tasks = sysrq_tasks.parse_text(read_dump("deb13-t.dmesg.txt"))
    fleet = {"host%03d" % n: tasks for n in range(100)}
    groups = g.group_stacks(fleet)
    assert sum(gr["count"] for gr in groups) == 100 * len(tasks)
    assert all(gr["host_count"] == 100 for gr in groups)
    assert groups[0]["count"] >= groups[-1]["count"]
