"""The incident filters (sysrq_dump_summary, sysrq_flamegraph, panic_reason, kernel_log_*): they are the
module_utils functions, with errors turned into AnsibleFilterError that say what is accepted."""
from __future__ import annotations

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.magic_sysrq.fleet.plugins.filter import (
    kernel_log_levels, kernel_log_since, kernel_log_summary, panic_reason, sysrq_dump_summary, sysrq_flamegraph)
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import flamegraph

SUMMARY = sysrq_dump_summary.FilterModule().filters()["sysrq_dump_summary"]
FLAME = sysrq_flamegraph.FilterModule().filters()["sysrq_flamegraph"]
PANIC = panic_reason.FilterModule().filters()["panic_reason"]
SINCE = kernel_log_since.FilterModule().filters()["kernel_log_since"]
LEVELS = kernel_log_levels.FilterModule().filters()["kernel_log_levels"]
LOG_SUMMARY = kernel_log_summary.FilterModule().filters()["kernel_log_summary"]


def test_sysrq_dump_summary_adds_the_flamegraph_status(monkeypatch):
    results = {"a": {"tasks": [{"state": "D", "frames": ["schedule"], "comm": "dd"}]}, "b": {"unreachable": True}}
    summary = SUMMARY(results, asked=["a", "b"], key="w", directory="/x")
    assert summary["answered"] == 1 and summary["unreachable"] == ["b"]
    assert summary["flamegraph_missing"] == flamegraph.missing()
    monkeypatch.setattr(flamegraph, "_IMPORT_ERROR", ImportError("no plotly"))
    assert "pip install plotly" in SUMMARY(results)["flamegraph_missing"]


@pytest.mark.parametrize("bad,match", [(["a"], "dict of host"), ({"a": "text"}, "not a registered task result"),
                                       ({"a": {"tasks": "x"}}, "failed")])
def test_sysrq_dump_summary_errors(bad, match):
    if match == "failed":
        assert SUMMARY(bad)["failed"] == {"a": "the result has no parsed tasks"}
        return
    with pytest.raises(AnsibleFilterError, match="sysrq_dump_summary: .*" + match):
        SUMMARY(bad)


def test_sysrq_flamegraph_errors(monkeypatch):
    with pytest.raises(AnsibleFilterError, match="sysrq_flamegraph: line 1 is not"):
        FLAME(["no count here"])
    monkeypatch.setattr(flamegraph, "_IMPORT_ERROR", ImportError("no plotly"))
    with pytest.raises(AnsibleFilterError, match="not installed"):
        FLAME(["a 1"])


@pytest.mark.skipif(bool(flamegraph.missing()), reason="plotly is not installed for this Python")
def test_sysrq_flamegraph_page():
    assert "icicle" in FLAME("a;b 2\na;c 1", title="t")


def test_panic_reason_filter():
    assert PANIC("Kernel panic - not syncing: x")["reason"] == "x"
    assert PANIC(None)["reason"] is None
    with pytest.raises(AnsibleFilterError, match="expects kernel log text"):
        PANIC({"not": "text"})


def test_kernel_log_filters():
    assert LEVELS("crit") == ["emerg", "alert", "crit"]
    with pytest.raises(AnsibleFilterError, match="kernel_log_levels: unknown kernel log level 'loud'"):
        LEVELS("loud")
    assert SINCE(["2026-01-01T00:00:00,0+00:00 a", "2027-01-01T00:00:00,0+00:00 b"], "2026-06-01") == [
        "2027-01-01T00:00:00,0+00:00 b"]
    with pytest.raises(AnsibleFilterError, match="kernel_log_since: cannot read since='soon'"):
        SINCE([], "soon")
    assert LOG_SUMMARY({"h": {"status": "answered", "lines": []}})["answered"] == 1
    with pytest.raises(AnsibleFilterError, match="expects a dict"):
        LOG_SUMMARY(["h"])
    with pytest.raises(AnsibleFilterError, match="kernel_log_summary: cannot read"):
        LOG_SUMMARY({}, since="soon")
