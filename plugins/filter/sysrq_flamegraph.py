# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: sysrq_flamegraph
short_description: Folded stacks to a flame graph page (self-contained HTML) drawn by Plotly
version_added: 0.2.0
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
description:
  - Turns folded-stack lines (C(comm;outermost;...;innermost count), as P(magic_sysrq.fleet.sysrq_stacks_folded#filter)
    writes them) into one HTML page holding an interactive flame graph, drawn by the Plotly library's icicle chart
    with the root at the bottom. Click a frame to zoom into it; hover for task counts and shares.
  - The page embeds plotly.js (about 5 MB) and opens offline in any browser.
  - Needs the Python package C(plotly) on the controller (the Python that runs ansible-playbook). Without it the
    filter fails with a message that says so; P(magic_sysrq.fleet.sysrq_dump_summary#filter) reports the same
    reason in C(flamegraph_missing), so a playbook can skip the graph and keep the rest.
options:
  _input:
    description: Folded-stack lines, as a list or one string.
    type: raw
    required: true
  title:
    description: The graph's title.
    type: str
    default: Flame graph
  subtitle:
    description: A second title line.
    type: str
    default: ""
requirements:
  - plotly (Python package, on the controller)
"""

EXAMPLES = r"""
- name: Draw the fleet's blocked tasks
  ansible.builtin.copy:
    content: "{{ tasks_by_host | magic_sysrq.fleet.sysrq_stacks_folded(states=['D'])
                 | magic_sysrq.fleet.sysrq_flamegraph(title='Blocked tasks') }}"
    dest: "{{ report_dir }}/flamegraph.html"
    mode: "0644"
  delegate_to: localhost
  run_once: true
"""

RETURN = r"""
_value:
  description: The HTML page.
  type: str
"""

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import flamegraph
from ansible_collections.magic_sysrq.fleet.plugins.plugin_utils._filter_errors import filter_errors


@filter_errors(flamegraph.FlameGraphError)
def sysrq_flamegraph(lines, title="Flame graph", subtitle=""):
    return flamegraph.render_html(lines, title=title, subtitle=subtitle)


class FilterModule:
    def filters(self):
        return {"sysrq_flamegraph": sysrq_flamegraph}
