"""QEMU command lines and a small stdlib QMP client."""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from .config import CPUS, MEMORY_MB

QEMU = os.environ.get("MAGIC_SYSRQ_QEMU", "qemu-system-x86_64")


def qemu_cmd(name: str, disk: Path, serial_log: Path, qmp_socket: Path | None = None,
             ssh_port: int | None = None, disk_format: str = "qcow2", cache: str = "unsafe",
             extra: list[str] | None = None) -> list[str]:
    """One lab guest: TCG, SeaBIOS + i8042 (pc machine), virtio disk and net, serial to a file."""
    netdev = "user,id=n0"
    if ssh_port:
        netdev += f",hostfwd=tcp:127.0.0.1:{ssh_port}-:22"
    cmd = [
        QEMU, "-name", name,
        "-accel", "tcg", "-machine", "pc", "-smp", str(CPUS), "-m", str(MEMORY_MB),
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


class QMPError(RuntimeError):
    pass


class QMP:
    """Minimal QEMU Machine Protocol client over a unix socket (one command at a time)."""

    def __init__(self, path: str | os.PathLike, timeout: float = 10.0):
        self.path = str(path)
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self._buf = b""
        self.events: list[dict] = []

    def __enter__(self) -> QMP:
        self.connect()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def connect(self) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(self.timeout)
                self.sock.connect(self.path)
                break
            except OSError:
                if self.sock:
                    self.sock.close()
                self.sock = None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        greeting = self._read()
        if "QMP" not in greeting:
            raise QMPError(f"unexpected QMP greeting: {greeting}")
        self.command("qmp_capabilities")
        return greeting

    def close(self) -> None:
        if self.sock:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def _read(self) -> dict:
        while b"\n" not in self._buf:
            assert self.sock is not None
            chunk = self.sock.recv(65536)
            if not chunk:
                raise QMPError("QMP connection closed")
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def command(self, execute: str, arguments: dict | None = None) -> object:
        if self.sock is None:
            self.connect()
        msg: dict = {"execute": execute}
        if arguments:
            msg["arguments"] = arguments
        assert self.sock is not None
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            try:
                reply = self._read()
            except QMPError:
                if execute == "quit":
                    return {}
                raise
            if "event" in reply:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise QMPError(f"{execute}: {reply['error'].get('desc', reply['error'])}")
            return reply.get("return")


def send_keys_args(keys: list[str], hold_time: int = 100) -> dict:
    """Arguments for QMP send-key pressing the given qcodes together, e.g. ['alt', 'sysrq', 'w']."""
    return {"keys": [{"type": "qcode", "data": k} for k in keys], "hold-time": hold_time}
