# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: sysrq_stacks_folded
short_description: Tasks from many hosts to folded stacks for flame graph tools
version_added: 0.1.0
description:
  - Turns tasks (as M(magic_sysrq.fleet.sysrq_trigger) or P(magic_sysrq.fleet.sysrq_tasks#filter) return them)
    into folded-stack lines, C(comm;outermost;...;innermost count), the format flame graph tools such as
    C(flamegraph.pl), speedscope and inferno read. Equal stacks are summed; lines are sorted.
  - Accepts the same input shapes as P(magic_sysrq.fleet.sysrq_stack_groups#filter).
options:
  _input:
    description: A dict of host to task list (or to a registered result with C(tasks)), a list of C({host, tasks}), or a task list.
    type: raw
    required: true
  states:
    description: Keep only tasks in these states, for example V([D]).
    type: list
    elements: str
  with_host:
    description: Start each stack with the host name, so the graph splits by host first.
    type: bool
    default: false
  with_state:
    description: Put the task state before the command name.
    type: bool
    default: false
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
"""

EXAMPLES = r"""
folded: "{{ {'host1': dump.tasks} | magic_sysrq.fleet.sysrq_stacks_folded(states=['D']) }}"
"""

RETURN = r"""
_value:
  description: Folded-stack lines.
  type: list
  elements: str
  sample: ["dd;entry_SYSCALL_64_after_hwframe;do_syscall_64;__x64_sys_openat;mnt_want_write;percpu_rwsem_wait;schedule;__schedule 1"]
"""

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump.stack_groups import GroupError, folded_lines
from ansible_collections.magic_sysrq.fleet.plugins.plugin_utils._filter_errors import filter_errors


@filter_errors(GroupError)
def sysrq_stacks_folded(data, states=None, with_host=False, with_state=False):
    return folded_lines(data, states=states, with_host=with_host, with_state=with_state)


class FilterModule:
    def filters(self):
        return {"sysrq_stacks_folded": sysrq_stacks_folded}
