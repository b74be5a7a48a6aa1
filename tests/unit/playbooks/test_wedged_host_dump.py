"""wedged_host_dump.yml's wiring on the controller, with hosts whose SSH is dead (a closed port) and a QMP speaker
standing in for each QEMU (it prints a dump on the console file when Alt+SysRq+w arrives). The real kernels, the
real QEMU and the real refusal by the mask are in tests/realkernel/test_oob.py."""
from __future__ import annotations

import json
import os

import pytest

from .test_incident_playbooks import _closed_port, only_dir, play

W_DUMP = ("[  812.120000] sysrq: Show Blocked State\r\n"
          "[  812.121000] task:dd              state:D stack:0     pid:812   ppid:790    flags:0x00004002\r\n"
          "[  812.121100] Call Trace:\r\n[  812.121200]  <TASK>\r\n"
          "[  812.121300]  __schedule+0x34d/0x9e0\r\n[  812.121400]  schedule+0x5a/0xd0\r\n"
          "[  812.121500]  percpu_rwsem_wait+0x127/0x150\r\n[  812.121600]  </TASK>\r\n")
LOGLEVEL = "[  812.100000] sysrq: Changing Loglevel\r\n[  812.100100] sysrq: Loglevel set to 9\r\n"
REFUSED = "[  812.120000] sysrq: This sysrq operation is disabled.\r\n"


@pytest.fixture
def fleet(tmp_path, speaker):
    """Two wedged guests: web1 (mask 186) prints a dump, web2 (mask 176) refuses."""
    port = _closed_port()
    consoles = {h: tmp_path / ("%s.serial" % h) for h in ("web1", "web2")}
    for path in consoles.values():
        path.write_text("boot\r\n")
    speakers = {
        "web1": speaker(console=str(consoles["web1"]), prints={"9": LOGLEVEL, "w": W_DUMP}),
        "web2": speaker(console=str(consoles["web2"]), prints={"w": REFUSED}),
    }
    lines = ["[fleet]"]
    for host, mask in (("web1", 186), ("web2", 176)):
        lines.append(
            "%s ansible_host=127.0.0.1 ansible_port=%d ansible_user=root ansible_ssh_common_args='-o ConnectTimeout=3' "
            "oob_method=qmp oob_qmp=\"{'socket': '%s'}\" oob_console=\"{'path': '%s'}\" oob_mask=%d"
            % (host, port, speakers[host].path, consoles[host], mask))
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("\n".join(lines) + "\n")
    return {"inventory": str(inventory), "speakers": speakers, "consoles": consoles}


def test_wedged_hosts_go_out_of_band_and_the_report_says_so(fleet, tmp_path):
    root = tmp_path / "dumps"
    rc, out = play(fleet["inventory"], "wedged_host_dump.yml", "-e", "sysrq_dump_root=%s" % root,
                   "-e", "wedged_probe_timeout=10",
                   # oob_sysrq on the host whose mask refuses w: before sending, and from the console after
                   allow_warnings=("refuses keyboard SysRq", "kernel.sysrq mask refused 1 key"))
    assert rc == 0, out
    where = only_dir(str(root))
    oob = json.load(open(os.path.join(where, "oob.json"), encoding="utf-8"))
    assert oob["web1"]["path"] == oob["web2"]["path"] == "out-of-band"
    assert oob["web1"]["refused"] is False and oob["web2"]["refused"] is True
    assert oob["web2"]["refused_by_mask"] == ["w"] and oob["web1"]["refused_by_mask"] == []
    keys = {h: [c["arguments"]["keys"][-1]["data"] for c in s.commands if c["execute"] == "send-key"]
            for h, s in fleet["speakers"].items()}
    assert keys == {"web1": ["9", "w"], "web2": ["w"]}   # 9 only where the mask allows log_level
    summary = json.load(open(os.path.join(where, "summary.json"), encoding="utf-8"))
    assert summary["blocked_per_host"] == {"web1": 1, "web2": 0}
    assert summary["groups"][0]["hosts"] == ["web1"] and summary["groups"][0]["comms"] == ["dd"]
    tasks = json.load(open(os.path.join(where, "web1", "tasks.json"), encoding="utf-8"))
    assert tasks[0]["frames"] == ["__schedule", "schedule", "percpu_rwsem_wait"]
    assert "boot" not in open(os.path.join(where, "web1", "output.txt"), encoding="utf-8").read()
    assert "refuses keyboard SysRq" in out


def test_nmi_needs_confirm_before_any_host(fleet):
    rc, out = play(fleet["inventory"], "wedged_host_dump.yml", "-e", "nmi=true")
    assert rc != 0 and "add -e confirm=yes" in out
    assert all(not s.commands for s in fleet["speakers"].values())


def test_destructive_key_refused_before_any_host(fleet):
    rc, out = play(fleet["inventory"], "wedged_host_dump.yml", "-e", "key=b")
    assert rc != 0 and "key=b is not allowed in wedged_host_dump.yml" in out
    assert all(not s.commands for s in fleet["speakers"].values())


def test_wedged_inband_false_on_the_command_line(tmp_path):
    # A host that answers (the controller itself) and -e wedged_inband=false: its in-band dump is skipped and the
    # report says so. The extra var used to clash with the registered result of the same name and fail the report.
    import sys
    inventory = tmp_path / "hosts.ini"
    inventory.write_text("here ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    root = tmp_path / "dumps"
    rc, out = play(str(inventory), "wedged_host_dump.yml", "-e", "sysrq_dump_root=%s" % root,
                   "-e", "wedged_inband=false", "-e", "wedged_probe_timeout=10")
    assert rc == 0, out
    oob = json.load(open(os.path.join(only_dir(str(root)), "oob.json"), encoding="utf-8"))
    assert oob["here"]["path"] == "skipped"
