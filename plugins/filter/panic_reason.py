# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: panic_reason
short_description: Why a kernel went down, from a crash dmesg (kdump) or any kernel log
version_added: 0.2.0
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
description:
  - >-
    Reads a kernel log that ends in a crash, such as the C(dmesg.<stamp>) file kdump-tools saves under
    C(/var/crash/<stamp>/) or C(vmcore-dmesg.txt), and returns the panic reason, the cause the kernel reported
    before it (C(sysrq: Trigger a crash), C(BUG: kernel NULL pointer dereference), C(kernel BUG at ...), a soft or
    hard lockup, a hung task, an unknown NMI, out of memory, a C(WARNING) with C(panic_on_warn), an RCU stall),
    the task and CPU that panicked, the taint flags, the kernel release and the panicking task's stack.
  - >-
    The first C(Kernel panic - not syncing:) line is the panic; a log with an Oops or BUG but no panic line still
    gets its cause as the reason, with C(panicked=false).
  - Accepts C(dmesg) text with or without timestamps, C(journalctl -k) lines and serial console captures.
options:
  _input:
    description: The log, as one string or a list of lines.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Read the newest kdump dmesg
  ansible.builtin.slurp:
    src: /var/crash/202611221030/dmesg.202611221030
  register: crash

- name: Say why the host crashed
  ansible.builtin.debug:
    msg: "{{ (crash.content | b64decode | magic_sysrq.fleet.panic_reason).headline }}"
"""

RETURN = r"""
_value:
  description: What brought the kernel down.
  type: dict
  contains:
    panicked:
      description: Whether a C(Kernel panic - not syncing) line was found.
      type: bool
    reason:
      description: >-
        The panic message (C(sysrq triggered crash), C(Fatal exception), C(NMI: Not continuing), ...),
        else the cause line, else null.
      type: str
    kind:
      description: >-
        The cause: V(sysrq-crash), V(null-pointer), V(page-fault), V(bug), V(general-protection), V(soft-lockup),
        V(hard-lockup), V(hung-task), V(nmi), V(oom), V(rcu-stall), V(warning), V(oops), V(mce), V(other)
        (a panic with none of these before it), or null.
      type: str
    panic:
      description: The panic line.
      type: str
    cause:
      description: The line that reported the cause, nearest before the panic.
      type: str
    comm:
      description: The command name of the task that panicked.
      type: str
    pid:
      description: Its pid.
      type: int
    cpu:
      description: The CPU it ran on.
      type: int
    tainted:
      description: The kernel's taint flags ('' when not tainted).
      type: str
    kernel:
      description: The kernel release printed with the task.
      type: str
    frames:
      description: The reliable frames of the panicking task's call trace, innermost first.
      type: list
      elements: str
    time:
      description: Seconds since boot of the panic (or of the cause when there is no panic), when timestamped.
      type: float
    headline:
      description: One line for a summary.
      type: str
"""

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import panic_reason as reader
from ansible_collections.magic_sysrq.fleet.plugins.plugin_utils._filter_errors import expect_type, filter_errors


@filter_errors()
def panic_reason(text):
    """Crash log text -> the reason the kernel went down."""
    expect_type(text, (str, bytes, list, tuple), "kernel log text (a string or a list of lines)")
    return reader.panic_reason(text)


class FilterModule:
    def filters(self):
        return {"panic_reason": panic_reason}
