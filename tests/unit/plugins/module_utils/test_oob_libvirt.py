"""Method libvirt, through the libvirt Python binding's own test driver (no daemon, no QEMU).

What the test driver does (libvirt 9.0): ``test:///default`` has one running domain, ``test``; it implements
virDomainSendKey (it translates the keycodes through the codeset and rejects invalid ones: "invalid keycode 9999 of
linux codeset") and virDomainInjectNMI (returns 0), and both refuse an inactive domain ("domain is not running").
It does not refuse a paused domain, which is why the method checks the state itself. ``test:///default`` keeps
its state for the whole process, so these tests never change it; a custom node file (``test:///path.xml``) gives
domains in other states.
"""

from __future__ import annotations

import json
import socket

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import libvirt as oob_libvirt

DEFAULT = {"uri": "test:///default", "domain": "test"}
TEST_UUID = "6695eb01-f6a4-8304-79aa-97f2502e193f"  # the test driver's fixed UUID for domain "test"

NODE = """<node>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>off</name><memory>65536</memory><os><type>hvm</type></os><test:runstate>5</test:runstate>
  </domain>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>paused</name><memory>65536</memory><os><type>hvm</type></os><test:runstate>3</test:runstate>
  </domain>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>crashed</name><memory>65536</memory><os><type>hvm</type></os><test:runstate>6</test:runstate>
  </domain>
</node>
"""


@pytest.fixture
def libvirt():
    if oob_libvirt.libvirt is None:
        pytest.fail("the libvirt Python binding is not installed: .venv/bin/pip install libvirt-python==12.8.0 "
                    "(builds against the Debian packages libvirt-dev and pkg-config)")
    return oob_libvirt.libvirt


@pytest.fixture
def sendkey_calls(libvirt, monkeypatch):
    """Every virDomain.sendKey call (arguments and the driver's answer), still made on the test driver."""
    calls = []
    real = libvirt.virDomain.sendKey

    def recording(self, codeset, holdtime, keycodes, nkeycodes, flags=0):
        answer = real(self, codeset, holdtime, keycodes, nkeycodes, flags)
        calls.append({"domain": self.name(), "codeset": codeset, "holdtime": holdtime, "keycodes": list(keycodes),
                      "nkeycodes": nkeycodes, "flags": flags, "answer": answer})
        return answer

    monkeypatch.setattr(libvirt.virDomain, "sendKey", recording)
    return calls


@pytest.fixture
def node(tmp_path, libvirt):
    path = tmp_path / "node.xml"
    path.write_text(NODE)
    return "test://" + str(path)


# ------------------------------------------------------------------------------------------------- SysRq keys
def test_send_sysrq_presses_alt_sysrq_key_with_linux_keycodes(sendkey_calls, libvirt):
    sent = oob_libvirt.send_sysrq(None, DEFAULT, ["w", "t", "9"], 150)
    assert libvirt.VIR_KEYCODE_SET_LINUX == 0
    assert [c["keycodes"] for c in sendkey_calls] == [[56, 99, 17], [56, 99, 20], [56, 99, 10]]
    assert {(c["codeset"], c["holdtime"], c["nkeycodes"], c["flags"], c["answer"]) for c in sendkey_calls} == \
        {(libvirt.VIR_KEYCODE_SET_LINUX, 150, 3, 0, 0)}
    assert [s["key"] for s in sent] == ["w", "t", "9"]
    assert sent[0]["request"] == {"call": "virDomainSendKey", "uri": "test:///default", "domain": "test",
                                  "codeset": "linux", "keycodes": [56, 99, 17],
                                  "keys": ["KEY_LEFTALT", "KEY_SYSRQ", "KEY_W"], "holdtime": 150}
    assert sent[2]["request"]["keys"] == ["KEY_LEFTALT", "KEY_SYSRQ", "KEY_9"]


def test_the_test_driver_really_checks_keycodes(libvirt):
    """So a 0 from it means the chord's keycodes exist in the Linux codeset."""
    conn = libvirt.open("test:///default")
    try:
        with pytest.raises(libvirt.libvirtError, match="invalid keycode 9999 of linux codeset"):
            conn.lookupByName("test").sendKey(libvirt.VIR_KEYCODE_SET_LINUX, 100, [56, 99, 9999], 3, 0)
    finally:
        conn.close()


def test_domain_by_uuid(sendkey_calls):
    sent = oob_libvirt.send_sysrq(None, {"uri": "test:///default", "domain": TEST_UUID}, ["h"], 100)
    assert sent[0]["request"]["domain"] == "test" and sendkey_calls[0]["keycodes"] == [56, 99, 35]


def test_a_key_without_a_keycode_is_refused_before_connecting(sendkey_calls):
    with pytest.raises(oob.OobError, match=r"SysRq key 'R' has no keyboard keycode"):
        oob_libvirt.send_sysrq(None, {"uri": "bogus:///nowhere", "domain": "test"}, ["w", "R"], 100)
    assert sendkey_calls == []


