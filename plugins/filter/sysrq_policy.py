# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: sysrq_policy
short_description: Validate a SysRq policy and resolve its profile to a mask
version_added: 0.1.0
description:
  - Takes the variables of the P(magic_sysrq.fleet.sysrq_policy#role) role as a dict and returns the policy
    with its mask computed, or fails with a message naming what is wrong and what is allowed.
  - Profiles are V(hardened) (mask 0), V(recovery) (sync, remount, reboot = 176), V(debuggable)
    (log_level, dumps, sync, remount, reboot = 186) and V(custom) (exactly one of C(functions) and C(mask)).
options:
  _input:
    description:
      - A dict with C(profile), and C(functions), C(mask), C(nmi), C(always_enabled), C(log_buf_len) as needed.
      - C(log_buf_len) is V(auto) or a power-of-two size from V(1M) to V(2G); with V(auto) and C(threads) (the
        host's thread count) the size is computed by the rule in docs/performance.md (2 KiB a thread, times 2,
        rounded up to a power of two, at least 1M).
    type: dict
    required: true
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
"""

EXAMPLES = r"""
policy: "{{ {'profile': 'debuggable', 'nmi': {'unknown_nmi_panic': 1}} | magic_sysrq.fleet.sysrq_policy }}"
# policy.mask == 186, policy.functions == ['log_level', 'dumps', 'sync', 'remount', 'reboot']
"""

RETURN = r"""
_value:
  description: The policy, normalized.
  type: dict
  contains:
    profile:
      description: The profile.
      type: str
    mask:
      description: The enable mask.
      type: int
    functions:
      description: The mask's function names.
      type: list
      elements: str
    nmi:
      description: The NMI settings, validated.
      type: dict
    always_enabled:
      description: Whether sysrq_always_enabled must be on the command line (null when not managed).
      type: bool
    log_buf_len:
      description: The C(log_buf_len=) size for the kernel command line (V(auto) until C(threads) is given; null when
        not managed).
      type: str
"""

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysrq.policy import FIELDS, PolicyError, normalize
from ansible_collections.magic_sysrq.fleet.plugins.plugin_utils._filter_errors import expect_type, filter_errors


@filter_errors(PolicyError)
def sysrq_policy(value):
    expect_type(value, dict, "a dict (%s)" % ", ".join(FIELDS), allow_none=False)
    unknown = set(value) - set(FIELDS)
    if unknown:
        raise PolicyError("unknown policy field(s) %s: expected %s" % (", ".join(sorted(unknown)), ", ".join(FIELDS)))
    return normalize(**value)


class FilterModule:
    def filters(self):
        return {"sysrq_policy": sysrq_policy}
