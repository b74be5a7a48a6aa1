"""Hostile host names, process names and console text through the real playbooks (issue #13, items 2 and 3):
every controller-side write stays in the report directory, every host keeps its report, and summary.md renders
nothing from the hosts as Markdown or HTML."""
from __future__ import annotations

import html
import json
import os
import re
import sys

import yaml

from .test_incident_playbooks import _closed_port, only_dir, play

# A w dump on the console whose process name and frames try to break out of the report.
COMM = "```<b>x</b>"
FRAME = "```</pre><script>alert(1)</script>"
W_DUMP = ("[  812.120000] sysrq: Show Blocked State\r\n"
          "[  812.121000] task:%-15.15s state:D stack:0     pid:812   ppid:790    flags:0x00004002\r\n"
          "[  812.121100] Call Trace:\r\n[  812.121200]  <TASK>\r\n"
          "[  812.121300]  __schedule+0x34d/0x9e0\r\n[  812.121400]  %s+0x5a/0xd0\r\n"
          "[  812.121600]  </TASK>\r\n"
          "[  812.122000] task:ab\r\n[  812.122000] cd\x1b]0;t\x07       state:D stack:0     pid:813   ppid:790    "
          "flags:0x00004002\r\n[  812.122100]  schedule+0x5a/0xd0\r\n" % (COMM, FRAME))
# Names an inventory may hold when it takes them from cloud tags.
ESCAPE = "../../escape"
MARKUP = "<img src=x onerror=alert(1)>`|"

ALLOWED_TAGS = {"h1", "h2", "h3", "p", "ul", "li", "table", "thead", "tbody", "tr", "th", "td", "code", "pre", "em"}


def render(markdown_text):
    from markdown_it import MarkdownIt  # pylint: disable=import-outside-toplevel
    return MarkdownIt("commonmark", {"html": True}).enable("table").render(markdown_text)


def assert_renders_literally(markdown_text, *texts):
    page = render(markdown_text)
    assert set(re.findall(r"<([a-zA-Z0-9]+)", page)) <= ALLOWED_TAGS, page
    for text in texts:
        assert html.escape(text, quote=False) in page, (text, page)
    return page


def tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _dirs, files in os.walk(root) for f in files)


def test_wedged_dump_of_hostile_hosts_and_names(tmp_path, speaker):
    port = _closed_port()
    hosts = {}
    for number, name in enumerate((ESCAPE, MARKUP)):
        console = tmp_path / ("console%d.serial" % number)
        console.write_text("boot\r\n")
        qmp = speaker(console=str(console), prints={"w": W_DUMP})
        hosts[name] = {"ansible_host": "127.0.0.1", "ansible_port": port, "ansible_user": "root",
                       "ansible_ssh_common_args": "-o ConnectTimeout=3", "oob_method": "qmp",
                       "oob_qmp": {"socket": qmp.path}, "oob_console": {"path": str(console)}, "oob_mask": 186}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    root = tmp_path / "reports" / "dumps"
    rc, out = play(str(inventory), "wedged_host_dump.yml", "-e", "sysrq_dump_root=%s" % root,
                   "-e", "wedged_probe_timeout=10")
    assert rc == 0, out
    assert sorted(os.listdir(tmp_path)) == [
        "console0.serial", "console1.serial", "hosts.yml", "qmp0.sock", "qmp1.sock", "reports"]
    assert os.listdir(tmp_path / "reports") == ["dumps"]
    where = only_dir(str(root))
    files = tree(where)
    assert "%2E.%2F..%2Fescape/output.txt" in files and "<img src=x onerror=alert(1)>`|/tasks.json" in files, files
    summary = json.load(open(os.path.join(where, "summary.json"), encoding="utf-8"))
    # both hosts answered, each with both D tasks: the split header was joined back, nothing hid a task
    assert summary["blocked_per_host"] == {ESCAPE: 2, MARKUP: 2}, summary
    assert summary["host_dirs"] == {ESCAPE: "%2E.%2F..%2Fescape"}
    tasks = json.load(open(os.path.join(where, "%2E.%2F..%2Fescape", "tasks.json"), encoding="utf-8"))
    assert [t["comm"] for t in tasks] == [COMM, "ab\\x0acd"]
    output = open(os.path.join(where, MARKUP, "output.txt"), encoding="utf-8").read()
    assert "\x1b" not in output and "\x07" not in output
    text = open(os.path.join(where, "summary.md"), encoding="utf-8").read()
    assert_renders_literally(text, ESCAPE, MARKUP, COMM, FRAME)
    folded = open(os.path.join(where, "stacks.folded"), encoding="utf-8").read()
    assert "\x1b" not in folded


def test_collect_dmesg_keeps_every_write_inside_the_report(tmp_path):
    """A host named ../../escape that answers, with a crash file: everything lands under the report."""
    crash = tmp_path / "crash" / "202612021500"
    crash.mkdir(parents=True)
    (crash / "dmesg.202612021500").write_text(
        "[   80.1] sysrq: Trigger a crash\n[   80.1] Kernel panic - not syncing: sysrq triggered crash\n"
        "[   80.1] CPU: 0 PID: 812 Comm: %s Not tainted 6.1.0-28-amd64 #1\n[   80.1] Call Trace:\n"
        "[   80.1]  <TASK>\n[   80.1]  %s+0x5a/0xd0\n[   80.1]  </TASK>\n" % (COMM, FRAME))
    local = {"ansible_connection": "local", "ansible_become": False, "ansible_python_interpreter": sys.executable}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {ESCAPE: local, MARKUP: {
        "ansible_host": "127.0.0.1", "ansible_port": _closed_port(), "ansible_ssh_common_args": "-o ConnectTimeout=3"}}}}))
    root = tmp_path / "reports" / "logs"
    rc, out = play(str(inventory), "collect_dmesg.yml", "-e", "collect_dmesg_root=%s" % root,
                   "-e", "crash_dir=%s" % (tmp_path / "crash"))
    assert rc == 0, out
    assert sorted(os.listdir(tmp_path)) == ["crash", "hosts.yml", "reports"], os.listdir(tmp_path)
    where = only_dir(str(root))
    files = tree(where)
    assert "%2E.%2F..%2Fescape/crash/202612021500/dmesg.202612021500" in files, files
    summary = json.load(open(os.path.join(where, "summary.json"), encoding="utf-8"))
    assert summary["crash_count"] == 1 and summary["unreachable"] == [MARKUP]
    assert summary["crashes"][0]["comm"] == COMM
    text = open(os.path.join(where, "summary.md"), encoding="utf-8").read()
    assert_renders_literally(text, ESCAPE, MARKUP, COMM, FRAME)
