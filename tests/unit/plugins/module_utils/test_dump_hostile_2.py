"""Hostile host text, second review (docs/threat-model.md): escape sequences that are not complete, stacks built to
blow up the flame graph, host names that are report files, results of the wrong shape, comms that look like a
dmesg prefix, invisible characters, and report directories with symlinks in them."""
from __future__ import annotations

import json
import os
import stat
import unicodedata
from types import SimpleNamespace

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.action.report_files import ActionModule
from ansible_collections.magic_sysrq.fleet.plugins.filter.kernel_log_summary import kernel_log_summary
from ansible_collections.magic_sysrq.fleet.plugins.filter.sysrq_dump_files import sysrq_dump_files
from ansible_collections.magic_sysrq.fleet.plugins.filter.sysrq_dump_summary import sysrq_dump_summary
from ansible_collections.magic_sysrq.fleet.plugins.filter.sysrq_stacks_folded import sysrq_stacks_folded
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import flamegraph, kernel_log, markdown
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import parser as sysrq_tasks
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import report as dump_report
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import report_files as rf
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import stack_groups, untrusted
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import console

HEADER = "task:%-15.15s state:%s stack:0     pid:%-5d ppid:%-6d flags:0x00004002"


def blocked_dump(comm, prefix="[  812.121000] ", newline="\r\n"):
    """A w dump on a console: an innocent sleeping task, then a D task named ``comm``."""
    lines = ["sysrq: Show Blocked State", HEADER % ("innocent", "S", 700, 1), "Call Trace:", " <TASK>",
             " __schedule+0x34d/0x9e0", " do_select+0x1/0x2", " </TASK>",
             HEADER % (comm, "D", 812, 790), "Call Trace:", " <TASK>", " __schedule+0x34d/0x9e0",
             " nfs_wait+0x5a/0xd0", " </TASK>"]
    return newline.join(prefix + line for line in lines) + newline


EXPECTED = [("S", 700, ["__schedule", "do_select"]), ("D", 812, ["__schedule", "nfs_wait"])]


def summary_of(tasks):
    return [(t["state"], t["pid"], t["frames"]) for t in tasks]


# --- 1. an escape sequence that is not complete stays text ---------------------------------------------------

@pytest.mark.parametrize("comm", ["x\x1b]", "x\x1b[", "x\x1b[1", "x\x1b[1;", "aaaaaaaaaaaa\x1b[", "aaaaaaaaaaaaa\x1b[",
                                  "x\x1b]0;title", "\x1b]8;;http://e", "x\x1bP", "x\x1b[?", "x\x1b[!"])
@pytest.mark.parametrize("prefix", ["[  812.121000] ", ""])
def test_an_unfinished_escape_in_a_comm_keeps_its_blocked_task(comm, prefix):
    text = blocked_dump(comm, prefix)
    for tasks in (sysrq_tasks.parse_text(text), console.parse(console.lines_of(text), "w")):
        assert summary_of(tasks) == EXPECTED, tasks
        assert "\\x1b" in tasks[1]["comm"] and not untrusted.UNSAFE.search(tasks[1]["comm"])


def test_complete_escape_sequences_are_still_removed():
    text = ("\x1b[0;32m  OK  \x1b[0m] Started \x1b[0;1;39mssh\x1b[0m \x1b[?25h\x1b]0;title\x07\x1b]8;;http://e\x1b\\"
            "link\x1b]8;;\x1b\\ \x1bD\x1b[2 q")
    assert sysrq_tasks.strip_terminal(text) == "  OK  ] Started ssh link \x1b[2 q"
    # an OSC ends with its line when nothing ends it: the next line is text
    assert sysrq_tasks.strip_terminal("a\x1b]0;t\nb\x07") == "a\x1b]0;t\nb\x07"
    assert sysrq_tasks.strip_terminal("x\x1b[" + "1" * 100 + "m") == "x\x1b[" + "1" * 100 + "m"


# --- 2. a deep stack is not a quadratic flame graph --------------------------------------------------------

def deep_dump(depth):
    return (HEADER % ("deep", "D", 1, 0) + "\n" + "".join(" f%d+0x1/0x2\n" % i for i in range(depth))
            + "".join(" ? u%d+0x1/0x2\n" % i for i in range(depth)))


