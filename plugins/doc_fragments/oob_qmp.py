# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options of the out-of-band method qmp (module_utils/oob_qmp.py)."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  qmp:
    description:
      - With O(method=qmp), the QEMU guest's QMP monitor, for example
        C(socket=/run/qemu/web1.qmp) for a guest started with C(-qmp unix:/run/qemu/web1.qmp,server=on,wait=off).
      - The task must run where the socket is (the hypervisor, with C(delegate_to)), as a user that may open it.
      - QEMU serves one client per QMP socket; a monitor held by another client makes the call time out.
    type: dict
    suboptions:
      socket:
        description: Path of the unix QMP socket. Exactly one of O(qmp.socket) and O(qmp.host) is required.
        type: path
      host:
        description: Host of a TCP QMP monitor (C(-qmp tcp:HOST:PORT,server=on,wait=off)); needs O(qmp.port).
        type: str
      port:
        description: Port of a TCP QMP monitor.
        type: int
      timeout:
        description: Seconds to wait for the connection and for each answer.
        type: float
        default: 10.0
"""
