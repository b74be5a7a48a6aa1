# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: markdown_fence
short_description: Untrusted lines as a Markdown fenced code block that nothing in them can close
version_added: 0.2.0
description:
  - Puts stack frames or log lines into a Markdown report as a fenced code block. The fence is one backtick
    longer than the longest run of backticks in the lines (at least three), so a line of backticks cannot close
    it and let what follows render as Markdown or HTML.
  - Control characters are written as visible C(\xNN) escapes.
  - See docs/threat-model.md.
options:
  _input:
    description: The lines, as a list or one string.
    type: raw
    required: true
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
"""

EXAMPLES = r"""
- name: A stack in a Markdown report
  ansible.builtin.debug:
    msg: "{{ group.frames | magic_sysrq.fleet.markdown_fence }}"
"""

RETURN = r"""
_value:
  description: The fenced block, fences included (no newline after the closing fence).
  type: str
"""

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import markdown


def markdown_fence(lines):
    return markdown.fence(lines)


class FilterModule:
    def filters(self):
        return {"markdown_fence": markdown_fence}
