#!/usr/bin/python
# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: nmi_panic
short_description: Set how the kernel answers NMIs, lockups, hung tasks, oopses and panics
version_added: 0.1.0
description:
  - Sets the C(kernel.*) sysctls that decide whether an NMI, a lockup, a hung task or an oops panics the
    kernel (so that kdump captures a vmcore), and how long a panicked kernel waits before rebooting.
  - Persistent through one drop-in under C(/etc/sysctl.d) and live at runtime, with the same precedence
    and conflict rules as M(magic_sysrq.fleet.sysrq_mask) (from the same code).
  - Only the settings given are managed; settings already in the drop-in and not given are kept.
  - A setting this kernel or architecture lacks (for example the x86-only NMI settings elsewhere, or
    C(nmi_watchdog) without a hardlockup detector) is reported in RV(unsupported) with the reason and a
    warning, and is never written, neither to the drop-in nor to the kernel.
options:
  panic_on_unrecovered_nmi:
    description: Panic on an NMI the hardware reports as an unrecovered memory or bus error (x86).
    type: int
    choices: [0, 1]
  unknown_nmi_panic:
    description:
      - Panic on an NMI of unknown source (x86), such as one from a hypervisor, BMC or cloud console
        (C(inject-nmi), C(chassis power diag), a serial console's NMI button).
    type: int
    choices: [0, 1]
  panic_on_io_nmi:
    description: Panic on an NMI caused by an I/O error (x86).
    type: int
    choices: [0, 1]
  nmi_watchdog:
    description: Enable the hardlockup detector (needs hardware performance counters).
    type: int
    choices: [0, 1]
  hardlockup_panic:
    description: Panic when the hardlockup detector fires.
    type: int
    choices: [0, 1]
  softlockup_panic:
    description: Panic when the softlockup detector fires.
    type: int
    choices: [0, 1]
  hung_task_panic:
    description: Panic when a task stays in uninterruptible sleep longer than O(hung_task_timeout_secs).
    type: int
    choices: [0, 1]
  hung_task_timeout_secs:
    description: Seconds in uninterruptible sleep before a task is reported as hung; V(0) disables the check.
    type: int
  panic:
    description: Seconds to wait before rebooting after a panic; V(0) waits forever, a negative value reboots at once.
    type: int
  panic_on_oops:
    description: Panic on an oops (a kernel bug that would otherwise only kill the task).
    type: int
    choices: [0, 1]
  dropin:
    type: str
    default: 90-magic-sysrq-nmi.conf
extends_documentation_fragment:
  - magic_sysrq.fleet.attributes
  - magic_sysrq.fleet.sysctl
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  idempotent:
    support: full
seealso:
  - module: magic_sysrq.fleet.sysrq_mask
  - module: magic_sysrq.fleet.sysrq_facts
  - name: Documentation for /proc/sys/kernel
    description: The kernel's description of every setting.
    link: https://docs.kernel.org/admin-guide/sysctl/kernel.html
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
"""

EXAMPLES = r"""
- name: Turn an out-of-band NMI into a panic, and a panic into a reboot after kdump
  magic_sysrq.fleet.nmi_panic:
    unknown_nmi_panic: 1
    panic_on_unrecovered_nmi: 1
    panic: 10

- name: Panic on hung tasks after two minutes (test fleets only)
  magic_sysrq.fleet.nmi_panic:
    hung_task_timeout_secs: 120
    hung_task_panic: 1
"""

RETURN = r"""
settings:
  description: The settings managed by this task that the kernel supports, by name, with the value set.
  returned: success
  type: dict
  sample: {unknown_nmi_panic: 1, panic: 10}
unsupported:
  description: Settings given that this kernel lacks, by name, with the reason; they were not written.
  returned: success
  type: dict
  sample: {nmi_watchdog: "cannot set kernel.nmi_watchdog = 0 at runtime (/proc/sys/kernel/nmi_watchdog): Unknown error 524"}
previous:
  description: The running kernel's values before the task, by setting name.
  returned: success
  type: dict
  sample: {unknown_nmi_panic: "0", panic: "0"}
runtime:
  description: The running kernel's values after the task (what they would be, in check mode).
  returned: success
  type: dict
  sample: {unknown_nmi_panic: "1", panic: "10"}
dropin:
  description: The drop-in's path.
  returned: success
  type: str
  sample: /etc/sysctl.d/90-magic-sysrq-nmi.conf
sources:
  description: For each setting, every file line that sets it, as in M(magic_sysrq.fleet.sysrq_mask).
  returned: success
  type: dict
winner:
  description: For each setting, the source that wins at boot (null when none sets it).
  returned: success
  type: dict
boot_order:
  description: Which applier runs at boot on this host, V(systemd) or V(procps).
  returned: success
  type: str
in_sync:
  description: For each setting, whether the running value equals the value that wins at boot.
  returned: success
  type: dict
  sample: {unknown_nmi_panic: true, panic: true}
commented:
  description: Files in which the module commented out an overriding line.
  returned: success
  type: list
  elements: str
backups:
  description: Backup files made.
  returned: success
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysctl import engine as sysctl
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysctl.nmi_panic import SETTINGS, key_of, validate


def main():
    spec = {name: dict(type="int") for name in SETTINGS}
    for name, (_key, allowed, _ok) in SETTINGS.items():
        if allowed == "0 or 1":
            spec[name]["choices"] = [0, 1]
    spec.update(
        dropin=dict(type="str", default="90-magic-sysrq-nmi.conf"),
        **sysctl.MODULE_OPTIONS
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    try:
        wanted = validate({name: module.params[name] for name in SETTINGS})
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if not wanted:
        module.fail_json(msg="no setting given: expected at least one of %s" % ", ".join(SETTINGS))
    if sysctl.dropin_error(module.params["dropin"]):
        module.fail_json(msg=sysctl.dropin_error(module.params["dropin"]))

    unsupported = {}
    for name in list(wanted):
        reason = sysctl.unsupported_reason(key_of(name), runtime=module.params["runtime"],
                                           probe=not module.check_mode)
        if reason:
            unsupported[name] = reason
            del wanted[name]
            module.warn("%s is not supported here and was not written: %s" % (name, reason))

    result = dict(changed=False, settings=wanted, unsupported=unsupported, previous={}, runtime={},
                  dropin=None, sources={}, winner={}, boot_order=None, in_sync={}, commented=[], backups=[])
    if wanted:
        outcome = sysctl.apply(
            module, module.params["dropin"], {key_of(name): value for name, value in wanted.items()},
            runtime=module.params["runtime"], conflicts_mode=module.params["conflicts"],
            header="NMI, lockup and panic settings, managed by magic_sysrq.fleet.nmi_panic",
            backup=module.params["backup"],
        )
        by_name = {key_of(name): name for name in wanted}
        for field in ("previous", "runtime", "sources", "winner", "in_sync"):
            result[field] = {by_name[key]: value for key, value in outcome[field].items()}
        for field in ("changed", "dropin", "boot_order", "commented", "backups"):
            result[field] = outcome[field]
        if module._diff:
            result["diff"] = outcome["diff"]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
