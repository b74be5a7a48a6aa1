# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: sysrq_dump_summary
short_description: The fleet summary of a SysRq dump, from every host's registered sysrq_trigger result
version_added: 0.2.0
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
description:
  - Takes the result each host registered from M(magic_sysrq.fleet.sysrq_trigger) (with C(ignore_unreachable) and
    C(ignore_errors), so unreachable and failing hosts have one too) and says which hosts answered, which were
    unreachable or failed and why, how many tasks and blocked (D state) tasks each answering host has, and the
    identical stacks across hosts, biggest group first (as P(magic_sysrq.fleet.sysrq_stack_groups#filter)).
  - This is what C(sysrq_dump.yml) writes as C(summary.json) and renders as C(summary.md).
options:
  _input:
    description: A dict of host name to its registered result, or null for a host that has none.
    type: dict
    required: true
  asked:
    description: The hosts the dump was meant for, in order. An asked host with no result counts as not run.
      Default the keys of the input.
    type: list
    elements: str
  key:
    description: The SysRq key that was sent, recorded in the summary.
    type: str
    default: w
  directory:
    description: Where the dump is written, recorded in the summary.
    type: str
  states:
    description: Group only tasks in these states (for example V([D])). Default all.
    type: list
    elements: str
  group_limit:
    description: At most this many groups. Default all.
    type: int
"""

EXAMPLES = r"""
- name: Summarise a dump of every host in the play
  ansible.builtin.set_fact:
    summary: >-
      {{ dict(ansible_play_hosts_all | zip(ansible_play_hosts_all | map('extract', hostvars, 'dump')
         | map('default', none))) | magic_sysrq.fleet.sysrq_dump_summary(key='w') }}
  run_once: true
"""

RETURN = r"""
_value:
  description: The summary.
  type: dict
  contains:
    key:
      description: The key sent.
      type: str
    directory:
      description: Where the dump is written.
      type: str
    asked:
      description: How many hosts were asked.
      type: int
    answered:
      description: How many answered with a dump.
      type: int
    hosts_asked:
      description: The hosts asked, in order.
      type: list
      elements: str
    hosts_answered:
      description: The hosts that answered.
      type: list
      elements: str
    unreachable:
      description: The hosts that could not be reached, sorted.
      type: list
      elements: str
    unreachable_reasons:
      description: Host to the connection error.
      type: dict
    failed:
      description: Host to why the dump failed there (module error, task timeout, C(malformed result) for an answer
        that is not the shape M(magic_sysrq.fleet.sysrq_trigger) gives).
      type: dict
    not_run:
      description: Asked hosts with no result at all, with why.
      type: dict
    lost_records:
      description: Host to kernel log records lost during the dump (only hosts that lost some).
      type: dict
    timed_out:
      description: Hosts whose capture stopped at its timeout while the kernel was still printing.
      type: list
      elements: str
    host_dirs:
      description:
        - Hosts whose report directory is not their name, to that directory (a name that is not a safe file name,
          see P(magic_sysrq.fleet.report_name#filter)).
      type: dict
    not_captured:
      description: Hosts where /dev/kmsg could not be read (keys written, nothing captured).
      type: list
      elements: str
    frames_cut:
      description: Host to stack frames left out of its tasks, past the first C(max_frames) of each task (only hosts
        that had some).
      type: dict
    max_frames:
      description: How many frames of each kind (reliable, unreliable) a task keeps.
      type: int
    tasks_total:
      description: Tasks over all answering hosts.
      type: int
    blocked_total:
      description: Tasks in D state over all answering hosts.
      type: int
    tasks_per_host:
      description: Host to its task count.
      type: dict
    blocked_per_host:
      description: Host to its D-state task count.
      type: dict
    states_per_host:
      description: Host to a dict of state letter to count.
      type: dict
    groups:
      description: Identical stacks across hosts (state, frames, count, hosts, host_count, comms).
      type: list
      elements: dict
    flamegraph_missing:
      description: Why no flame graph can be drawn on this controller ('' when it can).
      type: str
"""

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import flamegraph
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import report as dump_report
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump.stack_groups import GroupError
from ansible_collections.magic_sysrq.fleet.plugins.plugin_utils._filter_errors import filter_errors


@filter_errors(dump_report.ReportError, GroupError)
def sysrq_dump_summary(results, asked=None, key="w", directory=None, states=None, group_limit=None):
    summary = dump_report.summarize(results, asked=asked, key=key, directory=directory, states=states,
                                    group_limit=group_limit)
    summary["flamegraph_missing"] = flamegraph.missing()
    return summary


class FilterModule:
    def filters(self):
        return {"sysrq_dump_summary": sysrq_dump_summary}
