"""The files the sysctl engine and kernel_cmdline write: the mode of a new file whatever the umask, and a write that
fails (ansible-core's atomic_move raises a plain Exception, from the OSError) put back with a clear message."""
from __future__ import annotations

import errno
import os
import stat

import pytest

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysctl import engine
from ansible_collections.magic_sysrq.fleet.plugins.modules import kernel_cmdline, sysrq_mask

from ..conftest_helpers import debian_host
from ..modules.test_kernel_cmdline import MID, Commands, get, sdboot_host
from ..modules.test_kernel_cmdline import debian_host as grub_debian_host

SYSRQ_DROPIN = "etc/sysctl.d/90-magic-sysrq.conf"
GRUB_DROPIN = "etc/default/grub.d/magic_sysrq.cfg"


def mode_of(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


@pytest.fixture
def commands(monkeypatch):
    """No command runs for real (AnsibleModule's own lsattr around backups included)."""
    recorder = Commands()
    monkeypatch.setattr(AnsibleModule, "run_command", lambda self, args, **kw: recorder.run(args, **kw))
    return recorder


@pytest.fixture
def umask():
    """``umask(value)`` sets the process umask for the test, the old one back afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield os.umask
    os.umask(old)


@pytest.fixture
def refuse_move(monkeypatch):
    """``refuse_move(*suffixes, restore=())``: atomic_move fails, as ansible-core's does on an immutable file, for a
    destination ending in one of ``suffixes``, and for one ending in one of ``restore`` once a move was refused (the
    file written, then not put back)."""
    real = AnsibleModule.atomic_move

    def arm(*suffixes, restore=()):
        refused = []

        def move(self, src, dest, *args, **kwargs):
            if dest.endswith(tuple(suffixes)) or (refused and dest.endswith(tuple(restore))):
                refused.append(dest)
                raise Exception("Unable to make %r into to %r, failed final rename." % (src, dest)) from (
                    OSError(errno.EPERM, "Operation not permitted"))
            return real(self, src, dest, *args, **kwargs)
        monkeypatch.setattr(AnsibleModule, "atomic_move", move)
    return arm


# --- modes ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("mask", [0o000, 0o002, 0o077])
def test_a_new_sysctl_dropin_is_0644_whatever_the_umask(host_root, run_module, umask, mask):
    debian_host(host_root)
    umask(mask)
    result = run_module(sysrq_mask, {"mask": 176, "runtime": False})
    assert result["changed"] is True
    assert mode_of(host_root / SYSRQ_DROPIN) == 0o644


def test_an_existing_sysctl_dropin_keeps_its_mode(host_root, run_module, umask):
    debian_host(host_root)
    (host_root / SYSRQ_DROPIN).write_text("kernel.sysrq = 438\n")
    os.chmod(str(host_root / SYSRQ_DROPIN), 0o600)
    umask(0o000)
    assert run_module(sysrq_mask, {"mask": 176, "runtime": False})["changed"] is True
    assert mode_of(host_root / SYSRQ_DROPIN) == 0o600


@pytest.mark.parametrize("mask", [0o000, 0o002])
def test_a_new_vendor_mask_copy_is_0644(host_root, run_module, umask, mask):
    # a vendor file after the drop-in is masked by a new copy in /etc/sysctl.d
    debian_host(host_root)
    (host_root / "usr/lib/sysctl.d").mkdir(parents=True)
    (host_root / "usr/lib/sysctl.d/99-vendor.conf").write_text("kernel.sysrq = 1\n")
    umask(mask)
    result = run_module(sysrq_mask, {"mask": 176, "runtime": False, "conflicts": "comment"})
    assert result["commented"] == ["/etc/sysctl.d/99-vendor.conf"]
    assert mode_of(host_root / "etc/sysctl.d/99-vendor.conf") == 0o644


@pytest.mark.parametrize("mask", [0o000, 0o002])
def test_a_new_grub_dropin_is_0644_whatever_the_umask(host_root, run_module, commands, umask, mask):
    # grub-mkconfig sources it as root: group- or world-writable would let others run code at the next update-grub
    grub_debian_host(host_root)
    umask(mask)
    result = run_module(kernel_cmdline, {"args": ["sysrq_always_enabled"], "backend": "grub_debian",
                                         "regenerate": False})
    assert result["changed"] is True and result["files"] == ["/" + GRUB_DROPIN]
    assert mode_of(host_root / GRUB_DROPIN) == 0o644


# --- the sysctl engine: a write that fails -------------------------------------------------------------------------

def test_a_dropin_that_cannot_be_written_puts_the_commented_conflict_back(host_root, run_module, refuse_move):
    debian_host(host_root, sysctl_conf="kernel.sysrq = 0\n")
    (host_root / SYSRQ_DROPIN).write_text("kernel.sysrq = 438\n")
    refuse_move(SYSRQ_DROPIN)
    result = run_module(sysrq_mask, {"mask": 176, "conflicts": "comment", "runtime": False})
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"].startswith("writing /%s failed: Unable to make " % SYSRQ_DROPIN)
    assert "Operation not permitted; nothing was kept: /etc/sysctl.conf is back as it was" in result["msg"]
    assert (host_root / "etc/sysctl.conf").read_text() == "kernel.sysrq = 0\n"
    assert (host_root / SYSRQ_DROPIN).read_text() == "kernel.sysrq = 438\n"


def test_a_conflict_that_cannot_be_put_back_is_named_and_a_change(host_root, run_module, refuse_move):
    debian_host(host_root, sysctl_conf="kernel.sysrq = 0\n")
    refuse_move(SYSRQ_DROPIN, restore=["etc/sysctl.conf"])
    result = run_module(sysrq_mask, {"mask": 176, "conflicts": "comment", "runtime": False})
    assert result["failed"] is True and result["changed"] is True
    assert "could NOT restore /etc/sysctl.conf (Unable to make" in result["msg"]
    assert (host_root / "etc/sysctl.conf").read_text().startswith("# disabled by magic_sysrq.fleet")
    assert not (host_root / SYSRQ_DROPIN).exists()


def test_a_value_the_kernel_refuses_puts_the_commented_conflict_back(host_root, run_module, monkeypatch):
    # /etc/sysctl.conf hardens sysrq to 0: that line must not silently disappear when nothing else is kept
    debian_host(host_root, sysctl_conf="kernel.sysrq = 0\n")

    def refuse(key, value):
        raise engine.SysctlError("cannot set %s = %s at runtime: Invalid argument" % (key, value))
    monkeypatch.setattr(engine, "write_runtime", refuse)
    result = run_module(sysrq_mask, {"mask": 176, "conflicts": "comment"})
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"] == ("cannot set kernel.sysrq = 176 at runtime: Invalid argument; nothing was kept: "
                             "/etc/sysctl.conf and /etc/sysctl.d/90-magic-sysrq.conf are back as they were")
    assert (host_root / "etc/sysctl.conf").read_text() == "kernel.sysrq = 0\n"
    assert not (host_root / SYSRQ_DROPIN).exists()


# --- kernel_cmdline: a write that fails ----------------------------------------------------------------------------

def test_systemd_boot_entry_that_cannot_be_written_restores_etc_kernel_cmdline(host_root, run_module, commands,
                                                                               refuse_move):
    sdboot_host(host_root)
    cmdline = get(host_root, "/etc/kernel/cmdline")
    entry = "/boot/efi/loader/entries/%s-6.1.0-27-amd64.conf" % MID
    before = get(host_root, entry)
    refuse_move(entry)
    result = run_module(kernel_cmdline, {"args": ["sysrq_always_enabled"], "backend": "systemd_boot"})
    assert result["failed"] is True and result["changed"] is False
    assert result["msg"].startswith("writing %s: Unable to make " % entry)
    assert ("Operation not permitted; every change was undone (restored /etc/kernel/cmdline to its previous "
            "content)") in result["msg"]
    assert get(host_root, "/etc/kernel/cmdline") == cmdline and get(host_root, entry) == before


def test_a_file_that_cannot_be_restored_is_a_change(host_root, run_module, commands, refuse_move):
    sdboot_host(host_root)
    # the entry cannot be written, and /etc/kernel/cmdline, once written, cannot be put back
    refuse_move("/boot/efi/loader/entries/%s-6.1.0-27-amd64.conf" % MID, restore=["/etc/kernel/cmdline"])
    result = run_module(kernel_cmdline, {"args": ["sysrq_always_enabled"], "backend": "systemd_boot"})
    assert result["failed"] is True and result["changed"] is True
    assert "could NOT restore /etc/kernel/cmdline (Unable to make" in result["msg"]
    assert "sysrq_always_enabled" in get(host_root, "/etc/kernel/cmdline")
