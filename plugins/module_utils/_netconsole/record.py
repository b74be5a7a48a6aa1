# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""netconsole records as a collector stored them: parse, reassemble, order, and find what was lost.

The collector (role ``netconsole_collector``: rsyslog ``imudp``) writes one line per datagram::

    2026-12-02T15:40:01.123456+00:00 6,1234,56789012,-;text of the record

the time rsyslog received it, a space, then the datagram as sent (rsyslog escapes control characters as ``#ooo``,
octal: a newline is ``#012``; a ``#`` it leaves as it is, see ``_RSYSLOG_PLAIN``).

An extended datagram (Documentation/networking/netconsole.rst) is ``[<release>,]<level>,<seq>,<timestamp us>,
<flags>[,ncfrag=<offset>/<total>];<body>``, the header of ``/dev/kmsg``. The body is the text (non-printable bytes
escaped by the kernel as ``\\xNN``) then dictionary lines (``\\n KEY=value``). A body over 1,000 bytes comes in
fragments, each with ``ncfrag=<byte offset>/<total bytes>``. The sequence number counts every record the kernel
logged, so a missing number is a record that was logged but did not arrive (UDP has no retransmission): a gap.

A plain (non-extended) datagram is console text without a header; it has no sequence number and so no loss
accounting.

Anyone on a host can send datagrams to the collector from the host's address (docs/threat-model.md): a record that
cannot be the host kernel's is shown and said, and changes nothing about the others (:func:`assemble`).
"""

from __future__ import annotations

import bisect
import datetime
import re

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import kmsg
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump.untrusted import printable_lines

_RECEIVED = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)) (.*)$")
_HEADER = re.compile(r"^((?:[^;,]+,)*?)(\d+),(\d+),(\d+),([^,;]*)((?:,[a-z_]+=[^,;]*)*);")
_NCFRAG = re.compile(r"ncfrag=(\d+)/(\d+)")
# A dictionary line of the extended format (SUBSYSTEM=, DEVICE=): the kernel's values have no space. An empty line
# is the datagram's own last newline, when rsyslog kept it.
_DICTIONARY_LINE = re.compile(r"(?: [A-Z][A-Z0-9_]*=[^ ]*)?\Z")

# rsyslog writes a control character it received as "#" and three octal digits, and a "#" as it is: "#012" in the
# file is a newline rsyslog received, or the four characters a host sent (a process named "a#012"). The two cannot
# be told apart, so only what the format needs is undone. An extended datagram holds no control character but the
# newlines before its dictionary lines (the kernel writes the others as \xNN): only #012 is undone there, and
# Record.text puts a newline that is not before a dictionary line back as "#012". Plain console text also has
# tabs. Every other #ooo stays as the file has it: undone, "a#033]" would be an ESC ] that eats the rest of a line.
_RSYSLOG_PLAIN = re.compile(r"#01[12]")


class Record:
    """One datagram (``seq`` None for a plain one)."""

    __slots__ = ("received", "seq", "level", "ts_us", "flags", "frag", "body", "release")

    def __init__(self, received, seq=None, level=None, ts_us=None, flags="", frag=None, body="", release=None):
        self.received, self.seq, self.level, self.ts_us = received, seq, level, ts_us
        self.flags, self.frag, self.body, self.release = flags, frag, body, release

    @property
    def text(self):
        """The message text: the body without its dictionary lines, one line. The kernel's ``\\xNN`` escapes are
        undone for text and kept for control characters, as for ``/dev/kmsg`` (:func:`kmsg.unescape`): an ESC
        or a newline in a process name must neither reach a terminal nor cut its task's header in two."""
        lines = self.body.split("\n")
        end = len(lines)
        while end > 1 and _DICTIONARY_LINE.match(lines[end - 1]):
            end -= 1
        return kmsg.unescape("#012".join(lines[:end]).encode("utf-8"))

    def console_line(self):
        """The record as the kernel's console prints it: ``[ seconds.micro] text``."""
        if self.ts_us is None:
            return printable_lines(self.body.rstrip("\n"))
        return "[%5d.%06d] %s" % (self.ts_us // 1000000, self.ts_us % 1000000, self.text)


def unescape_rsyslog(text):
    """rsyslog's escapes of line ends and tabs back to the characters (``#012`` -> newline), for plain text."""
    return _RSYSLOG_PLAIN.sub(lambda m: "\n" if m.group() == "#012" else "\t", text)


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
    h = _HEADER.match(line)
    if not h:
        return Record(received, body=unescape_rsyslog(line))
    frag = _NCFRAG.search(h.group(6) or "")
    release = h.group(1).rstrip(",") or None
    # the newlines undone, so that a fragment's length is the bytes it had (ncfrag's offsets count those)
    return Record(received, seq=int(h.group(3)), level=int(h.group(2)) & 7, ts_us=int(h.group(4)),
                  flags=h.group(5), frag=(int(frag.group(1)), int(frag.group(2))) if frag else None,
                  body=line[h.end():].replace("#012", "\n"), release=release)


def _merge(fragments):
    """Fragments of one record -> (Record, complete, (bytes arrived, total)). The collector drops a body's trailing
    newline, so a body one byte short of its total is complete."""
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


# The kernel's extended console record is at most 8 KiB (CONSOLE_EXT_LOG_MAX), sent in fragments of at most 1,000
# bytes. Fragments past these limits are not the kernel's: they are left out (and said), so that datagrams claiming
# one endless record cannot make a read slow or hold it back.
MAX_RECORD_BYTES = 16384
MAX_FRAGMENTS = 64


def _versions(parts):
    """The datagrams with one sequence number -> (versions, duplicates, fragments cut). Each different whole record
    is a version ``(record, complete, (have, total) or None)``, and so are fragments that fit together; the same
    datagram twice is a duplicate. The kernel sends one record per number: a second version is another sender's."""
    if len(parts) == 1 and parts[0].frag is None:
        return [(parts[0], True, None)], 0, 0
    versions, bodies, groups, duplicates, cut, kept = [], set(), [], 0, 0, 0
    for r in parts:
        if r.frag is None:
            if r.body in bodies:
                duplicates += 1
            else:
                bodies.add(r.body)
                versions.append((r, True, None))
        elif kept >= MAX_FRAGMENTS or r.frag[0] >= MAX_RECORD_BYTES:
            cut += 1
        else:
            offset = r.frag[0]
            group = next((g for g in groups if offset not in g or g[offset].body == r.body), None)
            if group is None:
                group = {}
                groups.append(group)
            if offset in group:
                duplicates += 1
            else:
                group[offset] = r
                kept += 1
    for group in groups:
        record, complete, have = _merge(list(group.values()))
        if complete and record.body in bodies:
            duplicates += 1
        else:
            bodies.add(record.body)
            versions.append((record, complete, have))
    return versions, duplicates, cut


class Assembly:
    """Records read in one go: ordered, reassembled, with the lost sequence numbers.

    ``items`` is the ordered output: ``("record", Record)``, ``("lost", first, last)``, ``("incomplete",
    Record, have, total)``, ``("boot", Record)`` (the sequence started again: the host rebooted), and what does not
    fit the host's sequence: ``("foreign", count, first, last)``, ``("alone", seq, nearest)``, ``("conflict", seq,
    versions)``, ``("late", seq)``, ``("cut", seq, fragments)``. ``tails`` is the end of each boot read, for the
    next read (``after``)."""

    def __init__(self):
        self.items = []
        self.plain = []
        self.records = 0
        self.lost = []          # [(first, last)] sequence ranges that did not arrive
        self.incomplete = []    # [seq] records whose fragments did not all arrive
        self.late = []          # [seq] records that arrived after an earlier read counted them lost
        self.duplicates = 0
        self.foreign = 0        # records that do not fit the host's sequence: forged, or another sender's
        self.boots = 0
        self.first_seq = self.last_seq = None
        self.tails = []

    @property
    def lost_total(self):
        return sum(last - first + 1 for first, last in self.lost)

    def summary(self):
        return {"records": self.records, "lost": self.lost_total,
                "lost_ranges": [[first, last] for first, last in self.lost],
                "incomplete": list(self.incomplete), "duplicates": self.duplicates, "restarts": self.boots,
                "foreign": self.foreign, "plain_lines": len(self.plain), "first_seq": self.first_seq,
                "last_seq": self.last_seq}

    def lines(self):
        """The console lines: each record as the console prints it; each gap, incomplete record and record that
        does not fit the host's sequence said so."""
        out = []
        for item in self.items:
            kind = item[0]
            if kind == "record":
                out.append(item[1].console_line())
            elif kind == "lost":
                count = item[2] - item[1] + 1
                out.append("netconsole: %d record(s) lost: sequence %s" % (count, _span(item[1], item[2])))
            elif kind == "incomplete":
                out.append("netconsole: record %d incomplete (%d of %d bytes arrived)"
                           % (item[1].seq, item[2], item[3]))
                out.append(item[1].console_line())
            elif kind == "boot":
                out.append("netconsole: sequence restarted at %d (the host rebooted)" % item[1].seq)
            elif kind == "foreign":
                out.append("netconsole: %d record(s) do not fit this host's sequence (forged, or from another "
                           "sender): sequence %s" % (item[1], _span(item[2], item[3])))
            elif kind == "alone":
                out.append("netconsole: record %d does not fit this host's sequence: it stands alone, %d from "
                           "record %d (forged, or the records between were lost)"
                           % (item[1], abs(item[1] - item[2]), item[2]))
            elif kind == "conflict":
                out.append("netconsole: %d different records with sequence %d (forged, or from another sender)"
                           % (item[2], item[1]))
            elif kind == "late":
                out.append("netconsole: record %d arrived late (counted lost before)" % item[1])
            elif kind == "cut":
                out.append("netconsole: record %d: %d fragment(s) left out (over %d fragments or %d bytes)"
                           % (item[1], item[2], MAX_FRAGMENTS, MAX_RECORD_BYTES))
        return out + list(self.plain)


def _span(first, last):
    return "%d" % first if first == last else "%d-%d" % (first, last)


# UDP on one network reorders only a little: a record this many sequence numbers before all the others of a boot
# belongs to a new boot rather than arriving late, and one this far after the others with none near it stands
# alone (a forged datagram, or the records between were lost: it is shown, but does not move the sequence on).
REORDER_WINDOW = 64
# One kernel's records have kernel times in sequence-number order, give or take this much (CPUs take the time
# before a record gets its number). A record whose time disagrees more with its neighbours is another sender's.
SLACK_US = 1000000
# A new boot's sequence starts again: the first record its netconsole sends is early in the boot, minutes into it
# (not hours) and lower in sequence than the boot before, or (after a boot that ended early too) still low.
RESTART_US = 3600 * 1000000
RESTART_SEQ = 100000
# At most this many separate sequences in one read (boots, or other senders): more go together, flagged, so that
# a flood of forged datagrams cannot make the reading quadratic.
MAX_STREAMS = 16


def _in_order(a, b):
    """``a`` before ``b`` in sequence can be one kernel's records: the kernel time does not go back."""
    return a is None or b is None or a.ts_us is None or b.ts_us is None or a.ts_us <= b.ts_us + SLACK_US


class _Stream:
    """Records that can be one boot of one kernel's, by sequence number (``seqs`` sorted)."""

    def __init__(self, at, tail=()):
        self.by_seq, self.seqs, self.first, self.last = {}, [], at, at
        # the numbers an earlier read had, lowest and highest: one between them arrives late
        self.seeded = (min(r.seq for r in tail), max(r.seq for r in tail)) if tail else None
        for record in tail:
            self.add(record, at)

    def add(self, record, at):
        if record.seq not in self.by_seq:
            self.by_seq[record.seq] = []
            bisect.insort(self.seqs, record.seq)
        self.by_seq[record.seq].append(record)
        self.last = at

    def distance(self, record):
        """How many sequence numbers from its nearest neighbour here, or None when it cannot be one of these."""
        seqs = self.seqs
        i = bisect.bisect_left(seqs, record.seq)
        same = i < len(seqs) and seqs[i] == record.seq
        below = self.by_seq[seqs[i - 1]][0] if i else None
        above = self.by_seq[seqs[i + same]][0] if i + same < len(seqs) else None
        if not (_in_order(below, record) and _in_order(record, above)):
            return None
        if same:
            return 0
        if below is None:  # before all of them: late by a little, or a new boot
            return above.seq - record.seq if above.seq - record.seq <= REORDER_WINDOW else None
        return record.seq - below.seq if above is None else min(record.seq - below.seq, above.seq - record.seq)

    def alone(self, index):
        """The record at ``index`` in ``seqs`` has no other within REORDER_WINDOW (and the others are far)."""
        seqs = self.seqs
        return len(seqs) > 1 and (index == 0 or seqs[index] - seqs[index - 1] > REORDER_WINDOW) and (
            index + 1 == len(seqs) or seqs[index + 1] - seqs[index] > REORDER_WINDOW)

    def weight(self):
        """How many of its records have another near in sequence: the kernel's do, forged ones rarely."""
        return sum(1 for index in range(len(self.seqs)) if not self.alone(index)) if len(self.seqs) > 1 else 0

    def end(self, lowest=False):
        return self.by_seq[self.seqs[0 if lowest else -1]][0]


def _restarts(later, earlier):
    """``later`` is the boot after ``earlier``: it arrived after all of it, and starts early in a boot."""
    first, newest = later.end(lowest=True), earlier.end()
    return (later.first > earlier.last and first.ts_us is not None and first.ts_us < RESTART_US
            and (first.seq < newest.seq or first.seq < RESTART_SEQ))


def _streams(records, after, held):
    """Records -> separate sequences: each joins the one it fits nearest, else starts its own."""
    streams, overflow, last, at, plain = [], None, None, 0, []
    for tail in after:
        streams.append(_Stream(at, tail))
        at += 1
    for record in list(held) + list(records):
        at += 1
        if record is None:
            continue
        if record.seq is None:
            plain.append(record.console_line())
            continue
        distance = last.distance(record) if last is not None else None
        if distance is None or distance > REORDER_WINDOW:
            fits = [(d, n) for n, d in enumerate(s.distance(record) for s in streams) if d is not None]
            if fits:
                last = streams[min(fits)[1]]
            elif len(streams) < MAX_STREAMS:
                last = _Stream(at)
                streams.append(last)
            else:
                overflow = last = overflow or _Stream(at)
        last.add(record, at)
    return [s for s in streams if s.seqs], overflow, plain


def _chain(streams):
    """The host's boots, in order: the largest sequence (an earlier read's counts), with the boots before and after
    it. The other sequences cannot be this host's kernel's."""
    chain = [max(streams, key=_Stream.weight)]
    rest = [s for s in streams if s is not chain[0]]
    while True:
        before = [s for s in rest if _restarts(chain[0], s)]
        after = [s for s in rest if _restarts(s, chain[-1])]
        if before:
            chain.insert(0, max(before, key=lambda s: s.last))
            rest.remove(chain[0])
        elif after:
            chain.append(min(after, key=lambda s: s.first))
            rest.remove(chain[-1])
        else:
            return chain, rest


def _emit(result, stream, seeds, host=True, last=False):
    """One sequence's items (a host's boot, or ``host`` False: one that is not); returns the pending fragments and
    the records that end it."""
    pending, kept, previous, start, foreign = [], [], None, len(result.items), result.foreign
    for index, seq in enumerate(stream.seqs):
        versions, duplicates, cut = _versions(stream.by_seq[seq])
        result.duplicates += duplicates
        new = [v for v in versions if id(v[0]) not in seeds]
        old = len(versions) - len(new)
        if not new or old and versions[0][0].ts_us is None:  # read before (after_seq: only its number is known)
            result.duplicates += len(new)
            previous = seq
            kept.append([v[0] for v in versions])
            continue
        if not host:
            result.foreign += len(new)
        elif last and index == len(stream.seqs) - 1 and len(versions) == 1 and not new[0][1] and not cut \
                and new[0][2][1] <= MAX_RECORD_BYTES:
            pending.extend(r for r in stream.by_seq[seq] if r.frag)  # may still be arriving
            continue
        elif old:
            pass  # another record with a number read before: said below
        elif stream.seeded is not None and stream.seeded[0] < seq < stream.seeded[1]:
            result.late.append(seq)  # in a gap an earlier read said
            result.items.append(("late", seq))
        elif stream.alone(index):
            result.items.append(("alone", seq, stream.seqs[index - 1] if index else stream.seqs[1]))
            result.foreign += len(new)
            _versions_out(result, new, cut, seq)
            continue
        elif previous is not None and seq > previous + 1:
            result.lost.append((previous + 1, seq - 1))
            result.items.append(("lost", previous + 1, seq - 1))
        if host:
            if len(versions) > 1:
                result.items.append(("conflict", seq, len(versions)))
            result.foreign += len(new) - (0 if old else 1)
            result.records += 0 if old else 1
            if result.first_seq is None:
                result.first_seq = seq
            previous = result.last_seq = seq if previous is None else max(previous, seq)
            kept.append([v[0] for v in versions])
        _versions_out(result, new, cut, seq, incomplete=host)
    if not host and result.foreign > foreign:
        result.items.insert(start, ("foreign", result.foreign - foreign, stream.seqs[0], stream.seqs[-1]))
    return pending, [r for records in kept[-(REORDER_WINDOW + 1):] for r in records]


def _versions_out(result, versions, cut, seq, incomplete=False):
    if cut:
        result.items.append(("cut", seq, cut))
    for record, complete, have in versions:
        if complete:
            result.items.append(("record", record))
        else:
            if incomplete:
                result.incomplete.append(seq)
            result.items.append(("incomplete", record, have[0], have[1]))


def assemble(records, after_seq=None, held=(), after=()):
    """Order extended records by sequence number (per boot), reassemble fragments, and find the gaps.

    Any host's user can send datagrams to the collector from the host's address: a record whose sequence number
    and kernel time cannot be the host kernel's, or that stands alone far after the others, is shown with a line
    that says so and counted in ``foreign``, but moves nothing: the host's records are all kept in order, and one
    forged number cannot make them duplicates or billions of records lost. A second record with a number is shown
    beside the first (only the very same datagram again is a duplicate).

    ``after``: an earlier read's ``tails`` (or ``after_seq``, its last sequence number), so a gap across the two
    reads is found too. ``held``: fragments kept from an earlier read. Returns ``(Assembly, pending)``, ``pending``
    the fragments of a record still incomplete at the end of what was read (the caller may read on and pass them
    back as ``held``)."""
    result = Assembly()
    if after_seq is not None and not after:
        after = [[Record(None, seq=after_seq)]]
    seeds = {id(r) for tail in after for r in tail}
    streams, overflow, result.plain = _streams(records, after, held)
    if not streams and overflow is None:
        return result, []
    chain, others = _chain(streams) if streams else ([], [])
    pending = []
    for number, stream in enumerate(chain):
        if number and not stream.seeded:
            result.boots += 1
            result.items.append(("boot", stream.end(lowest=True)))
        held_back, tail = _emit(result, stream, seeds, last=number == len(chain) - 1)
        pending.extend(held_back)
        result.tails.append(tail)
    for stream in others + ([overflow] if overflow else []):
        _emit(result, stream, seeds, host=False)
    return result, pending
