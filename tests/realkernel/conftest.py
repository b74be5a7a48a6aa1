"""Fixtures for the real-kernel suite: the QEMU lab, ansible-playbook runs, testinfra hosts.

The session fixture `lab` boots the guests (or reuses running ones) and always stops the guests it
started. If the lab cannot boot, every test errors: nothing is skipped.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.lab import Lab  # noqa: E402  (after the sys.path fix above)
from tests.realkernel.support import HOSTS, Ansible, parallel  # noqa: E402


# The order the modules run in: the core modules on fresh guests; then the roles, after the `clean` fixture has
# put back what a fresh boot has (their first run must change what a fresh host lacks); then the playbooks and the
# playbooks inside the execution environment, and the out-of-band paths (which end in reboots); last the whole t
# dump of a big host (test_big_dump.py: its own reboot of deb13, which keeps log_buf_len=16M on its command line).
ORDER = ("test_realkernel.py", "test_roles.py", "test_playbooks.py", "test_ee.py", "test_oob.py", "test_big_dump.py")


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.realkernel)
    rank = {name: i for i, name in enumerate(ORDER)}
    items.sort(key=lambda item: rank.get(item.path.name, len(ORDER)))  # stable: keeps the order within a file


@pytest.fixture(scope="session")
def lab():
    """The lab, up for the whole session; the guests this session started are stopped at its end."""
    lab = Lab(HOSTS)
    try:
        lab.up()
        yield lab
    finally:
        lab.down()


@pytest.fixture(scope="session")
def ansible(lab) -> Ansible:
    return Ansible(lab, lab.run_dir / "realkernel")


@pytest.fixture(scope="session")
def hosts(lab) -> dict:
    """testinfra hosts through the ansible backend on the lab's inventory, by guest name."""
    import testinfra

    return {name: testinfra.get_host(f"ansible://{name}?ansible_inventory={lab.inventory_file}") for name in HOSTS}


RESET = r"""
# Back to what a fresh boot of the lab image has, for a lab reused from an earlier run.
p=/var/lib/magic-sysrq-lab/pristine
if [ ! -e "$p/grub" ]; then          # first sight of this guest: remember its boot configuration
  mkdir -p "$p"
  cp -a /etc/default/grub "$p/grub"
  cp -a /etc/default/grub.d "$p/grub.d"
  cp /proc/cmdline "$p/cmdline"
  cp -a /etc/default/kdump-tools "$p/kdump-tools"
elif ! cmp -s /etc/default/grub "$p/grub" || ! diff -rq /etc/default/grub.d "$p/grub.d" >/dev/null; then
  cp -a "$p/grub" /etc/default/grub
  rm -rf /etc/default/grub.d && cp -a "$p/grub.d" /etc/default/grub.d
  update-grub >/dev/null 2>&1
fi
# what the kdump role (test_roles.py) leaves: its kdump-tools settings and the lab's kexec hardening file
[ -e "$p/kdump-tools" ] && ! cmp -s /etc/default/kdump-tools "$p/kdump-tools" && cp -a "$p/kdump-tools" /etc/default/kdump-tools
rm -f /etc/sysctl.d/60-lab-kexec-hardening.conf
rm -f /etc/sysctl.d/90-magic-sysrq.conf /etc/sysctl.d/90-magic-sysrq-nmi.conf /etc/sysctl.d/91-lab-nmi-watchdog.conf
[ -f /etc/sysctl.conf ] && sed -i '/^[[:space:]]*kernel\.sysrq/d' /etc/sysctl.conf
sysctl -q -w kernel.sysrq=438 kernel.unknown_nmi_panic=0 kernel.panic_on_unrecovered_nmi=0 kernel.panic=0 \
    kernel.hung_task_timeout_secs=120
cmp -s /proc/cmdline "$p/cmdline" && [ "$(cat /sys/kernel/kexec_crash_loaded)" = 0 ] || echo REBOOT
true
"""


@pytest.fixture(scope="module")
def clean(lab):
    """Guests as a fresh boot has them (a reused lab may carry an earlier run's settings)."""
    out = parallel(lambda n: lab.ssh(n, RESET, timeout=300).stdout)
    dirty = [n for n, text in out.items() if "REBOOT" in text]
    if dirty:
        lab.reboot(*dirty)
    return lab
