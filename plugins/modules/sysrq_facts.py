#!/usr/bin/python
# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sysrq_facts
short_description: Report a host's SysRq, NMI, console and crash-capture state
version_added: 0.1.0
description:
  - Read-only. Returns, as the fact C(magic_sysrq), everything the collection configures or relies on
    when a host has to be debugged through SysRq, an NMI or a crash dump.
  - The runtime SysRq mask and its decoded functions, every persistent file that sets it and the one
    that wins at boot; whether the kernel has SysRq at all.
  - The NMI, lockup, hung-task and panic settings (see M(magic_sysrq.fleet.nmi_panic)), each with its
    runtime value and persistent winner, or marked unsupported.
  - C(/proc/cmdline), C(/proc/consoles), the reserved crash kernel memory, whether a crash kernel is
    loaded, C(kernel.kexec_load_disabled) (which stops kdump from loading one), and the kdump service state.
options: {}
extends_documentation_fragment:
  - magic_sysrq.fleet.attributes
  - magic_sysrq.fleet.attributes.INFO_MODULE
  - ansible.builtin.action_common_attributes.facts
attributes:
  facts:
    support: full
seealso:
  - module: magic_sysrq.fleet.sysrq_mask
  - module: magic_sysrq.fleet.nmi_panic
  - module: magic_sysrq.fleet.kernel_cmdline
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
"""

EXAMPLES = r"""
- name: Gather SysRq facts
  magic_sysrq.fleet.sysrq_facts:

