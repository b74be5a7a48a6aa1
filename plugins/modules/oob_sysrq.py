#!/usr/bin/python
# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: oob_sysrq
short_description: Press Alt+SysRq+key on a wedged host's console from outside, and read back what it printed
version_added: 0.2.0
description:
  - For a host that no longer answers over SSH. Presses the SysRq chord on the host's keyboard through its
    hypervisor or console service (QEMU QMP C(send-key), libvirt C(virDomainSendKey), the Azure serial console),
    or sends a serial BREAK and the key through the BMC's IPMI Serial-over-LAN (O(method=sol)); then, with O(console)
    (or over the SOL session itself), reads the host's captured console from just before the first key until it settles,
    and parses task dumps (V(w), V(t), V(l)) with the same parser as M(magic_sysrq.fleet.sysrq_trigger).
  - Runs on the machine that reaches the console, not on the wedged host. Point the task at the wedged host and
    C(delegate_to) the hypervisor (or V(localhost)).
  - Unlike C(/proc/sysrq-trigger), the keyboard path honours the host's enable mask (C(kernel.sysrq)). Given the
    host's last known mask in O(mask), the module says before sending which keys the kernel will refuse, and
    after sending, when the console shows the kernel's refusal, it says so in RV(refused).
  - Destructive keys (V(b) V(c) V(e) V(f) V(g) V(i) V(j) V(k) V(n) V(o) V(u) V(x) V(z)) are refused unless O(allow_destructive=true).
options:
  method:
    description: How to reach the host's keyboard. Each method takes its options in the option of the same name.
    type: str
    required: true
    choices: [azure, libvirt, qmp, sol]
  keys:
    description:
      - The SysRq command keys to press, in order, for example V(w), V(9w) (raise the console log level, then
        show blocked tasks) or V(t). Whitespace is ignored.
      - A keyboard presses lower-case letters and digits only; V(R) (replay the kernel log) is in-band only.
    type: str
    required: true
  allow_destructive:
    description: Allow keys that kill processes, change filesystems or stop the machine.
    type: bool
    default: false
  hold_time:
    description: Milliseconds the chord is held down (QMP C(hold-time), libvirt holdtime). Unused by O(method=sol).
    type: int
    default: 100
  delay:
    description: Seconds to wait between two chords, for example to let V(s) (sync) finish before V(u) and V(b).
    type: float
    default: 0.5
  mask:
    description:
      - The host's last known C(kernel.sysrq) mask, for example from C(ansible_facts.magic_sysrq.mask) kept in a
        fact cache (M(magic_sysrq.fleet.sysrq_facts)). Unknown when omitted.
      - Keys the mask refuses are named in a warning before they are sent, or the task fails first with
        O(mask_refusal=fail).
    type: int
  always_enabled:
    description: The host's kernel runs with C(sysrq_always_enabled) (every key works whatever the mask).
    type: bool
    default: false
  mask_refusal:
    description:
      - What to do when O(mask) refuses a key. V(warn) sends it anyway (the known mask may be stale; the console
        tells) and warns; V(fail) fails before sending anything.
    type: str
    default: warn
    choices: [fail, warn]
  settle:
    description: With O(console), reading ends when the console printed nothing new for this many seconds.
    type: float
    default: 2.0
  timeout:
    description:
      - With O(console), the most seconds to read after the last key. A V(t) dump over a 115200 baud serial line
        prints about 11 KB a second.
    type: float
    default: 60.0
extends_documentation_fragment:
  - magic_sysrq.fleet.attributes
  - magic_sysrq.fleet.oob_console
  - magic_sysrq.fleet.oob_qmp
  - magic_sysrq.fleet.oob_libvirt
  - magic_sysrq.fleet.oob_sol
  - magic_sysrq.fleet.oob_cloud.azure
attributes:
  check_mode:
    support: full
    details: Presses no key; validates the keys and the method's options and says which keys the mask refuses.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Pressing a key is an action; every run presses the keys again and reports RV(ignore:changed=true).
notes:
  - The host needs a keyboard driver bound to the emulated keyboard (i8042 and atkbd for QEMU's C(pc) and
    C(q35) machines) and C(CONFIG_MAGIC_SYSRQ).
  - Only messages at or above the console log level reach the console. SysRq prints its header at any level, but
    a task dump at KERN_INFO is hidden under C(quiet); press V(9) first (it needs the C(log_level) bit, 2).
