# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Boot-time kernel arguments: pure editing of command lines, and one backend per boot loader setup.

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

Backends (same interface: ``read()``, ``plan(request)``, then the shared
:func:`run` writes, runs commands, regenerates, verifies and restores)
    ``grub_debian``  /etc/default/grub or a drop-in in /etc/default/grub.d, update-grub
    ``grub_suse``    /etc/default/grub, grub2-mkconfig -o /boot/grub2/grub.cfg
    ``grubby``       grubby --update-kernel for BLS entries (and RHEL 8 kernelopts),
                     /etc/default/grub and /etc/kernel/cmdline kept in step for new kernels
    ``systemd_boot`` /etc/kernel/cmdline and the options lines of the type #1 loader entries

GRUB defaults files are shell. They are read by sourcing them with /bin/sh in
the order grub-mkconfig does (main file, then the drop-ins), printing the
command-line variables after each file. That is the exact semantics
grub-mkconfig applies (conditionals, command substitution, ``$VAR`` appends
from other packages such as kdump-tools), and the per-file records tell which
file contributed which argument. Edits are made to the literal words of the
``GRUB_CMDLINE_*`` assignments; the edited files are evaluated again the same
way before anything is written, so a change that would not have the intended
effect is refused instead of written.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._host import host_path, read_text

STATES = ("present", "absent")
POSITIONS = ("keep", "last")
BACKENDS = ("auto", "grub_debian", "grubby", "grub_suse", "systemd_boot")

# Names the kernel (or the initramfs) accepts more than once, where every occurrence counts.
REPEATABLE = frozenset((
    "console", "memmap", "hugepagesz", "hugepages", "ip", "systemd.setenv",
    "rd.lvm.lv", "rd.luks.uuid", "rd.luks.name", "rd.md.uuid",
))

GRUB_DEFAULTS = "/etc/default/grub"
GRUB_DEFAULTS_D = "/etc/default/grub.d"
KERNEL_CMDLINE = "/etc/kernel/cmdline"
PROC_CMDLINE = "/proc/cmdline"
OS_RELEASE = ("/etc/os-release", "/usr/lib/os-release")
EFI_FIRMWARE = "/sys/firmware/efi"
BLS_ENTRIES = "/boot/loader/entries"
GRUBENV = ("/boot/grub2/grubenv", "/boot/grub/grubenv")
ESP_ROOTS = ("/efi", "/boot", "/boot/efi")
BIN_DIRS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin")
SHELL = "/bin/sh"

DROPIN_HEADER = (
    "# Kernel arguments for every GRUB entry, managed by magic_sysrq.fleet.kernel_cmdline.\n"
    "# grub-mkconfig sources this file after /etc/default/grub; run update-grub after editing it.\n"
)

ARG_FORM = ("NAME or NAME=VALUE with no whitespace or quotes, e.g. console=ttyS0,115200n8, "
            "crashkernel=256M or sysrq_always_enabled")


class CmdlineError(Exception):
    """A request or a host state this module cannot handle; the message says what and why."""


# ---------------------------------------------------------------------------------------------
# Tokens and arguments
# ---------------------------------------------------------------------------------------------

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


def _split_init(tokens):
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
    if any(ch in "\"'\\`$" for ch in text) or any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise CmdlineError("argument %r contains a quote, backslash, '$', backtick or control character: "
                           "each argument must be %s" % (text, ARG_FORM))
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
    head = _split_init(tokens)[0]
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
    head, tail = _split_init(tokens)
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


# ---------------------------------------------------------------------------------------------
# Shell assignments in GRUB defaults files
# ---------------------------------------------------------------------------------------------

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
                if ch == "$":
                    exp = _parse_expansion(text, pos)
                    if exp:
                        items.append(("x", exp[0]))
                        pos = exp[1]
                        continue
                items.append(("c", ch))
                pos += 1
            continue
        if ch == "$":
            exp = _parse_expansion(text, pos)
            if exp:
                items.append(("x", exp[0]))
                pos = exp[1]
                continue
        items.append(("c", ch))
        pos += 1
    return items, pos


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


# ---------------------------------------------------------------------------------------------
# Host helpers
# ---------------------------------------------------------------------------------------------

def find_command(name):
    """The host path of an executable ``name`` in the usual directories, or None."""
    for directory in BIN_DIRS:
        path = os.path.join(directory, name)
        full = host_path(path)
        if os.path.isfile(full) and os.access(full, os.X_OK):
            return path
    return None


def os_release():
    """``/etc/os-release`` as a dict (keys as written, values unquoted)."""
    for path in OS_RELEASE:
        text = read_text(path)
        if text is None:
            continue
        info = {}
        for line in text.splitlines():
            if "=" not in line or line.lstrip().startswith("#"):
                continue
            key, value = line.split("=", 1)
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            info[key.strip()] = value
        return info
    return {}


FAMILIES = (
    ("suse", ("suse", "opensuse", "sles", "sled", "sle-micro", "opensuse-leap", "opensuse-tumbleweed")),
    ("redhat", ("rhel", "fedora", "centos", "almalinux", "rocky", "ol", "redhat")),
    ("debian", ("debian", "ubuntu")),
)


def os_family(info):
    """``debian``, ``redhat``, ``suse`` or None, from os-release ID and ID_LIKE."""
    ids = (info.get("ID", "") + " " + info.get("ID_LIKE", "")).lower().split()
    for family, markers in FAMILIES:
        if any(i in markers for i in ids):
            return family
    return None


def systemd_boot_in_use():
    """Whether a systemd-boot installation is on an ESP or XBOOTLDR mount point."""
    for root in ESP_ROOTS:
        for marker in ("loader/loader.conf", "EFI/systemd"):
            if os.path.exists(host_path(os.path.join(root, marker))):
                return True
    return False


