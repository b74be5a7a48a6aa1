#!/usr/bin/python
# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: oob_nmi
short_description: Deliver a non-maskable interrupt (NMI) to a wedged host from outside
version_added: 0.2.0
description:
  - Raises an NMI on a host through its hypervisor, its BMC or its cloud, with QEMU QMP C(inject-nmi), libvirt
    C(virDomainInjectNMI), IPMI C(chassis power diag), AWS C(SendDiagnosticInterrupt), Google Cloud
    C(instances.sendDiagnosticInterrupt), or the Azure serial console's NMI.
  - What the host does with it is the host's configuration. With C(kernel.unknown_nmi_panic=1) (or
    C(kernel.panic_on_unrecovered_nmi=1) for an NMI the platform reports as unrecovered) the kernel panics, and with
    kdump loaded the capture kernel saves a vmcore and a dmesg (M(magic_sysrq.fleet.nmi_panic), role
    C(magic_sysrq.fleet.kdump)). Otherwise the kernel logs the NMI and goes on.
  - Because the usual outcome is a crash and a reboot, the module refuses to run without O(allow_crash=true).
  - Runs on the machine that reaches the hypervisor, BMC or cloud API; C(delegate_to) it, or to V(localhost).
options:
  method:
    description: How to reach the host. Each method takes its options in the option of the same name.
    type: str
    required: true
    choices: [aws, azure, gcp, ipmi, libvirt, qmp, redfish]
  allow_crash:
    description:
      - Consent to what the NMI will do. On a host configured to panic on it, a crash, a vmcore and a reboot.
      - Without it the module fails and sends nothing (check mode included, so a dry run shows the refusal).
    type: bool
    default: false
extends_documentation_fragment:
  - magic_sysrq.fleet.attributes
  - magic_sysrq.fleet.oob_qmp
  - magic_sysrq.fleet.oob_libvirt
  - magic_sysrq.fleet.oob_ipmi
  - magic_sysrq.fleet.oob_redfish
  - magic_sysrq.fleet.oob_cloud.aws
  - magic_sysrq.fleet.oob_cloud.gcp
  - magic_sysrq.fleet.oob_cloud.azure
attributes:
  check_mode:
    support: full
    details: Sends nothing; validates the method's options and the consent.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: An NMI is an action; every run sends one and reports RV(ignore:changed=true).
notes:
  - Credentials (BMC password, cloud secrets) are never returned or logged.
seealso:
  - module: magic_sysrq.fleet.oob_sysrq
  - module: magic_sysrq.fleet.oob_console
  - module: magic_sysrq.fleet.nmi_panic
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
"""

EXAMPLES = r"""
- name: NMI into kdump on a wedged QEMU guest (it panics with unknown_nmi_panic=1)
  magic_sysrq.fleet.oob_nmi:
    method: qmp
    qmp:
      socket: /run/qemu/web1.qmp
    allow_crash: true
  delegate_to: hypervisor1.example.com

- name: Through the BMC (ipmitool chassis power diag)
  magic_sysrq.fleet.oob_nmi:
    method: ipmi
    ipmi:
      host: web1-bmc.example.com
      username: admin
      password: "{{ vault_bmc_password }}"
    allow_crash: true
  delegate_to: localhost

- name: Through the BMC's Redfish service (iDRAC, iLO, XCC, OpenBMC), with a session and the site's CA
  magic_sysrq.fleet.oob_nmi:
    method: redfish
    redfish:
      host: web1-bmc.example.com
      username: admin
      password: "{{ vault_bmc_password }}"
      auth: session
      ca_path: /etc/pki/bmc-ca.pem
    allow_crash: true
  delegate_to: localhost

- name: An EC2 instance (SendDiagnosticInterrupt)
  magic_sysrq.fleet.oob_nmi:
    method: aws
    aws:
      instance_id: i-0123456789abcdef0
      region: eu-west-1
    allow_crash: true
  delegate_to: localhost
"""

RETURN = r"""
method:
  description: The method used.
  returned: always
  type: str
  sample: qmp
request:
  description: What was asked of the hypervisor, BMC or cloud (no credentials).
  returned: success
  type: dict
  sample: {execute: inject-nmi, address: /run/qemu/web1.qmp}
response:
  description: What it answered.
  returned: success
  type: dict
  sample: {return: {}, run_state_before: running}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import methods as oob_methods


def main():
    spec = oob_methods.argument_spec(oob_methods.NMI)
    spec["allow_crash"] = dict(type="bool", default=False)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    result = dict(changed=False, method=params["method"])
    try:
        target = oob_methods.target(params)
    except oob.OobError as exc:
        module.fail_json(msg=str(exc), **result)
    if not params["allow_crash"]:
        module.fail_json(msg="refusing to send an NMI without allow_crash=true: a host with kernel.unknown_nmi_panic=1 "
                             "or panic_on_unrecovered_nmi=1 panics on it (with kdump: a vmcore, then a reboot); "
                             "nothing was sent", **result)
    if module.check_mode:
        result.update(changed=True, msg="would send an NMI through %s" % params["method"])
        module.exit_json(**result)
    try:
        answer = oob_methods.NMI[params["method"]](module, target)
    except oob.OobError as exc:
        module.fail_json(msg=str(exc), **result)
    result.update(changed=True, request=answer.get("request", {}), response=answer.get("response", {}))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
