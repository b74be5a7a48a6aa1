"""The fleet summary of a sysrq-dump run: answered, unreachable, failed and missing hosts, and the groups."""
from __future__ import annotations

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import report as dump_report

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import parser as sysrq_tasks

from .kmsg_fakes import read_dump


def answered(name, **extra):
    result = {"changed": True, "tasks": sysrq_tasks.parse_text(read_dump(name)), "output": [], "lost_records": 0,
              "timed_out": False, "captured": True}
    result.update(extra)
    return result


RESULTS = {
    "deb12": answered("deb12-w.dmesg.txt"),
    "deb13": answered("deb13-w.dmesg.txt", lost_records=3, timed_out=True),
    "quiet": {"changed": True, "tasks": [], "captured": False},
    "gone": {"unreachable": True, "msg": "Failed to connect to the host via ssh: Connection refused", "changed": False},
    "slow": {"failed": True, "msg": "The task timed out after 180 seconds."},
    "nokey": {"failed": True, "msg": "/proc/sysrq-trigger does not exist", "keys": ["w"], "tasks": []},
    "odd": {"changed": False},
}


def test_classify():
    assert dump_report.classify(None) == ("missing", dump_report.NO_RESULT)
    assert dump_report.classify(RESULTS["gone"])[0] == "unreachable"
    assert dump_report.classify({"unreachable": True}) == ("unreachable", "the host could not be reached")
    assert dump_report.classify(RESULTS["slow"]) == ("failed", "The task timed out after 180 seconds.")
    assert dump_report.classify(RESULTS["nokey"])[0] == "failed"
    assert dump_report.classify({"skipped": True})[0] == "missing"
    assert dump_report.classify(RESULTS["odd"]) == ("failed", "the result has no parsed tasks")
    assert dump_report.classify(RESULTS["deb12"]) == ("answered", "")
    with pytest.raises(dump_report.ReportError, match="not a registered task result"):
        dump_report.classify(["w"])


def test_summary_of_a_mixed_fleet():
    asked = ["deb12", "deb13", "quiet", "gone", "slow", "nokey", "odd", "never"]
    s = dump_report.summarize(RESULTS, asked=asked, key="w", directory="/d/20261122T103000Z")
    assert (s["asked"], s["answered"]) == (8, 3)
    assert s["hosts_answered"] == ["deb12", "deb13", "quiet"]
    assert s["unreachable"] == ["gone"] and "Connection refused" in s["unreachable_reasons"]["gone"]
    assert set(s["failed"]) == {"slow", "nokey", "odd"}
    assert s["not_run"] == {"never": dump_report.NO_RESULT}
    assert s["blocked_per_host"] == {"deb12": 3, "deb13": 3, "quiet": 0}
    assert s["blocked_total"] == 6 and s["tasks_total"] == 6
    assert s["lost_records"] == {"deb13": 3} and s["timed_out"] == ["deb13"] and s["not_captured"] == ["quiet"]
    assert s["states_per_host"]["deb12"] == {"D": 3}
    top = s["groups"][0]
    # deb12's dd and touch and deb13's dd and touch (their w dumps) wait on the same stack
    assert {k: top[k] for k in ("state", "count", "hosts", "host_count", "comms")} == {
        "state": "D", "count": 4, "hosts": ["deb12", "deb13"], "host_count": 2, "comms": ["dd", "touch"]}
    assert len(s["groups"]) == 2


def test_the_dd_and_touch_of_one_host_are_one_group():
    s = dump_report.summarize({"deb12": RESULTS["deb12"], "deb13": {"tasks": []}})
    assert s["groups"][0]["hosts"] == ["deb12"] and s["groups"][0]["comms"] == ["dd", "touch"]
    assert s["groups"][0]["count"] == 2
    assert s["blocked_per_host"]["deb13"] == 0


def test_defaults_and_options():
    s = dump_report.summarize({"a": {"tasks": [{"state": "S", "frames": ["x"]}, {"state": "D", "frames": ["y"]}]}},
                              states=["D"], group_limit=1)
    assert s["hosts_asked"] == ["a"] and [g["state"] for g in s["groups"]] == ["D"]
    assert dump_report.summarize(None)["asked"] == 0
    with pytest.raises(dump_report.ReportError, match="dict of host"):
        dump_report.summarize(["a"])