def detect_backend():
    """``(backend, reason)`` for this host."""
    info = os_release()
    family = os_family(info)
    name = info.get("PRETTY_NAME") or info.get("ID") or "unknown OS"
    if systemd_boot_in_use() and os.path.exists(host_path(KERNEL_CMDLINE)):
        return "systemd_boot", "%s with systemd-boot and %s" % (name, KERNEL_CMDLINE)
    if family == "redhat" and find_command("grubby"):
        return "grubby", "%s with grubby" % name
    if family == "suse" and os.path.exists(host_path(GRUB_DEFAULTS)):
        return "grub_suse", "%s with %s" % (name, GRUB_DEFAULTS)
    if family == "debian" and os.path.exists(host_path(GRUB_DEFAULTS)):
        return "grub_debian", "%s with %s" % (name, GRUB_DEFAULTS)
    if find_command("grubby"):
        return "grubby", "%s with grubby" % name
    if os.path.exists(host_path(GRUB_DEFAULTS)) and (find_command("update-grub") or find_command("grub-mkconfig")):
        return "grub_debian", "%s with %s and update-grub" % (name, GRUB_DEFAULTS)
    if os.path.exists(host_path(GRUB_DEFAULTS)) and find_command("grub2-mkconfig"):
        return "grub_suse", "%s with %s and grub2-mkconfig" % (name, GRUB_DEFAULTS)
    raise CmdlineError(
        "cannot tell how %s boots: no grubby, no %s with update-grub or grub2-mkconfig, and no systemd-boot "
        "with %s. Set backend to one of %s." % (name, GRUB_DEFAULTS, KERNEL_CMDLINE, ", ".join(BACKENDS[1:])))


class FileChange:
    """A host file's planned new content."""

    def __init__(self, path, before, after, why=""):
        self.path = path
        self.before = before
        self.after = after
        self.why = why

    def diff(self):
        return {"before_header": self.path, "after_header": self.path,
                "before": self.before or "", "after": self.after if self.after is not None else ""}


class Plan:
    """What a backend will do: files to write, commands to run, regeneration, predicted entries."""

    def __init__(self):
        self.files = []
        self.commands = []
        self.regenerate = []
        self.snapshot = []
        self.entries = None
        self.extra_diffs = []
        self.warnings = []

    @property
    def changed(self):
        return bool(self.files or self.commands)


def run_command(module, argv):
    """``module.run_command`` without shell, in the C locale, and without expanding ``$`` or ``~`` in the
    arguments (AnsibleModule expands them by default, which would mangle the shell script and arguments)."""
    return module.run_command(argv, environ_update={"LC_ALL": "C"}, expand_user_and_vars=False)


def _run(module, argv, what):
    rc, out, err = run_command(module, argv)
    if rc != 0:
        raise CmdlineError("%s failed: %s exited %d: %s" % (what, " ".join(argv), rc, (err or out or "").strip()))
    return out


# ---------------------------------------------------------------------------------------------
# GRUB defaults (/etc/default/grub and drop-ins)
# ---------------------------------------------------------------------------------------------

LINUX = "GRUB_CMDLINE_LINUX"
LINUX_DEFAULT = "GRUB_CMDLINE_LINUX_DEFAULT"
LINUX_RECOVERY = "GRUB_CMDLINE_LINUX_RECOVERY"
DISABLE_RECOVERY = "GRUB_DISABLE_RECOVERY"
EVAL_VARS = (LINUX, LINUX_DEFAULT, LINUX_RECOVERY, DISABLE_RECOVERY)

# grub-mkconfig sources the defaults under "set -e", output thrown away as Debian's postinst does.
EVAL_SCRIPT = (
    "set -e\n"
    "unset " + " ".join(EVAL_VARS) + "\n"
    "for f in \"$@\"; do\n"
    "  if [ -e \"$f\" ]; then . \"$f\" >/dev/null; fi\n"
    "  printf '\\036%s\\037%s\\037%s\\037%s' "
    + " ".join('"${%s-}"' % v for v in EVAL_VARS) + "\n"
    "done\n"
)


