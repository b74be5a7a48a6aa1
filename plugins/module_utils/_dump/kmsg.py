# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Capture the kernel log records an action produces, from ``/dev/kmsg``.

``/dev/kmsg`` (Documentation/ABI/testing/dev-kmsg) gives one record per ``read()``:
``prio,seq,usec,flags[,caller=T123];message`` then optional continuation lines `` KEY=value``. Bytes
below 0x20, from 0x7f up, and ``\\`` are escaped as ``\\xNN``. ``lseek(fd, 0, SEEK_END)`` positions the
reader after the last record. When the ring buffer overwrote the record the reader was at, ``read()``
fails with ``EPIPE`` once and the next read returns the oldest record still there: the jump in ``seq`` is
the number of records lost. A non-blocking read with nothing new fails with ``EAGAIN``; ``poll`` wakes up
when a record arrives.

:class:`Capture` opens the device and seeks to its end before the action, reads in a background thread
while the action runs (a ``t`` written to ``/proc/sysrq-trigger`` blocks while the kernel prints to slow
consoles, and a reader that keeps up loses nothing), then ends when the output is complete:

* ``settle=0``: the action's records were all stored before it returned (keys whose op prints inside the
  write to ``/proc/sysrq-trigger``): read every record there is now and stop, with no waiting;
