# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Verify the lab scenario on real kernels: the values are live and persistent.

Run by `molecule verify -s lab` (verifier: testinfra, --connection=ansible on the scenario's
inventory), once per lab guest.
"""

from __future__ import annotations

import re

MASK = 186
NMI = {"unknown_nmi_panic": "1", "panic_on_unrecovered_nmi": "1", "panic": "10"}


def test_real_debian_kernel(host):
    release = host.run("uname -r").stdout.strip()
    assert re.match(r"6\.(1|12)\.", release), release
    assert "BOOT_IMAGE=" in host.file("/proc/cmdline").content_string  # booted through GRUB


def test_sysrq_mask_live(host):
    assert host.file("/proc/sys/kernel/sysrq").content_string.strip() == str(MASK)


def test_sysrq_mask_persistent(host):
    f = host.file("/etc/sysctl.d/90-magic-sysrq.conf")
    assert f.is_file and f.user == "root" and f.mode == 0o644
    assert re.search(rf"^\s*kernel\.sysrq\s*=\s*{MASK}\s*$", f.content_string, re.M)


def test_nmi_panic_live_and_persistent(host):
    text = host.file("/etc/sysctl.d/90-magic-sysrq-nmi.conf").content_string
    for name, value in NMI.items():
        assert host.file(f"/proc/sys/kernel/{name}").content_string.strip() == value, name
        assert re.search(rf"^\s*kernel\.{name}\s*=\s*{value}\s*$", text, re.M), (name, text)


def test_boot_applies_the_dropins(host):
    """What systemd-sysctl would apply at boot is what runs now."""
    out = host.run("/lib/systemd/systemd-sysctl --cat-config 2>/dev/null || cat /etc/sysctl.d/*.conf")
    assert out.rc == 0
    assert re.search(rf"kernel\.sysrq\s*=\s*{MASK}", out.stdout)
