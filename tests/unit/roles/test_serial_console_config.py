# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The serial_console role's own edit on the RHEL family and SUSE: GRUB_TERMINAL and GRUB_SERIAL_COMMAND in
/etc/default/grub, run by ansible-playbook on pretend hosts (playbooks/serial_console_grub.yml).

There the role writes those two lines itself (Debian and Ubuntu get a drop-in); the kernel arguments go through
magic_sysrq.fleet.kernel_cmdline, whose grubby, BLS and SUSE GRUB backends have their own tests
(tests/unit/plugins/modules/test_kernel_cmdline.py). The GRUB defaults files below keep the layout and settings of
what the installers write (RHEL 8, Rocky 9 cloud images, openSUSE Leap 15.6);
grub2-mkconfig, which the role's handler runs, is a stand-in that records its arguments.
"""

from __future__ import annotations

import os

import pytest

from .role_runner import backups, get, put, run_playbook, tree, write_inventory

PLAYBOOK = "serial_console_grub.yml"
TASK = "Set GRUB's terminal settings in the GRUB defaults"

# RHEL 9 and Rocky 9 as Anaconda writes it (BLS entries; the distributor is read from /etc/system-release);
# the base of the RHEL 8 file below.
GRUB_EL9 = """\
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR="$(sed 's, release .*$,,g' /etc/system-release)"
GRUB_DEFAULT=saved
GRUB_DISABLE_SUBMENU=true
GRUB_TERMINAL_OUTPUT="console"
GRUB_CMDLINE_LINUX="crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M resume=/dev/mapper/rl-swap rd.lvm.lv=rl/root \
rd.lvm.lv=rl/swap rhgb quiet"
GRUB_DISABLE_RECOVERY="true"
GRUB_ENABLE_BLSCFG=true
"""
# The RHEL 8 installer: crashkernel=auto.
GRUB_EL8 = GRUB_EL9.replace(
    "crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M resume=/dev/mapper/rl-swap rd.lvm.lv=rl/root rd.lvm.lv=rl/swap",
    "crashkernel=auto resume=/dev/mapper/rhel-swap rd.lvm.lv=rhel/root rd.lvm.lv=rhel/swap")
# Rocky and RHEL 9 cloud images: already on the serial line, at a speed GRUB_SERIAL_COMMAND gives alone.
GRUB_EL9_CLOUD = """\
GRUB_TIMEOUT=1
GRUB_DISTRIBUTOR="$(sed 's, release .*$,,g' /etc/system-release)"
GRUB_DEFAULT=saved
GRUB_DISABLE_SUBMENU=true
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --speed=115200"
GRUB_CMDLINE_LINUX="console=tty0 console=ttyS0,115200n8 no_timer_check net.ifnames=0 crashkernel=1G-4G:192M,4G-64G:256M,64G-:512M"
GRUB_DISABLE_RECOVERY="true"
GRUB_ENABLE_BLSCFG=true
"""
# openSUSE Leap 15.6 as the installer writes it: graphical terminal with the openSUSE theme.
GRUB_LEAP = """\
# If you change this file, run 'grub2-mkconfig -o /boot/grub2/grub.cfg' afterwards to update
# /boot/grub2/grub.cfg.

# Uncomment to set your own custom distributor. If you leave it unset or empty, the default
# policy is to determine the value from /etc/os-release
GRUB_DISTRIBUTOR=
GRUB_DEFAULT=saved
GRUB_HIDDEN_TIMEOUT=0
GRUB_HIDDEN_TIMEOUT_QUIET=true
GRUB_TIMEOUT=8
GRUB_CMDLINE_LINUX_DEFAULT="splash=silent resume=/dev/disk/by-uuid/6b0c3c55-5c4c-4bf2-9a2d-4b5bd2e5b3e8 preempt=full \
mitigations=auto quiet security=apparmor"
GRUB_CMDLINE_LINUX=""

# Uncomment to automatically save last booted menu entry in GRUB2 environment
# variable `saved_entry'
# GRUB_SAVEDEFAULT="true"

# Uncomment to enable BadRAM filtering, modify to suit your needs
# This works with Linux (no patch required) and with any kernel that obtains
# the memory map information from GRUB (GNU Mach, kernel of FreeBSD ...)
#GRUB_BADRAM="0x01234567,0xfefefefe,0x89abcdef,0xefefefef"

# Uncomment to disable graphical terminal (grub-pc only)
GRUB_TERMINAL="gfxterm"

# The resolution used on graphical terminal
# note that you can use only modes which your graphic card supports via VBE
# you can see them in real GRUB with the command `vbeinfo'
GRUB_GFXMODE="auto"

# Uncomment if you don't want GRUB to pass "root=UUID=xxx" parameter to Linux
# GRUB_DISABLE_LINUX_UUID=true

# Uncomment to disable generation of recovery mode menu entries
# GRUB_DISABLE_RECOVERY="true"

