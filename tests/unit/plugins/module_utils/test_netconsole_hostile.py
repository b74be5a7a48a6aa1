"""netconsole files with hostile text in them (docs/threat-model.md): process names and forged datagrams.

Any local user on a host names a process (15 bytes, any byte but NUL) that the kernel prints in a ``w`` dump's task
header, and can send UDP datagrams to the collector from the host's address. The collector lines below are built as
they arrive: the kernel's extended-format escaping (``msg_print_ext_body``: bytes below 0x20, from 0x7f up, and
``\\`` as ``\\xNN``), then rsyslog's (``SanitizeMsg``: bytes below 0x20 as ``#ooo``, ``#`` itself left as it is,
the datagram's trailing newline dropped)."""

from __future__ import annotations

import time

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._netconsole import record as nc_record

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import console as oob_console

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import netconsole as oob_netconsole

T = "2026-12-02T15:40:01.000000+00:00 "


def kernel(text):
    """The kernel's escaping of a record's text in the extended format."""
    data = text.encode("utf-8", "surrogateescape")
    return "".join("\\x%02x" % b if b < 0x20 or b >= 0x7f or b == 0x5c else chr(b) for b in data)


def rsyslog(datagram):
    """rsyslog imudp with its defaults, as the collector role's template writes it: one line per datagram."""
    if datagram.endswith("\n"):
        datagram = datagram[:-1]
    return T + "".join("#%03o" % ord(c) if ord(c) < 0x20 else c for c in datagram) + "\n"


def ext(seq, text, ts_us=None, level=6, dictionary=""):
    """One extended datagram (a record's text, then its dictionary lines, then a newline) as a collector line."""
    return rsyslog("%d,%d,%d,-;%s\n%s" % (level, seq, 812000000 + seq if ts_us is None else ts_us, kernel(text),
                                          dictionary))


def w_dump(comm, first=100):
    """A ``w`` dump: an innocent sleeping task, then a D-state task named ``comm`` (pid 812)."""
    lines = ["sysrq: Show Blocked State",
             "task:%-15.15s state:D stack:0     pid:700   ppid:1      flags:0x00004000" % "innocent",
             "Call Trace:", " <TASK>", " __schedule+0x34d/0x9e0", " io_schedule+0x42/0x70", " </TASK>",
             "task:%-15.15s state:D stack:0     pid:812   ppid:2      flags:0x00004000" % comm,
             "Call Trace:", " <TASK>", " __schedule+0x34d/0x9e0", " nfs_wait+0x5a/0xd0", " </TASK>"]
    return [ext(first + i, line) for i, line in enumerate(lines)]


def read_file(tmp_path, lines, *more):
    """The file read by one reader, once per batch of lines (``more``: batches appended between polls)."""
    path = tmp_path / "192.0.2.10.log"
    path.write_text("".join(lines))
    reader = oob_netconsole.NetconsoleFile(str(path))
    text, offset = reader.read(0)
    for batch in more:
        with open(path, "a") as handle:
            handle.write("".join(batch))
        chunk, offset = reader.read(offset)
        text += chunk
    return text, reader


def tasks_of(text):
    return {t["pid"]: t for t in oob_console.parse(oob_console.lines_of(text), "w")}


# ------------------------------------------------------------------------------------ process names in task headers
@pytest.mark.parametrize("comm, shown", [
    ("nfsd", "nfsd"),
    ("a#012", "a#012"),           # a literal "#012": rsyslog does not escape '#', the file holds what a newline would
    ("a#012 DEVICE=x", "a#012 DEVICE=x"),  # ... followed by what looks like a dictionary line
    ("a#033]", "a#033]"),         # a literal "#033]": an OSC if it turned into ESC ]
    ("x\x1b]", "x\\x1b]"),        # a real ESC ]: the kernel sends \x1b
    ("x\x1b[2J\x07", "x\\x1b[2J\\x07"),
    ("a\n", "a\\x0a"),
    ("cr\r", "cr\\x0d"),
    ("caf\u00e9", "caf\u00e9"),   # UTF-8: the kernel escapes each byte, the reader puts the character back
])
def test_a_process_name_cannot_hide_its_blocked_task(tmp_path, comm, shown):
    text, reader = read_file(tmp_path, w_dump(comm))
    tasks = tasks_of(text)
    assert sorted(tasks) == [700, 812], text
    assert tasks[812]["state"] == "D" and tasks[812]["frames"] == ["__schedule", "nfs_wait"]
    assert tasks[812]["comm"] == shown
    assert len(text.splitlines()) == 13  # one line per record
    assert not set(text) & {"\x1b", "\x07", "\r", "\x9b"}
    assert reader.summary()["records"] == 13 and reader.summary()["lost"] == 0


