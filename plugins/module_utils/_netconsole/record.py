# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""netconsole records as a collector stored them: parse, reassemble, order, and find what was lost.

The collector (role ``netconsole_collector``: rsyslog ``imudp``) writes one line per datagram::

    2026-12-02T15:40:01.123456+00:00 6,1234,56789012,-;text of the record

the time rsyslog received it, a space, then the datagram as sent (rsyslog escapes control characters as ``#ooo``,
octal: a newline is ``#012``).

An extended datagram (Documentation/networking/netconsole.rst) is ``[<release>,]<level>,<seq>,<timestamp us>,
<flags>[,ncfrag=<offset>/<total>];<body>``, the header of ``/dev/kmsg``. The body is the text (non-printable bytes
escaped by the kernel as ``\\xNN``) then dictionary lines (``\\n KEY=value``). A body over 1,000 bytes comes in
fragments, each with ``ncfrag=<byte offset>/<total bytes>``. The sequence number counts every record the kernel
logged, so a missing number is a record that was logged but did not arrive (UDP has no retransmission): a gap.

A plain (non-extended) datagram is console text without a header; it has no sequence number and so no loss
accounting.
"""

from __future__ import annotations

import datetime
import re

_RECEIVED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) (.*)$")
_HEADER = re.compile(r"^((?:[^;,]+,)*?)(\d+),(\d+),(\d+),([^,;]*)((?:,[a-z_]+=[^,;]*)*);")
_RSYSLOG_ESCAPE = re.compile(r"#([0-3][0-7][0-7])")
_KERNEL_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")
_NCFRAG = re.compile(r"ncfrag=(\d+)/(\d+)")


class Record:
    """One datagram (``seq`` None for a plain one)."""

    __slots__ = ("received", "seq", "level", "ts_us", "flags", "frag", "body", "release")

    def __init__(self, received, seq=None, level=None, ts_us=None, flags="", frag=None, body="", release=None):
        self.received, self.seq, self.level, self.ts_us = received, seq, level, ts_us
        self.flags, self.frag, self.body, self.release = flags, frag, body, release

    @property
    def text(self):
        """The message text: the body's first line, the kernel's ``\\xNN`` escapes undone."""
        first = self.body.split("\n", 1)[0]
        return _KERNEL_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), first)

    def console_line(self):
        """The record as the kernel's console prints it: ``[ seconds.micro] text``."""
        if self.ts_us is None:
            return self.body.rstrip("\n")
        return "[%5d.%06d] %s" % (self.ts_us // 1000000, self.ts_us % 1000000, self.text)


def unescape_rsyslog(text):
    """rsyslog's ``#ooo`` control-character escapes back to the characters (``#012`` -> newline)."""
    return _RSYSLOG_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)) if int(m.group(1), 8) < 32 else m.group(0), text)


def parse_received(value):
    """An RFC 3339 time -> aware datetime (None when it does not parse)."""
    try:
        return datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def parse_line(line):
    """One collector line -> :class:`Record` (None for an empty line)."""
    line = line.rstrip("\r\n")
    if not line.strip():
        return None
    received = None
    m = _RECEIVED.match(line)
    if m:
        received, line = m.group(1), m.group(2)
    data = unescape_rsyslog(line)
    h = _HEADER.match(data)
    if not h:
        return Record(received, body=data)
    frag = _NCFRAG.search(h.group(6) or "")
    release = h.group(1).rstrip(",") or None
    return Record(received, seq=int(h.group(3)), level=int(h.group(2)) & 7, ts_us=int(h.group(4)),
                  flags=h.group(5), frag=(int(frag.group(1)), int(frag.group(2))) if frag else None,
                  body=data[h.end():], release=release)


def _merge(fragments):
    """Fragments of one record -> (Record, complete). The collector drops a body's trailing newline, so a
    body one byte short of its total is complete."""
    fragments = sorted(fragments, key=lambda r: r.frag[0])
    total = fragments[0].frag[1]
    body, at, contiguous = "", 0, True
    for frag in fragments:
        offset = frag.frag[0]
        if offset > at:
            contiguous = False
        if offset + len(frag.body) > at:
            body += frag.body[max(0, at - offset):]
            at = offset + len(frag.body)
    first = fragments[0]
    record = Record(first.received, first.seq, first.level, first.ts_us, first.flags, None, body, first.release)
    return record, contiguous and total - at in (0, 1), (at, total)