def test_driver_error_on_send_key_is_reported(libvirt, monkeypatch):
    real = libvirt.virDomain.sendKey
    monkeypatch.setattr(libvirt.virDomain, "sendKey",
                        lambda self, codeset, *rest: real(self, 99, *rest))   # a codeset the driver rejects
    with pytest.raises(oob.OobError, match=r"virDomainSendKey \(Alt\+SysRq\+w\) to domain test on test:///default "
                                           r"failed: .*Unsupported codeset '99'"):
        oob_libvirt.send_sysrq(None, DEFAULT, ["w"], 100)


# ------------------------------------------------------------------------------------------------------- NMI
def test_inject_nmi(libvirt):
    result = oob_libvirt.inject_nmi(None, DEFAULT)
    assert result == {"request": {"call": "virDomainInjectNMI", "uri": "test:///default", "domain": "test"},
                      "response": {"return": 0, "state_before": "running", "uuid": TEST_UUID}}
    json.dumps(result)


# ------------------------------------------------------------------------------------------------- refusals
def test_no_such_domain_names_the_ones_there(libvirt):
    with pytest.raises(oob.OobError, match=r"libvirt at test:///default has no domain 'web1' \(Domain not found\); "
                                           r"domains there: test$"):
        oob_libvirt.inject_nmi(None, {"uri": "test:///default", "domain": "web1"})


def test_unknown_uuid(libvirt):
    with pytest.raises(oob.OobError, match=r"no domain '11111111-2222-3333-4444-555555555555'"):
        oob_libvirt.inject_nmi(None, {"uri": "test:///default", "domain": "11111111-2222-3333-4444-555555555555"})


@pytest.mark.parametrize("domain, state, advice", [
    ("off", "shutoff", "start it, or look at why it stopped"),
    ("paused", "paused", r"resume it \(virsh resume paused\)"),
    ("crashed", "crashed", "start it"),
])
def test_domain_not_running(node, domain, state, advice, sendkey_calls):
    with pytest.raises(oob.OobError, match=r"domain %s on %s is %s, not running: its kernel cannot act on an NMI; %s"
                                           % (domain, node.replace(".", r"\."), state, advice)):
        oob_libvirt.inject_nmi(None, {"uri": node, "domain": domain})
    with pytest.raises(oob.OobError, match=r"is %s, not running: its kernel cannot act on a key" % state):
        oob_libvirt.send_sysrq(None, {"uri": node, "domain": domain}, ["w"], 100)
    assert sendkey_calls == []


def test_connection_refused(tmp_path, libvirt):
    path = tmp_path / "libvirt-sock"
    with socket.socket(socket.AF_UNIX) as sock:   # bound, never listening: connect() is refused
        sock.bind(str(path))
        uri = "qemu+unix:///system?socket=%s" % path
        with pytest.raises(oob.OobError, match=r"cannot connect to libvirt at qemu\+unix:///system\?socket=.*: "
                                               r"Failed to connect socket to '.*libvirt-sock': Connection refused; "
                                               r"check that libvirtd \(or virtqemud\) runs there"):
            oob_libvirt.inject_nmi(None, {"uri": uri, "domain": "web1"})


def test_no_daemon_socket(tmp_path, libvirt):
    uri = "qemu+unix:///system?socket=%s" % (tmp_path / "absent-sock")
    with pytest.raises(oob.OobError, match=r"Failed to connect socket to '.*absent-sock': No such file or directory"):
        oob_libvirt.send_sysrq(None, {"uri": uri, "domain": "web1"}, ["w"], 100)


def test_domain_is_required():
    with pytest.raises(oob.OobError, match=r"method libvirt needs libvirt\.domain"):
        oob_libvirt.inject_nmi(None, {"uri": "test:///default"})


def test_without_the_binding(monkeypatch):
    monkeypatch.setattr(oob_libvirt, "libvirt", None)
    with pytest.raises(oob.OobError, match=r"needs the libvirt Python binding .*libvirt-python"):
        oob_libvirt.inject_nmi(None, DEFAULT)
    with pytest.raises(oob.OobError, match=r"libvirt-python"):
        oob_libvirt.send_sysrq(None, DEFAULT, ["w"], 100)


# ------------------------------------------------------------------------------------------- options and docs
def test_argument_spec(capsys):
    with patch_module_args({"libvirt": {"domain": "web1"}}):
        assert AnsibleModule(argument_spec=oob_libvirt.ARGUMENT_SPEC).params["libvirt"] == {
            "uri": "qemu:///system", "domain": "web1"}
    with patch_module_args({"libvirt": {"uri": "qemu:///system"}}):
        with pytest.raises(SystemExit):
            AnsibleModule(argument_spec=oob_libvirt.ARGUMENT_SPEC)
    assert "missing required arguments: domain found in libvirt" in capsys.readouterr().out
