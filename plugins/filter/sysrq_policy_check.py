# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: sysrq_policy_check
short_description: How a host's SysRq facts differ from the policy
version_added: 0.1.0
description:
  - Compares the C(magic_sysrq) fact of M(magic_sysrq.fleet.sysrq_facts) with a policy from the
    P(magic_sysrq.fleet.sysrq_policy#filter) filter; returns a list of problems, empty when the host complies.
  - Checks the running mask, the mask that wins at boot, C(sysrq_always_enabled) when the policy manages it,
    and every NMI setting of the policy (running and at boot). Missing facts (an unreachable host) are a problem.
options:
  _input:
    description: The host's C(ansible_facts.magic_sysrq), or null when none were gathered.
    type: raw
    required: true
  policy:
    description: The normalized policy.
    type: dict
    required: true
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
"""

EXAMPLES = r"""
problems: "{{ ansible_facts.magic_sysrq | magic_sysrq.fleet.sysrq_policy_check({'profile': 'hardened'} | magic_sysrq.fleet.sysrq_policy) }}"
"""

RETURN = r"""
_value:
  description: One sentence per difference; empty when the host complies.
  type: list
  elements: str
"""

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysrq.policy import PolicyError, problems
from ansible_collections.magic_sysrq.fleet.plugins.plugin_utils._filter_errors import filter_errors


@filter_errors(PolicyError)
def sysrq_policy_check(facts, policy):
    return problems(facts, policy)


class FilterModule:
    def filters(self):
        return {"sysrq_policy_check": sysrq_policy_check}
