# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: sysrq_tasks
short_description: Parse a SysRq task dump (dmesg, console or kmsg text) into tasks and stacks
version_added: 0.1.0
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
description:
  - Turns kernel log text holding a SysRq V(t), V(w) or V(l) dump, or hung-task reports, into the list of tasks
    M(magic_sysrq.fleet.sysrq_trigger) returns, with the same parser.
  - Copes with C(dmesg) output with or without C([   12.345678]) timestamps (also C(-T), C(-x), C(-r), ISO and
    caller-id forms), C(journalctl -k) lines, C(/dev/kmsg) messages, and serial console captures with ANSI
    escapes and carriage returns.
  - "Understands the C(task:NAME state:D stack:0 pid:N [tgid:N] ppid:N flags:0x...) header of 5.8 and later kernels
    (split continuations included), the older column layout (C(NAME D 0 123 2 0x00000000)), and
    C(NMI backtrace for cpu N) / C(CPU: N PID: P Comm: C) backtraces of V(l)."
  - Frames marked C(?) by the kernel are unreliable and kept apart in C(unreliable_frames). Register dumps,
    C(Call Trace:) lines and C(<TASK>)/C(<IRQ>)/C(<NMI>) markers are skipped.
options:
  _input:
    description: The text, as one string or a list of lines (for example C(dmesg.stdout_lines)).
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Read the kernel log of a host that cannot run modules any more, captured from its serial console
  ansible.builtin.set_fact:
    stuck: "{{ lookup('ansible.builtin.file', 'console-web01.log') | magic_sysrq.fleet.sysrq_tasks
               | selectattr('state', 'equalto', 'D') | list }}"

- name: Parse the w dump in dmesg
  ansible.builtin.command: dmesg
  register: dmesg
  changed_when: false

- name: Show where each blocked task waits
  ansible.builtin.debug:
    msg: "{{ item.comm }}[{{ item.pid }}] {{ item.frames | join(' <- ') }}"
  loop: "{{ dmesg.stdout | magic_sysrq.fleet.sysrq_tasks | selectattr('state', 'equalto', 'D') }}"
  loop_control:
    label: "{{ item.comm }}"
"""

RETURN = r"""
_value:
  description:
    - The tasks, in dump order. Each has C(comm), C(pid), C(ppid) (null where not printed), C(state) (one letter),
      C(frames) (reliable frames, innermost first, function names only) and C(unreliable_frames); and where the
      kernel prints them C(tgid), C(flags), C(task_flags), C(workqueue); V(l) backtraces have C(cpu), and a CPU
      the kernel skipped as idle has C(idle=true).
  type: list
  elements: dictionary
"""

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import parser
from ansible_collections.magic_sysrq.fleet.plugins.plugin_utils._filter_errors import expect_type, filter_errors


@filter_errors()
def sysrq_tasks(text):
    """Kernel log text (str or list of lines) -> list of task dicts."""
    expect_type(text, (str, bytes, list, tuple), "kernel log text (a string or a list of lines)")
    if text is None:
        return []
    if isinstance(text, (list, tuple)):
        text = "\n".join(str(line) for line in text)
    return parser.parse_text(text)


class FilterModule:
    def filters(self):
        return {"sysrq_tasks": sysrq_tasks}
