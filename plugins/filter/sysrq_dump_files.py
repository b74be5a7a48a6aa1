# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: sysrq_dump_files
short_description: The per-host files of a SysRq dump (raw output and parsed tasks), ready for report_files
version_added: 0.2.0
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
description:
  - From each host's registered M(magic_sysrq.fleet.sysrq_trigger) result, makes C(<host>/output.txt) (the kernel's
    lines) and C(<host>/tasks.json) (the parsed tasks) for every host that answered. Unreachable and failed hosts
    get no files; P(magic_sysrq.fleet.sysrq_dump_summary#filter) reports them.
options:
  _input:
    description: A dict of host name to its registered result (or null).
    type: dict
    required: true
  hosts:
    description: Only these hosts (for example C(ansible_play_batch)). Default every host of the input.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Write this batch's dumps
  magic_sysrq.fleet.report_files:
    dest: "{{ report_dir }}"
    files: "{{ results | magic_sysrq.fleet.sysrq_dump_files(hosts=ansible_play_batch) }}"
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
_value:
  description: Relative path to content (a list of lines, or JSON text).
  type: dict
"""

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import report as dump_report
from ansible_collections.magic_sysrq.fleet.plugins.plugin_utils._filter_errors import expect_type, filter_errors


@filter_errors(dump_report.ReportError)
def sysrq_dump_files(results, hosts=None):
    expect_type(results, dict, "a dict of host -> registered result")
    return dump_report.host_files(results, hosts)


class FilterModule:
    def filters(self):
        return {"sysrq_dump_files": sysrq_dump_files}
