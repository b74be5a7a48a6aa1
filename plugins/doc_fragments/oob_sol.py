# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options of the out-of-band method sol (module_utils/_oob/sol.py): IPMI Serial-over-LAN."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  sol:
    description:
      - "With C(method=sol) (M(magic_sysrq.fleet.oob_sysrq)) or to read the console live
        (M(magic_sysrq.fleet.oob_console)), the host's BMC over IPMI Serial-over-LAN, for example
        V({host: web1-bmc.example.com, username: admin, password: ...})."
      - Runs C(ipmitool sol activate) in a pseudo-terminal. A key is a serial BREAK (ipmitool's C(~B)) followed by
        the key; the host's kernel console must be the serial port the BMC carries (C(console=ttyS1,115200) on most
        servers; role P(magic_sysrq.fleet.serial_console#role)). Like a keyboard, this path obeys C(kernel.sysrq).
      - The same session carries the console back. Before a second or later key one carriage return goes to the
        console (ipmitool sees its escape only at the start of a line).
      - The BMC serves one SOL session. When someone else holds it the task fails saying so and sends nothing;
        O(sol.takeover=true) closes their session first (C(ipmitool sol deactivate)).
      - Credentials, interface, cipher suite and privilege work as for method C(ipmi). The password reaches ipmitool
        through its environment or a file, never its command line. C(ipmitool) must be installed on the host that
        runs the task.
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
        description: A user of the BMC that may use SOL (on most BMCs the SOL payload enabled for the user, operator or administrator).
        type: str
      password:
        description:
          - The BMC user's password. Mutually exclusive with O(sol.password_file).
          - Without either, ipmitool runs with an empty password.
        type: str
      password_file:
        description:
          - A file whose first line is the password (C(ipmitool -f)), on the host that runs the task.
          - Mutually exclusive with O(sol.password).
        type: path
      interface:
        description: V(lanplus) is IPMI 2.0 (RMCP+, encrypted); V(lan) is IPMI 1.5, for old BMCs.
        type: str
        default: lanplus
        choices: [lanplus, lan]
      cipher_suite:
        description:
          - The RMCP+ cipher suite (C(ipmitool -C)), for example V(3) or V(17); ipmitool's default when unset.
          - Only with O(sol.interface=lanplus).
        type: int
      privilege_level:
        description: The session's privilege level (C(ipmitool -L)); ipmitool's default (administrator) when unset.
        type: str
        choices: [callback, user, operator, administrator]
      timeout:
        description: Seconds ipmitool waits for each answer (C(ipmitool -N)); ipmitool's default when unset.
        type: int
      takeover:
        description:
          - Close an SOL session someone else holds on the BMC (C(ipmitool sol deactivate)) and take it.
          - Ending their session is a change, and the result says so (C(changed)). Check mode never takes over.
        type: bool
        default: false
      retries:
        description: How many times ipmitool resends a request (C(ipmitool -R)); ipmitool's default when unset.
        type: int
"""
