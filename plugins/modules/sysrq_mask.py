#!/usr/bin/python
# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sysrq_mask
short_description: Set the Magic SysRq enable mask, persistently and at runtime
version_added: 0.1.0
description:
  - Sets C(kernel.sysrq), the mask of SysRq functions the keyboard, serial BREAK and out-of-band
    paths may use. Writes to C(/proc/sysrq-trigger) are not governed by it.
  - Writes one drop-in under C(/etc/sysctl.d), atomically with mode C(0644), then applies the value
    to the running kernel unless O(runtime=false).
  - Knows which file wins at boot. C(systemd-sysctl) applies C(*.conf) files from C(/etc/sysctl.d),
    C(/run/sysctl.d), C(/usr/local/lib/sysctl.d) and C(/usr/lib/sysctl.d) in lexical order of their
    names, a name in an earlier directory hiding the same name in a later one; C(sysctl --system)
    (procps) does the same and then applies C(/etc/sysctl.conf) last. When any other file would
    override the drop-in under either, the module fails, writing nothing, unless O(conflicts) says otherwise.
  - On a kernel built without C(CONFIG_MAGIC_SYSRQ) (no C(/proc/sys/kernel/sysrq)) it fails and writes
    nothing, unless O(runtime=false), which only prepares the persistent setting (for an image or a
    container, say).
options:
  mask:
    description:
      - The mask as an integer from V(0) to V(511). V(0) disables SysRq, V(1) enables every function.
      - Exactly one of O(mask) and O(functions) is required.
    type: raw
  functions:
    description:
      - The functions to enable, by name; the mask is the sum of their bits.
      - V(log_level) (2), V(keyboard) (4), V(dumps) (8), V(sync) (16), V(remount) (32), V(signal) (64),
        V(reboot) (128), V(nice) (256). V(all) (1) and V(none) (0) stand alone.
    type: list
    elements: str
  dropin:
    type: str
    default: 90-magic-sysrq.conf
extends_documentation_fragment:
  - magic_sysrq.fleet.attributes
  - magic_sysrq.fleet.sysctl
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details: Shows the drop-in, any file whose line is commented out, and the runtime value.
  idempotent:
    support: full
notes:
  - Debian keeps the kernel's default C(438); Ubuntu ships C(/usr/lib/sysctl.d/10-magic-sysrq.conf) with C(176); systemd's
    C(50-default.conf) sets C(16) where a distribution installs it.
  - The kernel command-line argument C(sysrq_always_enabled) enables every function whatever the mask;
    see M(magic_sysrq.fleet.kernel_cmdline) and M(magic_sysrq.fleet.sysrq_facts).
