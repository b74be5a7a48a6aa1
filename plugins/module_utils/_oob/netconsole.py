# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A console source: a host's netconsole file at the collector (role ``netconsole_collector``).

Read like a console log file (a point in it is a byte ``offset``), but what comes back is the kernel's records in
sequence order, each as the console prints it (``[ seconds.micro] text``), with fragments (``ncfrag``) put back
together, and a line for every gap in the sequence (``netconsole: 3 record(s) lost: sequence 101-103``) so that a
loss is never silent, also where only the text travels on (``oob_sysrq``). :meth:`NetconsoleFile.summary` has the
counts. The parsing is :mod:`_netconsole.record`.
"""

from __future__ import annotations

import datetime
import os
import re

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._netconsole import record as nc_record

# The most bytes read in one call, as for a console file.
MAX_BYTES = 64 * 1024 * 1024

_RELATIVE = re.compile(r"^-(\d+)\s*(s|sec|min|m|h|hour|d|day)s?$")
_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600, "d": 86400, "day": 86400}


def parse_since(since, now=None):
    """``since`` -> aware datetime: an ISO 8601 time (UTC when it has no zone) or ``-<N><s|min|h|d>`` ago."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    text = str(since).strip()
    m = _RELATIVE.match(text)
    if m:
        return now - datetime.timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    when = nc_record.parse_received(text.replace(" ", "T", 1) if "T" not in text else text)
    if when is None:
        raise oob.OobError("since=%r for console.netconsole: use an ISO 8601 time (2026-12-02T15:40:00Z) or a "
                           "relative one (-10min, -30s, -2h, -1d)" % since)
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when


class NetconsoleFile:
    """One sending host's file at the collector."""

    kind = "netconsole"

    def __init__(self, path):
        self.path = path
        self.after = []  # the end of the host's sequence in the last read: where the next one goes on
        self.totals = nc_record.Assembly()

    def position(self):
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def _raw(self, offset):
        try:
            size = os.path.getsize(self.path)
            with open(self.path, "rb") as handle:
                if offset > size:  # rotated or truncated: the file is new
                    offset = 0
                if size - offset > MAX_BYTES:
                    offset = size - MAX_BYTES
                handle.seek(offset)
                return handle.read(size - offset), offset
        except FileNotFoundError:
            return b"", 0
        except (IOError, OSError) as exc:
            raise oob.OobError("cannot read the netconsole file %s: %s" % (self.path, exc))

    def read(self, offset=None, since=None):
        """``(text, next_offset)``: the records from byte ``offset`` (default the start) or received ``since``,
        as console lines. A record whose fragments are still arriving at the end is left for the next read."""
        since_at = parse_since(since) if since else None
        data, offset = self._raw(int(offset or 0))
        end = data.rfind(b"\n") + 1  # whole lines only: the collector may be writing the last one
        records, starts, at = [], {}, 0
        for raw in data[:end].split(b"\n")[:-1] if end else []:
            record = nc_record.parse_line(raw.decode("utf-8", "replace"))
            if record is not None and since_at is not None:
                when = nc_record.parse_received(record.received) if record.received else None
                if when is None or when < since_at:
                    record = None
            if record is not None:
                records.append(record)
                starts[id(record)] = offset + at
            at += len(raw) + 1
        assembly, pending = nc_record.assemble(records, after=self.after)
        next_offset = offset + end
        if pending:  # at most MAX_FRAGMENTS: the next read starts at the first
            next_offset = min(starts[id(r)] for r in pending)
        self.after = assembly.tails
        self._add(assembly)
        lines = assembly.lines()
        return "".join(line + "\n" for line in lines), next_offset

    def _add(self, assembly):
        total = self.totals
        total.records += assembly.records
        total.lost.extend(assembly.lost)
        total.incomplete.extend(assembly.incomplete)
        for seq in assembly.late:  # an earlier read counted it lost: it was not
            total.lost = [part for first, last in total.lost
                          for part in ([(first, seq - 1), (seq + 1, last)] if first <= seq <= last else [(first, last)])
                          if part[0] <= part[1]]
        total.duplicates += assembly.duplicates
        total.foreign += assembly.foreign
        total.boots += assembly.boots
        total.plain.extend(assembly.plain)
        if total.first_seq is None:
            total.first_seq = assembly.first_seq
        if assembly.last_seq is not None:
            total.last_seq = assembly.last_seq

    def summary(self):
        """What every read so far held: records, lost sequence numbers and ranges, incomplete records."""
        return self.totals.summary()
