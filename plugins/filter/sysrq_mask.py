# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: sysrq_mask
short_description: SysRq function names to the integer enable mask
version_added: 0.1.0
description:
  - Turns a list of SysRq function names into the value of C(kernel.sysrq), with the same codec as
    M(magic_sysrq.fleet.sysrq_mask). An integer (or its text) passes through after a range check.
  - Names are V(log_level) (2), V(keyboard) (4), V(dumps) (8), V(sync) (16), V(remount) (32),
    V(signal) (64), V(reboot) (128), V(nice) (256); V(all) (1) and V(none) (0) stand alone.
  - An unknown name or an out-of-range number fails with the valid set in the message.
options:
  _input:
    description: Function names (a list, or one string separated by commas or spaces), or an integer mask.
    type: raw
    required: true
seealso:
  - plugin: magic_sysrq.fleet.sysrq_functions
    plugin_type: filter
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
"""

EXAMPLES = r"""
# 176
mask: "{{ ['sync', 'remount', 'reboot'] | magic_sysrq.fleet.sysrq_mask }}"
# 186: what out-of-band w and t dumps need
debuggable: "{{ 'log_level,dumps,sync,remount,reboot' | magic_sysrq.fleet.sysrq_mask }}"
"""

RETURN = r"""
_value:
  description: The enable mask, 0 to 511.
  type: int
"""

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysrq.mask import MaskError, encode, parse_mask
from ansible_collections.magic_sysrq.fleet.plugins.plugin_utils._filter_errors import filter_errors


@filter_errors(MaskError)
def sysrq_mask(value):
    if isinstance(value, int) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
        return parse_mask(value)
    return encode(value)


class FilterModule:
    def filters(self):
        return {"sysrq_mask": sysrq_mask}
