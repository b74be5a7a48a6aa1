"""Folded stacks -> the Plotly flame graph page, and the message when Plotly is missing."""
from __future__ import annotations

import json
import re

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import flamegraph

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import stack_groups

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import parser as sysrq_tasks

from .kmsg_fakes import read_dump

FOLDED = ["dd;entry;sys_write;wait 2", "touch;entry;sys_open;wait 1", "dd;entry;sys_write 1"]


def test_parse_folded():
    assert flamegraph.parse_folded("a;b 3\n\nc 1\n") == [(("a", "b"), 3), (("c",), 1)]
    assert flamegraph.parse_folded(None) == []
    for bad in ("a;b", "a;b x", " 3", "a -1"):
        with pytest.raises(flamegraph.FlameGraphError, match="line 1 is not"):
            flamegraph.parse_folded([bad])


def paths(cols):
    """``{frames path: (id, value, depth)}`` of every node, the path read back through the parent ids."""
    by_id = dict(zip(cols["ids"], zip(cols["labels"], cols["parents"])))

    def path(node):
        label, parent = by_id[node]
        return path(parent) + (label,) if parent else ()
    return {path(node): (node, value, depth) for node, value, depth in zip(cols["ids"], cols["values"], cols["depths"])}


def test_tree_totals_parent_links():
    cols = flamegraph.tree(flamegraph.parse_folded(FOLDED))
    nodes = paths(cols)
    assert nodes[()] == ("all", 4, 0) and cols["labels"][0] == "all" and cols["parents"][0] == ""
    assert nodes[("dd",)][1:] == (3, 1)
    assert nodes[("dd", "entry", "sys_write")][1:] == (3, 3)
    assert nodes[("dd", "entry", "sys_write", "wait")][1:] == (2, 4)
    assert nodes[("touch", "entry", "sys_open", "wait")][1] == 1
    assert len(cols["ids"]) == len(set(cols["ids"])) == len(nodes) == 9
    # every parent is a node, and no child is wider than its parent
    values = dict(zip(cols["ids"], cols["values"]))
    for node, parent, value in zip(cols["ids"], cols["parents"], cols["values"]):
        assert parent == "" or (parent in values and values[parent] >= value), node


def test_a_frame_named_like_the_root_is_its_own_node():
    cols = flamegraph.tree(flamegraph.parse_folded(["all;schedule 2", "n:all 1", "n1 1"]))
    assert len(cols["ids"]) == len(set(cols["ids"])) == 5, cols["ids"]
    assert cols["parents"][cols["labels"].index("all", 1)] == "all"
    assert set(paths(cols)) == {(), ("all",), ("all", "schedule"), ("n:all",), ("n1",)}


def test_colours_are_stable_and_warm():
    assert flamegraph._colour("schedule") == flamegraph._colour("schedule")
    red, green, blue = map(int, re.findall(r"\d+", flamegraph._colour("x")))
    assert red >= 205 and blue < 55


@pytest.mark.skipif(bool(flamegraph.missing()), reason="plotly is not installed for this Python")
def test_render_a_real_fleet_dump():
    fleet = {h: sysrq_tasks.parse_text(read_dump("%s-t.dmesg.txt" % h)) for h in ("deb12", "deb13")}
    lines = stack_groups.folded_lines(fleet)
    page = flamegraph.render_html(lines, title="SysRq t dump <x>", subtitle="2 hosts")
    assert page.lstrip().lower().startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "SysRq t dump &lt;x&gt;" in page                  # the title is escaped
    assert '"type":"icicle"' in page and '"flip":"y"' in page  # root at the bottom: a flame graph
    assert not re.search(r"<script[^>]*\bsrc=", page)         # plotly.js embedded: opens offline
    data = json.loads(re.search(r'Plotly\.newPlot\(\s*"[^"]+",\s*(\[.*?\]),\s*\{', page, re.S).group(1))
    assert data[0]["values"][0] == sum(int(line.rsplit(" ", 1)[1]) for line in lines)


@pytest.mark.skipif(bool(flamegraph.missing()), reason="plotly is not installed for this Python")
def test_render_empty():
    assert "No stacks in this dump" in flamegraph.render_html([])


def test_missing_plotly_says_what_to_do(monkeypatch):
    monkeypatch.setattr(flamegraph, "_IMPORT_ERROR", ImportError("No module named 'plotly'"))
    message = flamegraph.missing()
    assert "plotly" in message and "pip install plotly" in message and "stacks.folded" in message
    with pytest.raises(flamegraph.FlameGraphError, match="not installed"):
        flamegraph.render_html(FOLDED)
