"""Text from managed hosts is hostile: process names and console text set by anyone must not inject terminal
escapes, hide a blocked task, or render as markup in the reports (issue #13, item 3)."""
from __future__ import annotations

import html
import json
import re

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import flamegraph, kmsg, markdown, untrusted
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import parser as sysrq_tasks
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import report, stack_groups

from .kmsg_fakes import FakeKmsg, record

# A comm as prctl(PR_SET_NAME) can set it: 15 bytes, any byte but NUL.
HOSTILE_COMMS = ["a\nb", "\x1b]0;pwn\x07", "```<b>x</b>", "x state:R", "<img src=x>", "a|b`c", "\u202eevil"]


def kmsg_header(comm, state="D", pid=4242):
    """The header sched_show_task() prints for a task (``record`` escapes it as the kernel does)."""
    return "task:%-15.15s state:%s stack:0     pid:%-5d ppid:2      flags:0x00004000" % (comm, state, pid)


def capture_lines(messages):
    source = FakeKmsg(baseline=10)
    cap = kmsg.Capture(source=source)
    cap.start()
    source.push(*[record(seq, message) for seq, message in enumerate(messages, 11)])
    return cap.finish(settle=0.05, timeout=5.0)["output"]


def test_unescape_keeps_control_characters_escaped():
    assert kmsg.unescape(b"esc \\x1b[2J bel \\x07 nl \\x0a del \\x7f") == "esc \\x1b[2J bel \\x07 nl \\x0a del \\x7f"
    assert kmsg.unescape(b"caf\\xc3\\xa9 \\x5c tab\\x09") == "caf\u00e9 \\ tab\t"
    # a C1 control (CSI, U+009B) and a bidi override arrive as UTF-8 bytes: escaped after decoding
    assert kmsg.unescape(b"\\xc2\\x9b31m \\xe2\\x80\\xae") == "\\x9b31m \\u202e"


def test_record_with_control_characters_never_reaches_output_raw():
    out = capture_lines(["task:\x1b]0;owned\x07   state:S stack:0 pid:1 ppid:0 flags:0x0"])
    assert out == ["task:\\x1b]0;owned\\x07   state:S stack:0 pid:1 ppid:0 flags:0x0"]
    assert not any(untrusted.UNSAFE.search(line) for line in out)


@pytest.mark.parametrize("comm", HOSTILE_COMMS)
def test_hostile_comm_in_kmsg_keeps_its_d_state_task(comm):
    lines = capture_lines(["sysrq: Show Blocked State", kmsg_header(comm), "Call Trace:", "<TASK>",
                           "__schedule+0x34d/0x9e0", "schedule+0x5a/0xd0", "</TASK>"])
    tasks = sysrq_tasks.parse_lines(lines)
    assert [(t["state"], t["pid"]) for t in tasks] == [("D", 4242)], (lines, tasks)
    assert tasks[0]["frames"] == ["__schedule", "schedule"]
    assert not untrusted.UNSAFE.search(tasks[0]["comm"])
    summary = report.summarize({"h": {"tasks": tasks, "output": lines}})
    assert summary["blocked_total"] == 1 and summary["blocked_per_host"] == {"h": 1}


def test_comm_split_across_console_lines_is_joined_back():
    # dmesg and serial consoles print a record's embedded newline as a new line (with its own prefix)
    text = ("[  812.1] sysrq: Show Blocked State\n[  812.2] task:ab\n[  812.2] cd              state:D stack:0     "
            "pid:77    ppid:2      flags:0x00004000\n[  812.3] Call Trace:\n[  812.3]  schedule+0x5a/0xd0\n")
    tasks = sysrq_tasks.parse_text(text)
    assert [(t["comm"], t["state"], t["pid"], t["frames"]) for t in tasks] == [
        ("ab\\x0acd", "D", 77, ["schedule"])]


def test_comm_that_spells_a_state_cannot_change_the_state():
    tasks = sysrq_tasks.parse_text("task:x state:R     state:D stack:0 pid:9 ppid:2 flags:0x0\n schedule+0x1/0x2\n")
    assert [(t["comm"], t["state"], t["pid"]) for t in tasks] == [("x state:R", "D", 9)]