class GrubDefaults:
    """The GRUB defaults chain of one host: which files, how entries are built, literal edits.

    ``model``:
      ``debian``  normal entries get LINUX + LINUX_DEFAULT, recovery entries LINUX (10_linux
                  sets its own GRUB_CMDLINE_LINUX_RECOVERY), unless GRUB_DISABLE_RECOVERY=true
      ``suse``    as debian, recovery entries GRUB_CMDLINE_LINUX_RECOVERY (from the defaults) + LINUX
      ``bls``     one template (LINUX + LINUX_DEFAULT), what grub2-mkconfig puts in BLS entries
    """

    def __init__(self, module, model, dropin_dir=None, dropin=None):
        self.module = module
        self.model = model
        self.dropin_dir = dropin_dir
        self.dropin = os.path.join(dropin_dir, dropin) if (dropin_dir and dropin) else None
        self.edit_vars = (LINUX, LINUX_DEFAULT, LINUX_RECOVERY) if model == "suse" else (LINUX, LINUX_DEFAULT)

    # Reading -----------------------------------------------------------------------------

    def chain(self, planned=None):
        """The files grub-mkconfig sources, in order (planned new files included)."""
        files = [GRUB_DEFAULTS]
        if self.dropin_dir:
            try:
                names = [n for n in os.listdir(host_path(self.dropin_dir)) if n.endswith(".cfg")]
            except (FileNotFoundError, NotADirectoryError):
                names = []
            for path in planned or {}:
                if os.path.dirname(path) == self.dropin_dir and planned[path] is not None:
                    names.append(os.path.basename(path))
            files.extend(os.path.join(self.dropin_dir, n) for n in sorted(set(names)))
        return files

    def evaluate(self, planned=None):
        """Source the chain with ``planned`` ({path: text}) in place of the files; return records.

        A record is ``{"path": ..., "vars": {VAR: value}}`` after each file.
        """
        planned = planned or {}
        files = [f for f in self.chain(planned) if not (f in planned and planned[f] is None)]
        tmpdir = tempfile.mkdtemp(prefix="kernel_cmdline.")
        try:
            argv = [SHELL, "-c", EVAL_SCRIPT, "sh"]
            for index, path in enumerate(files):
                if path in planned:
                    tmp = os.path.join(tmpdir, "%02d-%s" % (index, os.path.basename(path)))
                    with open(tmp, "w", encoding="utf-8") as handle:
                        handle.write(planned[path])
                    argv.append(tmp)
                else:
                    argv.append(host_path(path))
            rc, out, err = run_command(self.module, argv)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
        records = out.split("\x1e")[1:] if out else []
        if rc != 0 or len(records) != len(files):
            where = files[len(records)] if len(records) < len(files) else files[-1]
            raise CmdlineError("sourcing the GRUB defaults the way grub-mkconfig does fails at %s%s: %s"
                               % (where, " (as edited)" if where in planned else "", (err or out or "").strip()))
        result = []
        for path, record in zip(files, records):
            values = record.split("\x1f")
            result.append({"path": path, "vars": dict(zip(EVAL_VARS, values + [""] * (len(EVAL_VARS) - len(values))))})
        return result

    def entries(self, records):
        """Boot entries (id, title, args) the records give."""
        final = records[-1]["vars"] if records else dict.fromkeys(EVAL_VARS, "")
        linux = split_cmdline(final[LINUX])
        default = split_cmdline(final[LINUX_DEFAULT])
        if self.model == "bls":
            return [{"id": "grub-defaults", "title": "%s (%s %s)" % (GRUB_DEFAULTS, LINUX, LINUX_DEFAULT),
                     "args": linux + default}]
        out = [{"id": "default", "title": "normal entries (%s %s)" % (LINUX, LINUX_DEFAULT), "args": linux + default}]
        if final[DISABLE_RECOVERY] != "true":
            if self.model == "suse":
                out.append({"id": "recovery", "title": "recovery entries (%s %s)" % (LINUX_RECOVERY, LINUX),
                            "args": split_cmdline(final[LINUX_RECOVERY]) + linux})
            else:
                out.append({"id": "recovery", "title": "recovery entries (%s)" % LINUX, "args": linux})
        return out

    def sources(self, records, token):
        """``[(path, var)]`` of the files whose sourcing added ``token`` to a variable."""
        found = []
        previous = dict.fromkeys(EVAL_VARS, "")
        for record in records:
            for var in (LINUX, LINUX_DEFAULT, LINUX_RECOVERY):
                if split_cmdline(record["vars"][var]).count(token) > split_cmdline(previous[var]).count(token):
                    found.append((record["path"], var))
            previous = record["vars"]
        return found

    # Editing -----------------------------------------------------------------------------

    def plan(self, request, texts):
        """Edit the editable files' texts ({path: text or None}) for ``request``.

        Returns ``(new_texts, records_before, records_after)``; raises CmdlineError when the
        edited chain would still not give every entry what was asked.
        """
        records = self.evaluate()
        todo = unsatisfied(self.entries(records), request)
        if not todo:
            return dict(texts), records, records
        edit = _Edit(self, texts)

        # Step 1: removals, in-place replacements, and what position=last moves.
        moved = {}
        if request.state == "absent":
            for arg in todo:
                for asg in edit.assignments():
                    asg.remove(arg.removes)
        else:
            target = edit.target(create=False)
            for arg in todo:
                if arg.repeatable:
                    continue
                if target is not None:
                    _replace_in_place(target, arg)
                for asg in edit.assignments():
                    if asg is not target:
                        asg.remove(arg.conflicts)
            for name, group in request.last_groups().items():
                if not any(a in todo for a in group):
                    continue
                for asg in edit.assignments():
                    asg.remove(lambda t, g=group: any(a.same(t) for a in g))
                # Normal entries put GRUB_CMDLINE_LINUX_DEFAULT after GRUB_CMDLINE_LINUX: its same-name
                # arguments move ahead of the group (recovery entries put theirs before LINUX already).
                for asg in edit.assignments(only=LINUX_DEFAULT):
                    moved.setdefault(name, []).extend(asg.remove(lambda t, n=name: split_token(t)[0] == n))

        # Step 2: append what the edited chain still lacks to GRUB_CMDLINE_LINUX (every entry has it).
        if request.state == "present":
            middle = self.entries(self.evaluate(edit.render()))
            for arg in request.singles():
                if all(arg_satisfied(e["args"], arg, request) for e in middle):
                    continue
                for asg in edit.assignments(tail=True):
                    asg.remove(arg.same)
                target = edit.target(create=True)
                if not any(arg.same(t) for t in target.tokens()):
                    target.words.append(Word.of(arg.text))
            for name, group in request.last_groups().items():
                if not any(a in todo for a in group):
                    continue
                target = edit.target(create=True)
                target.words.extend(Word.of(t) for t in moved.get(name, []))
                target.words.extend(Word.of(a.text) for a in group)

        new_texts = edit.render()
        after_records = self.evaluate(new_texts)
        missing = unsatisfied(self.entries(after_records), request)
        if missing:
            raise CmdlineError(self.explain(missing, request, after_records, edit))
        return new_texts, records, after_records

    def explain(self, missing, request, records, edit):
        """Why the edited chain still misses ``missing``: the offending arguments and the files they come from."""
        entries = self.entries(records)
        parts = []
        for arg in missing:
            bad = [e for e in entries if not arg_satisfied(e["args"], arg, request)]
            offending = []
            for entry in bad:
                for tok in entry["args"]:
                    if request.state == "absent":
                        hit = arg.removes(tok)
                    elif arg.repeatable:
                        hit = arg.named(tok) and not any(a.same(tok) for a in request.args)
                    else:
                        hit = arg.conflicts(tok)
                    if hit and tok not in offending:
                        offending.append(tok)
            where = []
            for tok in offending:
                for path, var in self.sources(records, tok):
                    note = ", which this module does not edit"
                    if path in edit.work:
                        odd = [a for a, p in edit.unsupported() if p == path and a.var == var]
                        note = (", set there with %s, which this module does not rewrite" % odd[0].error) if odd else ""
                    where.append("%s from %s in %s%s" % (tok, var, path, note))
            text = "%s would not be %s in the %s entries" % (arg.text, request.state, "/".join(e["id"] for e in bad))
            if where:
                text += " (%s)" % "; ".join(where)
            elif edit.unsupported():
                asg, path = edit.unsupported()[0]
                text += " (%s in %s is set with %s, which this module does not rewrite)" % (asg.var, path, asg.error)
            else:
                text += " (a later file sets %s again)" % LINUX
            parts.append(text)
        return "%s. Nothing was changed; change those files, or the arguments asked for." % "; ".join(parts)


