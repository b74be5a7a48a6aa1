# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verify the docker scenario: file-level outcome of converge, and clean failures without SysRq.

Run by `molecule verify -s docker` (verifier: testinfra), which passes --connection=ansible and the
scenario's inventory, so every test runs once per container. The containers share the host's kernel,
which has no CONFIG_MAGIC_SYSRQ: /proc/sys/kernel/sysrq and /proc/sysrq-trigger do not exist.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

SYSRQ_DROPIN = "/etc/sysctl.d/90-magic-sysrq.conf"
NMI_DROPIN = "/etc/sysctl.d/90-magic-sysrq-nmi.conf"
GRUB_DEFAULT = "/etc/default/grub"
GRUB_TEMPLATE = "/usr/share/grub/default/grub"  # Debian's pristine /etc/default/grub (see prepare.yml)
GRUB_DROPIN = "/etc/default/grub.d/magic_sysrq.cfg"  # kernel_cmdline's default grub_dropin
SERIAL_CONSOLE = "console=ttyS0,115200n8"


def settings(text):
    """`key = value` lines of a sysctl.d file, comments and blanks skipped."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        key, value = line.split("=", 1) if "=" in line else (line, "")
        out[key.strip()] = value.strip()
    return out


def run_module(host, name, **args):
    """Run a collection module for real (no check mode) on this test's host; return its result.

    Not testinfra's host.ansible(): ansible-core 2.19's tree output drops `failed`, so a failure
    would pass for a success. The json stdout callback (ansible.posix) keeps it.
    """
    backend = host.backend
    cmd = ["ansible", backend.host, "-m", name]
    if backend.ansible_inventory:
        cmd += ["-i", backend.ansible_inventory]
    if args:
        cmd += ["-a", json.dumps(args)]
    env = dict(os.environ, ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, check=False)
    try:
        return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"][backend.host]
    except (ValueError, LookupError):
        pytest.fail("%s: rc %d\nstdout: %s\nstderr: %s" % (" ".join(cmd), proc.returncode, proc.stdout, proc.stderr))


def assert_root_0644(f):
    assert f.is_file
    assert f.user == "root"
    assert f.group == "root"
    assert f.mode == 0o644


# --- the container really has no SysRq (else the failure tests below prove nothing) ---------------

def test_kernel_has_no_sysrq(host):
    assert not host.file("/proc/sys/kernel/sysrq").exists
    assert not host.file("/proc/sysrq-trigger").exists


# --- file-level outcome of converge --------------------------------------------------------------

def test_sysrq_mask_dropin(host):
    f = host.file(SYSRQ_DROPIN)
    assert_root_0644(f)
    # log_level 2 + dumps 8 + sync 16 + remount 32 + reboot 128
    assert settings(f.content_string) == {"kernel.sysrq": "186"}


def test_nmi_panic_dropin(host):
    f = host.file(NMI_DROPIN)
    assert_root_0644(f)
    assert settings(f.content_string) == {
        "kernel.unknown_nmi_panic": "1",
        "kernel.panic_on_unrecovered_nmi": "1",
        "kernel.panic": "10",
    }


def grub_files(host):
    """/etc/default/grub and its drop-ins, as GRUB's update-grub sources them."""
    files = [GRUB_DEFAULT]
    if host.file("/etc/default/grub.d").is_directory:
        files += sorted(
            "/etc/default/grub.d/" + name
            for name in host.file("/etc/default/grub.d").listdir()
            if name.endswith(".cfg")
        )
    return files


def effective_cmdline(host):
    """GRUB_CMDLINE_LINUX and _DEFAULT after sourcing the defaults exactly as update-grub does."""
    script = "; ".join(["set -e"] + [". %s" % p for p in grub_files(host)]
                       + ['printf "%s\\n%s\\n" "$GRUB_CMDLINE_LINUX" "$GRUB_CMDLINE_LINUX_DEFAULT"'])
    linux, default = host.check_output("sh -c '%s'" % script.replace("'", "'\\''")).split("\n")
    return linux.split(), default.split()