class Assembly:
    """Records read in one go: ordered, reassembled, with the lost sequence numbers.

    ``items`` is the ordered output: ``("record", Record)``, ``("lost", first, last)``, ``("incomplete",
    Record, have, total)``, ``("boot", Record)`` (the sequence started again: the host rebooted)."""

    def __init__(self):
        self.items = []
        self.plain = []
        self.records = 0
        self.lost = []          # [(first, last)] sequence ranges that did not arrive
        self.incomplete = []    # [seq] records whose fragments did not all arrive
        self.duplicates = 0
        self.boots = 0
        self.first_seq = self.last_seq = None

    @property
    def lost_total(self):
        return sum(last - first + 1 for first, last in self.lost)

    def summary(self):
        return {"records": self.records, "lost": self.lost_total,
                "lost_ranges": [[first, last] for first, last in self.lost],
                "incomplete": list(self.incomplete), "duplicates": self.duplicates, "restarts": self.boots,
                "plain_lines": len(self.plain), "first_seq": self.first_seq, "last_seq": self.last_seq}

    def lines(self):
        """The console lines: each record as the console prints it; each gap and incomplete record said so."""
        out = []
        for item in self.items:
            kind = item[0]
            if kind == "record":
                out.append(item[1].console_line())
            elif kind == "lost":
                count = item[2] - item[1] + 1
                out.append("netconsole: %d record(s) lost: sequence %s" % (
                    count, item[1] if count == 1 else "%d-%d" % (item[1], item[2])))
            elif kind == "incomplete":
                out.append("netconsole: record %d incomplete (%d of %d bytes arrived)"
                           % (item[1].seq, item[2], item[3]))
                out.append(item[1].console_line())
            elif kind == "boot":
                out.append("netconsole: sequence restarted at %d (the host rebooted)" % item[1].seq)
        return out + list(self.plain)


# UDP on one network reorders only a little: a record this many sequence numbers behind the newest, with an earlier
# kernel time, belongs to a new boot rather than arriving late.
REORDER_WINDOW = 64


def _restarted(record, newest, oldest_ts):
    """The sequence started again (the host rebooted), rather than a late datagram."""
    if record.seq >= newest.seq or record.ts_us >= newest.ts_us:
        return False
    return newest.seq - record.seq > REORDER_WINDOW or record.ts_us < oldest_ts


def assemble(records, after_seq=None, held=()):
    """Order extended records by sequence number (per boot), reassemble fragments, and find the gaps.

    ``after_seq``: the last sequence number of an earlier read, so a gap across two reads is found too.
    ``held``: fragments kept from an earlier read. Returns ``(Assembly, pending)``, ``pending`` the fragments of
    records still incomplete at the end of what was read (the caller may read on and pass them back as ``held``)."""
    result = Assembly()
    boots, current, newest, oldest_ts = [], {}, None, None
    for record in list(held) + list(records):
        if record is None:
            continue
        if record.seq is None:
            result.plain.append(record.console_line())
            continue
        if newest is not None and _restarted(record, newest, oldest_ts):
            boots.append(current)
            current, newest, oldest_ts = {}, None, None
        current.setdefault(record.seq, []).append(record)
        if newest is None or record.seq > newest.seq:
            newest = record
        oldest_ts = record.ts_us if oldest_ts is None else min(oldest_ts, record.ts_us)
    boots.append(current)
    pending = []
    for number, by_seq in enumerate(boots):
        if not by_seq:
            continue
        previous = after_seq if number == 0 else None
        if number > 0:
            result.boots += 1
            result.items.append(("boot", by_seq[min(by_seq)][0]))
        last_key = max(by_seq)
        for seq in sorted(by_seq):
            parts = by_seq[seq]
            fragments = [r for r in parts if r.frag]
            whole = [r for r in parts if not r.frag]
            if whole:
                record, complete, have = whole[0], True, None
                result.duplicates += len(whole) - 1
            else:
                unique = {r.frag[0]: r for r in fragments}
                result.duplicates += len(fragments) - len(unique)
                record, complete, have = _merge(list(unique.values()))
            if not complete and seq == last_key and number == len(boots) - 1:
                pending.extend(fragments)  # may still be arriving
                continue
            if previous is not None and seq > previous + 1:
                result.lost.append((previous + 1, seq - 1))
                result.items.append(("lost", previous + 1, seq - 1))
            if previous is not None and seq <= previous:
                result.duplicates += 1
                continue
            previous = seq
            result.records += 1
            if result.first_seq is None:
                result.first_seq = seq
            result.last_seq = seq
            if complete:
                result.items.append(("record", record))
            else:
                result.incomplete.append(seq)
                result.items.append(("incomplete", record, have[0], have[1]))
    return result, pending
