# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The captured console of a host, read from outside (module_utils/oob_console.py)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  console:
    description:
      - Where the host's console is captured, read on the host that runs the task.
      - A file that grows as the console prints (O(console.path)), a systemd unit whose output is the console
        (O(console.journal_unit)), read with C(journalctl), or the host's file at a netconsole collector
        (O(console.netconsole)).
      - "Files: QEMU C(-chardev file,id=ser0,path=FILE -serial chardev:ser0), libvirt C(<serial type='file'>) or
        C(<log file='FILE'/>) on the serial device, a conserver or C(ipmitool sol activate) log."
    type: dict
    suboptions:
      path:
        description: The console log file.
        type: path
      journal_unit:
        description: The systemd unit that writes the console to the journal (QEMU run with C(-serial stdio)).
        type: str
      journal_user:
        description: The unit is a user unit (C(journalctl --user-unit)).
        type: bool
        default: false
      netconsole:
        description:
          - The host's file at a netconsole collector (role C(magic_sysrq.fleet.netconsole_collector), for example
            C(/var/log/netconsole/192.0.2.10.log)), read on the collector or where the file is shared.
          - The kernel's records come back in sequence order with their fragments (C(ncfrag)) joined, as the
            console prints them, and every gap in the sequence as a line that starts with C(netconsole) and says how
            many records were lost and their sequence numbers, so a loss is never silent. See docs/netconsole.md.
        type: path
"""