class _Edit:
    """The editable files of one plan, parsed, with their assignments."""

    def __init__(self, defaults, texts):
        self.defaults = defaults
        self.target_path = defaults.dropin or GRUB_DEFAULTS
        self.work = {}
        for path, text in texts.items():
            self.work[path] = {"text": text, "asg": self._parse(text)}

    def _parse(self, text):
        return {var: find_assignments(text or "", var) for var in self.defaults.edit_vars}

    def assignments(self, tail=False, only=None):
        """Editable assignments of every variable (``tail``: all but GRUB_CMDLINE_LINUX; ``only``: that one)."""
        return [a for entry in self.work.values() for var in self.defaults.edit_vars
                if not (tail and var == LINUX) and only in (None, var) for a in entry["asg"][var] if a.editable]

    def unsupported(self):
        return [(a, path) for path, entry in self.work.items() for var in self.defaults.edit_vars
                for a in entry["asg"][var] if not a.editable]

    def target(self, create):
        """The GRUB_CMDLINE_LINUX assignment new arguments go into; created on demand."""
        entry = self.work[self.target_path]
        editable = [a for a in entry["asg"][LINUX] if a.editable]
        if editable or not create:
            return editable[-1] if editable else None
        text = entry["text"]
        if text is None:
            text = DROPIN_HEADER if self.target_path == self.defaults.dropin else ""
        if text and not text.endswith("\n"):
            text += "\n"
        if self.target_path == self.defaults.dropin:
            text += '%s="$%s"\n' % (LINUX, LINUX)
        else:
            text += '%s=""\n' % LINUX
        # Keep the edits made so far: render them before re-parsing.
        entry["text"] = render_assignments(entry["text"] or "", self._all(entry)) + text[len(entry["text"] or ""):]
        entry["asg"] = self._parse(entry["text"])
        return [a for a in entry["asg"][LINUX] if a.editable][-1]

    def _all(self, entry):
        return [a for var in self.defaults.edit_vars for a in entry["asg"][var]]

    def render(self):
        return {path: (render_assignments(entry["text"], self._all(entry)) if entry["text"] is not None else None)
                for path, entry in self.work.items()}


def _replace_in_place(target, arg):
    """In ``target``, make ``arg`` replace the first ``name=other`` of its name and drop the rest."""
    if any(arg.same(t) for t in target.tokens()):
        target.remove(arg.conflicts)
        return
    words, placed = [], False
    for word in target.words:
        if word.literal and arg.conflicts(word.text):
            if not placed:
                words.append(Word.of(arg.text))
                placed = True
            continue
        words.append(word)
    target.words = words


# ---------------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------------

class Backend:
    """Interface shared by the backends."""

    name = None

    def __init__(self, module, params):
        self.module = module
        self.params = params

    def read(self):
        """Boot entries: ``[{"id", "title", "args": [...], ...}]``."""
        raise NotImplementedError

    def plan(self, request):
        """A :class:`Plan` bringing every entry in line with ``request`` (computed, nothing written)."""
        raise NotImplementedError

    def running_entry(self, entries, active):
        """The entry the running kernel most likely booted from."""
        return entries[0] if entries else None

    def info(self):
        """Extra facts for the result."""
        return {}


