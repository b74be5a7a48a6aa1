# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kernel command-line tokens and the editing model: split, parse one argument, edit a token list.


Editing model
    A command line is an ordered list of tokens, split on whitespace outside
    double quotes (the kernel's own rule). A token is ``name`` (a flag such as
    ``quiet``) or ``name=value``; dashes and underscores in a name are the same
    to the kernel. Tokens after ``--`` belong to init and are never touched.

    ``present`` of ``name=value``: for a single-valued name any ``name=other``
    is replaced (in place when possible) and duplicates of other values go.
    For a repeatable name (``console`` and the few in :data:`REPEATABLE`) the
    argument is added when missing; with ``position: last`` the listed
    arguments of that name are moved after every other argument of the same
    name, in the order listed (the last ``console=`` becomes /dev/console).
    ``absent`` of ``name=value`` removes exactly that token; ``absent`` of a
    bare ``name`` removes the flag and every ``name=...``.

    An argument counts as present only when every boot entry has it.
"""

from __future__ import annotations


STATES = ("present", "absent")
POSITIONS = ("keep", "last")
BACKENDS = ("auto", "grub_debian", "grubby", "grub_suse", "systemd_boot")

# Names the kernel (or the initramfs) accepts more than once, where every occurrence counts.
REPEATABLE = frozenset((
    "console", "memmap", "hugepagesz", "hugepages", "ip", "systemd.setenv",
    "rd.lvm.lv", "rd.luks.uuid", "rd.luks.name", "rd.md.uuid",
))


# What a requested argument may hold. grub-mkconfig copies GRUB_CMDLINE_* unquoted onto the ``linux`` line of
# grub.cfg, where GRUB's script lexer treats ; & | < > { } ( ) as operators, # as a comment, $ and quotes as
# expansions, [ as a command and * ? as wildcards; systemd-boot and grubby lines are no safer to hand such text.
# So an argument may hold only characters that mean nothing to GRUB script or a shell: ASCII letters and digits
# and the punctuation real kernel arguments use (console=ttyS0,115200n8, crashkernel=384M-:128M, root=UUID=...,
# rd.lvm.lv=vg/root, video=1024x768@60, memmap=2G!4G, isolcpus=1-3,5, acpi_osi=!Linux, ip=::::h:eth0:dhcp).
ARG_PUNCTUATION = "_-.,:/=+@%~!^"
ARG_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" + ARG_PUNCTUATION)
ARG_FORM = ("NAME or NAME=VALUE made of ASCII letters, digits and %s only, e.g. console=ttyS0,115200n8, "
            "crashkernel=256M or sysrq_always_enabled" % " ".join(ARG_PUNCTUATION))


class CmdlineError(Exception):
    """A request or a host state this module cannot handle; the message says what and why."""


def split_cmdline(text):
    """Split a kernel command line into tokens: whitespace separates, except inside double quotes."""
    tokens, cur, quoted = [], [], False
    for ch in text or "":
        if ch.isspace() and not quoted:
            if cur:
                tokens.append("".join(cur))
                cur = []
            continue
        if ch == '"':
            quoted = not quoted
        cur.append(ch)
    if cur:
        tokens.append("".join(cur))
    return tokens


def norm_name(name):
    """The kernel compares parameter names with dashes and underscores as equal."""
    return name.replace("-", "_")


def split_token(token):
    """``(normalized name, value or None)`` of a token."""
    if "=" in token:
        name, value = token.split("=", 1)
        return norm_name(name), value
    return norm_name(token), None


def split_init(tokens):
    """Kernel arguments and the ``--`` tail (arguments for init), which is never edited."""
    if "--" in tokens:
        index = tokens.index("--")
        return list(tokens[:index]), list(tokens[index:])
    return list(tokens), []


class Arg:
    """One requested argument."""

    def __init__(self, text):
        self.text = text
        self.name, self.value = split_token(text)
        self.repeatable = self.name in REPEATABLE

    def __repr__(self):
        return "Arg(%r)" % self.text

    def same(self, token):
        """``token`` is this argument (name compared the kernel's way, value exactly)."""
        return split_token(token) == (self.name, self.value)

    def named(self, token):
        return split_token(token)[0] == self.name

    def conflicts(self, token):
        """``token`` sets this single-valued name to something else."""
        return not self.repeatable and self.named(token) and not self.same(token)

    def removes(self, token):
        """What ``absent`` removes: the exact token, or every token of a bare name."""
        return self.same(token) if self.value is not None else self.named(token)


def parse_arg(text):
    """Validate one requested argument; raise CmdlineError naming what is allowed."""
    if not isinstance(text, str):
        raise CmdlineError("argument %r is not a string: each argument must be %s" % (text, ARG_FORM))
    if text == "":
        raise CmdlineError("an argument is empty: each argument must be %s" % ARG_FORM)
    if any(ch.isspace() for ch in text):
        raise CmdlineError("argument %r contains whitespace: give one argument per list item; each must be %s"
                           % (text, ARG_FORM))
    refused = sorted(set(ch for ch in text if ch not in ARG_CHARS))
    if refused:
        raise CmdlineError("argument %r contains %s, which GRUB script or a shell would interpret (a command "
                           "separator, redirection, comment, expansion, quote or control character) or which no "
                           "kernel argument needs: each argument must be %s"
                           % (text, ", ".join(repr(ch) for ch in refused), ARG_FORM))
    if text.startswith("=") or text.startswith("-") or text == "--":
        raise CmdlineError("argument %r has no name: each argument must be %s" % (text, ARG_FORM))
    return Arg(text)


class Request:
    """What the task asks for: arguments, state, position."""

    def __init__(self, args, state="present", position="keep"):
        if state not in STATES:
            raise CmdlineError("state must be one of %s, got %r" % (", ".join(STATES), state))
        if position not in POSITIONS:
            raise CmdlineError("position must be one of %s, got %r" % (", ".join(POSITIONS), position))
        if not args:
            raise CmdlineError("args is empty: give at least one argument, each %s" % ARG_FORM)
        self.args = [parse_arg(a) for a in args]
        self.state = state
        self.position = position
        if state == "present":
            seen = {}
            for arg in self.args:
                if arg.repeatable:
                    continue
                other = seen.setdefault(arg.name, arg)
                if not other.same(arg.text):
                    raise CmdlineError(
                        "args sets %s twice (%s and %s), but %s takes one value; only %s may repeat"
                        % (arg.name, other.text, arg.text, arg.name, ", ".join(sorted(REPEATABLE))))
        self.names = []
        for arg in self.args:
            if arg.name not in self.names:
                self.names.append(arg.name)

    def singles(self):
        """Arguments handled one by one: single-valued ones, and repeatable ones with position keep."""
        if self.state != "present":
            return []
        return [a for a in self.args if not (a.repeatable and self.position == "last")]

    def last_groups(self):
        """``{name: [Arg, ...]}`` of repeatable names that must end the same-name sequence (position last)."""
        groups = {}
        if self.state == "present" and self.position == "last":
            for arg in self.args:
                if arg.repeatable and not any(a.same(arg.text) for a in groups.get(arg.name, [])):
                    groups.setdefault(arg.name, []).append(arg)
        return groups


def _suffix_ok(tokens, name, group):
    same_name = [t for t in tokens if split_token(t)[0] == name]
    tail = same_name[len(same_name) - len(group):] if len(same_name) >= len(group) else None
    return tail is not None and all(arg.same(tok) for arg, tok in zip(group, tail))


def arg_satisfied(tokens, arg, request):
    """Whether one entry's ``tokens`` satisfy ``arg`` of ``request``."""
    head = split_init(tokens)[0]
    if request.state == "absent":
        return not any(arg.removes(t) for t in head)
    if arg.repeatable and request.position == "last":
        return _suffix_ok(head, arg.name, request.last_groups()[arg.name])
    if not any(arg.same(t) for t in head):
        return False
    return not any(arg.conflicts(t) for t in head)


def satisfied(tokens, request):
    """Whether one entry's ``tokens`` satisfy every argument of ``request``."""
    return all(arg_satisfied(tokens, arg, request) for arg in request.args)


def unsatisfied(entries, request):
    """The requested arguments that some entry does not satisfy, in request order."""
    return [arg for arg in request.args if not all(arg_satisfied(e["args"], arg, request) for e in entries)]


def edit_tokens(tokens, request):
    """``tokens`` edited to satisfy ``request``; unchanged (equal list) when already satisfied."""
    head, tail = split_init(tokens)
    if request.state == "absent":
        for arg in request.args:
            head = [t for t in head if not arg.removes(t)]
        return head + tail
    for arg in request.singles():
        if arg_satisfied(head, arg, request):
            continue
        if arg.repeatable:
            head.append(arg.text)
            continue
        if any(arg.same(t) for t in head):
            head = [t for t in head if not arg.conflicts(t)]
            continue
        out, placed = [], False
        for tok in head:
            if arg.conflicts(tok):
                if not placed:
                    out.append(arg.text)
                    placed = True
                continue
            out.append(tok)
        if not placed:
            out.append(arg.text)
        head = out
    for name, group in request.last_groups().items():
        if _suffix_ok(head, name, group):
            continue
        head = [t for t in head if not any(a.same(t) for a in group)]
        head.extend(a.text for a in group)
    return head + tail


def common_args(entries):
    """Arguments every entry has, in the first entry's order."""
    if not entries:
        return []
    out = []
    for tok in entries[0]["args"]:
        if tok not in out and all(tok in e["args"] for e in entries[1:]):
            out.append(tok)
    return out


def managed_differs(configured, active, names):
    """Whether ``configured`` and ``active`` token lists differ in the arguments named ``names``."""
    for name in names:
        if [t for t in configured if split_token(t)[0] == name] != [t for t in active if split_token(t)[0] == name]:
            return True
    return False
