# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Untrusted text into Markdown reports, shown literally by any CommonMark or GitHub renderer.

Host names, process names, kernel messages and stack frames come from the hosts (docs/threat-model.md).
In ``summary.md`` each one is a code span (:func:`code`) or a fenced block (:func:`fence`): inside them
Markdown renders no emphasis, no link, no autolink and no HTML. The delimiters are chosen from the text,
one backtick longer than its longest run of backticks, so a frame of three backticks cannot close the
fence. Control characters are escaped first (:func:`untrusted.printable`), so nothing starts a new line.
In a GitHub table cell a ``|`` ends the cell even inside a code span: ``table=True`` escapes it as ``\\|``,
which GitHub turns back into ``|``.
"""

from __future__ import annotations

import re

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump.untrusted import printable

_TICKS = re.compile(r"`+")


def _longest_run(text):
    return max((len(run) for run in _TICKS.findall(text)), default=0)


def code(text, table=False):
    """``text`` as one inline code span (an empty text is a span of one space)."""
    text = printable(text)
    if table:
        text = text.replace("|", "\\|")
    if not text:
        return "` `"
    ticks = "`" * (_longest_run(text) + 1)
    # CommonMark strips one space from each end when both ends have one: pad where the text would touch
    # the delimiters with a backtick or already starts or ends with a space.
    pad = " " if text[0] in "` " or text[-1] in "` " else ""
    return "%s%s%s%s%s" % (ticks, pad, text, pad, ticks)


def fence(lines):
    """``lines`` (a list, or one string) as a fenced code block that nothing in them can close."""
    if lines is None:
        lines = []
    elif isinstance(lines, str):
        lines = lines.split("\n")
    body = [printable(line) for line in lines]
    ticks = "`" * max(3, max((_longest_run(line) for line in body), default=0) + 1)
    return "\n".join([ticks] + body + [ticks])