- name: Show whether an out-of-band w dump would be allowed
  ansible.builtin.debug:
    msg: "{{ 'dumps' in ansible_facts.magic_sysrq.functions or ansible_facts.magic_sysrq.mask == 1 }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts to add to ansible_facts.
  returned: always
  type: complex
  contains:
    magic_sysrq:
      description: The host's SysRq, NMI, console and crash-capture state.
      returned: always
      type: complex
      contains:
        available:
          description: Whether the kernel has Magic SysRq (C(/proc/sys/kernel/sysrq) exists).
          type: bool
          sample: true
        trigger:
          description: Whether C(/proc/sysrq-trigger) exists.
          type: bool
          sample: true
        mask:
          description: The running kernel's mask, null without SysRq.
          type: int
          sample: 438
        functions:
          description: The mask decoded into function names.
          type: list
          elements: str
          sample: [log_level, keyboard, sync, remount, reboot, nice]
        always_enabled:
          description: Whether C(sysrq_always_enabled) is on the running kernel's command line (every function, whatever the mask).
          type: bool
          sample: false
        sources:
          description: Every file line that sets C(kernel.sysrq), as in M(magic_sysrq.fleet.sysrq_mask).
          type: list
          elements: dict
        winner:
          description: The source that sets C(kernel.sysrq) at boot; null when the kernel's default applies.
          type: dict
        persistent:
          description: The mask that applies after the next boot (the winner's value, else the running value, as the kernel default).
          type: int
          sample: 176
        in_sync:
          description: Whether the running mask equals the mask that applies after the next boot.
          type: bool
        boot_order:
          description: Which applier runs at boot, V(systemd) or V(procps).
          type: str
        nmi:
          description: For each setting of M(magic_sysrq.fleet.nmi_panic), C(value) (running, null when unsupported),
            C(supported), C(winner) (persistent source or null).
          type: dict
          sample: {unknown_nmi_panic: {value: "0", supported: true, winner: null}}
        cmdline:
          description: The running kernel's command line.
          type: str
        cmdline_args:
          description: The command line split into arguments, in order.
          type: list
          elements: str
        consoles:
          description: C(/proc/consoles) entries; the one with C(C) in its flags is /dev/console.
          type: list
          elements: dict
          sample: [{name: ttyS0, flags: "-W- (EC p a)", device: "4:64"}]
        kexec_crash_size:
          description: Bytes reserved for a crash kernel (C(/sys/kernel/kexec_crash_size)), null when unknown.
          type: int
          sample: 134217728
        kexec_crash_loaded:
          description: Whether a crash kernel is loaded, null when unknown.
          type: bool
        kexec_load_disabled:
          description: C(kernel.kexec_load_disabled); when true no crash kernel can be loaded until reboot.
          type: bool
        kdump_service:
          description: The kdump service's unit name and its C(active) and C(enabled) states, null without systemd or kdump.
          type: dict
          sample: {unit: kdump-tools.service, active: active, enabled: enabled}
"""

import os
import shlex

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysctl import engine as sysctl
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._host import host_path, read_text
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysctl.nmi_panic import SETTINGS, key_of
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysrq.mask import decode

KDUMP_UNITS = ("kdump-tools.service", "kdump.service")


def read_int(path):
    text = read_text(path)
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None


def consoles():
    out = []
    for line in (read_text("/proc/consoles") or "").splitlines():
        parts = line.split()
        if not parts:
            continue
        device = parts[-1] if ":" in parts[-1] else None
        flags = line[len(parts[0]):].strip()
        if device:
            flags = flags[: -len(device)].strip()
        out.append({"name": parts[0], "flags": flags, "device": device})
    return out


def kdump_service(module):
    systemctl = module.get_bin_path("systemctl")
    if not systemctl:
        return None
    for unit in KDUMP_UNITS:
        rc, out, _err = module.run_command([systemctl, "show", "-p", "LoadState,ActiveState,UnitFileState", unit])
        props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        if rc == 0 and props.get("LoadState") == "loaded":
            return {"unit": unit, "active": props.get("ActiveState"), "enabled": props.get("UnitFileState")}
    return None


def kernel_args(cmdline):
    """The arguments of a kernel command line as the kernel splits them (next_arg() in lib/cmdline.c): at
    whitespace outside double quotes, the quotes removed; a quote left open runs to the end of the line;
    single quotes and backslashes are ordinary characters. Never raises."""
    lexer = shlex.shlex(cmdline, posix=True)
    lexer.whitespace_split, lexer.quotes, lexer.escape, lexer.commenters = True, '"', "", ""
    if cmdline.count('"') % 2:
        lexer = shlex.shlex(cmdline + '"', posix=True)
        lexer.whitespace_split, lexer.quotes, lexer.escape, lexer.commenters = True, '"', "", ""
    return list(lexer)


def gather(module):
    key = "kernel.sysrq"
    runtime = sysctl.read_runtime(key)
    order = sysctl.boot_order()
    srcs = sysctl.sources([key] + [key_of(n) for n in SETTINGS])
    winner = sysctl.winner(srcs[key], order)
    mask = int(runtime) if runtime is not None else None
    value = winner["value"] if winner else ""
    persistent = int(value) if value.isascii() and value.isdigit() else mask
    cmdline = " ".join((read_text("/proc/cmdline") or "").split())
    args = kernel_args(cmdline)
    nmi = {}
    for name in SETTINGS:
        value = sysctl.read_runtime(key_of(name))
        nmi_winner = sysctl.winner(srcs[key_of(name)], order)
        nmi[name] = {"value": value, "supported": value is not None,
                     "winner": sysctl.public_source(nmi_winner) if nmi_winner else None}
    loaded = read_int("/sys/kernel/kexec_crash_loaded")
    disabled = read_int("/proc/sys/kernel/kexec_load_disabled")
    return {
        "available": runtime is not None,
        "trigger": os.path.exists(host_path("/proc/sysrq-trigger")),
        "mask": mask,
        "functions": decode(mask) if mask is not None and 0 <= mask <= 511 else [],
        "always_enabled": "sysrq_always_enabled" in args or "sysrq_always_enabled=1" in args,
        "sources": [sysctl.public_source(s) for s in srcs[key]],
        "winner": sysctl.public_source(winner) if winner else None,
        "persistent": persistent,
        "in_sync": mask is not None and mask == persistent,
        "boot_order": order,
        "nmi": nmi,
        "cmdline": cmdline,
        "cmdline_args": args,
        "consoles": consoles(),
        "kexec_crash_size": read_int("/sys/kernel/kexec_crash_size"),
        "kexec_crash_loaded": None if loaded is None else bool(loaded),
        "kexec_load_disabled": None if disabled is None else bool(disabled),
        "kdump_service": kdump_service(module),
    }


def main():
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    module.exit_json(changed=False, ansible_facts={"magic_sysrq": gather(module)})


if __name__ == "__main__":
    main()
