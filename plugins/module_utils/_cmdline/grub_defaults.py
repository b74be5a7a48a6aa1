# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GRUB defaults (/etc/default/grub and its drop-ins) read the way grub-mkconfig reads them, and edited.

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
import shutil
import tempfile

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._host import host_path
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.backend import (
    DROPIN_HEADER, GRUB_DEFAULTS, SHELL, run_command)
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.shell import (
    Word, find_assignments, render_assignments)
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.tokens import (
    CmdlineError, arg_satisfied, split_cmdline, split_token, unsatisfied)


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
