# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options of the out-of-band method ipmi (module_utils/oob_ipmi.py)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  ipmi:
    description:
      - "With O(method=ipmi), the host's BMC over IPMI-over-LAN, for example
        V({host: web1-bmc.example.com, username: admin, password: ...})."
      - Runs C(ipmitool chassis power diag), the Chassis Control "pulse diagnostic interrupt" with which the BMC raises
        an NMI, after C(ipmitool chassis power status) (a host that is powered off is refused).
      - C(ipmitool) must be installed on the host that runs the task.
      - The password reaches ipmitool through its environment (C(ipmitool -E), E(IPMI_PASSWORD)) or a file
        (C(ipmitool -f)), never its command line.
      - IPMI cannot press keys; this method only delivers NMIs.
    type: dict
    suboptions:
      host:
        description: Name or address of the BMC (not of the host itself).
        type: str
        required: true
      port:
        description: UDP port of the BMC's IPMI-over-LAN service.
        type: int
        default: 623
      username:
        description: A user of the BMC. Chassis control needs the operator or administrator privilege.
        type: str
      password:
        description:
          - The BMC user's password. Mutually exclusive with O(ipmi.password_file).
          - Without either, ipmitool runs with an empty password.
        type: str
      password_file:
        description:
          - A file whose first line is the password (C(ipmitool -f)), on the host that runs the task.
          - Mutually exclusive with O(ipmi.password).
        type: path
      interface:
        description: V(lanplus) is IPMI 2.0 (RMCP+, encrypted); V(lan) is IPMI 1.5, for old BMCs.
        type: str
        default: lanplus
        choices: [lanplus, lan]
      cipher_suite:
        description:
          - The RMCP+ cipher suite (C(ipmitool -C)), for example V(3) or V(17); ipmitool's default when unset.
          - Only with O(ipmi.interface=lanplus).
        type: int
      privilege_level:
        description: The session's privilege level (C(ipmitool -L)); ipmitool's default (administrator) when unset.
        type: str
        choices: [callback, user, operator, administrator]
      timeout:
        description: Seconds ipmitool waits for each answer (C(ipmitool -N)); ipmitool's default when unset.
        type: int
      retries:
        description: How many times ipmitool resends a request (C(ipmitool -R)); ipmitool's default when unset.
        type: int
"""