def test_the_parser_keeps_at_most_max_frames_and_counts_the_rest():
    (task,) = sysrq_tasks.parse_text(deep_dump(4000))
    assert task["frames"] == ["f%d" % i for i in range(sysrq_tasks.MAX_FRAMES)]
    assert len(task["unreliable_frames"]) == sysrq_tasks.MAX_FRAMES
    assert task["frames_cut"] == 2 * (4000 - sysrq_tasks.MAX_FRAMES)
    (task,) = sysrq_tasks.parse_lines(deep_dump(4000).splitlines())
    assert task["frames_cut"] == 2 * (4000 - sysrq_tasks.MAX_FRAMES)
    (task,) = sysrq_tasks.parse_text(deep_dump(sysrq_tasks.MAX_FRAMES))
    assert "frames_cut" not in task and len(task["frames"]) == sysrq_tasks.MAX_FRAMES


def test_the_summary_says_which_host_had_frames_cut():
    tasks = sysrq_tasks.parse_text(deep_dump(300))
    summary = dump_report.summarize({"deep": {"tasks": tasks}, "web1": {"tasks": []}})
    assert summary["frames_cut"] == {"deep": 2 * (300 - sysrq_tasks.MAX_FRAMES)}


def test_flame_graph_ids_grow_linearly_with_depth():
    # a compromised host sends its tasks as JSON: the parser's cap is not there; the graph must stay linear anyway
    folded = [";".join("f%d" % i for i in range(4000)) + " 1", "f0;g 2"]
    cols = flamegraph.tree(flamegraph.parse_folded(folded))
    assert len(cols["ids"]) == len(set(cols["ids"])) == 4002
    assert sum(map(len, cols["ids"])) + sum(map(len, cols["parents"])) < 100000     # path ids: 48 MB
    assert cols["ids"][0] == flamegraph.ROOT and cols["parents"][0] == ""
    assert cols["values"][:3] == [3, 3, 1] and cols["depths"][-1] == 2 and cols["labels"][-1] == "g"
    assert cols["parents"][-1] == cols["ids"][1]


@pytest.mark.skipif(bool(flamegraph.missing()), reason="plotly is not installed for this Python")
def test_the_flame_graph_page_of_a_deep_stack_is_small():
    folded = stack_groups.folded_lines({"h": [{"comm": "x", "state": "D", "frames": ["f%d" % i for i in range(4000)]}]})
    empty = len(flamegraph.render_html([]))
    assert len(flamegraph.render_html(folded)) - empty < 1000000       # it was 100 MB


# --- 3. a host named like a file at the report's root ----------------------------------------------------

@pytest.mark.parametrize("host,expected", [
    ("summary.md", "%73ummary.md"), ("summary.json", "%73ummary.json"), ("stacks.folded", "%73tacks.folded"),
    ("flamegraph.html", "%66lamegraph.html"), ("oob.json", "%6Fob.json"), ("Summary.MD", "%53ummary.MD"),
    ("summary.md.x", "summary.md.x"), ("%73ummary.md", "%2573ummary.md"),
])
def test_report_name_is_never_a_report_file(host, expected):
    assert rf.report_name(host) == expected


# every file the playbooks write at a report's root
ROOT_FILES = ["summary.md", "summary.json", "stacks.folded", "flamegraph.html", "oob.json", "sysrq-policy.json",
              "sysrq-policy.junit.xml"]


@pytest.mark.parametrize("host", ROOT_FILES)
def test_a_host_named_like_a_report_file_loses_no_one_the_report(tmp_path, host):
    results = {host: {"tasks": [], "output": ["evil"]}, "web1": {"tasks": [], "output": ["hello"]}}
    files = dump_report.host_files(results)
    files.update(kernel_log.host_files({host: {"status": "answered", "lines": ["l"]}}))
    files.update({name: "root %s\n" % name for name in ROOT_FILES})
    refused = []
    written, _unchanged = rf.write_tree(str(tmp_path), files, refused=refused)
    assert refused == [] and len(written) == len(files)
    for name in ROOT_FILES:
        assert (tmp_path / name).read_text() == "root %s\n" % name
    assert (tmp_path / rf.report_name(host) / "output.txt").read_text() == "evil\n"


