# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The kdump role's RHEL-family and SUSE configuration steps, run by ansible-playbook on pretend hosts.

No RHEL or SUSE host can be reached from here, so each pretend host is localhost with the facts of one
distribution (playbooks/kdump_config.yml): the role loads that distribution's variables, works out the crashkernel=
value from what kdumpctl or kdumptool print (stand-ins under the host's bin directory print the real output
formats), and edits a configuration file in the upstream format in a temporary directory (__kdump_config_file).
One check-mode run, one run and a second run are shared by the tests of this module.

The files keep the upstream layout and every directive and variable, with the comment blocks shortened:
/etc/kdump.conf as kexec-tools (EL8, EL9) and kdump-utils (EL10, Fedora) install it, /etc/sysconfig/kdump as the
kdump package of SLES/Leap 15 (kdump 1.0) and of Tumbleweed (kdump 2.x) installs it.
"""

from __future__ import annotations

import os

import pytest

from .role_runner import backups, get, me, put, run_playbook, tree, write_inventory

PLAYBOOK = "kdump_config.yml"
CONFIG_TASK = {"redhat": "Write /etc/kdump.conf", "suse": "Write /etc/sysconfig/kdump"}

# kexec-tools on EL9 and kdump-utils on EL10 and Fedora: the comment block documents every directive, then come
# commented examples, the three active directives, and more commented examples.
KDUMP_CONF = """\
# Directives the kdump initramfs runs, in order, after the running kernel crashed.
# (The upstream comment block documents every directive; shortened here.)
#
# path <path>
#           - the directory the vmcore is saved in. If unset, "/var/crash".
#
# core_collector <command> <options>
#           - the program that copies /proc/vmcore. The default for raw/ssh
#             targets is "makedumpfile -F -l --message-level 7 -d 31", for
#             other targets "makedumpfile -l --message-level 7 -d 31".
#
# failure_action <reboot | halt | poweroff | shell | dump_to_rootfs>
#           - what to do when saving the dump fails.
#

#raw /dev/vg/lv_kdump
#ext4 /dev/vg/lv_kdump
#ext4 LABEL=/boot
#ext4 UUID=03138356-5e61-4ab3-b58e-27507ac41937
#virtiofs myfs
#nfs my.server.com:/export/tmp
#nfs [2001:db8::1:2:3:4]:/export/tmp
#ssh user@my.server.com
#ssh user@2001:db8::1:2:3:4
#sshkey /root/.ssh/kdump_id_rsa
auto_reset_crashkernel yes
path /var/crash
core_collector makedumpfile -l --message-level 7 -d 31
#core_collector scp
#kdump_post /var/crash/scripts/kdump-post.sh
#kdump_pre /var/crash/scripts/kdump-pre.sh
#extra_bins /usr/bin/lftp
#extra_modules gfs2
#failure_action shell
#force_rebuild 1
#force_no_rebuild 1
#dracut_args --omit-drivers "cfg80211 snd" --add-drivers "ext2 ext3"
#fence_kdump_args -p 7410 -f auto -c 0 -i 10
#fence_kdump_nodes node1 node2
"""

# kexec-tools 2.0.20 on EL8: no auto_reset_crashkernel, message level 1, "default" rather than failure_action.
KDUMP_CONF_EL8 = """\
# Directives the kdump initramfs runs, in order, after the running kernel crashed.
# (The upstream comment block documents every directive; shortened here.)
#
# core_collector <command> <options>
#           - The default for other targets is
#             "makedumpfile -l --message-level 1 -d 31".
#

