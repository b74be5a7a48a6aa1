"""netconsole_target on a pretend host: configfs as a directory tree, `ip -j` answers as iproute2 6.1 prints them.
(The real kernel's configfs is in tests/realkernel/test_netconsole.py.)"""

from __future__ import annotations

import json
import os

import pytest

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._netconsole import configfs as nc_configfs

from ansible_collections.magic_sysrq.fleet.plugins.modules import netconsole_target

ROOT = "sys/kernel/config/netconsole"
IP = {
    ("route", "get", "10.0.2.2"): [{"dst": "10.0.2.2", "dev": "ens3", "prefsrc": "10.0.2.15", "flags": []}],
    ("route", "get", "192.0.2.50"): [{"dst": "192.0.2.50", "gateway": "10.0.2.1", "dev": "ens3",
                                      "prefsrc": "10.0.2.15", "flags": []}],
    ("route", "get", "127.0.0.1"): [{"type": "local", "dst": "127.0.0.1", "dev": "lo", "prefsrc": "127.0.0.1"}],
    ("neigh", "show", "to", "10.0.2.2", "dev", "ens3"): [{"dst": "10.0.2.2", "lladdr": "52:55:0a:00:02:02",
                                                          "state": ["REACHABLE"]}],
    ("neigh", "show", "to", "10.0.2.1", "dev", "ens3"): [{"dst": "10.0.2.1", "lladdr": "52:55:0A:00:02:01",
                                                          "state": ["STALE"]}],
}


@pytest.fixture
def fake_host(host_root, monkeypatch):
    (host_root / ROOT).mkdir(parents=True)
    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, *a, **kw: "/usr/bin/" + name)

    def run_command(self, argv, **kw):
        assert argv[:2] == ["/usr/bin/ip", "-j"], argv
        return 0, json.dumps(IP.get(tuple(argv[2:]), [])), ""
    monkeypatch.setattr(AnsibleModule, "run_command", run_command)
    # configfs removes a target's attribute files with the directory; a plain directory needs rmtree
    rmdir = os.rmdir

    def configfs_rmdir(path, *args, **kwargs):
        if not args and not kwargs and str(path).startswith(str(host_root / ROOT)):
            for name in os.listdir(path):
                os.unlink(os.path.join(path, name))
        return rmdir(path, *args, **kwargs)
    monkeypatch.setattr(nc_configfs.os, "rmdir", configfs_rmdir)
    return host_root


def _attrs(root, name):
    path = root / ROOT / name
    return {p.name: p.read_text().strip() for p in path.iterdir()}


def test_found_applied_idempotent_and_removed(fake_host, run_module):
    args = {"targets": [{"remote_ip": "10.0.2.2", "remote_port": 40000}, {"remote_ip": "192.0.2.50"}]}
    check = run_module(netconsole_target, args, check_mode=True, diff=True)
    assert check["changed"] is True and check["created"] == ["fleet-1", "fleet-2"]
    assert not (fake_host / ROOT / "fleet-1").exists()
    assert "remote_port=40000" in check["diff"]["after"]
    r = run_module(netconsole_target, args)
    assert r["found"]["fleet-1"] == {"dev_name": "ens3", "local_ip": "10.0.2.15", "next_hop": "10.0.2.2",
                                     "remote_mac": "52:55:0a:00:02:02"}
    assert r["found"]["fleet-2"]["next_hop"] == "10.0.2.1"  # off-subnet: the gateway's MAC
    assert _attrs(fake_host, "fleet-2")["remote_mac"] == "52:55:0a:00:02:01"
    assert _attrs(fake_host, "fleet-1") == {"dev_name": "ens3", "local_ip": "10.0.2.15", "remote_ip": "10.0.2.2",
                                            "remote_mac": "52:55:0a:00:02:02", "local_port": "6665",
                                            "remote_port": "40000", "extended": "1", "enabled": "1"}
    assert r["modparam"].startswith("+6665@10.0.2.15/ens3,40000@10.0.2.2/52:55:0a:00:02:02;")
    assert r["device_units"] == ["sys-subsystem-net-devices-ens3.device"]
    assert run_module(netconsole_target, args)["changed"] is False
    (fake_host / ROOT / "someone-else").mkdir()
    gone = run_module(netconsole_target, {"state": "absent"})
    assert not gone.get("failed"), gone
    assert gone["removed"] == ["fleet-1", "fleet-2"] and gone["other_targets"] == ["someone-else"]
    assert sorted(p.name for p in (fake_host / ROOT).iterdir()) == ["someone-else"]