def test_console_osc_without_terminator_does_not_swallow_the_dump():
    text = ("noise \x1b]0;title never ended\ntask:dd              state:D stack:0 pid:5 ppid:2 flags:0x0\n"
            " schedule+0x1/0x2\n")
    assert [t["pid"] for t in sysrq_tasks.parse_text(text)] == [5]


def test_output_txt_lines_are_printable():
    files = report.host_files({"h": {"tasks": [], "output": ["bell\x07 esc\x1b[31m", "nul\x00"]}})
    assert files["h/output.txt"] == ["bell\\x07 esc\\x1b[31m", "nul\\x00"]


@pytest.mark.parametrize("text,expected", [
    ("web1", "`web1`"),
    ("a`b", "``a`b``"),
    ("```", "```` ``` ````"),
    ("`x", "`` `x ``"),
    ("", "` `"),
    ("a|b", "`a|b`"),
    ("line\nbreak\x1b", "`line\\x0abreak\\x1b`"),
])
def test_markdown_code_span(text, expected):
    assert markdown.code(text) == expected


def test_markdown_code_span_in_a_table_escapes_pipes():
    assert markdown.code("a|b", table=True) == "`a\\|b`"


def test_markdown_fence_is_longer_than_any_backtick_run():
    block = markdown.fence(["```", "<b>x</b>", "````` five"])
    assert block.startswith("``````\n") and block.endswith("\n``````")
    assert markdown.fence([]) == "```\n```"


def _render(text):
    from markdown_it import MarkdownIt
    return MarkdownIt("commonmark", {"html": True, "linkify": False}).enable("table").render(text)


HOSTILE_MD = ["```", "</code></pre><script>alert(1)</script>", "<img src=x onerror=alert(1)>", "[a](http://evil)",
              "**bold**", "a|b", "`", "# heading", "<b>b</b>", "http://evil.example", "&lt;b&gt;"]


@pytest.mark.parametrize("text", HOSTILE_MD)
def test_markdown_helpers_render_as_literal_text(text):
    page = ("| host | n |\n| --- | --- |\n| %s | 1 |\n\n### group: %s\n\n%s\n\nafter\n"
            % (markdown.code(text, table=True), markdown.code(text), markdown.fence([text, "frame"])))
    rendered = _render(page)
    tags = set(re.findall(r"</?([a-zA-Z0-9]+)", rendered))
    assert tags <= {"table", "thead", "tbody", "tr", "th", "td", "h3", "code", "pre", "p"}, rendered
    assert rendered.count("<pre>") == 1 and "<p>after</p>" in rendered, rendered
    # the text itself is shown, literally, in each place
    assert rendered.count(html.escape(text, quote=False)) >= 3, rendered


def page_labels(page):
    """The icicle labels as the page hands them to plotly.js."""
    return json.loads(re.search(r'"labels":(\[[^\]]*\])', page).group(1))


def test_flamegraph_labels_are_escaped_for_plotly():
    tasks = {"h": [{"comm": "<b>x</b>", "state": "D", "frames": ["<a href='http://e'>f</a>", "&lt;", "\x1b[31m"]}]}
    page = flamegraph.render_html(stack_groups.folded_lines(tasks))
    # plotly.js renders <b>, <a href>, <br> and entities in labels: every markup character is an entity
    assert page_labels(page) == ["all", "&lt;b&gt;x&lt;/b&gt;", "\\x1b[31m", "&amp;lt:",
                                 "&lt;a href=&#x27;http://e&#x27;&gt;f&lt;/a&gt;"]
    assert flamegraph.plotly_text('"&<>') == "&quot;&amp;&lt;&gt;"


def test_folded_lines_are_printable():
    lines = stack_groups.folded_lines({"h": [{"comm": "a\x1bb\nc", "state": "D", "frames": ["f\x07"]}]})
    assert lines == ["a\\x1bb\\x0ac;f\\x07 1"]
