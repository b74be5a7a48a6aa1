# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shell assignments in GRUB defaults files: read the literal words of ``VAR=...`` and write them back."""

from __future__ import annotations

import re


class ShellUnsupported(Exception):
    """An assignment whose value this parser will not rewrite (command substitution and the like)."""


_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _parse_expansion(text, pos):
    """Parse ``$...`` at ``pos``; return ``(raw, end)`` or None for a literal ``$``."""
    nxt = text[pos + 1:pos + 2]
    if nxt == "{":
        end = text.find("}", pos + 2)
        if end < 0 or "{" in text[pos + 2:end] or "$" in text[pos + 2:end]:
            raise ShellUnsupported("complex ${...} expansion")
        return text[pos:end + 1], end + 1
    if nxt == "(":
        raise ShellUnsupported("command substitution $(...)")
    match = _NAME_RE.match(text, pos + 1)
    if match:
        return text[pos:match.end()], match.end()
    if nxt and (nxt.isdigit() or nxt in "@*#?-$!"):
        return text[pos:pos + 2], pos + 2
    return None


def parse_shell_word(text, pos):
    """Parse the shell word starting at ``pos`` (an assignment's value).

    Returns ``(items, end)``: ``items`` is a list of ``("c", char)`` literal
    characters and ``("x", raw)`` parameter expansions; ``end`` is where the
    word stops. Raises ShellUnsupported for what it will not rewrite.
    """
    items = []
    n = len(text)
    while pos < n:
        ch = text[pos]
        if ch in " \t\n;&|<>()":
            break
        if ch == "`":
            raise ShellUnsupported("command substitution `...`")
        if ch == "\\":
            if pos + 1 < n and text[pos + 1] == "\n":
                pos += 2
                continue
            if pos + 1 < n:
                items.append(("c", text[pos + 1]))
            pos += 2
            continue
        if ch == "'":
            end = text.find("'", pos + 1)
            if end < 0:
                raise ShellUnsupported("unterminated single quote")
            items.extend(("c", c) for c in text[pos + 1:end])
            pos = end + 1
            continue
        if ch == '"':
            pos += 1
            while True:
                if pos >= n:
                    raise ShellUnsupported("unterminated double quote")
                ch = text[pos]
                if ch == '"':
                    pos += 1
                    break
                if ch == "`":
                    raise ShellUnsupported("command substitution `...`")
                if ch == "\\" and pos + 1 < n and text[pos + 1] in '$`"\\\n':
                    if text[pos + 1] != "\n":
                        items.append(("c", text[pos + 1]))
                    pos += 2
                    continue
                pos = _take(text, pos, items)
            continue
        pos = _take(text, pos, items)
    return items, pos


def _take(text, pos, items):
    """Append the ``$`` expansion or the plain character at ``pos`` to ``items``; return the position after it."""
    if text[pos] == "$":
        exp = _parse_expansion(text, pos)
        if exp:
            items.append(("x", exp[0]))
            return exp[1]
    items.append(("c", text[pos]))
    return pos + 1


def _escape_dq(ch):
    return "\\" + ch if ch in '"\\$`' else ch


class Word:
    """One kernel-level token of an assignment's value: literal text, or opaque (contains an expansion)."""

    def __init__(self, items):
        self.items = items
        self.literal = all(kind == "c" for kind, _value in items)
        self.text = "".join(value for _kind, value in items) if self.literal else None

    @classmethod
    def of(cls, text):
        return cls([("c", c) for c in text])

    def render(self):
        return "".join(_escape_dq(v) if kind == "c" else v for kind, v in self.items)

    def __repr__(self):
        return "Word(%r)" % (self.text if self.literal else self.render())


def words_of(items):
    """Group parsed items into kernel-level tokens (whitespace splits outside kernel double quotes)."""
    words, cur, quoted = [], [], False
    for kind, value in items:
        if kind == "c" and value.isspace() and not quoted:
            if cur:
                words.append(Word(cur))
                cur = []
            continue
        if kind == "c" and value == '"':
            quoted = not quoted
        cur.append((kind, value))
    if cur:
        words.append(Word(cur))
    return words


class Assignment:
    """One ``VAR=value`` in a file's text, with its value as editable words."""

    def __init__(self, var, start, value_start, end, words, error=None):
        self.var = var
        self.start = start
        self.value_start = value_start
        self.end = end
        self.words = words
        self.original = [w.render() for w in words] if words is not None else None
        self.error = error

    @property
    def editable(self):
        return self.error is None

    def tokens(self):
        """Literal tokens (opaque ones left out)."""
        return [w.text for w in self.words if w.literal] if self.words is not None else []

    def changed(self):
        return self.editable and [w.render() for w in self.words] != self.original

    def remove(self, predicate):
        """Remove literal words whose text satisfies ``predicate``; return the removed texts."""
        removed = [w.text for w in self.words if w.literal and predicate(w.text)]
        self.words = [w for w in self.words if not (w.literal and predicate(w.text))]
        return removed

    def render_value(self):
        return '"%s"' % " ".join(w.render() for w in self.words)


def find_assignments(text, var):
    """Every top-level-looking assignment of ``var`` in ``text``, in file order."""
    found = []
    pattern = re.compile(r"^[ \t]*(?:export[ \t]+)?%s=" % re.escape(var), re.M)
    for match in pattern.finditer(text):
        try:
            items, end = parse_shell_word(text, match.end())
            found.append(Assignment(var, match.start(), match.end(), end, words_of(items)))
        except ShellUnsupported as exc:
            found.append(Assignment(var, match.start(), match.end(), match.end(), None, error=str(exc)))
    return found


def render_assignments(text, assignments):
    """``text`` with the changed assignments' values rewritten (double-quoted), everything else kept."""
    out = text
    for asg in sorted((a for a in assignments if a.changed()), key=lambda a: a.value_start, reverse=True):
        out = out[:asg.value_start] + asg.render_value() + out[asg.end:]
    return out