# Uncomment to get a beep at grub start
# GRUB_INIT_TUNE="480 440 1"
GRUB_BACKGROUND=
GRUB_THEME=/boot/grub2/themes/openSUSE/theme.txt
SUSE_BTRFS_SNAPSHOT_BOOTING="true"
GRUB_USE_LINUXEFI="true"
GRUB_DISABLE_OS_PROBER="false"
GRUB_ENABLE_CRYPTODISK="n"
GRUB_CMDLINE_XEN_DEFAULT="vga=gfx-1024x768x16"
"""


def facts(os_family, distribution, major, version):
    return {"os_family": os_family, "distribution": distribution, "distribution_major_version": major,
            "distribution_version": version}


DEFAULT_COMMAND = "serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1"

# name: (facts, role variables, /etc/default/grub, expected /etc/default/grub, lines changed, console arguments)
HOSTS = {
    "rocky9_cloud": (facts("RedHat", "Rocky", "9", "9.5"), {}, GRUB_EL9_CLOUD,
                     GRUB_EL9_CLOUD.replace('"serial --speed=115200"', '"%s"' % DEFAULT_COMMAND),
                     ["GRUB_SERIAL_COMMAND"], ["console=tty0", "console=ttyS0,115200n8"]),
    "el8": (facts("RedHat", "RedHat", "8", "8.10"),
            {"serial_console_unit": 1, "serial_console_speed": 9600, "serial_console_primary": "tty0"}, GRUB_EL8,
            GRUB_EL8 + 'GRUB_TERMINAL="serial console"\n'
                       'GRUB_SERIAL_COMMAND="serial --unit=1 --speed=9600 --word=8 --parity=no --stop=1"\n',
            ["GRUB_TERMINAL", "GRUB_SERIAL_COMMAND"], ["console=ttyS1,9600n8", "console=tty0"]),
    "leap": (facts("Suse", "openSUSE Leap", "15", "15.6"),
             {"serial_console_speed": 57600, "serial_console_parity": "even", "serial_console_word": 7,
              "serial_console_stop": 2, "serial_console_grub_terminal": ["serial"], "serial_console_tty0": False},
             GRUB_LEAP,
             GRUB_LEAP.replace('GRUB_TERMINAL="gfxterm"', 'GRUB_TERMINAL="serial"')
             + 'GRUB_SERIAL_COMMAND="serial --unit=0 --speed=57600 --word=7 --parity=even --stop=2"\n',
             ["GRUB_TERMINAL", "GRUB_SERIAL_COMMAND"], ["console=ttyS0,57600e7"]),
}
# A hand-edited file that sets GRUB_TERMINAL again further down: grub-mkconfig would not get the role's value, and
# the role must say so (after writing its lines: it reads back what it wrote, the way grub-mkconfig will).
GRUB_LEAP_OVERRIDE = GRUB_LEAP + 'if [ -n "$GRUB_THEME" ]; then\n    GRUB_TERMINAL="gfxterm"\nfi\n'
# A terminal name that would run a command where grub-mkconfig (and the role's read-back) sources the file.
BAD_TERMINAL = ['serial"; touch {{ test_base }}/pwned; "']
FAILING = {"leap_override": (HOSTS["leap"][0], {}, GRUB_LEAP_OVERRIDE),
           "bad_terminal": (HOSTS["leap"][0], {"serial_console_grub_terminal": BAD_TERMINAL}, GRUB_LEAP)}

GRUB_CFG = {
    "rocky9_cloud": {"bios": "/boot/grub2/grub.cfg", "uefi": "/boot/grub2/grub.cfg"},
    "el8": {"bios": "/boot/grub2/grub.cfg", "uefi": "/boot/efi/EFI/redhat/grub.cfg"},
    "leap": {"bios": "/boot/grub2/grub.cfg", "uefi": "/boot/grub2/grub.cfg"},
}


def make_hosts(root, hosts):
    """Each host's /etc/default/grub and a grub2-mkconfig stand-in that records its arguments."""
    inventory = {}
    for name, (host_facts, role_vars, text) in hosts.items():
        base = os.path.join(root, name)
        put(os.path.join(base, "grub"), text)
        put(os.path.join(base, "bin", "grub2-mkconfig"), "#!/bin/sh\necho \"${0##*/} $*\" >> %s\n"
            % os.path.join(base, "calls"), mode=0o755)
        hostvars = {"test_facts": host_facts, "test_base": base, "test_bin": os.path.join(base, "bin")}
        hostvars.update(role_vars)
        inventory[name] = hostvars
    return write_inventory(os.path.join(root, "inventory.json"), inventory)


EXTRA_VARS = {"__serial_console_grub_defaults": "{{ test_base }}/grub", "__serial_console_uses_grub": True}