def test_record_text_keeps_control_characters_escaped():
    line = ext(5, "x\x1b]0;pwned\x07 done\ttab")
    r = nc_record.parse_line(line)
    assert r.text == "x\\x1b]0;pwned\\x07 done\ttab"
    assert r.console_line() == "[  812.000005] x\\x1b]0;pwned\\x07 done\ttab"


def test_dictionary_lines_are_not_text_but_a_look_alike_is():
    r = nc_record.parse_line(ext(5, "usb 1-1: new device", dictionary=" SUBSYSTEM=usb\n DEVICE=+usb:1-1\n"))
    assert r.text == "usb 1-1: new device"
    # only a tail of " KEY=value" lines (no space in the value) is a dictionary: text after a look-alike stays text
    r = nc_record.parse_line(ext(5, "task:a#012 X=1  state:D pid:812"))
    assert r.text == "task:a#012 X=1  state:D pid:812"


def test_plain_datagrams_keep_rsyslog_escapes_but_line_ends():
    r = nc_record.parse_line(T + "task:a#033] state:D#012next line#011tabbed#007")
    assert r.console_line() == "task:a#033] state:D\nnext line\ttabbed#007"
    # rsyslog passes bytes from 0x80 on as they are: a C1 CSI (U+009B) is escaped like the kernel would
    assert nc_record.parse_line(T + "plain \u009b2J").console_line() == "plain \\x9b2J"


# ------------------------------------------------------------------------------------------- forged sequence numbers
def test_one_forged_sequence_number_does_not_drop_the_dump(tmp_path):
    # the reviewer's case: a user on the host sends "6,4294967295,0,-;x" to the collector between two polls
    dump = w_dump("nfsd", first=5001)
    text, reader = read_file(tmp_path, [ext(5000, "boot noise")], dump[:1] + [rsyslog("6,4294967295,0,-;x")],
                             dump[1:])
    tasks = tasks_of(text)
    assert sorted(tasks) == [700, 812] and tasks[812]["state"] == "D"
    summary = reader.summary()
    assert summary["lost"] == 0 and summary["records"] == 14 and summary["last_seq"] == 5013
    assert summary["foreign"] == 1
    assert ("netconsole: 1 record(s) do not fit this host's sequence (forged, or from another sender): "
            "sequence 4294967295") in text
    assert "[    0.000000] x" in text


@pytest.mark.parametrize("forged", ["6,4294967295,0,-;x", "6,4294967295,999999999999,-;x", "6,1,5,-;x",
                                    "6,5100,0,-;x"])
def test_a_forged_record_first_in_a_poll_does_not_take_over(tmp_path, forged):
    dump = w_dump("nfsd", first=5001)
    text, reader = read_file(tmp_path, [ext(5000, "boot noise")], [rsyslog(forged)] + dump[:3], dump[3:])
    assert sorted(tasks_of(text)) == [700, 812]
    summary = reader.summary()
    assert summary["records"] == 14 and summary["restarts"] == 0 and summary["last_seq"] == 5013
    assert summary["foreign"] == 1 and "fit this host's sequence" in text
    # a forged record whose kernel time fits may say records were lost (it cannot be told apart), never billions
    assert summary["lost"] <= 100


def test_a_forged_record_with_a_real_sequence_number_is_shown_beside_the_real_one(tmp_path):
    dump = w_dump("nfsd", first=5001)
    forged = ext(5008, "task:fake            state:S stack:0     pid:999   ppid:1      flags:0x0")
    text, reader = read_file(tmp_path, dump[:5] + [forged], dump[5:])
    tasks = tasks_of(text)
    assert tasks[812]["state"] == "D" and tasks[812]["frames"] == ["__schedule", "nfs_wait"]
    assert "netconsole: 2 different records with sequence 5008 (forged, or from another sender)" in text
    assert "task:fake" in text
    assert reader.summary()["lost"] == 0 and reader.summary()["foreign"] == 1