#raw /dev/vg/lv_kdump
#ext4 /dev/vg/lv_kdump
#nfs my.server.com:/export/tmp
#ssh user@my.server.com
#sshkey /root/.ssh/kdump_id_rsa
path /var/crash
core_collector makedumpfile -l --message-level 1 -d 31
#core_collector scp
#kdump_post /var/crash/scripts/kdump-post.sh
#kdump_pre /var/crash/scripts/kdump-pre.sh
#extra_bins /usr/bin/lftp
#extra_modules gfs2
#default shell
#force_rebuild 1
#force_no_rebuild 1
#dracut_args --omit-drivers "cfg80211 snd" --add-drivers "ext2 ext3"
#fence_kdump_args -p 7410 -f auto -c 0 -i 10
#fence_kdump_nodes node1 node2
"""


def sysconfig(entries):
    """An /etc/sysconfig/kdump in SUSE's fillup layout: per variable a ## Type/Default block, comments, the line."""
    out = ["## Path:        System/Kernel/Kdump\n## Description: Crash Dump Configuration\n"]
    for line in entries:
        name = line.split("=", 1)[0]
        out.append("\n## Type:\tstring\n## Default:\t\"\"\n## ServiceRestart:\tkdump\n#\n"
                   "# What %s sets (upstream documents each variable here).\n#\n# See also: kdump(5).\n#\n%s\n"
                   % (name, line))
    return "".join(out)


# kdump 1.0 (SLES 15, openSUSE Leap 15): a file:// URL for the directory, integers bare, strings quoted.
SYSCONFIG_15 = sysconfig([
    'KDUMP_KERNELVER=""', "KDUMP_CPUS=1", 'KDUMP_COMMANDLINE=""', 'KDUMP_COMMANDLINE_APPEND=""',
    'KDUMP_AUTO_RESIZE="no"', 'KEXEC_OPTIONS=""', 'KDUMP_IMMEDIATE_REBOOT="yes"', 'KDUMP_TRANSFER=""',
    'KDUMP_SAVEDIR="file:///var/crash"', "KDUMP_KEEP_OLD_DUMPS=5", "KDUMP_FREE_DISK_SIZE=64", "KDUMP_VERBOSE=3",
    "KDUMP_DUMPLEVEL=31", 'KDUMP_DUMPFORMAT="compressed"', 'KDUMP_CONTINUE_ON_ERROR="true"',
    'KDUMP_REQUIRED_PROGRAMS=""', 'KDUMP_PRESCRIPT=""', 'KDUMP_POSTSCRIPT=""', 'KDUMP_COPY_KERNEL="yes"',
    'KDUMPTOOL_FLAGS=""', 'KDUMP_NETCONFIG="auto"', "KDUMP_NET_TIMEOUT=30", 'KDUMP_SMTP_SERVER=""',
    'KDUMP_SMTP_USER=""', 'KDUMP_SMTP_PASSWORD=""', 'KDUMP_NOTIFICATION_TO=""', 'KDUMP_NOTIFICATION_CC=""',
    'KDUMP_HOST_KEY=""', 'KDUMP_SSH_IDENTITY=""',
])
# kdump 2.x (Tumbleweed): a plain directory, no KDUMPTOOL_FLAGS or KDUMP_COPY_KERNEL, KDUMP_CRASHKERNEL.
SYSCONFIG_TW = sysconfig([
    'KDUMP_CRASHKERNEL="auto"', 'KDUMP_KERNELVER=""', "KDUMP_CPUS=32", 'KDUMP_COMMANDLINE=""',
    'KDUMP_COMMANDLINE_APPEND=""', 'KDUMP_AUTO_RESIZE="false"', 'KEXEC_OPTIONS=""',
    'KDUMP_IMMEDIATE_REBOOT="true"', 'KDUMP_TRANSFER=""', 'KDUMP_SAVEDIR="/var/crash"', "KDUMP_KEEP_OLD_DUMPS=0",
    "KDUMP_FREE_DISK_SIZE=64", "KDUMP_VERBOSE=0", "KDUMP_DUMPLEVEL=31", 'KDUMP_DUMPFORMAT="compressed"',
    'KDUMP_CONTINUE_ON_ERROR="true"', 'KDUMP_REQUIRED_PROGRAMS=""', 'KDUMP_PRESCRIPT=""', 'KDUMP_POSTSCRIPT=""',
    'KDUMP_NETCONFIG="auto"', "KDUMP_NET_TIMEOUT=30", 'KDUMP_HOST_KEY=""', 'KDUMP_SSH_IDENTITY=""',
])

