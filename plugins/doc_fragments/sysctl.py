# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options every sysctl-writing module shares (plugins/module_utils/_sysctl/engine.py MODULE_OPTIONS)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  dropin:
    description:
      - The drop-in's file name under C(/etc/sysctl.d), or an absolute path directly in a directory that
        C(systemd-sysctl) and C(sysctl --system) read at boot (C(/etc/sysctl.d), C(/run/sysctl.d),
        C(/usr/local/lib/sysctl.d), C(/usr/lib/sysctl.d), C(/lib/sysctl.d)).
      - It must end in C(.conf); any other path is refused, since nothing would apply it at boot.
      - Files are applied in lexical order, so the name decides what it overrides.
    type: str
  runtime:
    description: Also set the values in the running kernel (C(/proc/sys)).
    type: bool
    default: true
  conflicts:
    description:
      - What to do when another file sets one of the module's keys to another value and is applied after the drop-in.
      - V(fail) reports every such file and line and changes nothing.
      - V(comment) comments those lines out, with a backup of each file edited. A vendor file (C(/usr/lib/sysctl.d) and
        the like) is left alone and masked by a same-named copy in C(/etc/sysctl.d) with the line commented out.
      - V(ignore) writes the drop-in anyway; the result then shows that the drop-in does not win.
    type: str
    choices: [fail, comment, ignore]
    default: fail
  backup:
    description: Keep a backup of the drop-in when it is replaced.
    type: bool
    default: false
"""
