# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of magic_sysrq.fleet.report_files: writes on the controller, in-process; no host is contacted."""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import report_files


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("dest", "files", "mode", "dir_mode"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp
        args = self._task.args
        unknown = sorted(set(args) - self._VALID_ARGS)
        if unknown:
            raise AnsibleActionFail("report_files: unknown option(s) %s; it takes %s"
                                    % (", ".join(unknown), ", ".join(sorted(self._VALID_ARGS))))
        try:
            mode = report_files.file_mode(args.get("mode", "0644"), "mode")
            dir_mode = report_files.file_mode(args.get("dir_mode", "0755"), "dir_mode")
        except report_files.ReportFilesError as exc:
            raise AnsibleActionFail("report_files: %s" % exc) from None
        dest = args.get("dest")
        if isinstance(dest, str):
            # dest is documented as type: path, which a module gets expanded: ~/reports is not ./~/reports
            dest = os.path.expanduser(os.path.expandvars(dest))
        refused = []
        try:
            written, unchanged = report_files.write_tree(
                dest, args.get("files"), mode=mode, dir_mode=dir_mode,
                check_mode=self._task.check_mode, refused=refused)
        except report_files.ReportFilesError as exc:
            raise AnsibleActionFail("report_files: %s" % exc) from None
        except OSError as exc:
            raise AnsibleActionFail("report_files: cannot write under %s: %s" % (dest, exc)) from None
        for name, why in refused:
            self._display.warning("report_files: not written: %s" % why)
        result.update(changed=bool(written), dest=dest, written=written, unchanged=unchanged,
                      refused=dict(refused))
        return result