# What the tools print. kdumpctl get-default-crashkernel: one crashkernel= value (EL9; kdump-utils on EL10 and
# Fedora). kdumptool calibrate: MiB per line; on x86_64 Low is the DMA part and High the rest, elsewhere High is 0.
KDUMPCTL_EL9 = "1G-4G:192M,4G-64G:256M,64G-:512M\n"
KDUMPCTL_EL10 = "2G-64G:256M,64G-:512M\n"
CALIBRATE_X86_64 = "Total: 7962\nLow: 72\nHigh: 211\nMinLow: 72\nMaxLow: 3055\nMinHigh: 0\nMaxHigh: 4919\n"
CALIBRATE_AARCH64 = "Total: 7953\nLow: 325\nHigh: 0\nMinLow: 72\nMaxLow: 7953\nMinHigh: 0\nMaxHigh: 0\n"
CALIBRATE_FAILED = "Total: 0\nLow: 0\nHigh: 0\nMinLow: 0\nMaxLow: 0\nMinHigh: 0 \nMaxHigh: 0 \n"


def facts(os_family, distribution, major, version):
    return {"os_family": os_family, "distribution": distribution, "distribution_major_version": major,
            "distribution_version": version}


# name: (facts, role variables, config file, what kdumpctl/kdumptool print or None)
HOSTS = {
    "rocky9": (facts("RedHat", "Rocky", "9", "9.5"),
               {"kdump_path": "/srv/crash", "kdump_compression": "zstd", "kdump_dump_level": 17},
               KDUMP_CONF, KDUMPCTL_EL9),
    "el9_disabled": (facts("RedHat", "RedHat", "9", "9.4"), {"kdump_state": "disabled", "kdump_path": "/srv/crash"},
                     KDUMP_CONF, KDUMPCTL_EL9),
    "el8": (facts("RedHat", "RedHat", "8", "8.10"), {}, KDUMP_CONF_EL8, None),
    "el10_defaults": (facts("RedHat", "RedHat", "10", "10.0"), {}, KDUMP_CONF, KDUMPCTL_EL10),
    "fedora": (facts("RedHat", "Fedora", "42", "42"), {"kdump_crashkernel": "256M", "kdump_compression": "none"},
               KDUMP_CONF, None),
    "leap": (facts("Suse", "openSUSE Leap", "15", "15.6"),
             {"kdump_path": "/srv/crash", "kdump_compression": "none", "kdump_dump_level": 17},
             SYSCONFIG_15, CALIBRATE_X86_64),
    "tumbleweed_aarch64": (facts("Suse", "openSUSE Tumbleweed", "20250601", "20250601"),
                           {"kdump_compression": "zstd"}, SYSCONFIG_TW, CALIBRATE_AARCH64),
}


# A host the role must refuse: kdumptool calibrate printed all zeros (as it does when it cannot work the size out).
FAILING = {
    "sles_uncalibrated": (facts("Suse", "SLES", "15", "15.6"), {}, SYSCONFIG_15, CALIBRATE_FAILED),
}


def edit(text, old, new):
    """``text`` with the one line ``old`` replaced by ``new``; fails when ``old`` is not exactly one line of it."""
    lines = text.splitlines(True)
    assert lines.count(old + "\n") == 1, old
    return "".join(new + "\n" if line == old + "\n" else line for line in lines)