class GrubBackend(Backend):
    """GRUB with /etc/default/grub, regenerated by grub-mkconfig (Debian and SUSE flavours)."""

    model = None
    script_check = None
    grub_cfg = None

    def __init__(self, module, params):
        super().__init__(module, params)
        self.defaults = self._defaults()

    def _defaults(self):
        return GrubDefaults(self.module, self.model)

    def editable_files(self):
        return [GRUB_DEFAULTS]

    def regenerate_command(self):
        raise NotImplementedError

    def _require_defaults(self):
        if read_text(GRUB_DEFAULTS) is None:
            raise CmdlineError("%s does not exist: GRUB is not configured on this host (backend %s). "
                               "Set backend to one of %s." % (GRUB_DEFAULTS, self.name, ", ".join(BACKENDS[1:])))

    def read(self):
        self._require_defaults()
        return self.defaults.entries(self.defaults.evaluate())

    def plan(self, request):
        self._require_defaults()
        texts = {path: read_text(path) for path in self.editable_files()}
        new_texts, _records, after_records = self.defaults.plan(request, texts)
        plan = Plan()
        for path in self.editable_files():
            if new_texts.get(path) != texts[path]:
                plan.files.append(FileChange(path, texts[path], new_texts.get(path)))
        plan.entries = self.defaults.entries(after_records)
        if plan.files:
            self._script_check(plan, texts)
            if self.params.get("regenerate", True):
                plan.regenerate.append(self.regenerate_command())
            else:
                plan.warnings.append("regenerate=false: the GRUB configuration still has the old arguments; "
                                     "run %s before rebooting" % " ".join(self.regenerate_command()))
        return plan

    def _script_check(self, plan, texts):
        """grub-script-check on the new defaults files where it can judge them, and on the entries' linux lines.

        The defaults files are shell, not GRUB script: Debian's own /etc/default/grub (a backtick
        command substitution) fails grub-script-check. A new file is checked only when its
        current version passes; the linux lines the new arguments produce are always checked.
        """
        tool = find_command(self.script_check)
        if not tool:
            return
        tmpdir = tempfile.mkdtemp(prefix="kernel_cmdline.")
        try:
            checks = []
            for change in plan.files:
                if change.after is None:
                    continue
                if change.before is not None:
                    old = os.path.join(tmpdir, "current")
                    with open(old, "w", encoding="utf-8") as handle:
                        handle.write(change.before)
                    rc, _out, _err = run_command(self.module, [tool, old])
                    if rc != 0:
                        continue
                checks.append((change.path, change.after))
            lines = "".join("linux /vmlinuz %s\n" % " ".join(e["args"]) for e in plan.entries)
            checks.append(("the linux lines of the new entries", lines))
            for index, (what, text) in enumerate(checks):
                path = os.path.join(tmpdir, "check%d" % index)
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(text)
                rc, out, err = run_command(self.module, [tool, path])
                if rc != 0:
                    raise CmdlineError("%s rejects %s: %s. Nothing was changed."
                                       % (self.script_check, what, (err or out or "").strip()))
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)

    def info(self):
        return {"grub_cfg": self.grub_cfg}


class GrubDebian(GrubBackend):
    """Debian and Ubuntu: GRUB_CMDLINE_LINUX in /etc/default/grub or a /etc/default/grub.d drop-in."""

    name = "grub_debian"
    model = "debian"
    script_check = "grub-script-check"
    grub_cfg = "/boot/grub/grub.cfg"

    def _defaults(self):
        dropin = self.params.get("grub_dropin") or None
        if dropin is not None and (not dropin.endswith(".cfg") or "/" in dropin or dropin.startswith(".")):
            raise CmdlineError("grub_dropin %r must be a file name ending in .cfg (grub-mkconfig sources only "
                               "%s/*.cfg), or null to edit %s" % (dropin, GRUB_DEFAULTS_D, GRUB_DEFAULTS))
        return GrubDefaults(self.module, self.model, dropin_dir=GRUB_DEFAULTS_D, dropin=dropin)

    def editable_files(self):
        files = [GRUB_DEFAULTS]
        if self.defaults.dropin:
            files.append(self.defaults.dropin)
        return files

    def regenerate_command(self):
        tool = find_command("update-grub")
        if tool:
            return [tool]
        tool = find_command("grub-mkconfig")
        if tool:
            return [tool, "-o", self.grub_cfg]
        if self.params.get("regenerate", True):
            raise CmdlineError("neither update-grub nor grub-mkconfig is installed, so the GRUB configuration cannot "
                               "be regenerated; install grub2-common or set regenerate=false")
        return ["update-grub"]


class GrubSuse(GrubBackend):
    """SUSE: /etc/default/grub, then grub2-mkconfig -o /boot/grub2/grub.cfg.

    SUSE keeps the real grub.cfg in /boot/grub2 on BIOS and UEFI alike: on UEFI the
    ESP holds only a small grub.cfg that shim-install writes to load /boot/grub2/grub.cfg.
    """

    name = "grub_suse"
    model = "suse"
    script_check = "grub2-script-check"
    grub_cfg = "/boot/grub2/grub.cfg"

    def regenerate_command(self):
        tool = find_command("grub2-mkconfig")
        if not tool and self.params.get("regenerate", True):
            raise CmdlineError("grub2-mkconfig is not installed, so %s cannot be regenerated; set regenerate=false "
                               "to only edit %s" % (self.grub_cfg, GRUB_DEFAULTS))
        return [tool or "grub2-mkconfig", "-o", self.grub_cfg]

    def info(self):
        return {"grub_cfg": self.grub_cfg,
                "firmware": "uefi" if os.path.exists(host_path(EFI_FIRMWARE)) else "bios"}


def parse_grubby_info(text):
    """Entries of ``grubby --info=ALL``: ``[{"index", "kernel", "args", "root", "initrd", "title", "id"}]``."""
    entries, cur = [], None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("index="):
            cur = {"index": int(line.split("=", 1)[1].strip().strip('"'))}
            entries.append(cur)
            continue
        if cur is None or "=" not in line:
            if cur is not None:
                cur["non_linux"] = True
            continue
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cur[key.strip()] = value
    out = []
    for entry in entries:
        if "kernel" not in entry or entry.get("non_linux"):
            continue
        out.append({
            "index": entry["index"],
            "id": entry.get("id") or str(entry["index"]),
            "title": entry.get("title", ""),
            "kernel": entry["kernel"],
            "root": entry.get("root"),
            "args": split_cmdline(entry.get("args", "")),
        })
    return out


def read_grubenv():
    """``(path, {key: value})`` of the first GRUB environment block found, or ``(None, {})``."""
    for path in GRUBENV:
        text = read_text(path)
        if text is None:
            continue
        env = {}
        for line in text.splitlines():
            if line.startswith("#") or "=" not in line:
                continue
            key, value = line.split("=", 1)
            env[key] = value
        return path, env
    return None, {}


