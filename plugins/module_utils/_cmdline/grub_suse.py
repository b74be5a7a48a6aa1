# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GRUB on SUSE: /etc/default/grub, grub2-mkconfig -o /boot/grub2/grub.cfg."""

from __future__ import annotations

import os

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._host import host_path
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.backend import (
    EFI_FIRMWARE, GRUB_DEFAULTS, find_command)
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.grub import GrubBackend
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.tokens import CmdlineError


class GrubSuse(GrubBackend):
    """SUSE: /etc/default/grub, then grub2-mkconfig -o /boot/grub2/grub.cfg.

    SUSE keeps the real grub.cfg in /boot/grub2 on BIOS and UEFI alike: on UEFI the
    ESP holds only a small grub.cfg that shim-install writes to load /boot/grub2/grub.cfg.
    """

    name = "grub_suse"
    model = "suse"
    script_check = "grub2-script-check"
    grub_cfg = "/boot/grub2/grub.cfg"

    def regenerate_command(self):
        tool = find_command("grub2-mkconfig")
        if not tool and self.params.get("regenerate", True):
            raise CmdlineError("grub2-mkconfig is not installed, so %s cannot be regenerated; set regenerate=false "
                               "to only edit %s" % (self.grub_cfg, GRUB_DEFAULTS))
        return [tool or "grub2-mkconfig", "-o", self.grub_cfg]

    def info(self):
        return {"grub_cfg": self.grub_cfg,
                "firmware": "uefi" if os.path.exists(host_path(EFI_FIRMWARE)) else "bios"}
