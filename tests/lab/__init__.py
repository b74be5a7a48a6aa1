"""The real-kernel test lab: Debian 12 and 13 guests under QEMU (TCG), booted through GRUB.

    from tests.lab import Lab
    lab = Lab(); lab.up(); lab.ssh("deb12", "uname -r"); lab.reboot("deb12"); lab.down()
"""
from .config import GUESTS, cache_dir
from .image import BuildError
from .lab import Lab, LabError

__all__ = ["GUESTS", "BuildError", "Lab", "LabError", "cache_dir"]