class Grubby(Backend):
    """RHEL, Fedora, CentOS Stream, Alma, Rocky, Oracle Linux: BLS entries edited by grubby.

    ``grubby --update-kernel=ALL`` edits every BLS entry in /boot/loader/entries (and, on
    RHEL 8, the ``kernelopts`` variable the entries reference in grubenv). New kernels take
    their arguments from /etc/kernel/cmdline (Fedora 33+, RHEL 9+) and grub2-mkconfig
    ``--update-bls-cmdline`` (or RHEL 8's grub2-mkconfig) from GRUB_CMDLINE_LINUX in
    /etc/default/grub, so both are kept in step; grubby does not write them.
    """

    name = "grubby"

    def __init__(self, module, params):
        super().__init__(module, params)
        self.grubby = find_command("grubby")
        if not self.grubby:
            raise CmdlineError("grubby is not installed (backend grubby); install it or set backend to one of %s"
                               % ", ".join(b for b in BACKENDS[1:] if b != "grubby"))

    def read(self):
        out = _run(self.module, [self.grubby, "--info=ALL"], "reading the boot entries")
        entries = parse_grubby_info(out)
        if not entries:
            raise CmdlineError("grubby --info=ALL lists no Linux boot entries; nothing to configure")
        for entry in entries:
            if entry["root"]:
                entry["args"] = ["root=" + entry["root"]] + [t for t in entry["args"] if not t.startswith("root=")]
        return entries

    def plan(self, request):
        entries = self.read()
        plan = Plan()
        per_entry, predicted = [], []
        for entry in entries:
            current = [t for t in entry["args"] if not t.startswith("root=")]
            target = edit_tokens(current, request)
            remove, add = grubby_delta(current, target, request)
            per_entry.append((entry, remove, add))
            new = dict(entry)
            new["args"] = [t for t in entry["args"] if t.startswith("root=")] + simulate_grubby(current, remove, add)
            predicted.append(new)
        changes = [(e, r, a) for e, r, a in per_entry if r or a]
        if changes:
            deltas = set((tuple(r), tuple(a)) for _e, r, a in changes)
            if len(changes) == len(entries) and len(deltas) == 1:
                plan.commands.append(self._command("ALL", changes[0][1], changes[0][2]))
            else:
                for entry, remove, add in changes:
                    plan.commands.append(self._command(entry["kernel"], remove, add))
            plan.snapshot = self._snapshot_paths()
            plan.extra_diffs.append({
                "before_header": "grubby --info=ALL", "after_header": "grubby --info=ALL",
                "before": "".join("%s: %s\n" % (e["kernel"], " ".join(e["args"])) for e in entries),
                "after": "".join("%s: %s\n" % (e["kernel"], " ".join(e["args"])) for e in predicted)})
        plan.entries = predicted
        self._plan_templates(plan, request)
        return plan

    def _command(self, which, remove, add):
        argv = [self.grubby, "--update-kernel=%s" % which]
        if remove:
            argv.append("--remove-args=%s" % " ".join(remove))
        if add:
            argv.append("--args=%s" % " ".join(add))
        return argv

    @staticmethod
    def _snapshot_paths():
        paths = []
        directory = host_path(BLS_ENTRIES)
        if os.path.isdir(directory):
            paths.extend(os.path.join(BLS_ENTRIES, n) for n in sorted(os.listdir(directory)) if n.endswith(".conf"))
        paths.extend(p for p in GRUBENV if os.path.exists(host_path(p)))
        return paths

    def _plan_templates(self, plan, request):
        """Keep /etc/default/grub and /etc/kernel/cmdline in step, for kernels installed later."""
        current = read_text(GRUB_DEFAULTS)
        if current is not None:
            defaults = GrubDefaults(self.module, "bls")
            try:
                new_texts, _before, _after = defaults.plan(request, {GRUB_DEFAULTS: current})
            except CmdlineError as exc:
                plan.warnings.append("%s is left as it is: %s" % (GRUB_DEFAULTS, exc))
            else:
                if new_texts[GRUB_DEFAULTS] != current:
                    plan.files.append(FileChange(GRUB_DEFAULTS, current, new_texts[GRUB_DEFAULTS]))
        cmdline = read_text(KERNEL_CMDLINE)
        if cmdline is not None:
            new = edit_tokens(split_cmdline(cmdline), request)
            if new != split_cmdline(cmdline):
                plan.files.append(FileChange(KERNEL_CMDLINE, cmdline, " ".join(new) + "\n"))

    def running_entry(self, entries, active):
        image = [t.split("=", 1)[1] for t in active or [] if t.startswith("BOOT_IMAGE=")]
        if image:
            base = os.path.basename(image[0].split(")")[-1])
            for entry in entries:
                if os.path.basename(entry["kernel"]) == base:
                    return entry
        return entries[0] if entries else None

    def info(self):
        path, env = read_grubenv()
        return {"kernelopts": env.get("kernelopts"), "grubenv": path}


def grubby_delta(current, target, request):
    """``(remove, add)`` token lists that take ``current`` to ``target`` through grubby.

    grubby appends ``--args`` and, for an argument whose name exists, first drops one
    same-name argument: so for a name whose sequence changes every current occurrence is
    removed and every wanted one added, in order. ``absent`` only removes.
    """
    remove, add = [], []
    cur_head, tgt_head = _split_init(current)[0], _split_init(target)[0]
    for name in request.names:
        cur = [t for t in cur_head if split_token(t)[0] == name]
        tgt = [t for t in tgt_head if split_token(t)[0] == name]
        if cur == tgt:
            continue
        if request.state == "absent":
            kept = list(tgt)
            for tok in cur:
                if tok in kept:
                    kept.remove(tok)
                else:
                    remove.append(tok)
            continue
        remove.extend(cur)
        add.extend(tgt)
    return remove, add


def simulate_grubby(tokens, remove, add):
    """The arguments grubby leaves: each removed token's first occurrence dropped, ``add`` appended."""
    head, tail = _split_init(tokens)
    for tok in remove:
        if tok in head:
            head.remove(tok)
    return head + list(add) + tail


