"""Writing a report's files in one step: atomic, only when changed, never outside the directory."""
from __future__ import annotations

import os

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import report as dump_report
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import report_files as rf


def test_write_tree_creates_dirs_and_writes_lines_and_text(tmp_path):
    written, unchanged = rf.write_tree(str(tmp_path / "r"), {"a/output.txt": ["x", "y"], "summary.md": "# s\n",
                                                             "empty": None})
    assert sorted(os.path.relpath(p, tmp_path / "r") for p in written) == ["a/output.txt", "empty", "summary.md"]
    assert unchanged == []
    assert (tmp_path / "r" / "a" / "output.txt").read_text() == "x\ny\n"
    assert (tmp_path / "r" / "empty").read_text() == ""
    assert oct((tmp_path / "r" / "summary.md").stat().st_mode & 0o777) == "0o644"
    written, unchanged = rf.write_tree(str(tmp_path / "r"), {"a/output.txt": ["x", "y"], "summary.md": "# t\n"})
    assert [os.path.basename(p) for p in written] == ["summary.md"] and len(unchanged) == 1
    assert not [n for n in os.listdir(tmp_path / "r") if n.startswith(".")]       # no temporary files left


def test_check_mode_writes_nothing(tmp_path):
    written = rf.write_tree(str(tmp_path / "r"), {"f": "x"}, check_mode=True)[0]
    assert written == [str(tmp_path / "r" / "f")] and not (tmp_path / "r").exists()


@pytest.mark.parametrize("name", ["../x", "/etc/passwd", "a/../../x", "", "."])
def test_paths_stay_inside(tmp_path, name):
    with pytest.raises(rf.ReportFilesError, match="not a relative path inside"):
        rf.write_tree(str(tmp_path), {name: "x"})


def test_bad_input(tmp_path):
    with pytest.raises(rf.ReportFilesError, match="dest"):
        rf.plan("", {"a": "x"})
    with pytest.raises(rf.ReportFilesError, match="dict of relative path"):
        rf.plan(str(tmp_path), ["a"])
    with pytest.raises(rf.ReportFilesError, match="give text, or a list of lines"):
        rf.plan(str(tmp_path), {"a": 3})
    assert rf.plan(str(tmp_path), {"./a//b": b"\xc3\xa9"}) == [(str(tmp_path / "a" / "b"), "\u00e9")]


def test_dump_host_files_only_for_answering_hosts():
    results = {"a": {"tasks": [{"pid": 2, "state": "D"}], "output": ["sysrq: Show Blocked State"]},
               "b": {"unreachable": True}, "c": None}
    files = dump_report.host_files(results)
    assert sorted(files) == ["a/output.txt", "a/tasks.json"]
    assert files["a/output.txt"] == ["sysrq: Show Blocked State"]
    assert '"pid": 2' in files["a/tasks.json"] and files["a/tasks.json"].endswith("\n")
    assert dump_report.host_files(results, hosts=["b", "c"]) == {}