def test_an_os_error_on_one_path_refuses_that_path_only(tmp_path):
    root = tmp_path / "r"
    (root / "summary.md").mkdir(parents=True)          # a directory where a file goes (an earlier batch's host)
    (root / "plain").write_text("a file where a directory goes")
    refused = []
    written, _unchanged = rf.write_tree(str(root), {"summary.md": "s", "plain/output.txt": ["x"],
                                                    "web1/output.txt": ["y"]}, refused=refused)
    assert [os.path.relpath(p, root) for p in written] == ["web1/output.txt"]
    assert [name for name, _why in refused] == ["summary.md", "plain/output.txt"]
    assert "directory" in refused[0][1].lower()
    assert sorted(os.listdir(root)) == ["plain", "summary.md", "web1"]          # no temporary file left
    assert os.listdir(root / "summary.md") == []
    with pytest.raises(OSError):
        rf.write_tree(str(root), {"summary.md": "s"})


# --- 4. a result of the wrong shape fails its host, not the report -------------------------------------

GOOD = {"tasks": [{"comm": "a", "state": "D", "frames": ["f"], "pid": 1}], "output": ["x"]}
MALFORMED = {
    "tasks of text": {"tasks": ["x"], "output": []},
    "lost_records text": {"tasks": [], "lost_records": "many"},
    "lost_records inf": {"tasks": [], "lost_records": float("inf")},
    "lost_records negative": {"tasks": [], "lost_records": -1},
    "lost_records huge": {"tasks": [], "lost_records": 10 ** 30},
    "state list": {"tasks": [{"comm": "a", "state": [], "frames": []}]},
    "state dict": {"tasks": [{"comm": "a", "state": {"x": 1}, "frames": []}]},
    "comm list": {"tasks": [{"comm": ["a"], "state": "D", "frames": []}]},
    "frames int": {"tasks": [{"comm": "a", "state": "D", "frames": 5}]},
    "frames text": {"tasks": [{"comm": "a", "state": "D", "frames": "f"}]},
    "frames of dicts": {"tasks": [{"comm": "a", "state": "D", "frames": [{}]}]},
    "frames int and text": {"tasks": [{"comm": "a", "state": "D", "frames": [1]}, {"comm": "a", "state": "D",
                                                                                   "frames": ["x"]}]},
    "frames_cut text": {"tasks": [{"comm": "a", "state": "D", "frames": [], "frames_cut": "x"}]},
    "output int": {"tasks": [], "output": 5},
    "output text": {"tasks": [], "output": "abc"},
    "output of dicts": {"tasks": [], "output": [{}]},
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_result_fails_its_own_host_only(name):
    results = {"web1": GOOD, "evil": MALFORMED[name]}
    assert dump_report.classify(MALFORMED[name])[1].startswith("malformed result: ")
    summary = dump_report.summarize(results)
    assert summary["hosts_answered"] == ["web1"] and list(summary["failed"]) == ["evil"]
    assert summary["failed"]["evil"].startswith("malformed result: ")
    assert [(g["hosts"], g["frames"]) for g in summary["groups"]] == [(["web1"], ["f"])]
    assert sorted(dump_report.host_files(results)) == ["web1/output.txt", "web1/tasks.json"]
    assert stack_groups.folded_lines(results) == ["a;f 1"]
    assert stack_groups.group_stacks(results) == summary["groups"]
    # the filters the playbooks call on the registered results
    assert sysrq_dump_summary(results)["failed"] == summary["failed"]
    assert sysrq_stacks_folded(results) == ["a;f 1"]
    assert sorted(sysrq_dump_files(results)) == ["web1/output.txt", "web1/tasks.json"]


def test_a_task_list_with_one_malformed_task_is_left_out_of_the_groups():
    assert stack_groups.group_stacks({"h": [{"state": "D", "frames": ["f"]}, {"state": "D", "frames": 5}]}) == []
    assert stack_groups.group_stacks([{"host": "h", "tasks": [{"frames": [1]}]}]) == []
    # a list of tasks: each task stands alone
    assert len(stack_groups.group_stacks([{"state": "D", "frames": ["f"]}, {"state": "D", "frames": 5}])) == 1


CRASH = {"path": "/var/crash/1/dmesg.1", "mtime": 1700000000.0, "text": "x"}
GOOD_LOG = {"status": "answered", "lines": ["2026-11-22T10:30:00,000000+00:00 l"], "crash_files": [CRASH]}


@pytest.mark.parametrize("bad", [{"mtime": "abc"}, {"mtime": 1e20}, {"mtime": float("inf")}, {"mtime": float("nan")},
                                 {"mtime": -1}, {"mtime": True}, {"mtime": [1]}, {"path": 5}, {"text": 5},
                                 {"name": ["x"]}, {"size": "big"}, {"size": float("inf")}])
@pytest.mark.parametrize("fetched", [False, True])
def test_a_malformed_crash_file_fails_its_own_host_only(bad, fetched):
    crash = dict(CRASH, **bad)
    if fetched:          # as collect_dmesg.yml has it: a fetch result whose item is the host's find entry
        outer = {k: v for k, v in crash.items() if k in ("name", "text")}
        crash = dict(outer, item={k: v for k, v in crash.items() if k not in outer}, dest="/nowhere")
    hosts = {"web1": GOOD_LOG, "evil": dict(GOOD_LOG, crash_files=[crash])}
    summary = kernel_log.summarize(hosts)
    assert summary["failed"] == ["evil"] and summary["answered"] == 1
    assert summary["hosts"]["evil"]["msg"].startswith("malformed result: ")
    assert [c["host"] for c in summary["crashes"]] == ["web1"]
    assert sorted(kernel_log.host_files(hosts)) == ["web1/dmesg.txt"]
    assert kernel_log_summary(hosts)["failed"] == ["evil"]


@pytest.mark.parametrize("data", ["text", ["x"], {"status": "answered", "lines": 5}, {"status": "answered",
                                  "crash_files": "x"}, {"status": "answered", "crash_files": [5]}, {"status": ["x"]}])
def test_malformed_collected_data_fails_its_own_host_only(data):
    summary = kernel_log.summarize({"web1": GOOD_LOG, "evil": data})
    assert summary["failed"] == ["evil"] and summary["hosts"]["evil"]["msg"].startswith("malformed result: ")
    assert sorted(kernel_log.host_files({"web1": GOOD_LOG, "evil": data})) == ["web1/dmesg.txt"]


# --- 5. a comm that looks like a dmesg -x prefix ------------------------------------------------------------

@pytest.mark.parametrize("prefix", [
    "[  812.121000] ", "", "Dec 02 10:31:02 web1 kernel: ", "2026-12-02T10:31:02+0000 web1 kernel: ",
    "2026-12-02T10:31:02,123456+00:00 ", "kern  :info  : [  812.121000] ", "kern  :info  : ",
    "kern  :info  : 2026-12-02T10:31:02,123456+00:00 ", "<6>[  812.121000] ",
])
@pytest.mark.parametrize("comm", ["abc:", "kern:", "a :b", "info:", "x kernel:"])
def test_a_comm_like_a_facility_and_level_keeps_its_task(prefix, comm):
    tasks = sysrq_tasks.parse_text(blocked_dump(comm, prefix, newline="\n"))
    assert summary_of(tasks) == EXPECTED and tasks[1]["comm"] == comm.strip()


@pytest.mark.parametrize("prefix", ["kern  :info  : ", "daemon:notice: ", "local7:debug : ", "authpriv:err   : ",
                                    "user  :warn  : [  812.121000] "])
def test_dmesg_x_prefixes_are_removed(prefix):
    tasks = sysrq_tasks.parse_text(blocked_dump("dd", prefix, newline="\n"))
    assert summary_of(tasks) == EXPECTED and tasks[1]["comm"] == "dd"


# --- 6. invisible characters --------------------------------------------------------------------------

INVISIBLE = {"\u200b": "\\u200b", "\u2060": "\\u2060", "\ufeff": "\\ufeff", "\u00ad": "\\xad", "\u034f": "\\u034f",
             "\U000e0041": "\\U000e0041", "\U000e007f": "\\U000e007f", "\u202a": "\\u202a", "\u2066": "\\u2066",
             "\u180e": "\\u180e", "\ufe0f": "\\ufe0f", "\u3164": "\\u3164", "\u200d": "\\u200d"}


@pytest.mark.parametrize("char", sorted(INVISIBLE))
def test_invisible_characters_are_shown_and_named_apart(char):
    assert untrusted.printable("web1" + char) == "web1" + INVISIBLE[char]
    assert untrusted.printable_lines("web1" + char + "\n") == "web1" + INVISIBLE[char] + "\n"
    assert markdown.code("web1" + char) == "`web1%s`" % INVISIBLE[char]
    name = rf.report_name("web1" + char)
    assert name == "web1" + "".join("%%%02X" % b for b in char.encode("utf-8"))


def test_every_format_character_is_escaped():
    missed = [hex(code) for code in range(0x110000)
              if unicodedata.category(chr(code)) == "Cf" and not untrusted.UNSAFE.match(chr(code))]
    assert missed == []
    assert untrusted.printable("caf\u00e9 \u4e2d \U0001f600 a\tb") == "caf\u00e9 \u4e2d \U0001f600 a\tb"


def test_a_lone_surrogate_is_shown_and_written(tmp_path):
    # JSON from a host may hold "\udc80": no UTF-8 has it, and writing it failed the whole report
    assert rf.report_name("a\udc80b") == "a%ED%B2%80b"
    assert untrusted.printable("a\udc80b") == "a\\udc80b" and markdown.code("\ud800") == "`\\ud800`"
    assert rf.write_tree(str(tmp_path), {"f": ["raw \udc80"]})[0] == [str(tmp_path / "f")]
    assert (tmp_path / "f").read_text() == "raw \\udc80\n"


# --- 7. report_files: symlinks, ~ in dest, mode ---------------------------------------------------------

def test_a_symlink_inside_dest_does_not_lead_out(tmp_path):
    dest, outside = tmp_path / "report", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "web1").symlink_to("../outside")
    (dest / "link.txt").symlink_to(outside / "target.txt")
    refused = []
    written, _unchanged = rf.write_tree(str(dest), {"web1/output.txt": ["x"], "web1/sub/f": "y", "link.txt": "z",
                                                    "web2/output.txt": ["ok"]}, refused=refused)
    assert os.listdir(outside) == []
    assert [os.path.relpath(p, dest) for p in written] == ["web2/output.txt"]
    assert sorted(name for name, _why in refused) == ["link.txt", "web1/output.txt", "web1/sub/f"]
    assert "symlink" in refused[0][1]
    with pytest.raises(rf.ReportFilesError, match="symlink"):
        rf.write_tree(str(dest), {"web1/output.txt": ["x"]})


