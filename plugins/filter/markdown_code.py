# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: markdown_code
short_description: Untrusted text as a Markdown code span that renders literally
version_added: 0.2.0
description:
  - Puts host names, process names and kernel messages into a Markdown report as an inline code span, from which no
    emphasis, link, autolink or HTML renders, whatever it holds.
  - The span's delimiters are one backtick longer than the longest run of backticks in the text; control
    characters (ESC, BEL, newline...) are written as visible C(\xNN) escapes, so the text stays on its line.
  - See docs/threat-model.md for who controls which text of the reports.
options:
  _input:
    description: The text (any value; null is empty).
    type: raw
    required: true
  table:
    description: The span goes in a table cell; escape C(|) as C(\|), which GitHub's tables turn back into C(|).
    type: bool
    default: false
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
"""

EXAMPLES = r"""
- name: A line of a Markdown report
  ansible.builtin.debug:
    msg: "- Failed: {{ host | magic_sysrq.fleet.markdown_code }}: {{ msg | magic_sysrq.fleet.markdown_code }}"
"""

RETURN = r"""
_value:
  description: The code span.
  type: str
  sample: "`web1`"
"""

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import markdown


def markdown_code(text, table=False):
    return markdown.code(text, table=bool(table))


class FilterModule:
    def filters(self):
        return {"markdown_code": markdown_code}