seealso:
  - module: magic_sysrq.fleet.oob_console
  - module: magic_sysrq.fleet.oob_nmi
  - module: magic_sysrq.fleet.sysrq_trigger
  - module: magic_sysrq.fleet.sysrq_facts
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
"""

EXAMPLES = r"""
- name: Blocked tasks of a wedged QEMU guest, read back from its serial log
  magic_sysrq.fleet.oob_sysrq:
    method: qmp
    qmp:
      socket: /run/qemu/web1.qmp
    console:
      path: /var/log/qemu/web1-serial.log
    keys: 9w
    mask: "{{ ansible_facts.magic_sysrq.mask | default(omit) }}"
  delegate_to: hypervisor1.example.com
  register: dump

- name: Through libvirt, the console logged by <log file=.../> on the domain's serial device
  magic_sysrq.fleet.oob_sysrq:
    method: libvirt
    libvirt:
      uri: qemu:///system
      domain: web1
    console:
      path: /var/log/libvirt/qemu/web1-console.log
    keys: w
  delegate_to: hypervisor1.example.com

- name: Blocked tasks of a wedged bare-metal server, BREAK + w over the BMC's Serial-over-LAN, read back over SOL
  magic_sysrq.fleet.oob_sysrq:
    method: sol
    sol:
      host: web1-bmc.example.com
      username: admin
      password: "{{ vault_bmc_password }}"
    keys: w
    mask: "{{ ansible_facts.magic_sysrq.mask | default(omit) }}"
  delegate_to: localhost

- name: Safe reboot of a frozen guest (sync, remount read-only, reboot)
  magic_sysrq.fleet.oob_sysrq:
    method: qmp
    qmp:
      socket: /run/qemu/web1.qmp
    keys: sub
    delay: 2
    allow_destructive: true
  delegate_to: hypervisor1.example.com
"""

RETURN = r"""
method:
  description: The method used.
  returned: always
  type: str
  sample: qmp
keys:
  description: The keys pressed (in check mode, that would be pressed), in order.
  returned: always
  type: list
  elements: str
  sample: ["9", w]
sent:
  description: Each chord as it was sent (no credentials).
  returned: success
  type: list
  elements: dict
  sample:
    - key: w
      request: {execute: send-key, arguments: {keys: [{type: qcode, data: alt}, {type: qcode, data: sysrq},
                                                      {type: qcode, data: w}], hold-time: 100}}
mask:
  description: What the last known mask does with each key (V(unknown) true when O(mask) was not given).
  returned: always
  type: dict
  sample: {mask: 438, allowed: ["9"], refused: [w], unknown: false}
output:
  description: The console's lines from just before the first key until it settled (with O(console)).
  returned: success
  type: list
  elements: str
  sample: ["[  812.123456] sysrq: Show Blocked State", "[  812.124000] task:dd state:D stack:0 pid:812 ppid:790"]
tasks:
  description: The tasks parsed from RV(output) for the dump keys V(t), V(w) and V(l), as in M(magic_sysrq.fleet.sysrq_trigger).
  returned: success
  type: list
  elements: dict
task_states:
  description: How many parsed tasks are in each state.
  returned: success
  type: dict
  sample: {D: 3}
refused:
  description: The console shows the kernel's C(This sysrq operation is disabled) (the mask refused a key).
  returned: success
  type: bool
  sample: false