seealso:
  - module: magic_sysrq.fleet.sysrq_facts
  - module: magic_sysrq.fleet.nmi_panic
  - name: The kernel's SysRq documentation
    description: The meaning of every bit of the mask.
    link: https://docs.kernel.org/admin-guide/sysrq.html
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
"""

EXAMPLES = r"""
- name: Allow only sync, remount read-only and reboot (Ubuntu's choice)
  magic_sysrq.fleet.sysrq_mask:
    functions: [sync, remount, reboot]

- name: Allow out-of-band w and t dumps during incidents
  magic_sysrq.fleet.sysrq_mask:
    functions: [log_level, dumps, sync, remount, reboot]

- name: Disable SysRq entirely, commenting out any file that would set it back at boot
  magic_sysrq.fleet.sysrq_mask:
    mask: 0
    conflicts: comment

- name: Prepare the setting in an image without touching the running kernel
  magic_sysrq.fleet.sysrq_mask:
    mask: 176
    runtime: false
"""

RETURN = r"""
mask:
  description: The mask set.
  returned: success
  type: int
  sample: 176
functions:
  description: The mask decoded into function names.
  returned: success
  type: list
  elements: str
  sample: [sync, remount, reboot]
previous:
  description: The running kernel's mask before the task, or null without SysRq.
  returned: success
  type: int
  sample: 438
runtime:
  description: The running kernel's mask after the task (what it would be, in check mode), or null without SysRq.
  returned: success
  type: int
  sample: 176
dropin:
  description: The drop-in's path.
  returned: success
  type: str
  sample: /etc/sysctl.d/90-magic-sysrq.conf
sources:
  description: Every file line that sets C(kernel.sysrq), in the order they are applied.
  returned: success
  type: list
  elements: dict
  contains:
    path:
      description: The file.
      type: str
    line:
      description: The line number.
      type: int
    value:
      description: The value the line sets.
      type: str
    orders:
      description: Which appliers read the file, V(systemd) (systemd-sysctl at boot) and V(procps) (C(sysctl --system)).
      type: list
      elements: str
  sample:
    - {path: /usr/lib/sysctl.d/50-default.conf, line: 14, value: "16", orders: [procps, systemd]}
    - {path: /etc/sysctl.d/90-magic-sysrq.conf, line: 2, value: "176", orders: [procps, systemd]}
winner:
  description: The source that sets C(kernel.sysrq) at boot (null when no file sets it and the kernel default applies).
  returned: success
  type: dict
  sample: {path: /etc/sysctl.d/90-magic-sysrq.conf, line: 2, value: "176", orders: [procps, systemd]}
boot_order:
  description: Which applier runs at boot on this host, V(systemd) or V(procps).
  returned: success
  type: str
  sample: systemd
in_sync:
  description: Whether the running kernel's mask equals the value that wins at boot.
  returned: success
  type: bool
  sample: true
commented:
  description: Files in which the module commented out an overriding line (O(conflicts=comment)).
  returned: success
  type: list
  elements: str
  sample: [/etc/sysctl.conf]
backups:
  description: Backup files made.
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysctl import engine as sysctl
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysrq.mask import (
    MaskError, decode, encode, parse_mask, valid_set_text,
)

KEY = "kernel.sysrq"


def desired_mask(params):
    if params["mask"] is not None and params["functions"] is not None:
        raise MaskError("give either mask or functions, not both: expected %s" % valid_set_text())
    if params["mask"] is None and params["functions"] is None:
        raise MaskError("one of mask or functions is required: expected %s" % valid_set_text())
    if params["mask"] is not None:
        return parse_mask(params["mask"])
    return encode(params["functions"])


def as_int(value):
    return None if value is None else int(value)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            mask=dict(type="raw"),
            functions=dict(type="list", elements="str"),
            dropin=dict(type="str", default="90-magic-sysrq.conf"),
            **sysctl.MODULE_OPTIONS
        ),
        supports_check_mode=True,
    )
    try:
        mask = desired_mask(module.params)
    except MaskError as exc:
        module.fail_json(msg=str(exc))
    if sysctl.dropin_error(module.params["dropin"]):
        module.fail_json(msg=sysctl.dropin_error(module.params["dropin"]))
    if module.params["runtime"] and sysctl.read_runtime(KEY) is None:
        module.fail_json(msg="this kernel has no Magic SysRq support: %s does not exist (kernel built without "
                             "CONFIG_MAGIC_SYSRQ, or /proc/sys not mounted); nothing was written. "
                             "Use runtime=false to prepare the persistent setting only." % sysctl.proc_path(KEY))

    outcome = sysctl.apply(
        module, module.params["dropin"], {KEY: mask},
        runtime=module.params["runtime"], conflicts_mode=module.params["conflicts"],
        header="Magic SysRq enable mask, managed by magic_sysrq.fleet.sysrq_mask",
        backup=module.params["backup"],
    )
    result = dict(
        changed=outcome["changed"],
        mask=mask,
        functions=decode(mask),
        previous=as_int(outcome["previous"][KEY]),
        runtime=as_int(outcome["runtime"][KEY]),
        dropin=outcome["dropin"],
        sources=outcome["sources"][KEY],
        winner=outcome["winner"][KEY],
        boot_order=outcome["boot_order"],
        in_sync=outcome["in_sync"][KEY],
        commented=outcome["commented"],
        backups=outcome["backups"],
    )
    if module._diff:
        result["diff"] = outcome["diff"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