class Lab:
    def __init__(self, root):
        self.root = root
        self.inventory = make_hosts(root, dict({n: h[:3] for n, h in HOSTS.items()}, **FAILING))

    def grub(self, name):
        return os.path.join(self.root, name, "grub")

    def calls(self, name):
        path = os.path.join(self.root, name, "calls")
        return get(path).splitlines() if os.path.exists(path) else []

    def files(self):
        return {p: v for name in HOSTS for p, v in tree(os.path.join(self.root, name)).items()
                if not p.endswith("/calls")}

    def run(self, check=False):
        return run_playbook(PLAYBOOK, self.inventory, EXTRA_VARS, self.root, check=check)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Three runs on the same files: check mode, then the real run, then the same run again."""
    lab = Lab(str(tmp_path_factory.mktemp("serial")))
    lab.before = lab.files()
    lab.check = lab.run(check=True)
    lab.check_files = lab.files()
    lab.check_calls = {name: lab.calls(name) for name in HOSTS}
    lab.first = lab.run()
    lab.after_first = {name: get(lab.grub(name)) for name in HOSTS}
    lab.backups_first = {name: backups(lab.grub(name)) for name in HOSTS}
    lab.first_calls = {name: lab.calls(name) for name in HOSTS}
    lab.second = lab.run()
    return lab


def test_runs_fail_only_where_they_must(lab):
    # check mode reads back nothing new, so it cannot tell leap_override; a bad terminal name it refuses
    assert lab.check.rc == 2, lab.check
    assert sorted(set(host for host, _task, _msg in lab.check.failures())) == ["bad_terminal"], lab.check
    for run in (lab.first, lab.second):
        assert run.rc == 2, run                 # leap_override failed, and only it
        assert sorted(set(host for host, _task, _msg in run.failures())) == sorted(FAILING), run
    for run in (lab.check, lab.first, lab.second):
        assert sorted(run.data["stats"]) == sorted(dict(HOSTS, **FAILING)), run


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_distribution_variables(lab, name):
    chosen = lab.first.debug(name, "Report what the role chose")
    assert chosen["grub_method"] == "defaults"
    assert chosen["grub_mkconfig"] == ["grub2-mkconfig", "-o", "{cfg}"]
    assert chosen["grub_cfg"] == GRUB_CFG[name]
    assert chosen["args"] == HOSTS[name][5]


def test_check_mode_changes_nothing(lab):
    assert lab.check_files == lab.before
    assert lab.check_calls == {name: [] for name in HOSTS}
    for name in HOSTS:
        assert lab.check.changed_items(name, TASK) == HOSTS[name][4], name


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_grub_defaults_after_the_run(lab, name):
    assert lab.after_first[name] == HOSTS[name][3]
    assert lab.first.changed_items(name, TASK) == HOSTS[name][4]
    assert os.stat(lab.grub(name)).st_mode & 0o7777 == 0o644
    found = lab.backups_first[name]
    assert len(found) == len(HOSTS[name][4])    # one per line changed; the first holds the file as it was
    assert HOSTS[name][2] in [get(b) for b in found]


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_read_back_the_way_grub_mkconfig_does(lab, name):
    effective = lab.first.result(name, "Read GRUB's terminal settings the way grub-mkconfig does")["stdout_lines"]
    role_vars = HOSTS[name][1]
    terminal = " ".join(role_vars.get("serial_console_grub_terminal", ["serial", "console"]))
    assert effective[0] == terminal
    assert effective[1] == HOSTS[name][3].split('GRUB_SERIAL_COMMAND="')[1].split('"')[0]
    assert lab.first.result(name, "Check that no other GRUB defaults file overrides them").get("failed") is not True


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_boot_configuration_regenerated_once(lab, name):
    assert lab.first_calls[name] == ["grub2-mkconfig -o /boot/grub2/grub.cfg"]


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_second_run_changes_nothing(lab, name):
    assert lab.second.stats(name)["changed"] == 0, lab.second
    assert get(lab.grub(name)) == HOSTS[name][3]
    assert backups(lab.grub(name)) == lab.backups_first[name]
    assert lab.calls(name) == lab.first_calls[name]


def test_a_later_setting_in_the_same_file_is_refused(lab):
    for run in (lab.first, lab.second):
        failed = run.result("leap_override", "Check that no other GRUB defaults file overrides them")
        assert failed.get("failed") is True
        assert 'grub-mkconfig would use GRUB_TERMINAL="gfxterm"' in failed["msg"]
        assert "a later line of %s sets them" % lab.grub("leap_override") in failed["msg"]
    # the failed host's boot configuration was not regenerated with settings that do not take
    assert lab.calls("leap_override") == []


def test_a_failed_check_puts_the_file_back(lab):
    # the role wrote its lines, read them back, found them overridden: the file is as it was before the run
    assert get(lab.grub("leap_override")) == GRUB_LEAP_OVERRIDE
    failed = [msg for host, _task, msg in lab.first.failures() if host == "leap_override"]
    assert any("was put back from its backup" in msg for msg in failed), failed


def test_grub_terminal_names_are_checked_before_anything_is_written(lab):
    for run in (lab.first, lab.second):
        failed = [msg for host, _task, msg in run.failures() if host == "bad_terminal"]
        assert failed and "is not a GRUB terminal" in failed[0] and "gfxterm" in failed[0], failed
    assert get(lab.grub("bad_terminal")) == GRUB_LEAP
    assert not os.path.exists(os.path.join(lab.root, "bad_terminal", "pwned"))
    assert lab.calls("bad_terminal") == []