console_position:
  description:
    - Where the console ended, a byte offset of O(console.path) or a journal cursor. Pass it to
      M(magic_sysrq.fleet.oob_console) as O(magic_sysrq.fleet.oob_console#module:since_position) to read what came later.
  returned: success and O(console) given (not with O(method=sol), whose console is the SOL session)
  type: raw
  sample: 1048576
timed_out:
  description: Reading stopped at O(timeout) while the console was still printing.
  returned: success
  type: bool
  sample: false
captured:
  description: Whether the console was read (false without O(console) or O(method=sol), and in check mode).
  returned: always
  type: bool
  sample: true
lines_cut:
  description: How many console lines were longer than 1024 characters and were cut there (no kernel line is).
  returned: when a console was read
  type: int
  sample: 0
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import console as oob_console
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import methods as oob_methods
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import sol as oob_sol
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysrq import keys as sysrq_keys
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import parser as sysrq_tasks


def main():
    spec = oob_methods.argument_spec(oob_methods.SYSRQ)
    spec.update(oob_console.ARGUMENT_SPEC)
    spec.update(
        keys=dict(type="str", required=True, no_log=False),
        allow_destructive=dict(type="bool", default=False),
        hold_time=dict(type="int", default=100),
        delay=dict(type="float", default=0.5),
        mask=dict(type="int"),
        always_enabled=dict(type="bool", default=False),
        mask_refusal=dict(type="str", default="warn", choices=["fail", "warn"]),
        settle=dict(type="float", default=2.0),
        timeout=dict(type="float", default=60.0),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params = module.params
    result = dict(changed=False, method=params["method"], keys=[], sent=[], output=[], tasks=[], task_states={},
                  refused=False, timed_out=False, captured=False,
                  mask=oob.mask_verdict([], params["mask"], params["always_enabled"]))
    try:
        problems = [problem for problem in (
            "hold_time must be > 0 milliseconds (got %s)" % params["hold_time"] if params["hold_time"] <= 0 else None,
            sysrq_keys.seconds_problem("delay", params["delay"]),
            sysrq_keys.seconds_problem("settle", params["settle"]),
            sysrq_keys.seconds_problem("timeout", params["timeout"], above_zero=True),
            "mask must be 0-511, the kernel.sysrq range (got %s)" % params["mask"]
            if params["mask"] is not None and not 0 <= params["mask"] <= 511 else None) if problem]
        if problems:
            raise oob.OobError("; ".join(problems))
        keys = oob.keyboard_keys(params["keys"], params["allow_destructive"])
        result["keys"] = keys
        target = oob_methods.target(params)
    except (oob.OobError, sysrq_keys.SysRqKeyError) as exc:
        module.fail_json(msg=str(exc), **result)

    verdict = oob.mask_verdict(keys, params["mask"], params["always_enabled"])
    result["mask"] = verdict
    if verdict["refused"]:
        if params["mask_refusal"] == "fail":
            module.fail_json(msg=oob.refusal_text(verdict["refused"], params["mask"]) + "; nothing was sent",
                             **result)
        module.warn(oob.refusal_text(verdict["refused"], params["mask"]))
    if module.check_mode:
        result["changed"] = True
        result["msg"] = "would press Alt+SysRq+%s through %s" % ("/".join(keys), params["method"])
        module.exit_json(**result)

    console = None
    start = None
    sol = None
    try:
        send = oob_methods.SYSRQ[params["method"]]
        if params["method"] == "sol":
            if params["console"]:
                raise oob.OobError("method sol reads the console over its own SOL session: leave console unset")
            # the SOL session is both the keyboard (BREAK + key) and the console
            console = sol = oob_sol.console(module, target)
            start = console.position()
            send = sol.send_sysrq
        elif params["console"]:
            console = oob_console.source(module, params["console"])
            start = console.position()
        for index, key in enumerate(keys):
            if index and params["delay"]:
                time.sleep(params["delay"])
            result["sent"].extend(send(module, target, [key], params["hold_time"]))
            result["changed"] = True
        if console is not None:
            done = len(keys)
            waited = oob_console.wait_for_output(
                console, start, settle=params["settle"], timeout=params["timeout"],
                until=lambda text: text.count(oob.DISABLED_MARKER) >= done)
            lines, result["lines_cut"] = sysrq_tasks.cut_lines(oob_console.lines_of(waited["text"]))
            if result["lines_cut"]:
                module.warn("%d console line(s) longer than %d characters were cut there"
                            % (result["lines_cut"], sysrq_tasks.MAX_LINE))
            tasks = oob_console.parse(lines, keys)
            refusals = oob_console.refusals(lines)
            result.update(captured=True, output=lines, tasks=tasks, console_position=waited["position"],
                          timed_out=waited["timed_out"], refused=refusals > 0)
            result["task_states"] = sysrq_tasks.state_counts(tasks)
            if result["refused"]:
                module.warn("the console shows %r: the host's kernel.sysrq mask refused %d key(s); allow them with "
                            "the debuggable profile, or use magic_sysrq.fleet.sysrq_trigger over SSH"
                            % (oob.DISABLED_MARKER, refusals))
            if waited["timed_out"]:
                module.warn("the console was still printing after timeout=%s seconds; output may be incomplete"
                            % params["timeout"])
            if sol is not None:
                del result["console_position"]
                if sol.took_over:
                    module.warn("took over the SOL session someone else held on the BMC (sol.takeover=true)")
    except oob.OobError as exc:
        module.fail_json(msg=str(exc), **result)
    finally:
        if sol is not None:
            sol.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
