# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every boot-loader backend shares: host paths, detection of the boot loader, the plan of changes,
running a command, and the :class:`Backend` interface."""

from __future__ import annotations

import os

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._host import host_path, read_text
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.tokens import CmdlineError


BACKENDS = ("auto", "grub_debian", "grubby", "grub_suse", "systemd_boot")
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
        # What regenerate=false left for the caller to do: asked for, so a result field, not a warning.
        self.pending = None

    @property
    def changed(self):
        return bool(self.files or self.commands)


def run_command(module, argv):
    """``module.run_command`` without shell, in the C locale, and without expanding ``$`` or ``~`` in the
    arguments (AnsibleModule expands them by default, which would mangle the shell script and arguments)."""
    return module.run_command(argv, environ_update={"LC_ALL": "C"}, expand_user_and_vars=False)


def run_checked(module, argv, what):
    rc, out, err = run_command(module, argv)
    if rc != 0:
        raise CmdlineError("%s failed: %s exited %d: %s" % (what, " ".join(argv), rc, (err or out or "").strip()))
    return out


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
