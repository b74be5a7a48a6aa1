# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Method ``qmp``: a QEMU guest's own monitor, the QEMU Machine Protocol.

``send-key`` presses Alt+SysRq+key on the guest's emulated keyboard (the i8042 PS/2 keyboard of the ``pc`` and
``q35`` machines: the guest needs the ``i8042`` and ``atkbd`` drivers), ``inject-nmi`` raises an NMI on every
vCPU. The socket is QEMU's ``-qmp unix:PATH,server=on,wait=off`` (or a TCP ``-qmp tcp:HOST:PORT``); QEMU serves
one client at a time per socket, so a monitor that is already connected (for example a management tool
holding it) makes the connection wait and then time out.
"""

from __future__ import annotations

import json
import socket
import time

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob

ARGUMENT_SPEC = {
    "qmp": dict(type="dict", options=dict(
        socket=dict(type="path"),
        host=dict(type="str"),
        port=dict(type="int"),
        timeout=dict(type="float", default=10.0),
    ), mutually_exclusive=[["socket", "host"]], required_together=[["host", "port"]],
        required_one_of=[["socket", "host"]]),
}

# Run states (QAPI RunState) in which the guest's kernel runs and can act on a key or an NMI.
RUNNING = ("running",)


class QMPClient:
    """A QMP connection: greeting, ``qmp_capabilities``, then one command at a time. Events are kept."""

    def __init__(self, path=None, host=None, port=None, timeout=10.0):
        self.path, self.host, self.port, self.timeout = path, host, port, float(timeout)
        self.sock = None
        self.events = []
        self.greeting = None
        self._buf = b""

    @property
    def address(self):
        return self.path if self.path else "%s:%s" % (self.host, self.port)

    def __enter__(self):
        if self.sock is None:
            self.connect()
        return self

    def __exit__(self, *exc):
        self.close()

    def connect(self, retry_for=0.0):
        """Connect and negotiate; ``retry_for`` seconds of retries while the socket does not accept yet."""
        deadline = time.monotonic() + retry_for
        while True:
            try:
                if self.path:
                    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    sock.settimeout(self.timeout)
                    sock.connect(self.path)
                else:
                    sock = socket.create_connection((self.host, int(self.port)), self.timeout)
                    sock.settimeout(self.timeout)
                self.sock = sock
                break
            except (OSError, socket.timeout) as exc:
                if time.monotonic() >= deadline:
                    raise oob.OobError(
                        "cannot connect to the QMP socket %s: %s; check that QEMU runs with -qmp on that address "
                        "and that this task runs on the hypervisor (delegate_to) as a user that may open it"
                        % (self.address, exc))
                time.sleep(0.2)
        try:
            self.greeting = self._read()
        except socket.timeout:
            self.close()
            raise oob.OobError("the QMP socket %s accepted but sent no greeting within %ss: another client "
                               "probably holds the monitor (QEMU serves one client per socket)"
                               % (self.address, self.timeout))
        if "QMP" not in self.greeting:
            self.close()
            raise oob.OobError("%s is not a QMP socket: it greeted with %s" % (self.address, self.greeting))
        self.command("qmp_capabilities")
        return self.greeting

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def _read(self):
        while b"\n" not in self._buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise oob.OobError("QEMU closed the QMP connection %s" % self.address)
            self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            return json.loads(line.decode("utf-8", "replace"))
        except ValueError:
            raise oob.OobError("%s sent a line that is not JSON: %r" % (self.address, line[:200]))

    def command(self, execute, arguments=None):
        """Run one command; its ``return`` value, or OobError with QEMU's error class and text."""
        if self.sock is None:
            self.connect()
        message = {"execute": execute}
        if arguments:
            message["arguments"] = arguments
        try:
            self.sock.sendall(json.dumps(message).encode() + b"\n")
            while True:
                reply = self._read()
                if "event" in reply:
                    self.events.append(reply)
                    continue
                if "error" in reply:
                    error = reply["error"]
                    raise oob.OobError("QMP %s on %s failed: %s (%s)" % (
                        execute, self.address, error.get("desc", error), error.get("class", "GenericError")))
                return reply.get("return")
        except socket.timeout:
            raise oob.OobError("QMP %s on %s: no answer within %ss" % (execute, self.address, self.timeout))


def client(target):
    """A connected client for the ``qmp`` option dict."""
    oob.require_one(target, "qmp", "socket", "host")
    qmp = QMPClient(path=target.get("socket"), host=target.get("host"), port=target.get("port"),
                    timeout=target.get("timeout") or 10.0)
    qmp.connect()
    return qmp


def run_state(qmp):
    """``query-status``: the run state (``running``, ``paused``, ``shutdown``, ``guest-panicked``, ...)."""
    status = qmp.command("query-status") or {}
    return status.get("status") or ("running" if status.get("running") else "unknown")


def _require_running(qmp, what):
    state = run_state(qmp)
    if state not in RUNNING:
        raise oob.OobError("the guest behind %s is %s, not running: its kernel cannot act on %s (resume it with "
                           "QMP cont, or look at why it stopped)" % (qmp.address, state, what))
    return state


def send_sysrq(module, target, keys, hold_time_ms=100):
    """Press Alt+SysRq+key for each key, in order, through ``send-key``."""
    sent = []
    with client(target) as qmp:
        _require_running(qmp, "a key")
        for key in keys:
            arguments = {"keys": [{"type": "qcode", "data": code} for code in oob.qcode_chord(key)],
                         "hold-time": int(hold_time_ms)}
            qmp.command("send-key", arguments)
            sent.append({"key": key, "request": {"execute": "send-key", "arguments": arguments,
                                                 "address": qmp.address}})
    return sent


def inject_nmi(module, target):
    """Raise an NMI on the guest's vCPUs through ``inject-nmi``."""
    with client(target) as qmp:
        state = _require_running(qmp, "an NMI")
        response = qmp.command("inject-nmi")
        return {"request": {"execute": "inject-nmi", "address": qmp.address},
                "response": {"return": response, "run_state_before": state}}