class SystemdBoot(Backend):
    """systemd-boot: /etc/kernel/cmdline and the options lines of the type #1 loader entries.

    kernel-install (90-loaderentry.install) writes new entries' options from
    /etc/kernel/cmdline (or /usr/lib/kernel/cmdline, or else /proc/cmdline); existing
    entries are read by systemd-boot at every boot, so their options lines are edited in
    place rather than reinstalling each kernel (which would also rebuild its initrd).
    Unified kernel images (EFI/Linux/*.efi) embed their command line and are not edited.
    """

    name = "systemd_boot"

    def _entry_files(self):
        token = (read_text("/etc/kernel/entry-token") or read_text("/etc/machine-id") or "").strip()
        seen, files = set(), []
        for root in ESP_ROOTS:
            directory = os.path.join(root, "loader/entries")
            full = host_path(directory)
            if not os.path.isdir(full) or os.path.realpath(full) in seen:
                continue
            seen.add(os.path.realpath(full))
            files.extend(os.path.join(directory, n) for n in sorted(os.listdir(full)) if n.endswith(".conf"))
        mine = [f for f in files if token and os.path.basename(f).startswith(token)]
        return mine or files

    def _ukis(self):
        found = []
        for root in ESP_ROOTS:
            directory = host_path(os.path.join(root, "EFI/Linux"))
            if os.path.isdir(directory):
                found.extend(n for n in os.listdir(directory) if n.endswith(".efi"))
        return found

    def read(self):
        entries = []
        for path in self._entry_files():
            text = read_text(path) or ""
            fields, options = {}, []
            for line in text.splitlines():
                parts = line.strip().split(None, 1)
                if not parts or parts[0].startswith("#"):
                    continue
                if parts[0] == "options":
                    options.append(parts[1] if len(parts) > 1 else "")
                else:
                    fields.setdefault(parts[0], parts[1] if len(parts) > 1 else "")
            if "linux" not in fields:
                continue
            entries.append({"id": os.path.basename(path)[:-len(".conf")], "title": fields.get("title", ""),
                            "kernel": fields["linux"], "version": fields.get("version"), "path": path,
                            "args": split_cmdline(" ".join(options))})
        if not entries:
            entries.append({"id": KERNEL_CMDLINE, "title": "template for kernels installed later",
                            "kernel": None, "path": KERNEL_CMDLINE, "args": split_cmdline(self._template()[1])})
        return entries

    @staticmethod
    def _template():
        """``(text or None, command line)`` of /etc/kernel/cmdline, or of what kernel-install falls back to."""
        text = read_text(KERNEL_CMDLINE)
        if text is not None:
            return text, text
        fallback = read_text("/usr/lib/kernel/cmdline")
        if fallback is None:
            fallback = " ".join(t for t in split_cmdline(read_text(PROC_CMDLINE) or "")
                                if not t.startswith(("BOOT_IMAGE=", "initrd=")))
        return None, fallback

    def plan(self, request):
        entries = self.read()
        plan = Plan()
        text, line = self._template()
        new = edit_tokens(split_cmdline(line), request)
        if new != split_cmdline(line):
            why = "" if text is not None else "created from the command line kernel-install would otherwise use"
            plan.files.append(FileChange(KERNEL_CMDLINE, text, " ".join(new) + "\n", why))
        predicted = []
        for entry in entries:
            updated = dict(entry)
            if entry["path"] == KERNEL_CMDLINE:
                updated["args"] = new
            elif self.params.get("regenerate", True):
                args = edit_tokens(entry["args"], request)
                if args != entry["args"]:
                    before = read_text(entry["path"])
                    plan.files.append(FileChange(entry["path"], before, replace_options(before, args)))
                    updated["args"] = args
            predicted.append(updated)
        if not self.params.get("regenerate", True) and any(e["path"] != KERNEL_CMDLINE for e in entries):
            plan.warnings.append("regenerate=false: only %s was edited; existing boot entries keep their arguments"
                                 % KERNEL_CMDLINE)
        ukis = self._ukis()
        if ukis:
            plan.warnings.append("unified kernel images (%s) embed their own command line and were not edited; "
                                 "they take %s when kernel-install next builds them"
                                 % (", ".join(sorted(ukis)), KERNEL_CMDLINE))
        plan.entries = predicted
        return plan

    def running_entry(self, entries, active):
        release = (read_text("/proc/sys/kernel/osrelease") or "").strip()
        for entry in entries:
            if release and entry.get("version") == release:
                return entry
        return entries[0] if entries else None


def replace_options(text, args):
    """A loader entry's text with its options line(s) replaced by one line carrying ``args``."""
    out, done = [], False
    for line in (text or "").splitlines(True):
        parts = line.strip().split(None, 1)
        if parts and parts[0] == "options":
            if not done:
                out.append("options %s\n" % " ".join(args))
                done = True
            continue
        out.append(line)
    if not done:
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        out.append("options %s\n" % " ".join(args))
    return "".join(out)


BACKEND_CLASSES = {
    "grub_debian": GrubDebian,
    "grub_suse": GrubSuse,
    "grubby": Grubby,
    "systemd_boot": SystemdBoot,
}


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------

def _backup(module, path):
    """Back up host file ``path`` next to itself; return the backup's path.

    Ansible's backup names carry ``:`` (``name.PID.YYYY-MM-DD@HH:MM:SS~``), which a FAT file
    system (the ESP, where systemd-boot's entries live) refuses; those get ``-`` instead.
    """
    full = host_path(path)
    if "/loader/" not in path:
        return module.backup_local(full)
    dest = "%s.%d.%s~" % (full, os.getpid(), time.strftime("%Y-%m-%d@%H-%M-%S"))
    shutil.copyfile(full, dest)
    return dest


