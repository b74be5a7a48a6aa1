"""Where the lab keeps things and which guests it has."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUN_DIR = Path(os.environ.get("MAGIC_SYSRQ_LAB_DIR", REPO / ".lab"))


def cache_dir() -> Path:
    """Base images, package cache and the lab's SSH key live here, outside the repo."""
    root = os.environ.get("MAGIC_SYSRQ_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "magic-sysrq-fleet")
    return Path(root) / "lab"


@dataclass(frozen=True)
class Guest:
    name: str
    release: str      # Debian suite name given to debootstrap
    kernel: str       # the kernel series the release ships (documentation and checks)
    cpus: int = 1     # vCPUs (-smp)


GUESTS: dict[str, Guest] = {
    "deb12": Guest("deb12", "bookworm", "6.1"),
    # 2 vCPUs: SysRq `l` must bring back the other CPU's backtrace, which arrives asynchronously (an NMI)
    "deb13": Guest("deb13", "trixie", "6.12", cpus=2),
}

# Guest hardware: software emulation only (KVM hangs on these machines), SeaBIOS + i8042.
MEMORY_MB = 1024
CPUS = 1  # the default; a Guest may ask for more
DISK_GB = 4


def boot_timeout() -> float:
    """Seconds a guest may take from qemu start to SSH answering."""
    return float(os.environ.get("MAGIC_SYSRQ_LAB_BOOT_TIMEOUT", "480"))
