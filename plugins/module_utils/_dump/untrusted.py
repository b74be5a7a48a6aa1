# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Text from managed hosts, made safe to store and show (see docs/threat-model.md).

Process names (any local user sets 15 bytes of one with ``prctl(PR_SET_NAME)``), console text and kernel
log lines are written by whoever controls the host. :func:`printable` keeps them as text that cannot act
on a terminal or split a line: C0 and C1 control characters (ESC, BEL, CR, newline, DEL, CSI...) and the
Unicode controls that reorder or break lines (bidi overrides and isolates, line and paragraph separators)
are written as visible escapes, ``\\xNN`` (as the kernel writes them in ``/dev/kmsg``) or ``\\uNNNN``. A tab
stays a tab. Everything else is kept as it is: escaping for Markdown or HTML is the job of the writer of
that format (:mod:`markdown`, :mod:`flamegraph`).
"""

from __future__ import annotations

import re

# C0 controls but the tab, DEL, C1 controls; bidi marks, embeddings, overrides and isolates; LS and PS.
UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")


def _escape(match):
    code = ord(match.group())
    return "\\x%02x" % code if code < 0x100 else "\\u%04x" % code


def printable(text):
    """``text`` (any value; None is '') with every unsafe character written as a visible escape."""
    if text is None:
        return ""
    if not isinstance(text, str):
        text = str(text)
    return UNSAFE.sub(_escape, text)


_UNSAFE_BUT_NEWLINE = re.compile(UNSAFE.pattern.replace(r"\x0a", r"\x0b", 1))


def printable_lines(text):
    """Like :func:`printable`, but line ends (``\\n``) are kept: for text that is a list of lines."""
    if not text:
        return "" if text is None else text
    return _UNSAFE_BUT_NEWLINE.sub(_escape, text)
