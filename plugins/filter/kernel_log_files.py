# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: kernel_log_files
short_description: The per-host kernel log files of collect_dmesg.yml, ready for report_files
version_added: 0.2.0
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
description:
  - From what C(collect_dmesg.yml) gathered per host (the input of P(magic_sysrq.fleet.kernel_log_summary#filter)),
    makes C(<host>/dmesg.txt) for every host that answered. C(<host>) is the host name made a safe directory name by
    P(magic_sysrq.fleet.report_name#filter), and control characters in the lines are escaped.
options:
  _input:
    description: A dict of host to C({status, lines, ...}) (or null).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Write each host's kernel log
  magic_sysrq.fleet.report_files:
    dest: "{{ report_dir }}"
    files: "{{ collected | magic_sysrq.fleet.kernel_log_files }}"
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
_value:
  description: Relative path to a list of lines.
  type: dict
"""

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import kernel_log
from ansible_collections.magic_sysrq.fleet.plugins.plugin_utils._filter_errors import expect_type, filter_errors


@filter_errors(kernel_log.KernelLogError)
def kernel_log_files(hosts):
    expect_type(hosts, dict, "a dict of host -> collected data")
    return kernel_log.host_files(hosts)


class FilterModule:
    def filters(self):
        return {"kernel_log_files": kernel_log_files}
