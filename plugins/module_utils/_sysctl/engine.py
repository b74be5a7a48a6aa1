# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Persistent and runtime sysctl settings: who sets a key, who wins, and the drop-in writer.

Two programs apply sysctl files, with slightly different rules:

``systemd`` (systemd-sysctl.service, what runs at boot on systemd hosts)
    Reads ``*.conf`` in /etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d,
    /usr/lib/sysctl.d (and /lib/sysctl.d). A file name found in an earlier
    directory hides the same name in later ones. The surviving files are
    applied in lexical order of their names, whatever their directory, so the
    last assignment of a key wins. /etc/sysctl.conf is read only through a
    ``99-sysctl.conf`` symlink, which Debian and others ship.

``procps`` (``sysctl --system``)
    The same directories and hiding, then /etc/sysctl.conf last of all.

A key counts as persistently set by the *winner*: the last assignment under
the order that runs at boot (systemd where systemd-sysctl exists). A drop-in
is in conflict when a later assignment under *either* order would override it.
"""

from __future__ import annotations

import os
import stat

from ansible_collections.magic_sysrq.fleet.plugins.module_utils import _host as host
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._host import host_path, host_realpath, read_text

SYSCTL_DIRS = (
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
)
SYSCTL_CONF = "/etc/sysctl.conf"
SYSTEMD_SYSCTL = ("/usr/lib/systemd/systemd-sysctl", "/lib/systemd/systemd-sysctl")
ORDERS = ("systemd", "procps")
DROPIN_DIR = "/etc/sysctl.d"


class SysctlError(Exception):
    """A setting that cannot be applied; the message says what and why."""


def normalize_key(key):
    """``kernel/sysrq`` and ``kernel.sysrq`` are the same key (sysctl.d(5))."""
    key = key.strip()
    if "/" in key:
        key = key.replace(".", "\0").replace("/", ".").replace("\0", "/")
    return key


def proc_path(key):
    """The /proc/sys file behind a key: kernel.sysrq -> /proc/sys/kernel/sysrq."""
    # In the dotted form a "/" stands for a dot inside one name (eth0.100 -> eth0/100).
    return "/proc/sys/" + normalize_key(key).replace("/", "\0").replace(".", "/").replace("\0", ".")


def parse_assignments(text):
    """Yield ``(lineno, key, value)`` for every assignment in a sysctl file's text."""
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip()
        if key.startswith("-"):  # "-key = value": failures to set are ignored, still an assignment
            key = key[1:].strip()
        yield lineno, normalize_key(key), value.strip()


