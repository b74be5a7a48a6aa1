# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Method ``sol``: SysRq keys and the console through the BMC's IPMI Serial-over-LAN, with ``ipmitool sol activate``
run in a pseudo-terminal.

On a host whose kernel console is the serial port that the BMC carries over SOL (``console=ttyS1,115200`` on most
servers, ``ttyS0`` on some; role ``serial_console``), a serial BREAK followed within 5 seconds by a key is a SysRq
key (``uart_handle_break``, CONFIG_MAGIC_SYSRQ_SERIAL). ipmitool sends an SOL break on its escape ``~B``; the
key follows as an ordinary character. Like a keyboard, and unlike ``/proc/sysrq-trigger``, this path obeys the
host's ``kernel.sysrq`` mask: a refused key prints ``This sysrq operation is disabled``. The same session carries
back what the kernel printed, so the session is also a live console source (``position``/``read`` as in
:mod:`console`) for the capture window.

ipmitool sees its escape character only at the start of a line: the first ``~B`` of a session works, and before
each further key one carriage return goes to the console (and is sent on its own, so that it is not the key).

A BMC serves one SOL session: when someone else holds it (a person at ``ipmitool sol activate``, a console
server), ``ipmitool`` says "SOL payload already active on another session" and the method fails saying so;
with ``sol.takeover=true`` it runs ``ipmitool sol deactivate`` first, which closes the other session.