def test_a_reboot_between_two_reads_is_still_a_restart(tmp_path):
    old = [ext(5000 + i, "old %d" % i, ts_us=900000000 + i) for i in range(5)]
    new = [ext(700 + i, "new %d" % i, ts_us=5000000 + i) for i in range(3)]
    text, reader = read_file(tmp_path, old, new)
    summary = reader.summary()
    assert summary["restarts"] == 1 and summary["records"] == 8 and summary["lost"] == 0
    assert summary["foreign"] == 0 and summary["last_seq"] == 702
    assert "netconsole: sequence restarted at 700 (the host rebooted)" in text
    assert text.splitlines()[-1] == "[    5.000002] new 2"


@pytest.mark.parametrize("old_boot, new_boot", [
    ((90000, 900000000), (714, 5000000)),   # the usual: lower in sequence, earlier in kernel time
    ((850, 20000000), (900, 6000000)),      # a boot that ended early (a crash loop): higher, but early again
    ((850, 20000000), (714, 45000000)),     # ... or lower, but later in kernel time than the short boot before
])
def test_a_reboot_in_one_read_is_a_restart(old_boot, new_boot):
    lines = [ext(old_boot[0] + i, "old", ts_us=old_boot[1] + i) for i in range(5)]
    lines += [ext(new_boot[0] + i, "new", ts_us=new_boot[1] + i) for i in range(5)]
    a, _ignored = nc_record.assemble([nc_record.parse_line(line) for line in lines])
    assert a.boots == 1 and a.records == 10 and a.lost == [] and a.foreign == 0
    assert a.last_seq == new_boot[0] + 4
    assert a.lines()[5] == "netconsole: sequence restarted at %d (the host rebooted)" % new_boot[0]


def test_late_datagrams_and_duplicates_stay_in_the_sequence():
    lines = [ext(100, "one"), ext(102, "three"), ext(101, "two"), ext(102, "three"), ext(99, "zero")]
    a, pending = nc_record.assemble([nc_record.parse_line(line) for line in lines])
    assert not pending and a.duplicates == 1 and a.foreign == 0 and a.boots == 0
    assert [line.split("] ")[1] for line in a.lines()] == ["zero", "one", "two", "three"]


def test_a_record_arriving_after_a_read_counted_it_lost_is_shown_and_uncounted(tmp_path):
    text, reader = read_file(tmp_path, [ext(100, "one"), ext(103, "four")], [ext(101, "two"), ext(104, "five")])
    assert text.splitlines()[-3:] == ["netconsole: record 101 arrived late (counted lost before)",
                                      "[  812.000101] two", "[  812.000104] five"]
    assert reader.summary()["lost_ranges"] == [[102, 102]] and reader.summary()["records"] == 4


def test_a_forged_record_read_before_the_real_one_does_not_make_a_gap(tmp_path):
    dump = w_dump("nfsd", first=5001)
    forged = ext(5006, "task:fake            state:S stack:0     pid:999   ppid:1      flags:0x0")
    text, reader = read_file(tmp_path, dump[:5] + [forged], dump[5:])
    assert "netconsole: 2 different records with sequence 5006 (forged, or from another sender)" in text
    assert tasks_of(text)[812]["state"] == "D"
    summary = reader.summary()
    assert summary["lost"] == 0 and summary["records"] == 13 and summary["foreign"] == 1


def test_a_flood_of_forged_datagrams_keeps_every_real_record_and_stays_fast(tmp_path):
    forged = [rsyslog("6,%d,%d,-;junk %d" % ((i * 7919) % 100003 * 40009, (i * 104729) % 999983, i))
              for i in range(3000)]
    dump = w_dump("nfsd", first=5001)
    lines = [line for pair in zip(forged, dump * 300) for line in pair]
    began = time.perf_counter()
    text, reader = read_file(tmp_path, lines[:4000], lines[4000:])
    assert time.perf_counter() - began < 10
    assert tasks_of(text)[812]["state"] == "D"
    summary = reader.summary()
    assert summary["records"] == 13 and summary["lost"] == 0
    assert summary["foreign"] + summary["records"] + summary["duplicates"] == 6000