def _dir_files(directory):
    try:
        names = os.listdir(host_path(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(name for name in names if name.endswith(".conf"))


def config_files(order, planned=None):
    """The files ``order`` applies, in application order, as host paths.

    ``planned`` is an optional host path of a drop-in that does not exist yet
    but is about to: it takes part as if written.
    """
    if order not in ORDERS:
        raise ValueError("order must be one of %s" % ", ".join(ORDERS))
    chosen = {}
    for directory in SYSCTL_DIRS:
        names = _dir_files(directory)
        if planned and os.path.dirname(planned) == directory:
            names = sorted(set(names) | {os.path.basename(planned)})
        for name in names:
            chosen.setdefault(name, os.path.join(directory, name))
    files = [chosen[name] for name in sorted(chosen)]
    if order == "procps" and os.path.exists(host_path(SYSCTL_CONF)):
        files.append(SYSCTL_CONF)
    return files


def boot_order():
    """The order that applies sysctl files at boot on this host."""
    for path in SYSTEMD_SYSCTL:
        if os.path.exists(host_path(path)):
            return "systemd"
    return "procps"


def _text_of(path, overrides):
    if overrides and path in overrides:
        return overrides[path]
    return read_text(path, default="")


def sources(keys, overrides=None):
    """Every file line that sets one of ``keys``, with each order's application rank.

    Returns ``{key: [source, ...]}``; a source is a dict ``path``, ``line``, ``value``,
    ``rank`` (``{order: n}``, absent for an order that does not apply the file; a
    higher rank is applied later). ``overrides`` maps host paths to text that
    replaces (or creates) that file's content for the computation.
    """
    wanted = [normalize_key(k) for k in keys]
    planned = [p for p in (overrides or {}) if not os.path.exists(host_path(p))]
    ranks = {}
    for order in ORDERS:
        files = config_files(order, planned=planned[0] if planned else None)
        for index, path in enumerate(files):
            ranks.setdefault(path, {})[order] = index
    result = {key: [] for key in wanted}
    for path in sorted(ranks, key=lambda p: max(ranks[p].values())):
        text = _text_of(path, overrides)
        for lineno, key, value in parse_assignments(text):
            if key in result:
                result[key].append({
                    "path": path,
                    "line": lineno,
                    "value": value,
                    "rank": {order: ranks[path][order] * 100000 + lineno for order in ranks[path]},
                })
    return result


def winner(key_sources, order):
    """The source whose assignment takes effect last under ``order``, or None."""
    applied = [src for src in key_sources if order in src["rank"]]
    if not applied:
        return None
    return max(applied, key=lambda src: src["rank"][order])


def public_source(src):
    """A source as modules return it."""
    return {"path": src["path"], "line": src["line"], "value": src["value"], "orders": sorted(src["rank"])}


def read_runtime(key):
    """The running kernel's value of ``key`` (stripped text), or None when the kernel lacks it."""
    text = read_text(proc_path(key))
    return None if text is None else " ".join(text.split())


def write_runtime(key, value):
    """Set ``key`` in the running kernel. Raises SysctlError with the kernel's reason."""
    path = host_path(proc_path(key))
    try:
        with open(path, "w", encoding="ascii") as handle:
            handle.write("%s\n" % value)
    except OSError as exc:
        raise SysctlError("cannot set %s = %s at runtime (%s): %s"
                          % (normalize_key(key), value, proc_path(key), exc.strerror or exc)) from None


def render_dropin(settings, existing=None, header=None):
    """Drop-in text for ``settings`` (ordered ``{key: value}``).

    Lines of ``existing`` that set other keys are kept in place (with their
    comments); lines for managed keys are replaced in place; new keys go last.
    """
    settings = {normalize_key(k): str(v) for k, v in settings.items()}
    out = []
    done = set()
    if existing:
        lines = existing.splitlines()
    else:
        lines = ["# %s" % line for line in (header or "").splitlines()]
    for raw in lines:
        parsed = list(parse_assignments(raw))
        if parsed and parsed[0][1] in settings:
            key = parsed[0][1]
            if key not in done:
                out.append("%s = %s" % (key, settings[key]))
                done.add(key)
            continue
        out.append(raw)
    for key, value in settings.items():
        if key not in done:
            out.append("%s = %s" % (key, value))
    return "\n".join(out) + "\n"


def comment_out(text, keys, marker):
    """``text`` with every assignment of ``keys`` commented out, each with ``marker``."""
    keys = {normalize_key(k) for k in keys}
    out = []
    for raw in text.splitlines():
        parsed = list(parse_assignments(raw))
        if parsed and parsed[0][1] in keys:
            out.append("# %s: %s" % (marker, raw))
        else:
            out.append(raw)
    return "\n".join(out) + ("\n" if text.endswith("\n") or not text else "")


def write_file(module, path, text, mode=0o644, backup=False):
    """Atomically replace host file ``path`` with ``text`` (str or bytes); return the backup path or None.

    A file that exists keeps its mode; a new one gets ``mode`` (:func:`_host.write_bytes`).
    """
    backup_file = None
    if backup and os.path.exists(host_path(path)):
        backup_file = module.backup_local(host_path(path))
    host.write_bytes(module, path, text, mode)
    return backup_file


def restore_files(module, originals):
    """Put back every file of ``originals`` (``{host path: bytes, or None}``) that no longer has that content.
    Returns ``(restored, failed)``: the paths put back or removed, and ``"path (why)"`` for the others."""
    restored, removed, failed = host.restore_files(module, originals)
    return restored + removed, failed


def undone_text(restored, failed):
    """What a failed run left behind, for the end of its message."""
    if failed:
        text = "could NOT restore %s" % "; ".join(failed)
        if restored:
            text += " (%s put back)" % ", ".join(restored)
        return text
    if len(restored) == 1:
        return "nothing was kept: %s is back as it was" % restored[0]
    if restored:
        return "nothing was kept: %s and %s are back as they were" % (", ".join(restored[:-1]), restored[-1])
    return "nothing was changed"


# The options every sysctl-writing module takes, beside its own settings.
MODULE_OPTIONS = dict(
    runtime=dict(type="bool", default=True),
    conflicts=dict(type="str", choices=["fail", "comment", "ignore"], default="fail"),
    backup=dict(type="bool", default=False),
)


def dropin_error(dropin):
    """Why ``dropin`` would never be applied at boot, or None when it would.

    A bare file name goes to /etc/sysctl.d; a path must be a ``*.conf`` file directly in one of the
    directories systemd-sysctl and ``sysctl --system`` read, or nothing applies it at boot.
    """
    if not dropin.endswith(".conf"):
        return ("dropin %r must end in .conf: systemd-sysctl and sysctl --system read only *.conf files"
                % dropin)
    if "/" in dropin and (not os.path.isabs(dropin) or os.path.dirname(os.path.normpath(dropin)) not in SYSCTL_DIRS
                          or os.path.normpath(dropin) != dropin):
        return ("dropin %r is not in a directory that systemd-sysctl or sysctl --system reads at boot: give a file "
                "name (written to %s) or a path directly in one of %s" % (dropin, DROPIN_DIR, ", ".join(SYSCTL_DIRS)))
    if dropin.startswith(".") or "\0" in dropin:
        return "dropin %r is not a usable file name" % dropin
    return None


def _undo(module, originals, previous, keys):
    """The kernel refused a value: put the files written (drop-in and commented-out conflicts) and the runtime
    ``keys`` back as they were, so that no persistent setting is left that the kernel would refuse (or apply
    differently) at the next boot, and no line that set the key before is lost. Returns ``(restored, failed)``."""
    restored, failed = restore_files(module, originals)
    for key in keys:
        try:
            write_runtime(key, previous[key])
            restored.append("%s at runtime" % key)
        except SysctlError as exc:
            failed.append("%s at runtime (%s)" % (key, exc))
    return restored, failed


class Plan:
    """What applying ``settings`` through one drop-in will do, computed before anything is written."""

    def __init__(self, dropin, settings, header):
        self.dropin = os.path.join(DROPIN_DIR, dropin) if "/" not in dropin else dropin
        self.settings = {normalize_key(k): str(v) for k, v in settings.items()}
        self.before = read_text(self.dropin)
        self.after = render_dropin(self.settings, self.before, header=header)
        self.sources = sources(self.settings, overrides={self.dropin: self.after})
        self.boot_order = boot_order()

    def conflicts(self):
        """``{key: [overriding source, ...]}``: assignments applied after the drop-in's, under either order."""
        found = {}
        for key, key_sources in self.sources.items():
            ours = [s for s in key_sources if s["path"] == self.dropin]
            if not ours:
                continue
            mine = ours[-1]
            for src in key_sources:
                if src["path"] == self.dropin:
                    continue
                later = [o for o in src["rank"] if o in mine["rank"] and src["rank"][o] > mine["rank"][o]]
                # /etc/sysctl.conf under procps is applied after everything in sysctl.d.
                if later and src["value"] != mine["value"]:
                    found.setdefault(key, []).append(src)
        return found


def conflict_message(conflicts, dropin):
    parts = []
    for key, srcs in conflicts.items():
        where = ", ".join(
            "%s:%d (%s = %s, applied by %s)" % (s["path"], s["line"], key, s["value"], " and ".join(sorted(s["rank"])))
            for s in srcs)
        parts.append("%s in %s would be overridden by %s" % (key, dropin, where))
    return ("%s. Nothing was written. Set conflicts=comment to comment those lines out "
            "(with a backup; a vendor file is masked by a copy in /etc/sysctl.d), "
            "or conflicts=ignore to write anyway." % "; ".join(parts))


def resolve_conflicts(module, conflicts, marker, check_mode, originals=None):
    """Comment out overriding lines. Returns ``(diffs, changed_files, backups)``. Each file's content is put in
    ``originals`` (``{path: bytes or None}``) before it is written, for :func:`restore_files`.

    A file under /etc is edited in place (through its symlink target) with a
    backup. A vendor file (/run, /usr/local/lib, /usr/lib, /lib) is masked by a
    same-named copy in /etc/sysctl.d with the line commented out, which is how
    sysctl.d(5) says to override vendor configuration.
    """
    by_target = {}
    for key, srcs in conflicts.items():
        for src in srcs:
            path = src["path"]
            if path.startswith("/etc/"):
                target = host_realpath(path)
            else:
                target = os.path.join(DROPIN_DIR, os.path.basename(path))
            entry = by_target.setdefault(target, {"source": path, "keys": set()})
            entry["keys"].add(key)
    diffs, changed, backups = [], [], []
    for target, entry in sorted(by_target.items()):
        before = read_text(target)
        after = comment_out(read_text(entry["source"], default=""), entry["keys"], marker)
        if before == after:
            continue
        diffs.append({"before_header": target, "after_header": target, "before": before or "", "after": after})
        changed.append(target)
        if not check_mode:
            if originals is not None:
                originals.setdefault(target, host.read_bytes(target))
            backup_file = write_file(module, target, after, backup=before is not None)
            if backup_file:
                backups.append(backup_file)
    return diffs, changed, backups


def apply(module, dropin, settings, runtime=True, conflicts_mode="fail", header=None, backup=False):
    """Make ``settings`` persistent in ``dropin`` and (optionally) live. The shared engine of
    ``sysrq_mask`` and ``nmi_panic``; fails the module with a clear message, writing nothing,
    when the plan cannot be carried out.

    Returns a dict: ``changed``, ``diff`` (list), ``dropin``, ``previous`` ({key: runtime before}),
    ``runtime`` ({key: value after}), ``sources`` ({key: [...]}), ``winner`` ({key: source}),
    ``in_sync`` ({key: bool}), ``commented`` (files edited), ``backups``.
    """
    check_mode = module.check_mode
    plan = Plan(dropin, settings, header)
    conflicts = plan.conflicts()
    diffs, changed_files, backups = [], [], []
    if conflicts and conflicts_mode == "fail":
        module.fail_json(msg=conflict_message(conflicts, plan.dropin),
                         sources={k: [public_source(s) for s in v] for k, v in plan.sources.items()})

    previous = {key: read_runtime(key) for key in plan.settings}
    if runtime:
        missing = [key for key, value in previous.items() if value is None]
        if missing:
            module.fail_json(msg="the running kernel has no %s (%s); nothing was written"
                             % (", ".join(missing), ", ".join(proc_path(k) for k in missing)))

    # Persistent: conflicts first, then the drop-in. Every file's content is kept before it is written: a write
    # that fails, or a value the kernel refuses, puts them all back, commented-out conflicts included.
    originals = {}
    try:
        if conflicts and conflicts_mode == "comment":
            diffs, changed_files, backups = resolve_conflicts(module, conflicts, "disabled by magic_sysrq.fleet",
                                                              check_mode, originals)
        if plan.before != plan.after:
            diffs.append({"before_header": plan.dropin, "after_header": plan.dropin,
                          "before": plan.before or "", "after": plan.after})
            changed_files.append(plan.dropin)
            if not check_mode:
                originals.setdefault(plan.dropin, host.read_bytes(plan.dropin))
                backup_file = write_file(module, plan.dropin, plan.after, backup=backup)
                if backup_file:
                    backups.append(backup_file)
    except Exception as exc:  # pylint: disable=broad-except  # atomic_move raises a plain Exception
        restored, failed = restore_files(module, originals)
        # the last file put in originals is the one being written when it failed
        where = list(originals)[-1] if originals else "the sysctl files"
        module.fail_json(msg="writing %s failed: %s; %s" % (where, host.error_text(exc), undone_text(restored, failed)),
                         changed=bool(failed))

    # Runtime.
    runtime_changed = []
    now = dict(previous)
    if runtime:
        for key, value in plan.settings.items():
            if previous[key] != value:
                runtime_changed.append(key)
                if not check_mode:
                    try:
                        write_runtime(key, value)
                    except SysctlError as exc:
                        restored, failed = _undo(module, originals, previous, runtime_changed[:-1])
                        module.fail_json(msg="%s; %s" % (exc, undone_text(restored, failed)), changed=bool(failed))
                    now[key] = read_runtime(key)
                else:
                    now[key] = value
    if runtime_changed:
        diffs.append({"before_header": "runtime", "after_header": "runtime",
                      "before": "".join("%s = %s\n" % (k, previous[k]) for k in runtime_changed),
                      "after": "".join("%s = %s\n" % (k, plan.settings[k]) for k in runtime_changed)})

    # What wins at boot after this run (re-read unless check mode, where the plan is the answer).
    final_sources = plan.sources if check_mode else sources(plan.settings)
    if check_mode and conflicts and conflicts_mode == "comment":
        final_sources = {key: [s for s in srcs if s not in conflicts.get(key, [])]
                         for key, srcs in plan.sources.items()}
    winners = {key: winner(srcs, plan.boot_order) for key, srcs in final_sources.items()}
    return {
        "changed": bool(changed_files or runtime_changed),
        "diff": diffs,
        "dropin": plan.dropin,
        "previous": previous,
        "runtime": now,
        "boot_order": plan.boot_order,
        "sources": {k: [public_source(s) for s in v] for k, v in final_sources.items()},
        "winner": {k: (public_source(w) if w else None) for k, w in winners.items()},
        "in_sync": {k: (winners[k] is not None and now.get(k) is not None and winners[k]["value"] == now[k])
                    for k in plan.settings},
        "commented": [p for p in changed_files if p != plan.dropin],
        "backups": backups,
    }


def unsupported_reason(key, runtime=True, probe=False):
    """Why ``key`` cannot be set here, or None when it can.

    Missing from /proc/sys, or read-only by its mode (0444: the kernel takes no writes, like
    ``nmi_watchdog`` on a kernel without the hardlockup detector), the kernel lacks it. With
    ``runtime`` the file must also be writable now: a container's read-only /proc/sys is not a
    kernel that lacks the setting, so it only matters when the value is to be set live. With
    ``probe`` the current value is written back, which changes nothing but shows a handler that
    refuses every write (``nmi_watchdog`` without a usable detector answers ENOTSUPP).
    """
    path = proc_path(key)
    full = host_path(path)
    if not os.path.exists(full):
        return "%s does not exist on this kernel or architecture" % path
    if not os.stat(full).st_mode & stat.S_IWUSR:
        return "%s is read-only on this kernel" % path
    if runtime and not os.access(full, os.W_OK):
        return "%s is not writable here (read-only /proc/sys, as in a container?); use runtime=false" % path
    if runtime and probe:
        try:
            write_runtime(key, read_runtime(key))
        except SysctlError as exc:
            return str(exc)
    return None
