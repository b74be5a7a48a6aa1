# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: sysrq_stack_groups
short_description: Group the tasks of many hosts by identical stack, biggest group first
version_added: 0.1.0
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
description:
  - Takes the tasks of a fleet (from M(magic_sysrq.fleet.sysrq_trigger) or the P(magic_sysrq.fleet.sysrq_tasks#filter)
    filter) and returns one group per distinct (state, reliable frames), with how many tasks and which hosts share it.
  - Groups are sorted by task count, largest first; ties by state then frames, so the result does not depend on the
    order the hosts answered in.
options:
  _input:
    description:
      - The tasks. A dict of host name to task list (or to a registered C(sysrq_trigger) result, whose C(tasks) are
        used); a list of C({host, tasks}) items; or a flat list of tasks, each optionally with C(host).
    type: raw
    required: true
  states:
    description: Keep only tasks in these states, for example V([D]). Default all states.
    type: list
    elements: str
  limit:
    description: Return only the first N groups.
    type: int
  max_depth:
    description: Compare only the innermost N frames (the frames returned are cut to N too).
    type: int
"""

EXAMPLES = r"""
- name: Take a w dump on every host
  magic_sysrq.fleet.sysrq_trigger:
    keys: w
  become: true
  register: dump

- name: The stacks that hold tasks in D state across the fleet, most common first
  ansible.builtin.debug:
    msg: "{{ item.count }} task(s) on {{ item.host_count }} host(s): {{ item.frames[:8] | join(' <- ') }}"
  loop: >-
    {{ dict(ansible_play_hosts | zip(ansible_play_hosts | map('extract', hostvars, 'dump')))
       | magic_sysrq.fleet.sysrq_stack_groups(states=['D'], limit=10) }}
  loop_control:
    label: "{{ item.count }}"
  run_once: true
"""

RETURN = r"""
_value:
  description: The groups, biggest first.
  type: list
  elements: dictionary
  contains:
    state:
      description: The tasks' state letter.
      type: string
    frames:
      description: The shared reliable frames, innermost first.
      type: list
      elements: string
    count:
      description: How many tasks have this stack.
      type: integer
    hosts:
      description: The hosts they run on, sorted.
      type: list
      elements: string
    host_count:
      description: How many hosts.
      type: integer
    comms:
      description: The command names of the tasks, sorted.
      type: list
      elements: string
"""

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import stack_groups
from ansible_collections.magic_sysrq.fleet.plugins.plugin_utils._filter_errors import filter_errors


@filter_errors(stack_groups.GroupError)
def sysrq_stack_groups(data, states=None, limit=None, max_depth=None):
    """Tasks of many hosts -> groups of identical stacks, biggest first."""
    return stack_groups.group_stacks(data, states=states, limit=limit, max_depth=max_depth)


class FilterModule:
    def filters(self):
        return {"sysrq_stack_groups": sysrq_stack_groups}
