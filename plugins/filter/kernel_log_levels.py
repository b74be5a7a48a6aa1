# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: kernel_log_levels
short_description: A kernel log level to the levels at or above it (for dmesg --level)
version_added: 0.2.0
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
description:
  - V(err) gives V([emerg, alert, crit, err]); join them with commas for C(dmesg --level). Empty or null gives an
    empty list (every level).
  - Accepts the dmesg names V(emerg), V(alert), V(crit), V(err), V(warn), V(notice), V(info), V(debug), the numbers
    V(0)-V(7), and V(error), V(warning), V(critical), V(emergency).
options:
  _input:
    description: The lowest level wanted.
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Warnings and worse
  ansible.builtin.command:
    argv: [dmesg, "--level={{ 'warn' | magic_sysrq.fleet.kernel_log_levels | join(',') }}"]
  changed_when: false
"""

RETURN = r"""
_value:
  description: The level names, most severe first.
  type: list
  elements: str
"""

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import kernel_log
from ansible_collections.magic_sysrq.fleet.plugins.plugin_utils._filter_errors import filter_errors


@filter_errors(kernel_log.KernelLogError)
def kernel_log_levels(level):
    return kernel_log.levels_at_or_above(level)


class FilterModule:
    def filters(self):
        return {"kernel_log_levels": kernel_log_levels}
