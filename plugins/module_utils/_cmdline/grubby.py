# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The RHEL family: grubby over BLS entries (and RHEL 8 kernelopts), with /etc/default/grub and
/etc/kernel/cmdline kept in step for new kernels."""

from __future__ import annotations

import os

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._host import host_path, read_text
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.backend import (
    BACKENDS, BLS_ENTRIES, Backend, FileChange, GRUBENV, GRUB_DEFAULTS, KERNEL_CMDLINE, Plan, run_checked, find_command)
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.grub_defaults import GrubDefaults
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.tokens import (
    CmdlineError, split_init, edit_tokens, split_cmdline, split_token)


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
        out = run_checked(self.module, [self.grubby, "--info=ALL"], "reading the boot entries")
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
    cur_head, tgt_head = split_init(current)[0], split_init(target)[0]
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
    head, tail = split_init(tokens)
    for tok in remove:
        if tok in head:
            head.remove(tok)
    return head + list(add) + tail
