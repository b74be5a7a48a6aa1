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


def test_nul_in_a_file_name_is_a_clear_error(tmp_path):
    with pytest.raises(rf.ReportFilesError, match="holds a NUL byte"):
        rf.write_tree(str(tmp_path), {"a\x00b": "x"})


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


# --- any host name is safe as a directory of the report (issue #13, item 2) ---------------------------------

@pytest.mark.parametrize("host,expected", [
    ("web1", "web1"),
    ("db-2.example.com", "db-2.example.com"),
    ("../../escape", "%2E.%2F..%2Fescape"),
    ("..", "%2E."),
    (".", "%2E"),
    (".hidden", "%2Ehidden"),
    ("/etc", "%2Fetc"),
    ("a\\b", "a%5Cb"),
    ("50%", "50%25"),
    ("nul\x00x", "nul%00x"),
    ("esc\x1b[2J", "esc%1B[2J"),
    ("\u202eevil", "%E2%80%AEevil"),
    ("", "%"),
])
def test_report_name_is_one_safe_path_component(host, expected):
    assert rf.report_name(host) == expected
    assert rf._relative(rf.report_name(host)) == expected        # pylint: disable=protected-access


def test_report_name_of_a_very_long_host_name_fits_a_file_name():
    long_a, long_b = "a" * 300, "a" * 299 + "b"
    assert len(rf.report_name(long_a).encode()) <= 255
    assert rf.report_name(long_a) != rf.report_name(long_b)


def test_one_bad_path_does_not_lose_the_others(tmp_path):
    refused = []
    written, _unchanged = rf.write_tree(str(tmp_path / "r"), {"good/output.txt": ["x"], "../../escape/x": "y",
                                                              "nul\x00name": "z", "summary.md": "s"}, refused=refused)
    assert sorted(os.path.relpath(p, tmp_path / "r") for p in written) == ["good/output.txt", "summary.md"]
    assert [name for name, _why in refused] == ["../../escape/x", "nul\x00name"]
    assert "NUL" in refused[1][1]
    assert sorted(os.listdir(tmp_path)) == ["r"]


def test_hostile_host_names_get_their_own_directories():
    results = {"../../escape": {"tasks": [], "output": ["x"]}, "web1": {"tasks": [], "output": ["y"]},
               "%2E.%2F..%2Fescape": {"tasks": [], "output": ["z"]}}
    files = dump_report.host_files(results)
    assert sorted(files) == ["%252E.%252F..%252Fescape/output.txt", "%252E.%252F..%252Fescape/tasks.json",
                             "%2E.%2F..%2Fescape/output.txt", "%2E.%2F..%2Fescape/tasks.json",
                             "web1/output.txt", "web1/tasks.json"]
    summary = dump_report.summarize(results)
    assert summary["host_dirs"] == {"../../escape": "%2E.%2F..%2Fescape", "%2E.%2F..%2Fescape": "%252E.%252F..%252Fescape"}


@pytest.mark.parametrize("value,mode", [("0644", 0o644), ("644", 0o644), ("0o600", 0o600), (420, 0o644),
                                        (0o755, 0o755), (" 0640 ", 0o640)])
def test_file_mode_like_ansible_file_modules(value, mode):
    assert rf.file_mode(value) == mode


@pytest.mark.parametrize("value", ["rw-r--r--", "0999", "", "77777", -1, 0o10000, True, None])
def test_file_mode_refuses_what_is_not_a_mode(value):
    with pytest.raises(rf.ReportFilesError, match="is not a file mode: give an octal string"):
        rf.file_mode(value)
