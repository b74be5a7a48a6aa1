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
    description: A dict with C(profile), and C(functions), C(mask), C(nmi), C(always_enabled) as needed.
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
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysrq.policy import PolicyError, normalize


def sysrq_policy(value):
    if not isinstance(value, dict):
        raise AnsibleFilterError("sysrq_policy takes a dict (profile, functions, mask, nmi, always_enabled), got %r"
                                 % (value,))
    unknown = set(value) - {"profile", "functions", "mask", "nmi", "always_enabled"}
    if unknown:
        raise AnsibleFilterError("unknown policy field(s) %s: expected profile, functions, mask, nmi, always_enabled"
                                 % ", ".join(sorted(unknown)))
    try:
        return normalize(**value)
    except PolicyError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    def filters(self):
        return {"sysrq_policy": sysrq_policy}
