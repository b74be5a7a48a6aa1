"""netconsole: targets checked and written out, collector files read back (order, fragments, loss, reboots).

The collector lines are in the form rsyslog writes them with the netconsole_collector role's template (taken from a
real rsyslogd 8.2302 run: control characters escaped as #ooo, the datagram's trailing newline dropped)."""

from __future__ import annotations

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._netconsole import record as nc_record

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._netconsole import target as nc_target

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import console as oob_console

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import netconsole as oob_netconsole

T = "2026-12-02T15:32:34.085354+00:00 "


def _assemble(lines, **kw):
    return nc_record.assemble([nc_record.parse_line(T + line) for line in lines], **kw)


# ------------------------------------------------------------------------------------------------------ targets
def test_target_defaults_and_modparam():
    t = nc_target.normalise({"remote_ip": "10.0.2.2"})
    assert t == {"name": "fleet-1", "remote_ip": "10.0.2.2", "remote_port": 6666, "local_port": 6665,
                 "local_ip": None, "dev_name": None, "remote_mac": None, "extended": True}
    t.update(local_ip="10.0.2.15", dev_name="ens3", remote_mac="52:55:0A:00:02:02")
    t["remote_mac"] = nc_target.check_mac(t["remote_mac"])
    v6 = dict(t, name="fleet-2", remote_ip="2001:db8::1", local_ip="2001:db8::2", extended=False)
    assert nc_target.modparam([t, v6]) == ("+6665@10.0.2.15/ens3,6666@10.0.2.2/52:55:0a:00:02:02;"
                                           "6665@[2001:db8::2]/ens3,6666@[2001:db8::1]/52:55:0a:00:02:02")
    assert nc_target.boot_file(t).splitlines()[0] == "dev_name=ens3"
    assert "extended=1" in nc_target.boot_file(t)


@pytest.mark.parametrize("target, message", [
    ({}, "has no remote_ip"),
    ({"remote_ip": "10.0.2.2; rm -rf /"}, "not an IPv4 or IPv6 address"),
    ({"remote_ip": "10.0.2.2", "remote_port": 70000}, "1 to 65535"),
    ({"remote_ip": "10.0.2.2", "remote_mac": "52:55:0a:00:02"}, "six hex pairs"),
    ({"remote_ip": "10.0.2.2", "dev_name": "../../etc"}, "network interface name"),
    ({"remote_ip": "10.0.2.2", "dev_name": "lo"}, "not loopback"),
    ({"remote_ip": "10.0.2.2", "name": "../x"}, "target name"),
    ({"remote_ip": "10.0.2.2", "name": "other"}, "must start with 'fleet-'"),
    ({"remote_ip": "10.0.2.2", "local_ip": "::1"}, "same IP version"),
])
def test_bad_targets_are_refused_with_what_is_allowed(target, message):
    with pytest.raises(nc_target.TargetError, match=message):
        nc_target.normalise(target)


def test_device_unit_escapes_like_systemd():
    assert nc_target.device_unit("ens3") == "sys-subsystem-net-devices-ens3.device"
    assert nc_target.device_unit("br-lan") == "sys-subsystem-net-devices-br\\x2dlan.device"


# ------------------------------------------------------------------------------------------------------ records
def test_extended_record_parsed_with_dictionary_and_kernel_escapes():
    r = nc_record.parse_line(T + r"4,105,1000300,c;tab\x09here#012 SUBSYSTEM=net#012 DEVICE=+net:eth0")
    assert (r.seq, r.level, r.ts_us, r.flags) == (105, 4, 1000300, "c")
    assert r.text == "tab\there"
    assert r.console_line() == "[    1.000300] tab\there"
    assert nc_record.parse_line(T + "5.10.0,6,7,8,-;with release").release == "5.10.0"
    plain = nc_record.parse_line(T + "plain console text")
    assert plain.seq is None and plain.console_line() == "plain console text"


def test_ordered_by_sequence_and_gaps_reported():
    a, pending = _assemble(["6,100,1000000,-;one", "6,103,1000100,-;four", "6,101,1000050,-;two (late)"])
    assert not pending
    assert a.lines() == ["[    1.000000] one", "[    1.000050] two (late)",
                         "netconsole: 1 record(s) lost: sequence 102", "[    1.000100] four"]
    assert a.summary()["lost"] == 1 and a.summary()["lost_ranges"] == [[102, 102]]


def test_gap_across_two_reads_and_duplicates():
    a = _assemble(["6,50,10,-;x", "6,50,10,-;x"], after_seq=45)[0]
    assert a.lost == [(46, 49)] and a.duplicates == 1 and a.records == 1


def test_fragments_reassembled_in_any_order():
    a, pending = _assemble(["6,12,5,-,ncfrag=6/12;world", "6,12,5,-,ncfrag=0/12;hello ", "6,13,6,-;next"])
    assert not pending and a.lines() == ["[    0.000005] hello world", "[    0.000006] next"]


def test_missing_fragment_is_said_not_hidden():
    a = _assemble(["6,12,5,-,ncfrag=0/2000;" + "a" * 1000, "6,13,6,-;next"])[0]
    assert a.incomplete == [12]
    assert a.lines()[0] == "netconsole: record 12 incomplete (1000 of 2000 bytes arrived)"


def test_fragment_still_arriving_at_the_end_is_left_pending():
    a, pending = _assemble(["6,12,5,-;done", "6,13,6,-,ncfrag=0/2000;" + "a" * 1000])
    assert a.records == 1 and len(pending) == 1


def test_reboot_starts_a_new_sequence():
    a = _assemble(["6,5000,99000000,-;old boot", "6,0,0,-;Linux version", "6,2,100,-;third"])[0]
    assert a.boots == 1 and a.lost == [(1, 1)] and a.last_seq == 2 and a.foreign == 0
    assert "netconsole: sequence restarted at 0 (the host rebooted)" in a.lines()


# ------------------------------------------------------------------------------------------------ console source
def test_netconsole_console_reads_on_from_an_offset(tmp_path):
    path = tmp_path / "10.0.2.15.log"
    path.write_text(T + "6,1,1,-;sysrq: Show Blocked State\n" + T + "6,2,2,-;task:dd")  # second line unfinished
    source = oob_console.source(None, {"netconsole": str(path)})
    assert source.kind == "netconsole"
    text, offset = source.read(0)
    assert text == "[    0.000001] sysrq: Show Blocked State\n"
    with open(path, "a") as handle:
        handle.write("   state:D\n" + T + "6,5,5,-;later\n")
    text, end = source.read(offset)
    assert text.splitlines() == ["[    0.000002] task:dd   state:D", "netconsole: 2 record(s) lost: sequence 3-4",
                                 "[    0.000005] later"]
    assert end == path.stat().st_size
    assert source.summary()["lost"] == 2 and source.summary()["records"] == 3


def test_netconsole_since(tmp_path):
    path = tmp_path / "h.log"
    path.write_text("2026-12-02T10:00:00+00:00 6,1,1,-;old\n2026-12-02T12:00:00+00:00 6,2,2,-;new\n")
    text = oob_netconsole.NetconsoleFile(str(path)).read(0, since="2026-12-02T11:00:00Z")[0]
    assert text == "[    0.000002] new\n"
    with pytest.raises(oob.OobError, match="ISO 8601"):
        oob_netconsole.parse_since("yesterday-ish")
