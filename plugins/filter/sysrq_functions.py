# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: sysrq_functions
short_description: The integer SysRq enable mask to function names
version_added: 0.1.0
description:
- Decodes a C(kernel.sysrq) value into the names M(magic_sysrq.fleet.sysrq_mask) takes, with the same codec.
- V(0) gives V([none]), V(1) gives V([all]); any other value gives the names of its bits.
- A value outside 0 to 511, or not an integer, fails with the valid set in the message.
options:
  _input:
    description: The enable mask.
    type: raw
    required: true
seealso:
- plugin: magic_sysrq.fleet.sysrq_mask
  plugin_type: filter
author:
- magic_sysrq.fleet maintainers (@magic-sysrq)
"""

EXAMPLES = r"""
# [log_level, keyboard, sync, remount, reboot, nice]: Debian's default
debian: "{{ 438 | magic_sysrq.fleet.sysrq_functions }}"
# Is an out-of-band w dump allowed by the mask this host reported?
dumps_allowed: "{{ 'dumps' in (ansible_facts.magic_sysrq.mask | magic_sysrq.fleet.sysrq_functions) }}"
"""

RETURN = r"""
_value:
  description: Function names, in bit order.
  type: list
  elements: str
"""

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysrq.mask import MaskError, decode
from ansible_collections.magic_sysrq.fleet.plugins.plugin_utils._filter_errors import filter_errors


@filter_errors(MaskError)
def sysrq_functions(value):
    return decode(value)


class FilterModule:
    def filters(self):
        return {"sysrq_functions": sysrq_functions}
