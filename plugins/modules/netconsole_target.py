#!/usr/bin/python
# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: netconsole_target
short_description: netconsole targets in the running kernel (configfs), with the interface, source and MAC found
version_added: 0.2.0
description:
  - Works out what each target leaves out from the host's routing and neighbour tables (the interface and source
    address of the route to the collector, the MAC of the next hop, which is the collector on the same subnet and its
    gateway otherwise) and checks every field.
  - With O(method=configfs) makes the running kernel's configfs targets (C(/sys/kernel/config/netconsole/<name>))
    whose names start with O(prefix) exactly the given ones, enabled (loading C(netconsole) and mounting configfs
    when needed). Targets with other names are left alone and listed in RV(other_targets).
  - With O(method=modparam) changes nothing in the running kernel and returns the C(netconsole=) module parameter.
  - Returns what a boot unit needs to bring the same targets back (RV(boot_files), RV(device_units)); the role
    P(magic_sysrq.fleet.netconsole#role) writes them. Use the role for persistent netconsole.
options:
  targets:
    description: The collectors to send to. Each needs O(targets[].remote_ip); the rest is found or defaults.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: The configfs target name; must start with O(prefix). Default O(prefix) and the position (V(fleet-1)).
        type: str
      remote_ip:
        description: The collector's IPv4 or IPv6 address.
        type: str
        required: true
      remote_port:
        description: The collector's UDP port.
        type: int
        default: 6666
      local_port:
        description: The UDP source port.
        type: int
        default: 6665
      local_ip:
        description: The source address. Default the route's source address (C(ip route get)).
        type: str
      dev_name:
        description: The interface to send from. Default the route's interface.
        type: str
      remote_mac:
        description:
          - The Ethernet destination, the collector's MAC on the same subnet, the gateway's otherwise. Default the
            next hop's MAC from the neighbour table, resolved by one datagram to its discard port when not there.
        type: str
      extended:
        description: Send the extended format (C(<level>,<seq>,<timestamp>,<flags>;text)), which has sequence numbers.
        type: bool
        default: true
  state:
    description: V(present) makes the targets as given; V(absent) removes every target whose name starts with O(prefix).
    type: str
    choices: [present, absent]
    default: present
  method:
    description:
      - V(configfs) manages the running kernel's dynamic targets (CONFIG_NETCONSOLE_DYNAMIC).
      - V(modparam) only works out the targets and returns RV(modparam), for a kernel without configfs targets.
    type: str
    choices: [configfs, modparam]
    default: configfs
  prefix:
    description: The name prefix of the targets this module owns.
    type: str
    default: fleet-
  probe:
    description: Send one empty UDP datagram to the next hop's discard port (9) when its MAC is not in the neighbour table.
    type: bool
    default: true
extends_documentation_fragment:
  - magic_sysrq.fleet.attributes
attributes:
  check_mode:
    support: full
    details: Nothing is loaded, mounted or written; the targets are still worked out (a probe datagram may be sent).
  diff_mode:
    support: full
    details: The running targets' attributes before and after.
  idempotent:
    support: full
notes:
  - The MAC is read once, when the module runs. When the gateway's MAC changes (a failover to other hardware),
    run it again.
  - Runs on the host that sends (become root).
seealso:
  - module: magic_sysrq.fleet.oob_console
  - name: The netconsole role
    description: roles/netconsole in this collection, persistent netconsole built on this module.
    link: https://docs.kernel.org/networking/netconsole.html
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
"""

EXAMPLES = r"""
- name: Send the kernel log to the collector, extended format, everything else found
  magic_sysrq.fleet.netconsole_target:
    targets:
      - remote_ip: 192.0.2.50
  become: true

- name: Two collectors, one on another subnet through a given interface
  magic_sysrq.fleet.netconsole_target:
    targets:
      - name: fleet-dc1
        remote_ip: 192.0.2.50
      - name: fleet-dc2
        remote_ip: 198.51.100.7
        remote_port: 6666
        dev_name: eno1
  become: true

- name: Remove every target this collection made
  magic_sysrq.fleet.netconsole_target:
    state: absent
  become: true
"""

RETURN = r"""
targets:
  description: The targets, complete (given and found fields).
  returned: success
  type: list
  elements: dict
  sample: [{name: fleet-1, remote_ip: 10.0.2.2, remote_port: 6666, local_ip: 10.0.2.15, local_port: 6665,
            dev_name: ens3, remote_mac: "52:55:0a:00:02:02", extended: true}]
found:
  description: Per target, what was worked out rather than given (and the next hop whose MAC was used).
  returned: success
  type: dict
  sample: {fleet-1: {dev_name: ens3, local_ip: 10.0.2.15, next_hop: 10.0.2.2, remote_mac: "52:55:0a:00:02:02"}}
created:
  description: Targets created in the running kernel.
  returned: success
  type: list
  elements: str
updated:
  description: Per target changed in the running kernel, the attributes written.
  returned: success
  type: dict
removed:
  description: Targets removed from the running kernel.
  returned: success
  type: list
  elements: str
other_targets:
  description: configfs targets whose names do not start with O(prefix) (left alone).
  returned: success
  type: list
  elements: str
modparam:
  description: The C(netconsole=) module parameter for the targets.
  returned: success and O(state=present)
  type: str
  sample: "+6665@10.0.2.15/ens3,6666@10.0.2.2/52:55:0a:00:02:02"
boot_files:
  description: Per target, the C(key=value) lines a boot script writes into its configfs directory.
  returned: success and O(state=present)
  type: dict
device_units:
  description: The systemd device units of the interfaces the targets send from (for the boot unit's ordering).
  returned: success and O(state=present)
  type: list
  elements: str
  sample: [sys-subsystem-net-devices-ens3.device]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._netconsole import configfs as nc_configfs

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._netconsole import detect as nc_detect

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._netconsole import target as nc_target


def _render(targets):
    return "".join("[%s]\n%s" % (name, "".join("%s=%s\n" % kv for kv in sorted(values.items())))
                   for name, values in sorted(targets.items()))


def main():
    target_spec = dict(name=dict(type="str"), remote_ip=dict(type="str", required=True),
                       remote_port=dict(type="int", default=nc_target.DEFAULT_REMOTE_PORT),
                       local_port=dict(type="int", default=nc_target.DEFAULT_LOCAL_PORT),
                       local_ip=dict(type="str"), dev_name=dict(type="str"), remote_mac=dict(type="str"),
                       extended=dict(type="bool", default=True))
    module = AnsibleModule(
        argument_spec=dict(targets=dict(type="list", elements="dict", options=target_spec, default=[]),
                           state=dict(type="str", choices=["present", "absent"], default="present"),
                           method=dict(type="str", choices=["configfs", "modparam"], default="configfs"),
                           prefix=dict(type="str", default="fleet-"), probe=dict(type="bool", default=True)),
        supports_check_mode=True)
    p = module.params
    result = dict(changed=False, targets=[], found={}, created=[], updated={}, removed=[], other_targets=[])
    try:
        nc_target.check_name(p["prefix"] + "x")
        wanted = [nc_target.normalise(t, i, p["prefix"]) for i, t in enumerate(p["targets"])]
        nc_target.check_unique(wanted)
        if p["state"] == "present":
            if not wanted:
                raise nc_target.TargetError("state=present needs at least one target (remote_ip); "
                                            "state=absent removes them all")
            complete = []
            for t in wanted:
                done, found = nc_detect.complete(module, t, probe=p["probe"])
                complete.append(done)
                if found:
                    result["found"][done["name"]] = found
            wanted = complete
            result.update(targets=wanted, modparam=nc_target.modparam(wanted),
                          boot_files={t["name"]: nc_target.boot_file(t) for t in wanted},
                          device_units=sorted({nc_target.device_unit(t["dev_name"]) for t in wanted}))
        if p["method"] == "configfs" and (p["state"] == "present" or nc_configfs.available()):
            prepared = False
            if p["state"] == "present" and not module.check_mode:
                prepared = nc_configfs.prepare(module)
            running = nc_configfs.targets()
            ours = {n: v for n, v in running.items() if n.startswith(p["prefix"])}
            result["other_targets"] = sorted(set(running) - set(ours))
            keep = {t["name"] for t in wanted} if p["state"] == "present" else set()
            after = {n: v for n, v in ours.items() if n in keep}
            for t in wanted if p["state"] == "present" else []:
                delta = nc_configfs.differs(ours.get(t["name"]), t)
                if delta:
                    if t["name"] in ours:
                        result["updated"][t["name"]] = delta
                    else:
                        result["created"].append(t["name"])
                after[t["name"]] = dict(nc_target.attributes(t), enabled="1")
            result["removed"] = sorted(set(ours) - keep)
            planned = bool(result["created"] or result["updated"] or result["removed"])
            result["changed"] = planned or prepared
            if planned and not module.check_mode:
                # should a step fail, changed says what was done before it
                result["changed"] = prepared
                for name in result["removed"]:
                    nc_configfs.remove(name)
                    result["changed"] = True
                for t in wanted if p["state"] == "present" else []:
                    if nc_configfs.apply(t):
                        result["changed"] = True
            if module._diff:
                result["diff"] = {"before_header": nc_configfs.ROOT, "after_header": nc_configfs.ROOT,
                                  "before": _render(ours), "after": _render(after)}
    except (nc_target.TargetError, nc_detect.DetectError, nc_configfs.ConfigfsError) as exc:
        # a ConfigfsError says whether it left the running kernel changed (a target it could not put back)
        result["changed"] = result["changed"] or getattr(exc, "changed", False)
        module.fail_json(msg=str(exc), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
