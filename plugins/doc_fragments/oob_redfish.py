# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options of the out-of-band method redfish (module_utils/_oob/redfish.py)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  redfish:
    description:
      - "With O(method=redfish), the host's BMC over Redfish, for example
        V({host: web1-bmc.example.com, username: admin, password: ...})."
      - "Finds the host's system (the only member of C(/redfish/v1/Systems), or O(redfish.system_id)), refuses when
        C(Nmi) is not among the allowable values of its C(ComputerSystem.Reset) action (naming those it allows) or
        when its C(PowerState) is C(Off), then POSTs C({\"ResetType\": \"Nmi\"}) to the action and returns the BMC's
        answer."
      - Offered by iDRAC9, iLO 4 (2.x firmware) and iLO 5/6, Lenovo XCC, Supermicro X11 and later, OpenBMC's bmcweb.
      - Uses Ansible's own C(open_url); nothing to install.
      - The password goes only in the C(Authorization) header or the session login body; it is never returned,
        logged, or put in a warning or an error.
    type: dict
    suboptions:
      host:
        description: Name or address of the BMC (not of the host itself), without scheme or path.
        type: str
        required: true
      port:
        description: TCP port of the BMC's Redfish service; the scheme's default (443, 80) when unset.
        type: int
      scheme:
        description: V(https), or V(http) for a BMC (or emulator) without TLS.
        type: str
        default: https
        choices: [https, http]
      username:
        description: A user of the BMC with a role that may reset the system (ConfigureComponents).
        type: str
      password:
        description: The BMC user's password.
        type: str
      auth:
        description:
          - V(basic) sends HTTP basic authentication with every request.
          - V(session) logs in through the SessionService (C(POST .../Sessions)), uses the C(X-Auth-Token) it
            returns, and deletes the session at the end, also after an error (BMCs keep few sessions).
        type: str
        default: basic
        choices: [basic, session]
      system_id:
        description:
          - The C(Id) of the system to interrupt (the last segment of its URI, for example V(System.Embedded.1) on
            iDRAC, V(1) on iLO, V(system) on OpenBMC). Needed when the BMC manages more than one system.
        type: str
      validate_certs:
        description: Verify the BMC's TLS certificate. Set V(false) only knowing that anyone on the path can then
          read the password.
        type: bool
        default: true
      ca_path:
        description: A PEM file of the CA(s) that signed the BMC's certificate, on the host that runs the task.
        type: path
      timeout:
        description: Seconds to wait for each answer of the BMC.
        type: float
        default: 30.0
"""