def test_dest_may_itself_be_a_symlink(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    written, _unchanged = rf.write_tree(str(tmp_path / "alias"), {"a/b": "x"})
    assert len(written) == 1 and (tmp_path / "real" / "a" / "b").read_text() == "x"


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_mode_is_applied_when_the_content_is_unchanged(tmp_path):
    path = str(tmp_path / "f")
    assert rf.write_tree(str(tmp_path), {"f": "x"}, mode=0o644) == ([path], [])
    assert rf.write_tree(str(tmp_path), {"f": "x"}, mode=0o600, check_mode=True) == ([path], [])
    assert _mode(path) == 0o644
    assert rf.write_tree(str(tmp_path), {"f": "x"}, mode=0o600) == ([path], [])
    assert _mode(path) == 0o600 and (tmp_path / "f").read_text() == "x"
    assert rf.write_tree(str(tmp_path), {"f": "x"}, mode=0o600) == ([], [path])


def run_action(args, check_mode=False):
    task = SimpleNamespace(args=args, async_val=0, check_mode=check_mode, action="magic_sysrq.fleet.report_files")
    connection = SimpleNamespace(_shell=SimpleNamespace(tmpdir="/nonexistent"))
    return ActionModule(task, connection, None, None, None, None).run(task_vars={})


def test_the_action_expands_dest_like_a_path_option(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("REPORTS_UNDER_TEST", str(tmp_path / "env"))
    monkeypatch.chdir(tmp_path)
    result = run_action({"dest": "~/reports", "files": {"a.txt": "x"}})
    assert result["dest"] == str(tmp_path / "home" / "reports") and result["changed"]
    assert (tmp_path / "home" / "reports" / "a.txt").read_text() == "x" and not (tmp_path / "~").exists()
    result = run_action({"dest": "$REPORTS_UNDER_TEST/r", "files": {"a.txt": "x"}})
    assert (tmp_path / "env" / "r" / "a.txt").exists()


def test_the_action_changes_a_mode_alone(tmp_path):
    args = {"dest": str(tmp_path), "files": {"a.txt": "x"}}
    assert run_action(args)["changed"] and _mode(tmp_path / "a.txt") == 0o644
    assert not run_action(args)["changed"]
    result = run_action(dict(args, mode="0600"))
    assert result["changed"] and result["written"] == [str(tmp_path / "a.txt")] and _mode(tmp_path / "a.txt") == 0o600
    assert not run_action(dict(args, mode="0600"))["changed"]


def test_the_action_reports_an_os_error_per_file(tmp_path):
    (tmp_path / "summary.md").mkdir()
    result = run_action({"dest": str(tmp_path), "files": {"summary.md": "s", "web1/output.txt": ["x"]}})
    assert result["written"] == [str(tmp_path / "web1" / "output.txt")] and list(result["refused"]) == ["summary.md"]
    assert json.dumps(result)
