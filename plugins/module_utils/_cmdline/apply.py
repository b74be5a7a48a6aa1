# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The driver shared by every backend: pick the backend, plan, back up, write, run, regenerate, verify,
and restore when anything fails.

The editing model (what ``present`` and ``absent`` do to a command line) is in :mod:`.tokens`.

Backends (same interface: ``read()``, ``plan(request)``, then the shared
:func:`run` writes, runs commands, regenerates, verifies and restores)
    ``grub_debian``  /etc/default/grub or a drop-in in /etc/default/grub.d, update-grub
    ``grub_suse``    /etc/default/grub, grub2-mkconfig -o /boot/grub2/grub.cfg
    ``grubby``       grubby --update-kernel for BLS entries (and RHEL 8 kernelopts),
                     /etc/default/grub and /etc/kernel/cmdline kept in step for new kernels
    ``systemd_boot`` /etc/kernel/cmdline and the options lines of the type #1 loader entries

How GRUB defaults files are read and edited: :mod:`.grub_defaults`.
"""

from __future__ import annotations

import os
import shutil
import time

from ansible_collections.magic_sysrq.fleet.plugins.module_utils import _host as host
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._host import host_path, read_text
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.backend import (
    BACKENDS, PROC_CMDLINE, run_checked, detect_backend)
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.grub_debian import GrubDebian
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.grub_suse import GrubSuse
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.grubby import Grubby
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.systemd_boot import SystemdBoot
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.tokens import (
    CmdlineError, Request, common_args, managed_differs, split_cmdline, split_token)


BACKEND_CLASSES = {
    "grub_debian": GrubDebian,
    "grub_suse": GrubSuse,
    "grubby": Grubby,
    "systemd_boot": SystemdBoot,
}


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
    backup_file = None
    if backup and os.path.exists(host_path(path)):
        backup_file = _backup(module, path)
    host.write_bytes(module, path, text)
    return backup_file


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
            originals[path] = host.read_bytes(path)
    backups, step, entries, regenerated = [], None, None, False
    try:
        for change in plan.files:
            step = "writing %s" % change.path
            backup_file = _write(module, change.path, change.after, backup and change.before is not None)
            if backup_file:
                backups.append(backup_file)
        for argv in plan.commands:
            step = "updating the boot entries"
            run_checked(module, argv, step)
        for argv in plan.regenerate:
            step = "regenerating the boot configuration"
            run_checked(module, argv, step)
            regenerated = True
        step = "checking the result"
        entries = backend.read()
        check_result(entries, plan.entries, request)
    except Exception as exc:  # pylint: disable=broad-except  # atomic_move and backup_local raise a plain Exception
        restored, removed, failed = host.restore_files(module, originals)
        undone = []
        if restored:
            pronoun = "its" if len(restored) == 1 else "their"
            undone.append("restored %s to %s previous content" % (", ".join(restored), pronoun))
        if removed:
            undone.append("removed %s, which did not exist before" % ", ".join(removed))
        msg = str(exc) if isinstance(exc, CmdlineError) else "%s: %s" % (step, host.error_text(exc))
        if failed:
            msg += "; could NOT restore %s" % ", ".join(failed)
            if undone:
                msg += " (%s)" % "; ".join(undone)
        else:
            msg += "; every change was undone (%s)" % "; ".join(undone) if undone else "; nothing was changed"
        changed = bool(failed)
        if regenerated:
            # The boot configuration was regenerated from the changed files: regenerate it again from the restored
            # ones, so that what boots matches what the files say.
            try:
                for argv in plan.regenerate:
                    run_checked(module, argv, "regenerating the boot configuration from the restored files")
                msg += "; the boot configuration was regenerated from the restored files"
            except CmdlineError as again:
                msg += ("; the boot configuration had been regenerated with the change, and regenerating it from "
                        "the restored files failed (%s): run %s by hand" % (again, " ".join(plan.regenerate[0])))
                changed = True
        elif plan.regenerate and step == "regenerating the boot configuration":
            msg += "; grub-mkconfig keeps the previous grub.cfg when it fails, so the boot configuration is as before"
        elif plan.regenerate:
            msg += "; the boot configuration was not regenerated"
        module.fail_json(msg=msg, backup_files=backups, changed=changed)
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
        "regeneration_pending": plan.pending,
        "files": [c.path for c in plan.files],
        "commands": [list(c) for c in plan.commands + plan.regenerate],
        "backup_file": backups[0] if backups else None,
        "backup_files": backups,
    }
    result.update(backend.info())
    if module._diff:
        result["diff"] = [c.diff() for c in plan.files] + plan.extra_diffs
    return result
