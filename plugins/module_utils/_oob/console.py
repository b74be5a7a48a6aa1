# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A host's captured console, read from outside: what the kernel printed after an out-of-band key.

Three sources:

* ``path``: a file that grows as the console prints: QEMU's ``-chardev file,path=...``/``-serial file:...``,
  libvirt's ``<serial type='file'>`` or ``<log file='...'/>``, conserver and ipmitool SOL logs. A point in it is
  a byte ``offset`` (the file's size before the key was sent).
* ``journal_unit``: a systemd unit whose stdout is the console (QEMU run as a service with ``-serial stdio``),
  read with ``journalctl``; a point in it is a journal ``cursor`` or a ``since`` time.
* ``netconsole``: a host's file at a netconsole collector (:mod:`_oob.netconsole`): records put in sequence
  order, gaps said; a point in it is a byte ``offset`` or a ``since`` time.

From that point (or after the last line holding ``marker``) the text is cleaned the way the dump parser wants it
(ANSI escapes and carriage returns removed), split into lines and parsed into tasks by
:mod:`sysrq_tasks`, the same parser :mod:`sysrq_trigger` uses.
"""

from __future__ import annotations

import os
import time

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import netconsole as oob_netconsole

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import parser as sysrq_tasks
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump.untrusted import printable_lines

ARGUMENT_SPEC = {
    "console": dict(type="dict", options=dict(
        path=dict(type="path"),
        journal_unit=dict(type="str"),
        journal_user=dict(type="bool", default=False),
        netconsole=dict(type="path"),
    ), mutually_exclusive=[["path", "journal_unit", "netconsole"]],
        required_one_of=[["path", "journal_unit", "netconsole"]]),
}

# The most bytes read from a file console in one call (a t dump of a big host is a few MB).
MAX_BYTES = 64 * 1024 * 1024


class FileConsole:
    kind = "file"

    def __init__(self, path):
        self.path = path

    def position(self):
        """The point after everything printed so far: the file's size (0 for a file not created yet)."""
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def read(self, offset=None, since=None):
        """``(text, next_offset)``: the text from byte ``offset`` (default the start) to the end."""
        if since:
            raise oob.OobError("console.path is a file: a point in it is an offset or a marker, not a time "
                               "(since=%r); use console.journal_unit for a journal" % since)
        offset = int(offset or 0)
        try:
            size = os.path.getsize(self.path)
            with open(self.path, "rb") as handle:
                if offset > size:  # the file was truncated or replaced (a guest restarted): read it all
                    offset = 0
                if size - offset > MAX_BYTES:
                    offset = size - MAX_BYTES
                handle.seek(offset)
                data = handle.read(size - offset)
        except (IOError, OSError) as exc:
            raise oob.OobError("cannot read the console log %s: %s" % (self.path, exc))
        return data.decode("utf-8", "replace"), offset + len(data)


class JournalConsole:
    kind = "journal"

    def __init__(self, module, unit, user=False):
        self.module, self.unit, self.user = module, unit, user

    def _journalctl(self, *args):
        journalctl = self.module.get_bin_path("journalctl", required=False)
        if not journalctl:
            raise oob.OobError("console.journal_unit needs journalctl on the host that runs the task")
        cmd = [journalctl, "--user-unit" if self.user else "--unit", self.unit, "--no-pager", "--all",
               "--output=cat", "--show-cursor"] + list(args)
        rc, out, err = self.module.run_command(cmd, environ_update={"LC_ALL": "C", "SYSTEMD_COLORS": "0"})
        if rc != 0 and "No entries" not in out + err:
            raise oob.OobError("journalctl for unit %s failed (rc %s): %s" % (self.unit, rc, (err or out).strip()))
        return _split_cursor(out)

    def position(self):
        """The cursor of the newest entry (``None`` when the unit has none yet)."""
        return self._journalctl("--lines=1")[1]

    def read(self, offset=None, since=None):
        """``(text, cursor)``: the entries after ``offset`` (a cursor), or since ``since``, or all."""
        args = []
        if offset:
            args.append("--after-cursor=%s" % offset)
        elif since:
            args.append("--since=%s" % since)
        text, cursor = self._journalctl(*args)
        return text, cursor or offset


def _split_cursor(out):
    """journalctl --show-cursor output -> (text, cursor); the cursor line is the last ``-- cursor: ...``."""
    text, cursor = out, None
    tail = out.rstrip("\n")
    last_newline = tail.rfind("\n")
    last = tail[last_newline + 1:]
    if last.startswith("-- cursor: "):
        cursor = last[len("-- cursor: "):].strip()
        text = tail[:last_newline + 1] if last_newline >= 0 else ""
    if text.startswith("-- No entries --"):
        text = ""
    return text, cursor


def source(module, console):
    """The console object for the ``console`` option dict."""
    console = console or {}
    if console.get("path"):
        return FileConsole(console["path"])
    if console.get("journal_unit"):
        return JournalConsole(module, console["journal_unit"], console.get("journal_user"))
    if console.get("netconsole"):
        return oob_netconsole.NetconsoleFile(console["netconsole"])
    raise oob.OobError("console needs console.path (a console log file), console.journal_unit (a systemd unit) or "
                       "console.netconsole (a host's file at a netconsole collector)")


def after_marker(text, marker):
    """The text after the last line that holds ``marker`` (all of it when the marker is absent: ``found`` false)."""
    at = text.rfind(marker)
    if at < 0:
        return text, False
    end = text.find("\n", at)
    return ("" if end < 0 else text[end + 1:]), True


def lines_of(text):
    """Captured text -> clean lines: escapes and carriage returns gone, empty lines dropped, timestamps kept."""
    text = printable_lines(sysrq_tasks.strip_terminal(text))
    return [line.rstrip() for line in text.split("\n") if line.strip()]


def wait_for_output(console, start, settle=2.0, timeout=60.0, until=None, sleep=time.sleep):
    """Poll the console from ``start`` until it printed nothing new for ``settle`` seconds after something
    arrived, or ``until(text)`` is true, or ``timeout`` seconds passed.

    Returns ``{"text", "position", "timed_out", "seconds"}``."""
    began = time.monotonic()
    text, position = console.read(start)
    last_growth, last_len = began, len(text)
    while True:
        now = time.monotonic()
        if until is not None and until(text):
            return _waited(text, position, False, began)
        if last_len and now - last_growth >= settle:
            return _waited(text, position, False, began)
        if now - began >= timeout:
            return _waited(text, position, True, began)
        sleep(min(0.25, max(0.05, settle / 4)))
        more, position = console.read(position)  # a file from its offset, a journal after its cursor
        text += more
        if len(text) != last_len:
            last_len, last_growth = len(text), time.monotonic()


def _waited(text, position, timed_out, began):
    return {"text": text, "position": position, "timed_out": timed_out, "seconds": round(time.monotonic() - began, 2)}


def parse(lines, keys=None):
    """The tasks in console lines (only when a task-dump key was sent, or ``keys`` is None)."""
    if keys is not None and not any(key in "twl" for key in keys):
        return []
    return sysrq_tasks.parse_text(lines)


def refusals(lines):
    """How many times the console says the mask refused a key."""
    return sum(1 for line in lines if oob.DISABLED_MARKER in line)
