# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: report_name
short_description: Any name (a host name, a file name from a host) as one safe path component of a report
version_added: 0.2.0
description:
  - Host names come from the inventory, which may take them from cloud tags, and file names come from the hosts;
    C(../../escape) is a valid inventory name. Use this filter for every part of a controller-side path built from
    such a name (C(fetch) destinations, M(magic_sysrq.fleet.report_files) keys), so each write stays in its own
    directory of the report.
  - C(/), C(\), C(%), control characters and a leading C(.) are percent-encoded (C(../x) is C(%2E.%2Fx)), so two
    names never share a directory and a name is still readable. The empty name is C(%). A name over 255 bytes once
    encoded is cut, with a digest of the whole name appended.
  - See docs/threat-model.md.
options:
  _input:
    description: The name.
    type: raw
    required: true
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
"""

EXAMPLES = r"""
- name: Copy a file into the host's own directory of the report, whatever the host is called
  ansible.builtin.fetch:
    src: /var/log/kern.log
    dest: "{{ report_dir }}/{{ inventory_hostname | magic_sysrq.fleet.report_name }}/kern.log"
    flat: true
"""

RETURN = r"""
_value:
  description: The path component.
  type: str
  sample: "%2E.%2F..%2Fescape"
"""

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump.report_files import report_name as _report_name


def report_name(name):
    return _report_name(name)


class FilterModule:
    def filters(self):
        return {"report_name": report_name}
