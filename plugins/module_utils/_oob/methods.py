# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The out-of-band methods by name: which can press SysRq keys, which can raise an NMI, and their options.

The modules ``oob_sysrq`` and ``oob_nmi`` take ``method`` plus one option dict named after it (``qmp``,
``libvirt``, ``ipmi``, ``aws``, ``gcp``, ``azure``); each method's file owns its options (``ARGUMENT_SPEC``) and
its calls.
"""

from __future__ import annotations

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import aws as oob_aws
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import azure as oob_azure
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import gcp as oob_gcp
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import ipmi as oob_ipmi
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import libvirt as oob_libvirt
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import qmp as oob_qmp
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import redfish as oob_redfish
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import sol as oob_sol

SYSRQ = {
    "qmp": oob_qmp.send_sysrq,
    "libvirt": oob_libvirt.send_sysrq,
    "azure": oob_azure.send_sysrq,
    "sol": oob_sol.send_sysrq,
}
NMI = {
    "qmp": oob_qmp.inject_nmi,
    "libvirt": oob_libvirt.inject_nmi,
    "ipmi": oob_ipmi.inject_nmi,
    "redfish": oob_redfish.inject_nmi,
    "aws": oob_aws.inject_nmi,
    "gcp": oob_gcp.inject_nmi,
    "azure": oob_azure.inject_nmi,
}
_SPECS = {}
for _spec in (oob_qmp.ARGUMENT_SPEC, oob_libvirt.ARGUMENT_SPEC, oob_ipmi.ARGUMENT_SPEC, oob_aws.ARGUMENT_SPEC,
              oob_gcp.ARGUMENT_SPEC, oob_azure.ARGUMENT_SPEC, oob_redfish.ARGUMENT_SPEC, oob_sol.ARGUMENT_SPEC):
    _SPECS.update(_spec)
del _spec


def argument_spec(table):
    """``method`` plus the option dict of every method in ``table`` (SYSRQ or NMI)."""
    spec = {"method": dict(type="str", required=True, choices=sorted(table))}
    for name in table:
        spec[name] = _SPECS[name]
    return spec


def target(params):
    """The option dict of the chosen method; OobError when it is missing."""
    method = params["method"]
    chosen = params.get(method)
    if not chosen:
        raise oob.OobError("method=%s needs its options in %s (for example %s)" % (method, method, EXAMPLE[method]))
    return chosen


EXAMPLE = {
    "qmp": "qmp: {socket: /run/qemu/web1.qmp}",
    "libvirt": "libvirt: {uri: 'qemu:///system', domain: web1}",
    "ipmi": "ipmi: {host: web1-bmc.example.com, username: admin, password: ...}",
    "redfish": "redfish: {host: web1-bmc.example.com, username: admin, password: ...}",
    "sol": "sol: {host: web1-bmc.example.com, username: admin, password: ...}",
    "aws": "aws: {instance_id: i-0123456789abcdef0, region: eu-west-1}",
    "gcp": "gcp: {project: my-project, zone: europe-west1-b, instance: web1}",
    "azure": "azure: {subscription_id: ..., resource_group: rg, vm_name: web1}",
}
