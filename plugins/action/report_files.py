# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action plugin of magic_sysrq.fleet.report_files: writes on the controller, in-process; no host is contacted."""

from __future__ import annotations

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
            mode = int(str(args.get("mode", "0644")), 8)
            dir_mode = int(str(args.get("dir_mode", "0755")), 8)
        except ValueError:
            raise AnsibleActionFail("report_files: mode and dir_mode are octal strings such as '0644'") from None
        try:
            written, unchanged = report_files.write_tree(
                args.get("dest"), args.get("files"), mode=mode, dir_mode=dir_mode,
                check_mode=self._task.check_mode)
        except report_files.ReportFilesError as exc:
            raise AnsibleActionFail("report_files: %s" % exc) from None
        except OSError as exc:
            raise AnsibleActionFail("report_files: cannot write under %s: %s" % (args.get("dest"), exc)) from None
        result.update(changed=bool(written), dest=args.get("dest"), written=written, unchanged=unchanged)
        return result