def _write(module, path, text, backup):
    """Atomically replace (or create) host file ``path``; keep its mode; return the backup path or None."""
    full = host_path(path)
    directory = os.path.dirname(full)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    mode = 0o644
    backup_file = None
    if os.path.exists(full):
        mode = os.stat(full).st_mode & 0o7777
        if backup:
            backup_file = _backup(module, path)
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(full), dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        try:
            os.chmod(tmp, mode)
        except OSError:  # FAT (the ESP) has no Unix modes to set
            pass
        module.atomic_move(tmp, full)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return backup_file


def _restore(module, originals):
    """Put back ``{path: bytes or None}``; return what could not be restored."""
    failed = []
    for path, content in originals.items():
        full = host_path(path)
        try:
            if content is None:
                if os.path.exists(full):
                    os.unlink(full)
                continue
            directory = os.path.dirname(full)
            fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(full), dir=directory)
            with os.fdopen(fd, "wb") as handle:
                handle.write(content)
            if os.path.exists(full):
                os.chmod(tmp, os.stat(full).st_mode & 0o7777)
            module.atomic_move(tmp, full)
        except OSError as exc:
            failed.append("%s (%s)" % (path, exc))
    return failed


def _read_bytes(path):
    try:
        with open(host_path(path), "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def check_result(entries, predicted, request):
    """Raise CmdlineError when the entries after the change differ from the plan's, for the managed names."""
    expected = dict((e["id"], e["args"]) for e in predicted or [])
    for entry in entries:
        if entry["id"] in expected and managed_differs(expected[entry["id"]], entry["args"], request.names):
            raise CmdlineError("after the change, entry %s has %s where %s was expected" % (
                entry["id"], " ".join(t for t in entry["args"] if split_token(t)[0] in request.names) or "none of them",
                " ".join(t for t in expected[entry["id"]] if split_token(t)[0] in request.names) or "none of them"))


def make_backend(module, params):
    name = params.get("backend") or "auto"
    reason = "set by the backend option"
    if name == "auto":
        name, reason = detect_backend()
    if name not in BACKEND_CLASSES:
        raise CmdlineError("backend must be one of %s, got %r" % (", ".join(BACKENDS), name))
    return BACKEND_CLASSES[name](module, params), reason


def apply_plan(module, backend, plan, request, backup):
    """Write the plan's files, run its commands and regeneration, verify; restore everything on failure.

    Returns ``(backups, entries)``. Fails the module, after restoring, when a step fails.
    """
    originals = {}
    for path in [c.path for c in plan.files] + list(plan.snapshot):
        if path not in originals:
            originals[path] = _read_bytes(path)
    backups, step, entries = [], None, None
    try:
        for change in plan.files:
            step = "writing %s" % change.path
            backup_file = _write(module, change.path, change.after, backup and change.before is not None)
            if backup_file:
                backups.append(backup_file)
        for argv in plan.commands:
            step = "updating the boot entries"
            _run(module, argv, step)
        for argv in plan.regenerate:
            step = "regenerating the boot configuration"
            _run(module, argv, step)
        step = "checking the result"
        entries = backend.read()
        check_result(entries, plan.entries, request)
    except (CmdlineError, OSError) as exc:
        failed = _restore(module, originals)
        bad = [f.split(" (")[0] for f in failed]
        restored = [p for p in originals if p not in bad and originals[p] is not None]
        removed = [p for p in originals if p not in bad and originals[p] is None]
        undone = []
        if restored:
            pronoun = "its" if len(restored) == 1 else "their"
            undone.append("restored %s to %s previous content" % (", ".join(restored), pronoun))
        if removed:
            undone.append("removed %s, which did not exist before" % ", ".join(removed))
        msg = str(exc) if isinstance(exc, CmdlineError) else "%s: %s" % (step, exc)
        if failed:
            msg += "; could NOT restore %s" % ", ".join(failed)
            if undone:
                msg += " (%s)" % "; ".join(undone)
        else:
            msg += "; every change was undone (%s)" % "; ".join(undone) if undone else "; nothing was changed"
        if plan.regenerate and step == "regenerating the boot configuration":
            msg += "; grub-mkconfig keeps the previous grub.cfg when it fails, so the boot configuration is as before"
        elif plan.regenerate:
            msg += "; the boot configuration was not regenerated"
        module.fail_json(msg=msg, backup_files=backups)
    return backups, entries


def run(module):
    """The whole task for the kernel_cmdline module; returns the result dict or fails the module."""
    params = module.params
    try:
        request = Request(params["args"] or [], params.get("state") or "present", params.get("position") or "keep")
        backend, reason = make_backend(module, params)
        plan = backend.plan(request)
    except CmdlineError as exc:
        module.fail_json(msg=str(exc))
        return None
    for warning in plan.warnings:
        module.warn(warning)
    backups = []
    entries = plan.entries
    if plan.changed and not module.check_mode:
        backups, entries = apply_plan(module, backend, plan, request, params.get("backup", True))
    active_text = read_text(PROC_CMDLINE)
    active = split_cmdline(active_text) if active_text is not None else None
    reboot_required = None
    if active is not None and entries:
        reference = backend.running_entry(entries, active)
        reboot_required = managed_differs(reference["args"], active, request.names)
    result = {
        "changed": plan.changed,
        "backend": backend.name,
        "backend_reason": reason,
        "configured": common_args(entries),
        "entries": entries,
        "active": active,
        "reboot_required": reboot_required,
        "files": [c.path for c in plan.files],
        "commands": [list(c) for c in plan.commands + plan.regenerate],
        "backup_file": backups[0] if backups else None,
        "backup_files": backups,
    }
    result.update(backend.info())
    if module._diff:
        result["diff"] = [c.diff() for c in plan.files] + plan.extra_diffs
    return result