def test_another_host_behind_the_same_address_is_flagged_not_merged():
    mine = [ext(5000 + i, "mine %d" % i, ts_us=900000000 + i * 1000) for i in range(20)]
    other = [ext(70000 + i, "other %d" % i, ts_us=30000000 + i * 1000) for i in range(5)]
    a, _ignored = nc_record.assemble([nc_record.parse_line(line) for pair in zip(mine, other) for line in pair]
                                     + [nc_record.parse_line(line) for line in mine[5:]])
    assert a.records == 20 and a.lost == [] and a.foreign == 5 and a.boots == 0
    assert ("netconsole: 5 record(s) do not fit this host's sequence (forged, or from another sender): "
            "sequence 70000-70004") in a.lines()


def test_after_seq_counts_the_number_read_before_as_a_duplicate():
    a, _ignored = nc_record.assemble([nc_record.parse_line(ext(50, "again")), nc_record.parse_line(ext(51, "new"))],
                                     after_seq=50)
    assert a.duplicates == 1 and a.records == 1 and a.lines() == ["[  812.000051] new"] and a.foreign == 0


# ------------------------------------------------------------------------------------------------------ fragments
def _never_completed(count):
    fragments = [T + "6,2,200,-,ncfrag=%d/99999999;%s\n" % (i * 8, "A" * 8) for i in range(count)]
    return [T + "6,1,100,-;hello\n"] + fragments


def _read_seconds(tmp_path, lines):
    path = tmp_path / ("%d.log" % len(lines))
    path.write_text("".join(lines))
    began = time.perf_counter()
    oob_netconsole.NetconsoleFile(str(path)).read(0)
    return time.perf_counter() - began


def test_fragments_of_a_record_that_never_completes_are_cut_and_said(tmp_path):
    path = tmp_path / "h.log"
    path.write_text("".join(_never_completed(5000)))
    reader = oob_netconsole.NetconsoleFile(str(path))
    text, offset = reader.read(0)
    assert offset == path.stat().st_size  # not left pending: it can never complete
    lines = text.splitlines()
    assert lines[0] == "[    0.000100] hello"
    assert "netconsole: record 2: 4936 fragment(s) left out (over 64 fragments or 16384 bytes)" in lines
    assert "netconsole: record 2 incomplete (512 of 99999999 bytes arrived)" in lines
    assert reader.summary()["incomplete"] == [2]


def test_reading_pending_fragments_is_linear(tmp_path):
    # the best of three runs each, so that a busy machine (the suite's QEMU guests) does not decide; the quadratic
    # reader took 9.8 s for 48,000 fragments, about 64 times its time for 6,000 at four times the size
    small = min(_read_seconds(tmp_path, _never_completed(6000)) for _round in range(3))
    large = min(_read_seconds(tmp_path, _never_completed(24000)) for _round in range(3))
    assert large <= max(small, 0.05) * 10, "%.3f s for 6000 fragments, %.3f s for 24000" % (small, large)


def test_a_record_still_arriving_is_left_for_the_next_read(tmp_path):
    path = tmp_path / "h.log"
    first = T + "6,12,5,-,ncfrag=0/12;hello \n"
    path.write_text(T + "6,11,4,-;before\n" + first + T + "6,10,3,-;late\n")
    reader = oob_netconsole.NetconsoleFile(str(path))
    text, offset = reader.read(0)
    assert text.splitlines() == ["[    0.000003] late", "[    0.000004] before"]
    assert offset == len(T + "6,11,4,-;before\n")
    with open(path, "a") as handle:
        handle.write(T + "6,12,5,-,ncfrag=6/12;world\n")
    text, _ignored = reader.read(offset)
    assert text.splitlines() == ["[    0.000005] hello world"]
    assert reader.summary()["records"] == 3 and reader.summary()["lost"] == 0
