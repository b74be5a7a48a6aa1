# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""netconsole's configfs targets in the running kernel: read, apply, remove.

``/sys/kernel/config/netconsole/<name>/`` appears with ``mkdir`` (once the netconsole module is loaded and configfs
is mounted); its attributes change only while ``enabled`` is 0, so a target that differs is disabled, written and
enabled again. ``rmdir`` removes a disabled target.
"""

from __future__ import annotations

import os

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._host import host_path

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._netconsole import target as nc_target

CONFIGFS = "/sys/kernel/config"
ROOT = CONFIGFS + "/netconsole"


class ConfigfsError(RuntimeError):
    """``changed``: the running kernel was changed before the error (and the change could not be undone)."""

    def __init__(self, msg, changed=False):
        super().__init__(msg)
        self.changed = changed


def _read(path):
    try:
        with open(path) as handle:
            return handle.read().strip()
    except OSError:
        return None


def _write(path, value):
    try:
        with open(path, "w") as handle:
            handle.write("%s\n" % value)
    except OSError as exc:
        raise ConfigfsError("writing %r to %s failed: %s" % (value, path, exc))


def available():
    return os.path.isdir(host_path(ROOT))


def prepare(module):
    """Load netconsole and mount configfs when needed; return whether it did either. An error says why configfs
    targets are not there."""
    if available():
        return False
    changed = False
    modprobe = module.get_bin_path("modprobe", required=False)
    if modprobe:
        loaded = os.path.isdir(host_path("/sys/module/netconsole"))
        rc, out, err = module.run_command([modprobe, "netconsole"])
        if rc != 0:
            raise ConfigfsError("modprobe netconsole failed (rc %s): %s" % (rc, (err or out).strip()))
        changed = not loaded
    if not available() and not os.path.ismount(host_path(CONFIGFS)) and os.path.isdir(host_path(CONFIGFS)):
        rc, out, err = module.run_command(["mount", "-t", "configfs", "configfs", host_path(CONFIGFS)])
        if rc != 0:
            raise ConfigfsError("mounting configfs on %s failed: %s" % (CONFIGFS, (err or out).strip()), changed)
        changed = True
    if not available():
        raise ConfigfsError("%s does not exist after loading netconsole: this kernel has no dynamic (configfs) "
                            "targets (CONFIG_NETCONSOLE_DYNAMIC); use method modparam" % ROOT, changed)
    return changed


def targets():
    """``{name: {attribute: value, "enabled": "0"|"1"}}`` of every configfs target in the running kernel."""
    root = host_path(ROOT)
    out = {}
    try:
        names = sorted(os.listdir(root))
    except OSError:
        return out
    for name in names:
        path = os.path.join(root, name)
        if not os.path.isdir(path):
            continue
        values = {key: _read(os.path.join(path, key)) for key in nc_target.ATTRIBUTES + ("enabled",)}
        out[name] = values
    return out


def differs(current, wanted):
    """The attributes of ``wanted`` (a complete target) that the running target does not have, plus ``enabled``."""
    want = dict(nc_target.attributes(wanted), enabled="1")
    if current is None:
        return sorted(want)
    return sorted(key for key, value in want.items() if (current.get(key) or "").lower() != value.lower())


def apply(wanted):
    """Make the running target ``wanted["name"]`` match ``wanted`` and enabled; returns what was changed.

    When a write fails the target is put back as it was (a new one removed, an updated one given its previous
    attributes and enabled again when it was), so that a working target is not left disabled with half-new settings.
    """
    path = host_path(os.path.join(ROOT, wanted["name"]))
    current = targets().get(wanted["name"])
    changed = differs(current, wanted)
    if not changed:
        return []
    if current is None:
        try:
            os.mkdir(path)
        except OSError as exc:
            raise ConfigfsError("creating netconsole target %s failed: %s" % (path, exc))
    elif current.get("enabled") == "1":
        _write(os.path.join(path, "enabled"), 0)
    values = nc_target.attributes(wanted)
    try:
        for key in nc_target.ATTRIBUTES:
            if current is None or key in changed:
                _write(os.path.join(path, key), values[key])
        try:
            _write(os.path.join(path, "enabled"), 1)
        except ConfigfsError as exc:
            raise ConfigfsError("%s (the kernel could not start the target: is %s up, and %s its address?)"
                                % (exc, wanted["dev_name"], wanted["local_ip"]))
    except ConfigfsError as exc:
        undone, error = _put_back(path, current, changed)
        raise ConfigfsError("%s; %s" % (exc, undone), changed=error) from None
    return changed


def _put_back(path, current, changed):
    """Undo a failed :func:`apply`; return ``(what was done, whether the target is left changed)``."""
    name = os.path.basename(path)
    if current is None:
        try:
            if _read(os.path.join(path, "enabled")) == "1":
                _write(os.path.join(path, "enabled"), 0)
            os.rmdir(path)
        except (OSError, ConfigfsError) as exc:
            return "could NOT remove the new target %s again (%s)" % (name, exc), True
        return "the new target %s was removed again" % name, False
    try:
        for key in nc_target.ATTRIBUTES:
            if key in changed and current.get(key) is not None:
                _write(os.path.join(path, key), current[key])
        if current.get("enabled") == "1":
            _write(os.path.join(path, "enabled"), 1)
    except ConfigfsError as exc:
        return "could NOT put target %s back as it was (%s): it is left disabled" % (name, exc), True
    return "target %s is back as it was (its previous settings, %s)" % (
        name, "enabled" if current.get("enabled") == "1" else "disabled"), False


def remove(name):
    path = host_path(os.path.join(ROOT, name))
    if not os.path.isdir(path):
        return False
    disabled = _read(os.path.join(path, "enabled")) == "1"
    if disabled:
        _write(os.path.join(path, "enabled"), 0)
    try:
        os.rmdir(path)
    except OSError as exc:
        raise ConfigfsError("removing netconsole target %s failed: %s%s"
                            % (path, exc, " (it is left disabled)" if disabled else ""), changed=disabled)
    return True
