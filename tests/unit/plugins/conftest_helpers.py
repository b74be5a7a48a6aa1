"""Fake host trees shaped like real distributions."""
from __future__ import annotations

import json
import os
import socket
import threading


def debian_host(root, sysrq="438", sysctl_conf="#kernel.sysrq=438\n", symlink=True, systemd=True, extra_proc=None):
    """A Debian 12 host: kernel default mask 438, /etc/sysctl.conf through the 99-sysctl.conf symlink."""
    for d in ("etc/sysctl.d", "proc/sys/kernel", "usr/lib/systemd"):
        os.makedirs(os.path.join(str(root), d), exist_ok=True)
    if sysrq is not None:
        (root / "proc/sys/kernel/sysrq").write_text(sysrq + "\n")
    for key, value in (extra_proc or {}).items():
        (root / ("proc/sys/" + key.replace(".", "/"))).write_text(value + "\n")
    if sysctl_conf is not None:
        (root / "etc/sysctl.conf").write_text(sysctl_conf)
        if symlink:
            os.symlink("../sysctl.conf", str(root / "etc/sysctl.d/99-sysctl.conf"))
    if systemd:
        (root / "usr/lib/systemd/systemd-sysctl").write_text("")
    return root


class QmpSpeaker:
    """Speaks QMP on a unix socket like QEMU: greeting, then one JSON reply per command; records commands."""

    def __init__(self, path, status="running", errors=None, greet=True, console=None, prints=None):
        """``console``/``prints``: like a guest's kernel, append ``prints[key]`` to the ``console`` file when
        Alt+SysRq+key arrives."""
        self.path, self.status, self.errors, self.greet = str(path), status, errors or {}, greet
        self.console, self.prints = console, prints or {}
        self.commands = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(self.path)
        self.server.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _peer = self.server.accept()
            except OSError:
                return
            with conn:
                if not self.greet:
                    conn.recv(1)
                    continue
                conn.sendall(b'{"QMP": {"version": {"qemu": {"major": 7, "minor": 2, "micro": 0}}, '
                             b'"capabilities": []}}\r\n')
                buf = b""
                while True:
                    data = conn.recv(65536)
                    if not data:
                        break
                    buf += data
                    while b"\n" in buf:
                        line, buf = buf.split(b"\n", 1)
                        msg = json.loads(line)
                        self.commands.append(msg)
                        name = msg["execute"]
                        if name in self.errors:
                            reply = {"error": {"class": "GenericError", "desc": self.errors[name]}}
                        elif name == "query-status":
                            reply = {"return": {"status": self.status, "running": self.status == "running"}}
                        else:
                            reply = {"return": {}}
                        if name == "send-key":  # QEMU may interleave events
                            key = msg["arguments"]["keys"][-1]["data"]
                            if self.console and key in self.prints:
                                with open(self.console, "a", encoding="utf-8") as handle:
                                    handle.write(self.prints[key])
                            conn.sendall(b'{"event": "X", "timestamp": {"seconds": 1, "microseconds": 2}}\r\n')
                        conn.sendall(json.dumps(reply).encode() + b"\r\n")

    def close(self):
        self.server.close()


def warnings(result):
    """Warning texts (ansible-core 2.19 returns them as structured events)."""
    return [w["event"]["msg"] if isinstance(w, dict) else w for w in result.get("warnings", [])]
