#!/usr/bin/python
# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: report_files
short_description: Write many report files under one directory on the controller in one step
version_added: 0.2.0
description:
  - Writes every file of a report (per-host dumps, summaries) under O(dest) on the controller, in the
    controller process, with one task instead of one C(copy) module run per file. That keeps the
    controller side of C(sysrq_dump.yml) and C(collect_dmesg.yml) fast on large fleets.
  - Each file is written atomically (temporary file, then rename) and only when its content or its mode differs.
    Missing directories are created. Paths must stay inside O(dest).
  - A path that is absolute, climbs out with C(..), or holds a NUL byte is not written and is listed in
    RV(refused) with a warning; the other files are still written, so one bad host name loses no one else's
    report. Build per-host paths with P(magic_sysrq.fleet.report_name#filter) and no host is refused.
  - This is an action plugin; it never contacts a managed host, whatever host the task runs for.
options:
  dest:
    description: The report directory.
    type: path
    required: true
  files:
    description:
      - Relative path (under O(dest)) to content, as text or a list of lines (each written with a newline).
    type: dict
    required: true
  mode:
    description:
      - Permissions of the files. An octal string (V('0644')), or an integer taken as the mode itself, as
        Ansible's file modules do (an unquoted C(0644) in YAML is the integer 420, which is 0644).
    type: raw
    default: "0644"
  dir_mode:
    description: Permissions of directories it creates, given as O(mode).
    type: raw
    default: "0755"
extends_documentation_fragment:
  - magic_sysrq.fleet.attributes
attributes:
  check_mode:
    support: full
    details: Writes nothing; RV(written) lists what would change.
  diff_mode:
    support: none
  idempotent:
    support: full
  action:
    support: full
    description: Runs on the controller as an action plugin.
    details: Only the controller's filesystem is written.
notes:
  - The content is held in memory; it suits reports, not large binary files.
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
"""

EXAMPLES = r"""
- name: Write each host's dump and the summary
  magic_sysrq.fleet.report_files:
    dest: "{{ report_dir }}"
    files: "{{ per_host_files | combine({'summary.json': summary | to_nice_json}) }}"
  run_once: true
  delegate_to: localhost
"""

RETURN = r"""
dest:
  description: The report directory.
  returned: always
  type: str
written:
  description: The files written (in check mode, that would be written).
  returned: always
  type: list
  elements: str
unchanged:
  description: The files that already had this content.
  returned: always
  type: list
  elements: str
refused:
  description:
    - The paths not written, each with why (absolute, outside O(dest), out of O(dest) through a symlink, a NUL byte,
      not text, or the error that writing it met). The other files are written.
  returned: always
  type: dict
"""