Why ipmitool and not pyghmi: method ``ipmi`` already runs ipmitool, so the same options (interface lanplus|lan,
cipher suite, privilege level, password through the environment or a file), the same error messages and the same
package on the controller serve both; pyghmi would be a second IPMI implementation with its own session code and
errors, and would have to be installed where the playbook runs.
"""

from __future__ import annotations

import copy
import os
import pty
import select
import signal
import subprocess
import termios
import time

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import ipmi as oob_ipmi

_OPTIONS = copy.deepcopy(oob_ipmi.ARGUMENT_SPEC["ipmi"]["options"])
_OPTIONS["takeover"] = dict(type="bool", default=False)
ARGUMENT_SPEC = {
    "sol": dict(type="dict", options=_OPTIONS, mutually_exclusive=[["password", "password_file"]]),
}

ACTIVATE = ["sol", "activate"]
DEACTIVATE = ["sol", "deactivate"]
OPERATIONAL = "[SOL Session operational"
HELD = "SOL payload already active on another session"
HELD_RETRIES = 2
# The kernel takes the first character after a break as the key (drivers/tty/serial/serial_core.c).
BREAK = b"~B"
QUIT = b"~."
BREAK_SENT = "[send break]"    # what ipmitool prints when it takes ~B


class SolConsole:
    """One SOL session held for a task: keys in, console text out.

    ``position()``/``read(offset)`` make it a console source for :func:`console.wait_for_output`: the offset is the
    number of characters captured since the session became operational."""

    kind = "sol"

    def __init__(self, module, target, connect_timeout=None):
        self.module, self.target = module, target
        self.proc = None
        self.fd = None
        self.text = ""
        self.at_line_start = True
        self.took_over = False
        self.left = None            # how the session ended: "escape" (ipmitool's ~.) or "deactivate"
        self.connect_timeout = connect_timeout or max(10.0, 3.0 * float((target or {}).get("timeout") or 5) *
                                                      (1 + int((target or {}).get("retries") or 1)))

    # --------------------------------------------------------------------------------------------- session
    def open(self):
        oob.require(self.target, "sol", "host")
        said = self._activate()
        for _retry in range(HELD_RETRIES):
            if HELD not in said:
                break
            # a session that was just closed (ours a moment ago, or someone's) can take the BMC a moment to free
            time.sleep(1.0)
            said = self._activate()
        if HELD in said:
            if not self.target.get("takeover"):
                raise oob.OobError(
                    "the BMC %s already has an SOL session open for someone else (ipmitool: %r): a person at the "
                    "console or a console server holds it. Nothing was sent. Ask them, or set sol.takeover=true to "
                    "close their session (ipmitool sol deactivate) and take the console"
                    % (self._where(), HELD))
            oob_ipmi.run(self.module, self.target, DEACTIVATE)
            self.took_over = True
            said = self._activate()
            if HELD in said:
                raise oob.OobError("the BMC %s still reports an SOL session after sol deactivate; another client "
                                   "took it back" % self._where())
        return self

    def _activate(self):
        ipmitool = oob_ipmi._ipmitool(self.module)
        argv, environ = oob_ipmi.command_line(ipmitool, self.target, ACTIVATE)
        env = dict(os.environ, **environ)
        master, slave = pty.openpty()
        try:
            self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True,
                                         start_new_session=True)
        finally:
            os.close(slave)
        self.fd = master
        self.argv = argv
        out = ""
        deadline = time.monotonic() + self.connect_timeout
        while True:
            chunk = self._pump(0.2)
            out += chunk
            if OPERATIONAL in out:
                rest = out.split(OPERATIONAL, 1)[1]
                self.text = rest.split("]", 1)[1].lstrip("\r\n") if "]" in rest else ""
                self._wait_raw(deadline)
                return out
            if self.proc.poll() is not None:
                out += self._pump(0.1)
                rc = self.proc.returncode
                self._reap()
                if HELD in out:
                    return out
                raise oob.OobError(oob_ipmi.error_text(self.target, ACTIVATE, rc, out, ""))
            if time.monotonic() > deadline:
                self._kill()
                raise oob.OobError("ipmitool sol activate on the BMC %s did not become operational within %.0fs: "
                                   "check that SOL is enabled on the BMC (ipmitool sol info) and that the user may "
                                   "use it. ipmitool said: %s"
                                   % (self._where(), self.connect_timeout,
                                      oob_ipmi._scrub(" | ".join(oob_ipmi._said(out, "")[-6:]), self.target)))

    def close(self):
        """Leave the session the way ipmitool's ``~.`` does; the BMC is free for the next user."""
        if self.proc is None:
            return
        try:
            if self.proc.poll() is None:
                if not self.at_line_start:
                    self._write(b"\r")
                    time.sleep(0.3)
                self._write(QUIT)
                deadline = time.monotonic() + 5
                while self.proc.poll() is None and time.monotonic() < deadline:
                    self._pump(0.1)
                if self.proc.poll() is not None:
                    self.left = "escape"
            if self.proc.poll() is None:
                # ipmitool did not leave: free the BMC's payload, then stop ipmitool.
                try:
                    oob_ipmi.run(self.module, self.target, DEACTIVATE)
                except oob.OobError:
                    pass
                self.left = "deactivate"
                self._kill()
        finally:
            self._reap()

    def __enter__(self):
        return self if self.proc is not None else self.open()

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------------------------------------ keys
    def send_sysrq(self, module, target, keys, hold_time_ms=100):
        """BREAK then the key, for each key; ``hold_time_ms`` is unused (a serial key is one character)."""
        sent = []
        for key in keys:
            if not self.at_line_start:
                self._write(b"\r")          # ipmitool sees ~ only at the start of a line
                self.text += self._pump(0.5)
            self._write(BREAK)
            self._wait_for_break_sent()     # the break goes out in its own SOL packet, before the key
            self._write(key.encode())
            self.at_line_start = False
            sent.append({"key": key, "request": {"tool": "ipmitool", "command": "sol activate", "send": ["break", key],
                                                 "host": self.target["host"],
                                                 "port": self.target.get("port") or 623}})
        return sent

    # --------------------------------------------------------------------------------------------- console
    def position(self):
        self.text += self._pump(0)
        return len(self.text)

    def read(self, offset=None, since=None):
        self.text += self._pump(0)
        offset = int(offset or 0)
        return self.text[offset:], len(self.text)

    def capture(self, seconds, until=None):
        """Everything the console printed during ``seconds`` (or until ``until(text)``)."""
        start = len(self.text)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.text += self._pump(min(0.25, max(0.0, deadline - time.monotonic())))
            if until is not None and until(self.text[start:]):
                break
            if self.proc is not None and self.proc.poll() is not None:
                raise oob.OobError("the SOL session with %s ended during the capture (the BMC closed it; someone "
                                   "may have taken it over)" % self._where())
        return self.text[start:]

    # ---------------------------------------------------------------------------------------------- helpers
    def _where(self):
        return "%s:%s" % (self.target.get("host"), self.target.get("port") or 623)

    def _wait_raw(self, deadline):
        """Wait until ipmitool has put its terminal in raw mode (it prints "operational" just before). Until then the
        line discipline holds what is written up to the next CR and echoes it, so a key sent too early never
        reaches the BMC."""
        while self.proc.poll() is None and time.monotonic() < deadline:
            try:
                if not termios.tcgetattr(self.fd)[3] & termios.ICANON:
                    return
            except termios.error:
                return
            self.text += self._pump(0.05)

    def _wait_for_break_sent(self, seconds=2.0):
        """ipmitool prints "[send break]" when it takes the ``~B`` escape; a key written after that goes in a later
        SOL packet than the break. Without the message within ``seconds``, go on after them."""
        seen = self.text.count(BREAK_SENT)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.text += self._pump(0.05)
            if self.text.count(BREAK_SENT) > seen:
                return
        self.text += self._pump(0.1)

    def _write(self, data):
        if self.proc is None or self.proc.poll() is not None:
            raise oob.OobError("the SOL session with %s is gone (ipmitool exited): %s"
                               % (self._where(), " | ".join(self.text.splitlines()[-3:])))
        os.write(self.fd, data)

    def _pump(self, wait):
        """Read what ipmitool printed, waiting up to ``wait`` seconds for the first bytes."""
        if self.fd is None:
            return ""
        out = b""
        timeout = wait
        while True:
            try:
                ready = select.select([self.fd], [], [], timeout)[0]
            except (OSError, ValueError):
                break
            if not ready:
                break
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:           # EIO: ipmitool exited and closed its side
                break
            if not chunk:
                break
            out += chunk
            timeout = 0
        return out.decode("utf-8", "replace")

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except OSError:
                self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def _reap(self):
        if self.proc is not None:
            self._kill()
            self.proc = None
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


def console(module, target):
    """An open SOL session for ``target`` (the ``sol`` option dict); close it with ``.close()``."""
    return SolConsole(module, target).open()


def send_sysrq(module, target, keys, hold_time_ms=100):
    """BREAK + key over a session of its own (for callers that do not read the console)."""
    with SolConsole(module, target) as session:
        sent = session.send_sysrq(module, target, keys, hold_time_ms)
        session.capture(0.5)
    return sent