# The files after the run: the role's settings changed in place, every other line and comment as it was.
EXPECTED = {
    "rocky9": edit(edit(KDUMP_CONF, "path /var/crash", "path /srv/crash"),
                   "core_collector makedumpfile -l --message-level 7 -d 31",
                   "core_collector makedumpfile -z --message-level 7 -d 17"),
    "el9_disabled": KDUMP_CONF,      # disabled: the configuration is left alone
    "el8": edit(KDUMP_CONF_EL8, "core_collector makedumpfile -l --message-level 1 -d 31",
                "core_collector makedumpfile -l --message-level 7 -d 31"),
    "el10_defaults": KDUMP_CONF,     # the role's defaults are what EL9 and EL10 ship
    "fedora": edit(KDUMP_CONF, "core_collector makedumpfile -l --message-level 7 -d 31",
                   "core_collector makedumpfile --message-level 7 -d 31"),
    "leap": edit(edit(edit(SYSCONFIG_15, 'KDUMP_SAVEDIR="file:///var/crash"', 'KDUMP_SAVEDIR="/srv/crash"'),
                      "KDUMP_DUMPLEVEL=31", "KDUMP_DUMPLEVEL=17"),
                 'KDUMP_DUMPFORMAT="compressed"', 'KDUMP_DUMPFORMAT="ELF"'),
    "tumbleweed_aarch64": edit(SYSCONFIG_TW, 'KDUMP_DUMPFORMAT="compressed"', 'KDUMP_DUMPFORMAT="zstd"'),
}
CHANGED_KEYS = {
    "rocky9": ["path", "core_collector"], "el9_disabled": [], "el8": ["core_collector"], "el10_defaults": [],
    "fedora": ["core_collector"],
    "leap": ["KDUMP_SAVEDIR", "KDUMP_DUMPLEVEL", "KDUMP_DUMPFORMAT"], "tumbleweed_aarch64": ["KDUMP_DUMPFORMAT"],
}
CRASHKERNEL = {
    "rocky9": "1G-4G:192M,4G-64G:256M,64G-:512M", "el8": "auto", "el10_defaults": "2G-64G:256M,64G-:512M",
    "fedora": "256M",
    "leap": "211M,high", "tumbleweed_aarch64": "325M",
}
EL_PACKAGES = ["kexec-tools", "makedumpfile"]
UTILS_PACKAGES = ["kdump-utils", "kexec-tools", "makedumpfile"]
SUSE_PACKAGES = ["kdump", "makedumpfile", "kexec-tools"]
PACKAGES = {"rocky9": EL_PACKAGES, "el9_disabled": EL_PACKAGES, "el8": EL_PACKAGES,
            "el10_defaults": UTILS_PACKAGES, "fedora": UTILS_PACKAGES, "leap": SUSE_PACKAGES,
            "tumbleweed_aarch64": SUSE_PACKAGES}


class Lab:
    """The pretend hosts' files and the runs made on them."""

    def __init__(self, root):
        self.root = root
        self.user, self.group = me()
        hosts = {}
        for name, (host_facts, role_vars, text, tool_output) in dict(HOSTS, **FAILING).items():
            base = os.path.join(root, name)
            put(self.config(name), text)
            bin_dir = os.path.join(base, "bin")
            if tool_output is not None:
                for tool in ("kdumpctl", "kdumptool"):
                    # records its call, prints what the real tool prints
                    put(os.path.join(bin_dir, tool), "#!/bin/sh\necho \"${0##*/} $*\" >> %s\ncat <<'EOF'\n%sEOF\n"
                        % (os.path.join(base, "calls"), tool_output), mode=0o755)
            hostvars = {"test_facts": host_facts, "test_base": base, "test_bin": bin_dir}
            hostvars.update(role_vars)
            hosts[name] = hostvars
        self.inventory = write_inventory(os.path.join(root, "inventory.json"), hosts)
        self.extra_vars = {
            "__kdump_config_file": "{{ test_base }}/config",
            "__kdump_config_owner": self.user,
            "__kdump_config_group": self.group,
        }

    def config(self, name):
        return os.path.join(self.root, name, "config")

    def files(self):
        """The pretend hosts' files (not the stand-ins' call records)."""
        return {path: value for name in HOSTS for path, value in tree(os.path.join(self.root, name)).items()
                if not path.endswith("/calls")}

    def calls(self, name):
        path = os.path.join(self.root, name, "calls")
        return get(path).splitlines() if os.path.exists(path) else []

    def run(self, check=False):
        return run_playbook(PLAYBOOK, self.inventory, self.extra_vars, self.root, check=check)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """Three runs on the same files: check mode, then the real run, then the same run again."""
    lab = Lab(str(tmp_path_factory.mktemp("kdump")))
    lab.before = lab.files()
    lab.check = lab.run(check=True)
    lab.check_tree = lab.files()
    lab.first = lab.run()
    lab.after_first = {name: get(lab.config(name)) for name in HOSTS}
    lab.backups_first = {name: backups(lab.config(name)) for name in HOSTS}
    lab.second = lab.run()
    return lab


def test_runs_fail_only_where_they_must(lab):
    for run in (lab.check, lab.first, lab.second):
        assert run.rc == 2, run     # some host failed: sles_uncalibrated, and only it
        assert sorted(run.data["stats"]) == sorted(dict(HOSTS, **FAILING)), run
        assert sorted(set(host for host, _task, _msg in run.failures())) == sorted(FAILING), run
        for name in HOSTS:
            assert run.stats(name)["failures"] == 0 and run.stats(name)["unreachable"] == 0, run