def test_kernel_cmdline_grub(host):
    files = grub_files(host)
    for path in files:
        assert_root_0644(host.file(path))
        # update-grub sources these files with sh. (Not grub-script-check: it parses GRUB's own script
        # language and rejects Debian's pristine /etc/default/grub, whose GRUB_DISTRIBUTOR uses backquotes.)
        assert host.run("sh -n %s" % path).rc == 0, path
    linux, default = effective_cmdline(host)
    args = linux + default
    assert "console=tty0" in args
    assert SERIAL_CONSOLE in args
    # the last console= becomes /dev/console: the serial line must come last
    consoles = [a for a in args if a.startswith("console=")]
    assert consoles[-1] == SERIAL_CONSOLE
    assert args.count(SERIAL_CONSOLE) == 1


def test_kernel_cmdline_dropin(host):
    f = host.file(GRUB_DROPIN)
    assert_root_0644(f)
    assert GRUB_DROPIN in grub_files(host)
    assert SERIAL_CONSOLE in f.content_string
    # appends to what /etc/default/grub set, never replaces it
    assert '"$GRUB_CMDLINE_LINUX ' in f.content_string or '"${GRUB_CMDLINE_LINUX} ' in f.content_string


def test_kernel_cmdline_keeps_debian_defaults(host):
    # The arguments live in the drop-in: /etc/default/grub is Debian's file, byte for byte, and its
    # "quiet" stays in GRUB_CMDLINE_LINUX_DEFAULT.
    assert host.file(GRUB_DEFAULT).content_string == host.file(GRUB_TEMPLATE).content_string
    _linux, default = effective_cmdline(host)
    assert default == ["quiet"]


# --- modules that need the kernel fail cleanly ---------------------------------------------------

def test_sysrq_mask_runtime_fails_and_writes_nothing(host):
    probe = "/etc/sysctl.d/95-molecule-probe.conf"
    before = host.file(SYSRQ_DROPIN).content_string
    result = run_module(host, "magic_sysrq.fleet.sysrq_mask", mask=176, dropin=probe)
    assert result.get("failed") is True, result
    msg = result["msg"]
    assert "/proc/sys/kernel/sysrq" in msg
    assert "SysRq" in msg
    assert "nothing was written" in msg
    assert not host.file(probe).exists
    assert host.file(SYSRQ_DROPIN).content_string == before


def test_sysrq_mask_runtime_default_fails_on_existing_dropin(host):
    # runtime defaults to true: the converge drop-in must not be rewritten by a failing call
    before = host.file(SYSRQ_DROPIN).content_string
    result = run_module(host, "magic_sysrq.fleet.sysrq_mask", mask=0)
    assert result.get("failed") is True, result
    assert "/proc/sys/kernel/sysrq" in result["msg"]
    assert host.file(SYSRQ_DROPIN).content_string == before


def test_sysrq_trigger_fails_naming_the_cause(host):
    result = run_module(host, "magic_sysrq.fleet.sysrq_trigger", keys="w")
    assert result.get("failed") is True, result
    assert "/proc/sysrq-trigger" in result["msg"]
    assert result.get("tasks") in (None, [])


@pytest.fixture(scope="module")
def sysrq_facts(host):
    result = run_module(host, "magic_sysrq.fleet.sysrq_facts")
    assert not result.get("failed"), result
    return result["ansible_facts"]["magic_sysrq"]


def test_sysrq_facts_reports_sysrq_absent(sysrq_facts):
    assert sysrq_facts["available"] is False
    assert sysrq_facts["trigger"] is False
    assert sysrq_facts["mask"] is None
    assert sysrq_facts["functions"] == []


def test_sysrq_facts_sees_the_persistent_settings(sysrq_facts):
    assert sysrq_facts["winner"]["path"] == SYSRQ_DROPIN
    assert str(sysrq_facts["winner"]["value"]) == "186"
    assert sysrq_facts["persistent"] == 186
    assert sysrq_facts["in_sync"] is False  # nothing can be live without SysRq
    for name, value in (("unknown_nmi_panic", "1"), ("panic_on_unrecovered_nmi", "1"), ("panic", "10")):
        winner = sysrq_facts["nmi"][name]["winner"]
        assert winner["path"] == NMI_DROPIN, name
        assert str(winner["value"]) == value, name
