"""A scripted stand-in for /dev/kmsg, and helpers to build records and read the real dump fixtures."""
from __future__ import annotations

import collections
import errno
import os
import threading
import time

DUMPS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "fixtures", "dumps")
EPIPE = "EPIPE"


def dump_path(name):
    return os.path.join(DUMPS, name)


def read_dump(name, mode="r"):
    with open(dump_path(name), mode) as handle:      # pylint: disable=unspecified-encoding
        return handle.read()


def record(seq, message, level=6, facility=0, usec=None, caller=None, fields=None, flags="-"):
    """One /dev/kmsg record as the kernel formats it (message escaped like msg_add_ext_text)."""
    raw = message.encode("utf-8") if isinstance(message, str) else message
    body = bytearray()
    for byte in raw:
        if byte < 0x20 or byte >= 0x7f or byte == 0x5c:
            body += b"\\x%02x" % byte
        else:
            body.append(byte)
    head = "%d,%d,%d,%s" % ((facility << 3) | level, seq, usec if usec is not None else seq * 1000, flags)
    if caller:
        head += ",caller=" + caller
    out = head.encode() + b";" + bytes(body) + b"\n"
    for key, value in (fields or {}).items():
        out += b" " + key.encode() + b"=" + value.encode() + b"\n"
    return out


def kmsg_file_records(name):
    """The records of a ``*.kmsg.txt`` fixture: a line not starting with a space begins a record."""
    records = []
    for line in read_dump(name, "rb").split(b"\n"):
        if not line:
            continue
        if line.startswith(b" ") and records:
            records[-1] += line + b"\n"
        else:
            records.append(line + b"\n")
    return records


def messages(records):
    """The messages of raw records, as a list of lines (what sysrq_trigger returns as output)."""
    from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import kmsg  # pylint: disable=import-outside-toplevel
    out = []
    for raw in records:
        out.extend(kmsg.parse_record(raw)["message"].split("\n"))
    return out


class FakeKmsg:
    """Records become readable when pushed; ``EPIPE`` items make one read fail like an overrun."""

    def __init__(self, baseline=100, pending=()):
        self.baseline = baseline
        self.queue = collections.deque(pending)
        self.lock = threading.Lock()
        self.sought = False
        self.closed = False
        self.reads = 0

    def seek_end(self):
        self.sought = True

    def last_seq(self):
        return self.baseline

    def push(self, *items):
        with self.lock:
            self.queue.extend(items)

    def read(self):
        with self.lock:
            self.reads += 1
            if not self.queue:
                raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
            item = self.queue.popleft()
        if item == EPIPE:
            raise OSError(errno.EPIPE, "Broken pipe")
        return item

    def wait(self, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.queue:
                return True
            time.sleep(0.001)
        return bool(self.queue)

    def close(self):
        self.closed = True


class Flood(FakeKmsg):
    """A source that never settles: a new record on every read, for timeout tests."""

    def __init__(self, baseline=0):
        super().__init__(baseline)
        self.seq = baseline

    def read(self):
        self.seq += 1
        time.sleep(0.0005)
        return record(self.seq, "flood %d" % self.seq)
