# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""systemd-boot: /etc/kernel/cmdline and the options lines of the type #1 loader entries."""

from __future__ import annotations

import os

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._host import host_path, read_text
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.backend import (
    Backend, ESP_ROOTS, FileChange, KERNEL_CMDLINE, PROC_CMDLINE, Plan)
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.tokens import edit_tokens, split_cmdline


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
            plan.pending = ("regenerate=false: only %s was edited; existing boot entries keep their arguments"
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
