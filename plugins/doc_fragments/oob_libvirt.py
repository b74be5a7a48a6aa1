# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options of the out-of-band method libvirt (module_utils/oob_libvirt.py)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  libvirt:
    description:
      - "With O(method=libvirt), a libvirt domain, for example V({uri: 'qemu:///system', domain: web1})."
      - SysRq keys go through C(virDomainSendKey) with Linux keycodes (like C(virsh send-key --codeset linux
        KEY_LEFTALT KEY_SYSRQ KEY_W)), NMIs through C(virDomainInjectNMI) (like C(virsh inject-nmi)).
      - Needs the libvirt Python binding (C(libvirt-python)) on the host that runs the task and a read-write
        connection (root or the C(libvirt) group on the hypervisor, or a remote URI such as
        V(qemu+ssh://root@hypervisor1/system)).
      - The domain must be running; a paused, shut off or crashed domain is refused.
    type: dict
    suboptions:
      uri:
        description: The libvirt connection URI.
        type: str
        default: qemu:///system
      domain:
        description: The domain's name or UUID.
        type: str
        required: true
"""