* ``done``: a predicate over the records read so far that says the output is complete (for ``l``, every
  online CPU's backtrace header, :class:`CpuBacktraces`); once true, ``done_quiet`` seconds without a new
  record end the capture (the last CPU's stack lines), however long ``settle`` is;
* otherwise when nothing new arrived for ``settle`` seconds;
* and always after ``timeout`` seconds.

It never truncates silently: lost records are counted.
"""

from __future__ import annotations

import errno
import os
import re
import select
import threading
import time

from ansible_collections.magic_sysrq.fleet.plugins.module_utils import _host as host
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump.untrusted import printable

KMSG = "/dev/kmsg"
READ_SIZE = 65536           # larger than any record (the kernel fails a read into a smaller buffer with EINVAL)
BASELINE_MAX_READS = 1000000
FINAL_DRAIN_MAX = 100000    # records read after the reader stopped: bounds the work when the kernel never stops

_ESCAPE = re.compile(rb"\\x([0-9a-fA-F]{2})")
# A CPU's part of an "l" dump starts with one of these (nmi_cpu_backtrace(); showacpu() and
# sysrq_handle_showallcpus() on kernels without NMI backtraces, UML among them).
_CPU_BACKTRACE = re.compile(r"(?:NMI backtrace for cpu (\d+)|CPU(\d+):\s*$)").match
CPU_ONLINE = "/sys/devices/system/cpu/online"
DONE_QUIET = 0.2


class KmsgError(OSError):
    """``/dev/kmsg`` cannot be read; the message names the cause."""


def unescape(raw):
    """The kernel's ``\\xNN`` escaping undone for text, kept for controls; bytes -> str.

    UTF-8 sequences and ``\\`` are decoded (invalid bytes replaced). Control characters stay escaped
    (:func:`untrusted.printable`): an ESC or BEL in a process name must not reach a terminal that shows the
    output, and a newline in one must not split the record's line, which would cut a task's header in two
    and hide the task from the dump. A record that really holds several lines (rare) shows them joined
    by ``\\x0a``.
    """
    if b"\\" in raw:
        raw = _ESCAPE.sub(lambda m: bytes((int(m.group(1), 16),)), raw)
    return printable(raw.decode("utf-8", "replace"))


def parse_record(data):
    """One ``/dev/kmsg`` record (bytes) -> dict, or None when it is not a record.

    Keys: ``seq``, ``level`` (0-7), ``facility`` (0 is the kernel), ``usec`` (monotonic microseconds),
    ``flags`` (``-``, or ``c`` for a continuation on old kernels), ``caller`` (``T123``/``C1`` with
    CONFIG_PRINTK_CALLER), ``message`` (str, see :func:`unescape`: one line), ``fields`` (the `` KEY=value``
    continuation lines).
    """
    head, sep, body = data.partition(b";")
    if not sep:
        return None
    parts = head.split(b",")
    if len(parts) < 3:
        return None
    try:
        prio = int(parts[0])
        seq = int(parts[1])
        usec = int(parts[2])
    except ValueError:
        return None
    record = {"seq": seq, "level": prio & 7, "facility": prio >> 3, "usec": usec,
              "flags": parts[3].decode("ascii", "replace") if len(parts) > 3 else "-"}
    for extra in parts[4:]:
        key, _eq, value = extra.partition(b"=")
        record[key.decode("ascii", "replace")] = value.decode("ascii", "replace")
    if body.endswith(b"\n"):
        body = body[:-1]
    message, _nl, rest = body.partition(b"\n")
    record["message"] = unescape(message)
    fields = {}
    if rest:
        for line in rest.split(b"\n"):
            if line.startswith(b" "):
                key, _eq, value = line[1:].partition(b"=")
                fields[unescape(key)] = unescape(value)
    record["fields"] = fields
    return record


def parse_cpu_list(text):
    """``0-3,6`` (the kernel's CPU list format) -> set of CPU numbers; None when it does not parse."""
    cpus = set()
    for part in text.strip().split(","):
        if not part:
            continue
        first, _dash, last = part.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            return None
        if high < low or high - low > 65536:
            return None
        cpus.update(range(low, high + 1))
    return cpus or None


def online_cpus(path=CPU_ONLINE):
    """The online CPUs of the host (a set), or None when ``/sys`` does not say."""
    try:
        with open(host.host_path(path)) as handle:      # pylint: disable=unspecified-encoding
            return parse_cpu_list(handle.read())
    except OSError:
        return None


class CpuBacktraces:
    """A ``done`` predicate for :meth:`Capture.finish`: true once every CPU in ``cpus`` started its backtrace.

    Incremental: each call looks only at the records added since the previous call.
    """

    def __init__(self, cpus):
        self.cpus = set(cpus)
        self.seen = set()
        self._index = 0

    def __call__(self, records):
        for record in records[self._index:]:
            match = _CPU_BACKTRACE(record["message"])
            if match is not None:
                self.seen.add(int(match.group(1) or match.group(2)))
        self._index = len(records)
        return self.cpus <= self.seen


class DevKmsg:
    """The real ``/dev/kmsg`` of the host (through ``host_path``)."""

    def __init__(self, path=KMSG):
        self.path = host.host_path(path)
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            raise KmsgError(exc.errno, "cannot open %s: %s (no /dev/kmsg in this container, or not root: "
                                       "reading it needs CAP_SYSLOG when kernel.dmesg_restrict=1)"
                            % (path, exc.strerror)) from None

    def seek_end(self):
        os.lseek(self.fd, 0, os.SEEK_END)

    def read(self):
        """One record (bytes). Raises OSError EAGAIN when there is none, EPIPE when records were lost."""
        return os.read(self.fd, READ_SIZE)

    def wait(self, timeout):
        """Block until a record may be read (or ``timeout`` seconds); True when woken by data."""
        try:
            ready = select.select([self.fd], [], [], timeout)[0]
        except (OSError, ValueError):
            return False
        return bool(ready)

    def last_seq(self):
        """The sequence number of the newest record now in the buffer (read on a second descriptor)."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return None
        last = None
        try:
            for _count in range(BASELINE_MAX_READS):
                try:
                    data = os.read(fd, READ_SIZE)
                except OSError as exc:
                    if exc.errno == errno.EPIPE:
                        continue
                    break
                if not data:
                    break
                head = data.split(b",", 2)
                if len(head) > 2 and head[1].isdigit():
                    last = int(head[1])
        finally:
            os.close(fd)
        return last

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def open_source(path=KMSG):
    """The record source :class:`Capture` reads (tests replace this)."""
    return DevKmsg(path)


class Capture:
    """Records after a starting point, read in the background; see the module docstring.

    ::

        cap = Capture()
        cap.start()                       # open, seek to the end, start reading
        ... do the action (cap.pump(seconds) to wait between steps) ...
        result = cap.finish(settle=1.0, timeout=30.0)
    """

    POLL = 0.05

    def __init__(self, path=KMSG, source=None, clock=time.monotonic, sleep=time.sleep):
        self.path = path
        self.source = source
        self.clock = clock
        self.sleep = sleep
        self.records = []
        self.lost = 0
        self.epipe = 0
        self.unknown_loss = False
        self.baseline = None
        self.expected = None
        self.last_activity = None
        self.error = None
        self._stop = threading.Event()
        self._thread = None

    # -- reading -----------------------------------------------------------------------------------

    def start(self):
        if self.source is None:
            self.source = open_source(self.path)
        self.source.seek_end()
        self.baseline = self.source.last_seq()
        self.expected = None if self.baseline is None else self.baseline + 1
        self.last_activity = self.clock()
        self._thread = threading.Thread(target=self._run, name="kmsg-capture")
        self._thread.daemon = True
        self._thread.start()
        return self

    def _run(self):
        try:
            while not self._stop.is_set():
                self.drain(stoppable=True)
                if self._stop.is_set():
                    break
                self.source.wait(self.POLL)
        except Exception as exc:  # pylint: disable=broad-except
            self.error = exc

    def drain(self, limit=None, stoppable=False):
        """Read every record available now (at most ``limit``; until stopped when ``stoppable``).

        Returns how many records were taken.
        """
        taken = 0
        while limit is None or taken < limit:
            if stoppable and self._stop.is_set():
                break
            try:
                data = self.source.read()
            except OSError as exc:
                if exc.errno == errno.EAGAIN or exc.errno == errno.EWOULDBLOCK:
                    break
                if exc.errno == errno.EPIPE:
                    self.epipe += 1
                    if self.expected is None:
                        self.unknown_loss = True
                    continue
                if exc.errno == errno.EINTR:
                    continue
                raise
            if not data:
                break
            record = parse_record(data)
            if record is None:
                continue
            seq = record["seq"]
            if self.baseline is not None and seq <= self.baseline:
                continue                    # written before the action started
            if self.expected is not None and seq > self.expected:
                self.lost += seq - self.expected
            self.expected = seq + 1
            self.records.append(record)
            self.last_activity = self.clock()
            taken += 1
        return taken

    def mark(self):
        """Note that the action just did something: settling counts from now."""
        self.last_activity = self.clock()

    def pump(self, seconds):
        """Wait ``seconds`` while the background reader keeps reading."""
        if seconds > 0:
            self.sleep(seconds)

    def finish(self, settle=1.0, timeout=30.0, done=None, done_quiet=DONE_QUIET):
        """Wait until the output is complete (see the module docstring), at most ``timeout`` seconds; stop reading.

        ``settle=0`` reads what is there and stops. ``done(records)`` true shortens the quiet period to
        ``done_quiet``. Returns :meth:`result`.
        """
        start = self.clock()
        self.mark()
        timed_out = False
        complete = False
        while True:
            now = self.clock()
            if now - start >= timeout:
                timed_out = True
                break
            quiet = now - self.last_activity
            if done is not None and not complete:
                complete = bool(done(self.records))
                if complete:
                    settle = min(settle, done_quiet)
            if quiet >= settle:
                break
            if self._thread is None or not self._thread.is_alive():
                if self.error is not None:
                    break
                self.drain(limit=FINAL_DRAIN_MAX)
            self.sleep(min(self.POLL, max(settle - quiet, 0.001), max(timeout - (now - start), 0.001)))
        self.stop()
        try:
            if not timed_out and self.error is None:
                self.drain(limit=FINAL_DRAIN_MAX)
        finally:
            self.close()
        return self.result(timed_out=timed_out)

    def stop(self):
        """Stop the background reader (the source stays open)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)

    def close(self):
        self.stop()
        if self.source is not None and hasattr(self.source, "close"):
            self.source.close()

    # -- results -----------------------------------------------------------------------------------

    def lost_records(self):
        if self.unknown_loss and not self.lost:
            return 1
        return self.lost

    def lines(self):
        out = []
        for record in self.records:
            message = record["message"]
            if "\n" in message:
                out.extend(message.split("\n"))
            else:
                out.append(message)
        return out

    def result(self, timed_out=False):
        return {
            "output": self.lines(),
            "records": len(self.records),
            "lost_records": self.lost_records(),
            "lost_count_exact": not (self.unknown_loss and not self.lost),
            "overruns": self.epipe,
            "timed_out": timed_out,
            "first_seq": self.records[0]["seq"] if self.records else None,
            "last_seq": self.records[-1]["seq"] if self.records else None,
            "error": None if self.error is None else str(self.error),
        }
