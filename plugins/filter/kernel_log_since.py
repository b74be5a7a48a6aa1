# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: kernel_log_since
short_description: Keep the kernel log records (dmesg --time-format=iso) at or after a time
version_added: 0.2.0
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
description:
  - Takes C(dmesg --time-format=iso) output and keeps the records at or after O(since). A line without a time
    (a continuation) goes with the record before it.
options:
  _input:
    description: The log, as one string or a list of lines.
    type: raw
    required: true
  since:
    description:
      - V(boot) (or empty) for everything; a duration back from now (V(30m), V(2h), V(1d)); or an ISO date or time
        (V(2026-11-22), V(2026-11-22 10:30), V(2026-11-22T10:30:00+01:00)), UTC unless an offset is given.
    type: str
    default: boot
"""

EXAMPLES = r"""
- name: The kernel log of the last two hours, warnings and worse
  ansible.builtin.command:
    argv: [dmesg, --time-format=iso, "--level={{ 'warn' | magic_sysrq.fleet.kernel_log_levels | join(',') }}"]
  register: kernel_log
  changed_when: false

- name: Keep the last two hours
  ansible.builtin.debug:
    msg: "{{ kernel_log.stdout_lines | magic_sysrq.fleet.kernel_log_since('2h') }}"
"""

RETURN = r"""
_value:
  description: The lines kept.
  type: list
  elements: str
"""

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import kernel_log
from ansible_collections.magic_sysrq.fleet.plugins.plugin_utils._filter_errors import filter_errors


@filter_errors(kernel_log.KernelLogError)
def kernel_log_since(lines, since="boot"):
    return kernel_log.select_since(lines, since)


class FilterModule:
    def filters(self):
        return {"kernel_log_since": kernel_log_since}