def test_facts_came_from_the_inventory_not_from_this_machine(lab):
    for name in HOSTS:
        assert lab.first.result(name, "Gather the facts the role needs").get("skipped") is True


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_distribution_variables(lab, name):
    chosen = lab.first.debug(name, "Report what the role chose")
    suse = HOSTS[name][0]["os_family"] == "Suse"
    assert chosen["packages"] == PACKAGES[name]
    assert chosen["service"] == "kdump"
    assert chosen["config_style"] == ("suse" if suse else "redhat")
    assert chosen["crashkernel_method"] == "kernel_cmdline"
    assert chosen["grub_mkconfig"] == (["grub2-mkconfig", "-o", "/boot/grub2/grub.cfg"] if suse else [])


@pytest.mark.parametrize("name", sorted(CRASHKERNEL))
def test_crashkernel_value_from_the_distribution(lab, name):
    assert lab.first.debug(name, "Report what the role chose")["crashkernel"] == CRASHKERNEL[name]
    tool = "kdumptool calibrate" if HOSTS[name][0]["os_family"] == "Suse" else "kdumpctl get-default-crashkernel"
    asked = HOSTS[name][3] is not None and HOSTS[name][1].get("kdump_crashkernel", "auto") == "auto"
    # asked once per run (check mode too: the command only reads), only for auto on EL9+ and SUSE
    assert lab.calls(name) == ([tool] * 3 if asked else [])


def test_disabled_host_is_not_configured(lab):
    assert lab.first.result("el9_disabled", CONFIG_TASK["redhat"]).get("skipped") is True
    assert lab.first.result("el9_disabled", "Work out the crash kernel reservation").get("skipped") is True
    assert lab.calls("el9_disabled") == []


def test_check_mode_changes_nothing_but_reports_the_changes(lab):
    assert lab.check_tree == lab.before
    for name, keys in CHANGED_KEYS.items():
        style = "suse" if HOSTS[name][0]["os_family"] == "Suse" else "redhat"
        if name == "el9_disabled":
            continue
        assert lab.check.changed_items(name, CONFIG_TASK[style]) == keys, name
        assert (lab.check.stats(name)["changed"] > 0) == bool(keys), name


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_file_after_the_run(lab, name):
    assert lab.after_first[name] == EXPECTED[name]
    mode = os.stat(lab.config(name)).st_mode & 0o7777
    assert mode == 0o644


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_changes_are_the_role_settings_and_backed_up(lab, name):
    keys = CHANGED_KEYS[name]
    if name != "el9_disabled":
        style = "suse" if HOSTS[name][0]["os_family"] == "Suse" else "redhat"
        assert lab.first.changed_items(name, CONFIG_TASK[style]) == keys
    assert (lab.first.stats(name)["changed"] > 0) == bool(keys)
    found = lab.backups_first[name]
    # one backup per line changed (each loop item replaces the file); the first holds the file as it was
    assert len(found) == len(keys)
    if keys:
        assert HOSTS[name][2] in [get(b) for b in found]


@pytest.mark.parametrize("name", sorted(HOSTS))
def test_second_run_changes_nothing(lab, name):
    assert lab.second.stats(name)["changed"] == 0, lab.second
    assert get(lab.config(name)) == EXPECTED[name]
    assert backups(lab.config(name)) == lab.backups_first[name]


def test_kdumptool_calibrate_without_a_value_fails_clearly(lab):
    """The role must not make crashkernel=0M of kdumptool calibrate's zeros: it stops and says what to do."""
    for run in (lab.check, lab.first, lab.second):
        failed = run.result("sles_uncalibrated", "Check that the automatic value was found")
        assert failed.get("failed") is True
        assert "kdumptool calibrate did not give a crash kernel size" in failed["msg"]
        assert "set kdump_crashkernel explicitly" in failed["msg"]
    assert get(lab.config("sles_uncalibrated")) == SYSCONFIG_15
    assert backups(lab.config("sles_uncalibrated")) == []
