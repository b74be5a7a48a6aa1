"""QEMU command lines, and the QMP client of the lab (the collection's own)."""
from __future__ import annotations

import os
from pathlib import Path

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob.qmp import QMPClient

from .config import CPUS, MEMORY_MB

QEMU = os.environ.get("MAGIC_SYSRQ_QEMU", "qemu-system-x86_64")


def qemu_cmd(name: str, disk: Path, serial_log: Path, qmp_socket: Path | None = None,
             ssh_port: int | None = None, disk_format: str = "qcow2", cache: str = "unsafe",
             extra: list[str] | None = None, cpus: int = CPUS) -> list[str]:
    """One lab guest: TCG, SeaBIOS + i8042 (pc machine), virtio disk and net, serial to a file."""
    netdev = "user,id=n0"
    if ssh_port:
        netdev += f",hostfwd=tcp:127.0.0.1:{ssh_port}-:22"
    cmd = [
        QEMU, "-name", name,
        "-accel", "tcg", "-machine", "pc", "-smp", str(cpus), "-m", str(MEMORY_MB),
        "-display", "none", "-no-user-config",
        "-drive", f"file={disk},if=virtio,format={disk_format},cache={cache},discard=unmap",
        "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0",
        "-device", "virtio-rng-pci",
        "-chardev", f"file,id=ser0,path={serial_log}", "-serial", "chardev:ser0",
        "-monitor", "none",
        "-rtc", "base=utc",
    ]
    if qmp_socket:
        cmd += ["-qmp", f"unix:{qmp_socket},server=on,wait=off"]
    return cmd + list(extra or [])


class QMP(QMPClient):
    """The collection's own QMP client (plugins/module_utils/_oob/qmp.py) on a lab guest's unix socket,
    retrying the connection for ``timeout`` seconds while QEMU starts."""

    def __init__(self, path: str | os.PathLike, timeout: float = 10.0):
        super().__init__(path=str(path), timeout=timeout)

    def connect(self, retry_for: float | None = None) -> dict:
        return super().connect(retry_for=self.timeout if retry_for is None else retry_for)


def send_keys_args(keys: list[str], hold_time: int = 100) -> dict:
    """Arguments for QMP send-key pressing the given qcodes together, e.g. ['alt', 'sysrq', 'w']."""
    return {"keys": [{"type": "qcode", "data": k} for k in keys], "hold-time": hold_time}
