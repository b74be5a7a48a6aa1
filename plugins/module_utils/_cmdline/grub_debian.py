# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""GRUB on Debian and Ubuntu: a drop-in in /etc/default/grub.d (or the main file), update-grub."""

from __future__ import annotations

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.backend import (
    GRUB_DEFAULTS, GRUB_DEFAULTS_D, find_command)
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.grub import GrubBackend
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.grub_defaults import GrubDefaults
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.tokens import CmdlineError


class GrubDebian(GrubBackend):
    """Debian and Ubuntu: GRUB_CMDLINE_LINUX in /etc/default/grub or a /etc/default/grub.d drop-in."""

    name = "grub_debian"
    model = "debian"
    script_check = "grub-script-check"
    grub_cfg = "/boot/grub/grub.cfg"

    def _defaults(self):
        dropin = self.params.get("grub_dropin") or None
        if dropin is not None and (not dropin.endswith(".cfg") or "/" in dropin or dropin.startswith(".")):
            raise CmdlineError("grub_dropin %r must be a file name ending in .cfg (grub-mkconfig sources only "
                               "%s/*.cfg), or null to edit %s" % (dropin, GRUB_DEFAULTS_D, GRUB_DEFAULTS))
        return GrubDefaults(self.module, self.model, dropin_dir=GRUB_DEFAULTS_D, dropin=dropin)

    def editable_files(self):
        files = [GRUB_DEFAULTS]
        if self.defaults.dropin:
            files.append(self.defaults.dropin)
        return files

    def regenerate_command(self):
        tool = find_command("update-grub")
        if tool:
            return [tool]
        tool = find_command("grub-mkconfig")
        if tool:
            return [tool, "-o", self.grub_cfg]
        if self.params.get("regenerate", True):
            raise CmdlineError("neither update-grub nor grub-mkconfig is installed, so the GRUB configuration cannot "
                               "be regenerated; install grub2-common or set regenerate=false")
        return ["update-grub"]
