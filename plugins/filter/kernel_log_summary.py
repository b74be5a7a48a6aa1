# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: kernel_log_summary
short_description: The fleet summary of collect_dmesg.yml, with the panic reason of every crash dmesg
version_added: 0.2.0
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
description:
  - Takes, per host, what C(collect_dmesg.yml) gathered (status, kernel log line count and time span, the crash
    dmesg files copied to the controller) and returns the fleet summary. Each crash file is read on the controller
    and its panic reason found as P(magic_sysrq.fleet.panic_reason#filter) does.
options:
  _input:
    description:
      - A dict of host to C({status, msg, lines, first, last, crash_files}); C(status) is V(answered), V(unreachable)
        or V(failed); each crash file is C({name, path, mtime, local}) where C(local) is its copy on the controller
        (or C(text), the file's text).
    type: dict
    required: true
  since:
    description: The O(magic_sysrq.fleet.kernel_log_since#filter:since) the logs were cut at, recorded in the summary.
    type: str
    default: boot
  level:
    description: The lowest level collected, recorded in the summary.
    type: str
  directory:
    description: Where the collection is written, recorded in the summary.
    type: str
"""

EXAMPLES = r"""
- name: Summarise
  ansible.builtin.set_fact:
    summary: "{{ collected | magic_sysrq.fleet.kernel_log_summary(since='2h', directory=dir) }}"
"""

RETURN = r"""
_value:
  description: The summary.
  type: dict
  contains:
    since:
      description: The start time (ISO) or V(boot).
      type: str
    levels:
      description: The levels collected, or V(all).
      type: raw
    asked:
      description: Hosts asked.
      type: int
    answered:
      description: Hosts that answered.
      type: int
    unreachable:
      description: Hosts that could not be reached.
      type: list
      elements: str
    failed:
      description: Hosts where collecting failed.
      type: list
      elements: str
    crash_count:
      description: Crash dmesg files collected over the fleet.
      type: int
    crashes:
      description: Every crash file, newest first, with host, name, path, mtime, reason, kind, headline.
      type: list
      elements: dict
    hosts:
      description: Per host, what was collected, crash files with their panic reasons.
      type: dict
    directory:
      description: Where the report is written (the O(directory) argument).
      type: str
    not_run:
      description: Hosts that were asked but have no result at all.
      type: list
      elements: str
    host_dirs:
      description:
        - Hosts whose report directory is not their name, to that directory (a name that is not a safe file name,
          see P(magic_sysrq.fleet.report_name#filter)).
      type: dict
"""

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import kernel_log
from ansible_collections.magic_sysrq.fleet.plugins.plugin_utils._filter_errors import expect_type, filter_errors


@filter_errors(kernel_log.KernelLogError)
def kernel_log_summary(hosts, since="boot", level=None, directory=None):
    expect_type(hosts, dict, "a dict of host -> collected data")
    return kernel_log.summarize(hosts, since=since, level=level, directory=directory)


class FilterModule:
    def filters(self):
        return {"kernel_log_summary": kernel_log_summary}