def test_a_changed_port_rewrites_only_that_target(fake_host, run_module):
    run_module(netconsole_target, {"targets": [{"remote_ip": "10.0.2.2"}]})
    r = run_module(netconsole_target, {"targets": [{"remote_ip": "10.0.2.2", "remote_port": 7000}]})
    assert r["updated"] == {"fleet-1": ["remote_port"]}
    assert _attrs(fake_host, "fleet-1")["remote_port"] == "7000"


@pytest.mark.parametrize("target, message", [
    ({"remote_ip": "127.0.0.1"}, "this host itself"),
    ({"remote_ip": "203.0.113.9"}, "no route to the collector 203.0.113.9"),
    ({"remote_ip": "not-an-ip"}, "not an IPv4 or IPv6 address"),
])
def test_errors_name_the_problem(fake_host, run_module, target, message):
    r = run_module(netconsole_target, {"targets": [target]})
    assert r["failed"] and message in r["msg"]
    assert list((fake_host / ROOT).iterdir()) == []


# --- a failed change puts the target back ----------------------------------------------------------------------

@pytest.fixture
def refuse_port(monkeypatch):
    """Like the kernel when netpoll cannot start: writing 1 to ``enabled`` fails while the target's remote_port is
    in the returned set."""
    real = nc_configfs._write
    refused = {"7000"}

    def write(path, value):
        if os.path.basename(path) == "enabled" and str(value) == "1":
            with open(os.path.join(os.path.dirname(path), "remote_port")) as handle:
                if handle.read().strip() in refused:
                    raise nc_configfs.ConfigfsError("writing 1 to %s failed: [Errno 19] No such device" % path)
        real(path, value)
    monkeypatch.setattr(nc_configfs, "_write", write)
    return refused


def test_an_update_the_kernel_refuses_puts_the_working_target_back(fake_host, run_module, refuse_port):
    run_module(netconsole_target, {"targets": [{"remote_ip": "10.0.2.2"}]})
    before = _attrs(fake_host, "fleet-1")
    r = run_module(netconsole_target, {"targets": [{"remote_ip": "10.0.2.2", "remote_port": 7000}]})
    assert r["failed"] and "the kernel could not start the target" in r["msg"]
    assert "target fleet-1 is back as it was (its previous settings, enabled)" in r["msg"]
    assert r["changed"] is False
    assert _attrs(fake_host, "fleet-1") == before and before["enabled"] == "1" and before["remote_port"] == "6666"


def test_a_new_target_the_kernel_refuses_is_removed_again(fake_host, run_module, refuse_port):
    r = run_module(netconsole_target, {"targets": [{"remote_ip": "10.0.2.2", "remote_port": 7000}]})
    assert r["failed"] and "the new target fleet-1 was removed again" in r["msg"] and r["changed"] is False
    assert list((fake_host / ROOT).iterdir()) == []


def test_a_target_that_cannot_be_put_back_is_a_change(fake_host, run_module, refuse_port):
    run_module(netconsole_target, {"targets": [{"remote_ip": "10.0.2.2"}]})
    refuse_port.add("6666")             # the interface went away: the previous settings do not start either
    r = run_module(netconsole_target, {"targets": [{"remote_ip": "10.0.2.2", "remote_port": 7000}]})
    assert r["failed"] and "could NOT put target fleet-1 back as it was" in r["msg"]
    assert "it is left disabled" in r["msg"] and r["changed"] is True
    assert _attrs(fake_host, "fleet-1")["remote_port"] == "6666" and _attrs(fake_host, "fleet-1")["enabled"] == "0"


def test_loading_netconsole_is_a_change_even_when_a_later_step_fails(host_root, run_module, monkeypatch):
    (host_root / "sys/kernel/config").mkdir(parents=True)
    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, *a, **kw: "/usr/bin/" + name)
    ran = []

    def run_command(self, argv, **kw):
        if argv[:2] == ["/usr/bin/ip", "-j"]:
            return 0, json.dumps(IP.get(tuple(argv[2:]), [])), ""
        ran.append(argv[0])
        if argv[0] == "mount":
            return 32, "", "mount: permission denied"
        return 0, "", ""            # modprobe netconsole loads the module (configfs is not mounted)
    monkeypatch.setattr(AnsibleModule, "run_command", run_command)
    r = run_module(netconsole_target, {"targets": [{"remote_ip": "10.0.2.2"}]})
    assert ran == ["/usr/bin/modprobe", "mount"]
    assert r["failed"] and "mounting configfs on /sys/kernel/config failed" in r["msg"]
    assert r["changed"] is True         # netconsole was loaded


def test_prepare_reports_what_it_did(fake_host):
    class Module:
        def get_bin_path(self, *a, **kw):
            raise AssertionError("nothing to load: configfs targets are there")
    assert nc_configfs.prepare(Module()) is False
