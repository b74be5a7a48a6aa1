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
from tests.realkernel.support import HOSTS, Ansible  # noqa: E402


def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.realkernel)


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
