# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Text from managed hosts, made safe to store and show (see docs/threat-model.md).

Process names (any local user sets 15 bytes of one with ``prctl(PR_SET_NAME)``), console text and kernel
log lines are written by whoever controls the host. :func:`printable` keeps them as text that cannot act
on a terminal or split a line: C0 and C1 control characters (ESC, BEL, CR, newline, DEL, CSI...), the
Unicode controls that reorder or break lines (bidi overrides and isolates, line and paragraph separators)
and the characters that show nothing (Unicode format characters, category Cf, and the other default-ignorable
code points: zero-width space and joiners, soft hyphen, BOM, variation selectors, tag characters, Hangul
fillers) are written as visible escapes, ``\\xNN`` (as the kernel writes them in ``/dev/kmsg``), ``\\uNNNN``
or ``\\UNNNNNNNN``: ``web1`` and ``web1`` + U+200B must not look like the same host. A tab stays a tab.
Everything else is kept as it is: escaping for Markdown or HTML is the job of the writer of that format
(:mod:`markdown`, :mod:`flamegraph`).
"""

from __future__ import annotations

import re

# What shows nothing or moves other text, but is not a C0/C1 control: every format character (Unicode
# category Cf: bidi marks, embeddings, overrides and isolates, zero-width space and joiners, word joiner,
# invisible operators, BOM, interlinear annotations, tag characters...), LS and PS, and the other
# default-ignorable code points (soft hyphen, combining grapheme joiner, Hangul fillers, Mongolian and
# Unicode variation selectors, the reserved ranges beside them). A character class body, shared with
# report_files (names).
INVISIBLE = (r"\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u17b4\u17b5"
             r"\u180b-\u180f\u200b-\u200f\u2028-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0"
             r"\ufff0-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3"
             r"\U0001d173-\U0001d17a\U000e0000-\U000e0fff")
# C0 controls but the tab, DEL, C1 controls, the invisible characters above, and lone surrogates (a host's
# JSON can hold "\udc80"; it has no UTF-8, and would fail the write of the file that shows it).
UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\ud800-\udfff%s]" % INVISIBLE)


def _escape(match):
    code = ord(match.group())
    if code < 0x100:
        return "\\x%02x" % code
    return "\\u%04x" % code if code < 0x10000 else "\\U%08x" % code


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


# --- the shape of a host's JSON answer -----------------------------------------------------------------------
# A compromised host can answer any JSON: the readers of its results check what they read with these.

def kind_of(value):
    """What a JSON value is, in words (Ansible hands values over in its own subclasses of str, list...)."""
    for types, kind in ((str, "text"), (bool, "a boolean"), ((int, float), "a number"), (dict, "a dict"),
                        ((list, tuple), "a list"), (type(None), "null")):
        if isinstance(value, types):
            return kind
    return type(value).__name__


def is_number(value, high, whole=False):
    """A finite number from 0 to ``high`` as JSON gives one (a bool is not one; NaN and infinity are out of any
    range); ``whole``: an int only."""
    return (isinstance(value, int if whole else (int, float)) and not isinstance(value, bool)
            and 0 <= value <= high)
