#!/usr/bin/python
# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: sysrq_trigger
short_description: Send Magic SysRq keys through /proc/sysrq-trigger and return what the kernel printed
version_added: 0.1.0
description:
  - Writes one or more SysRq command keys to C(/proc/sysrq-trigger), captures the kernel log records they
    produce from C(/dev/kmsg), and for the dump keys V(t), V(w) and V(l) parses the task stacks, all in one
    module call.
  - The capture starts at the end of the log before the first key is written, runs in the background while
    the kernel prints (a V(t) dump blocks the write while slow consoles print it), and ends when the output is
    complete. The keys V(w), V(t), V(m), V(p), V(q), V(d), V(z), V(h), V(e), V(i), V(n), V(r), V(R) and the
    digits print everything inside the write, so their records are all in the log when it returns; the module
    reads them and returns at once, with no waiting. V(l) ends as soon as every online CPU's backtrace arrived
    (then 0.2 s without a new record, for the last CPU's stack), or after O(settle) seconds without a new
    record. Other keys (V(s), V(u), V(j), V(f), V(k)) finish in the background and end after O(settle) quiet
    seconds. O(timeout) bounds them all.
  - When the kernel's ring buffer overwrote records before they were read, the result says how many in
    RV(lost_records) and the module warns; the output is never silently truncated. A larger C(log_buf_len=)
    on the kernel command line (M(magic_sysrq.fleet.kernel_cmdline)) keeps whole dumps.
  - Writes to C(/proc/sysrq-trigger) run every key whatever C(kernel.sysrq) says; the mask only governs the
    keyboard and out-of-band paths (see M(magic_sysrq.fleet.sysrq_mask)).
  - Destructive keys (V(b) reboot, V(c) crash, V(e) terminate all, V(i) kill all, V(o) power off, V(u) remount
    read-only, V(k) SAK, V(f) OOM kill, V(j) thaw filesystems, V(g) kgdb, V(x) xmon, V(n) real-time tasks made
    normal, V(z) ftrace dump) are refused unless O(allow_destructive=true).
  - On user-mode Linux V(t) panics the kernel (a fault in C(print_worker_info)), so there it is refused like a
    destructive key unless O(allow_destructive=true).
options:
  keys:
    description:
      - The SysRq command keys to send, in order, as one string, for example V(w), V(t) or V(reisub).
        Whitespace is ignored.
      - "Valid keys: V(0)-V(9) (console log level), V(b) V(c) V(d) V(e) V(f) V(g) V(h) V(i) V(j) V(k) V(l) V(m)
        V(n) V(o) V(p) V(q) V(r) V(s) V(t) V(u) V(v) V(w) V(x) V(y) V(z) V(R). Some exist only with some kernel
        options or platforms; the kernel prints its help line for a key it does not know."
    type: str
    required: true
  delay:
    description:
      - Seconds to wait between two keys (records keep being captured meanwhile), for example to let V(s)
        (sync) finish before V(u) and V(b).
    type: float
    default: 0.0
  allow_destructive:
    description:
      - Allow keys that kill processes, change filesystems or stop the machine. Destructive keys are V(b) V(c)
        V(e) V(f) V(g) V(i) V(j) V(k) V(n) V(o) V(u) V(x) V(z); V(g) (kgdb) and V(x) (xmon on powerpc) stop every
        CPU until a debugger attaches; V(n) takes every real-time task's priority away for good; V(z) turns
        tracing off and prints the whole ftrace buffer on every console with interrupts off.
      - With V(b), V(c) or V(o) the host goes down and the module cannot return; run such a task with C(async)
        and C(poll=0). V(e) (SIGTERM to every process) ends the SSH session, but the module ignores it and goes on
        writing the keys that follow, so V(resub) reboots after giving processes O(delay) seconds to exit.
        V(i) (SIGKILL) kills the module too, so no key may follow it; the whole V(reisub) works only on the
        keyboard path (M(magic_sysrq.fleet.oob_sysrq)).
    type: bool
    default: false
  timeout:
    description:
      - The most seconds to keep capturing after the last key was written. When it runs out the result has
        RV(timed_out=true) and the output read so far.
    type: float
    default: 30.0
  settle:
    description:
      - Seconds without a new kernel log record that end the capture.
      - When not set, V(0) for keys that print everything inside the write (V(w), V(t), V(m) and the others
        listed above; the capture ends when the write returns) and V(1) for the others (V(l), V(s), V(u), ...).
      - Set it to wait for records something else prints after the keys, for example V(2) after V(w) for a
        hung-task report that may follow.
    type: float
  console_loglevel:
    description:
      - The console log level (the first field of C(kernel.printk)) while the keys run and their output is
        captured. The level the host had is put back afterwards, also when a key cannot be written.
      - V(4) keeps the dumps off the consoles (V(t), V(w), V(l) and V(m) print at the info level, 6); they stay
        in the kernel log, where the module reads them. Use it on hosts with a slow serial console and
        Debian's console level 7; at 115200 baud the 4 MB V(t) dump of a host with 2,000 threads holds the write
        for about 6 minutes, inside an RCU read-side section, and the kernel reports RCU stalls and hung tasks.
      - Not set, the level is left alone. Leave it unset when a console copy is the one you keep (a console
        server, a serial log, a netconsole collector; netconsole is a console too).
      - From V(1) to V(8) (V(8) prints everything, debug included).
    type: int
    version_added: 0.2.0
extends_documentation_fragment:
  - magic_sysrq.fleet.attributes
attributes:
  check_mode:
    support: full
    details: Writes no key and reads no log; checks that the keys are valid and allowed and that
      C(/proc/sysrq-trigger) can be written, and says what would be written.
  diff_mode:
    support: none
  idempotent:
    support: none
    details: Sending a key is an action, not a state; every run writes the keys again and reports
      RV(ignore:changed=true).
notes:
  - Needs root (C(become=true)). In a container C(/proc/sysrq-trigger) is usually read-only, and the host kernel's
    SysRq acts on the whole machine, not the container.
  - Records written to the kernel log by anything else while the capture runs are part of RV(output).
  - Reading C(/dev/kmsg) needs C(CAP_SYSLOG) when C(kernel.dmesg_restrict=1). Without a readable C(/dev/kmsg)
    the keys are still written, with a warning and an empty RV(output).
seealso:
  - module: magic_sysrq.fleet.sysrq_mask
  - module: magic_sysrq.fleet.sysrq_facts
  - name: The kernel's SysRq documentation
    description: What every command key does.
    link: https://docs.kernel.org/admin-guide/sysrq.html
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
"""

EXAMPLES = r"""
- name: Show the tasks stuck in uninterruptible sleep, with their stacks
  magic_sysrq.fleet.sysrq_trigger:
    keys: w
  become: true
  register: blocked

- name: Print each blocked task and where it waits
  ansible.builtin.debug:
    msg: "{{ item.comm }} ({{ item.pid }}): {{ item.frames[:6] | join(' <- ') }}"
  loop: "{{ blocked.tasks }}"
  loop_control:
    label: "{{ item.comm }}"

- name: Dump every task, waiting up to two minutes while slow consoles print it
  magic_sysrq.fleet.sysrq_trigger:
    keys: t
    timeout: 120
  become: true
  register: all_tasks

- name: Dump every task of a big host with a serial console; the dump stays off the console (kernel log only)
  magic_sysrq.fleet.sysrq_trigger:
    keys: t
    console_loglevel: 4
    timeout: 120
  become: true

- name: Backtraces of all active CPUs and memory usage
  magic_sysrq.fleet.sysrq_trigger:
    keys: lm
  become: true

- name: Emergency sync, remount read-only and reboot a wedged host (it does not come back in this task)
  magic_sysrq.fleet.sysrq_trigger:
    keys: sub
    delay: 2
    allow_destructive: true
  become: true
  async: 60
  poll: 0
"""

RETURN = r"""
keys:
  description: The keys written (in check mode, that would be written), in order.
  returned: always
  type: list
  elements: str
  sample: [w]
actions:
  description: What each key does and which C(kernel.sysrq) function governs it on the keyboard path.
  returned: success
  type: list
  elements: dict
  contains:
    key:
      description: The key.
      type: str
    name:
      description: The kernel's name of the operation.
      type: str
    description:
      description: What it does.
      type: str
    function:
      description: The enable-mask function that allows the key from the keyboard, or null when only mask 1 does.
      type: str
    mask_bit:
      description: The enable-mask bit (0 when only mask 1 or C(sysrq_always_enabled) allows it).
      type: int
    destructive:
      description: Whether the key is destructive.
      type: bool
  sample:
    - {key: w, name: show-blocked-tasks, description: Show tasks in uninterruptible (D) state and their stacks,
       function: dumps, mask_bit: 8, destructive: false}
output:
  description: The kernel log messages recorded after the first key was written, one line each, without prefixes.
  returned: success
  type: list
  elements: str
  sample:
    - "sysrq: Show Blocked State"
    - "task:dd              state:D stack:0     pid:812   ppid:790    flags:0x00004002"
    - "Call Trace:"
    - " <TASK>"
    - " __schedule+0x34d/0x9e0"
tasks:
  description:
    - The tasks the dump shows, for the keys V(t), V(w) and V(l) (empty for other keys), in dump order.
    - The same list the filter P(magic_sysrq.fleet.sysrq_tasks#filter) makes from dmesg or console text.
  returned: success
  type: list
  elements: dict
  contains:
    comm:
      description: The task's command name (null for a CPU backtrace that does not name it).
      type: str
    pid:
      description: The process (thread) id.
      type: int
    tgid:
      description: The thread group id, where the kernel prints it (6.x kernels that print C(tgid:)).
      type: int
    ppid:
      description: The parent's pid (null for CPU backtraces).
      type: int
    state:
      description: The state letter (V(D) uninterruptible, V(S) sleeping, V(R) running, V(I) idle, ...).
      type: str
    flags:
      description: The thread-info flags as printed, where printed.
      type: str
    workqueue:
      description: For a kworker, the workqueue it runs work for, where printed.
      type: str
    cpu:
      description: For V(l) backtraces, the CPU.
      type: int
    frames:
      description: Reliable stack frames, innermost first, as function names without offsets and modules.
      type: list
      elements: str
    unreliable_frames:
      description: The frames the kernel marked C(?) (possibly stale), kept apart.
      type: list
      elements: str
    frames_cut:
      description:
        - How many frames past the first 256 reliable and 256 unreliable ones were left out, when a stack was deeper
          than that (no kernel stack is).
      type: int
      returned: when frames were cut
  sample:
    - comm: dd
      pid: 812
      ppid: 790
      state: D
      flags: "0x00004002"
      frames: [__schedule, schedule, percpu_rwsem_wait, __percpu_down_read, ext4_buffered_write_iter, vfs_write,
               ksys_write, do_syscall_64, entry_SYSCALL_64_after_hwframe]
      unreliable_frames: []
task_states:
  description: How many parsed tasks are in each state.
  returned: success
  type: dict
  sample: {D: 3}
lost_records:
  description:
    - How many kernel log records the ring buffer overwrote before they could be read. Non-zero means
      RV(output) and RV(tasks) are incomplete.
  returned: success
  type: int
  sample: 0
records:
  description: How many kernel log records were captured.
  returned: success
  type: int
  sample: 42
timed_out:
  description: Whether capturing stopped at O(timeout) rather than because the output was complete.
  returned: success
  type: bool
  sample: false
console_loglevel:
  description: The console log level the host had, put back after the keys (null when O(console_loglevel) is not set).
  returned: success
  type: int
  sample: 7
captured:
  description: Whether C(/dev/kmsg) could be read (false in check mode).
  returned: success
  type: bool
  sample: true
lines_cut:
  description:
    - How many lines were longer than 1024 characters and were cut there. Kernel lines are shorter; a longer one was
      not printed by the kernel (or holds a console's noise), and is cut so that no line can slow the parser down.
  returned: success
  type: int
  sample: 0
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import kmsg

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysrq import keys as sysrq_keys

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import parser as sysrq_tasks


def check_numbers(params):
    problems = [problem for problem in (
        sysrq_keys.seconds_problem("delay", params["delay"]),
        sysrq_keys.seconds_problem("timeout", params["timeout"], above_zero=True),
        sysrq_keys.seconds_problem("settle", params["settle"])) if problem]
    level = params.get("console_loglevel")
    if level is not None and not sysrq_keys.CONSOLE_LOGLEVEL_MIN <= level <= sysrq_keys.CONSOLE_LOGLEVEL_MAX:
        problems.append("console_loglevel must be from %d to %d (4 keeps the dumps, which print at level 6, off the "
                        "consoles), got %s" % (sysrq_keys.CONSOLE_LOGLEVEL_MIN, sysrq_keys.CONSOLE_LOGLEVEL_MAX, level))
    return problems


def end_condition(keys, settle, timeout):
    """The arguments of ``Capture.finish`` for ``keys``: see the module's description."""
    if settle is None:
        settle = sysrq_keys.default_settle(keys)
    done = None
    if "l" in keys and all(key == "l" or key in sysrq_keys.SYNCHRONOUS_OUTPUT_KEYS for key in keys):
        cpus = kmsg.online_cpus()
        if cpus:
            done = kmsg.CpuBacktraces(cpus)
    return dict(settle=settle, timeout=timeout, done=done)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            keys=dict(type="str", required=True, no_log=False),
            delay=dict(type="float", default=0.0),
            allow_destructive=dict(type="bool", default=False),
            timeout=dict(type="float", default=30.0),
            settle=dict(type="float"),
            console_loglevel=dict(type="int"),
        ),
        supports_check_mode=True,
    )
    params = module.params
    problems = check_numbers(params)
    if problems:
        module.fail_json(msg="; ".join(problems), keys=[])
    try:
        keys = sysrq_keys.validate(params["keys"], params["allow_destructive"])
        sysrq_keys.check_writer_survives(keys)
        sysrq_keys.check_kernel_quirks(keys, params["allow_destructive"])
    except sysrq_keys.SysRqKeyError as exc:
        module.fail_json(msg=str(exc), keys=[])
    try:
        sysrq_keys.check_trigger()
    except sysrq_keys.TriggerError as exc:
        module.fail_json(msg=str(exc), keys=keys)

    actions = sysrq_keys.describe(keys)
    result = dict(changed=True, keys=keys, actions=actions, output=[], tasks=[], task_states={},
                  lost_records=0, records=0, timed_out=False, captured=False, lines_cut=0, console_loglevel=None)
    level = params["console_loglevel"]
    if module.check_mode:
        result["msg"] = "would write %s to %s" % (
            ", ".join("%r (%s)" % (a["key"], a["name"]) for a in actions), sysrq_keys.TRIGGER)
        if level is not None:
            result["msg"] += " with the console log level at %d meanwhile" % level
        module.exit_json(**result)

    if level is not None:
        try:
            result["console_loglevel"] = sysrq_keys.read_console_loglevel()
            sysrq_keys.write_console_loglevel(level)
        except sysrq_keys.ConsoleLogLevelError as exc:
            module.fail_json(msg="%s; no key was written" % exc, keys=keys, changed=False)
    try:
        run_keys(module, keys, params, result)
    finally:
        if level is not None:
            try:
                sysrq_keys.write_console_loglevel(result["console_loglevel"])
            except sysrq_keys.ConsoleLogLevelError as exc:
                module.warn("the console log level could not be put back to %s: %s"
                            % (result["console_loglevel"], exc))
    if sysrq_keys.wants_tasks(keys):
        result["tasks"] = sysrq_tasks.parse_lines(result["output"])
        result["task_states"] = sysrq_tasks.state_counts(result["tasks"])
    module.exit_json(**result)


def run_keys(module, keys, params, result):
    """Write the keys and capture what the kernel printed into ``result``."""
    if "e" in keys or "i" in keys:
        # e and i signal every process: this one keeps going (through e) to write the keys that follow
        sysrq_keys.ignore_termination()
    capture = kmsg.Capture()
    try:
        capture.start()
    except (OSError, kmsg.KmsgError) as exc:
        module.warn("the keys are written but their output is not captured: %s" % exc)
        capture = None

    try:
        sysrq_keys.write_keys(keys, params["delay"], pause=capture.pump if capture is not None else time.sleep)
    except sysrq_keys.TriggerError as exc:
        if capture is not None:
            capture.close()
        # the keys written before the one that failed have acted on the host
        msg = str(exc)
        if exc.written:
            msg += "; already written: %s" % ", ".join(repr(key) for key in exc.written)
        module.fail_json(msg=msg, keys=keys, changed=bool(exc.written))

    if capture is not None:
        captured = capture.finish(**end_condition(keys, params["settle"], params["timeout"]))
        result.update(captured=True, output=captured["output"], records=captured["records"],
                      lost_records=captured["lost_records"], timed_out=captured["timed_out"])
        result["output"], result["lines_cut"] = sysrq_tasks.cut_lines(result["output"])
        if result["lines_cut"]:
            module.warn("%d line(s) longer than %d characters were cut there (no kernel line is that long)"
                        % (result["lines_cut"], sysrq_tasks.MAX_LINE))
        if captured["error"]:
            module.warn("reading %s stopped early: %s" % (kmsg.KMSG, captured["error"]))
        if captured["lost_records"]:
            module.warn("the kernel ring buffer overwrote %s%d log record(s) before they were read: output and tasks "
                        "are incomplete; a larger log_buf_len= on the kernel command line keeps whole dumps"
                        % ("at least " if not captured["lost_count_exact"] else "", captured["lost_records"]))
        if captured["timed_out"]:
            module.warn("capture stopped after timeout=%s seconds while the kernel was still printing; "
                        "output may be incomplete" % params["timeout"])


if __name__ == "__main__":
    main()
