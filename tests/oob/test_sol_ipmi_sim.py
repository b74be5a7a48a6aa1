"""Method sol, the wire: ipmitool (in a pseudo-terminal) -> RMCP+ SOL -> Debian's ipmi_sim -> telnet -> a telnet
server of ours standing for the host's serial port, which records every byte and answers a key the way the kernel's
serial SysRq does. It checks the exact bytes the serial port gets: IAC BREAK (255 243) and then the key, one
carriage return on its own before a second key, nothing after the session closes; the held-session refusal, the
takeover, and that the BMC is free after each session. The real kernel behind the same path is in
test_bmc_real.py.

Needs the Debian packages openipmi (ipmi_sim) and ipmitool."""
from __future__ import annotations

import socket
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.testing import patch_module_args  # noqa: E402
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob  # noqa: E402
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import sol as oob_sol  # noqa: E402
from tests.lab.ipmi_sim import IpmiSim, missing_tools  # noqa: E402

IAC_BREAK = b"\xff\xf3"


class SerialPort:
    """A telnet server on 127.0.0.1: records what arrives, answers BREAK+key with a line like the kernel's."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]
        self.received = b""
        self.stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                conn = self.sock.accept()[0]
            except OSError:
                continue
            conn.settimeout(0.2)
            armed = False
            while not self.stop:
                try:
                    data = conn.recv(1024)
                except socket.timeout:
                    continue
                except OSError:
                    break
                if not data:
                    break
                self.received += data
                i = 0
                while i < len(data):
                    if data[i] == 0xff and i + 1 < len(data):
                        if data[i + 1] == 0xf3:                 # IAC BREAK
                            armed = True
                        i += 3 if data[i + 1] in (0xfb, 0xfc, 0xfd, 0xfe) else 2
                        continue
                    if armed:                                    # the key after the break
                        armed = False
                        conn.sendall(("[  1.0] sysrq: key %s\r\n" % chr(data[i])).encode())
                    i += 1
            conn.close()

    def payload(self):
        """What arrived after the telnet option negotiation (IAC DO/WILL/... triples dropped)."""
        data, out, i = self.received, b"", 0
        while i < len(data):
            if data[i] == 0xff and i + 1 < len(data) and data[i + 1] in (0xfb, 0xfc, 0xfd, 0xfe):
                i += 3
                continue
            out += data[i:i + 1]
            i += 1
        return out

    def close(self):
        self.stop = True
        self.sock.close()


@pytest.fixture
def module():
    with patch_module_args({}):
        return AnsibleModule(argument_spec={})


@pytest.fixture
def bmc():
    missing = missing_tools(diag=False)
    if missing:
        pytest.fail("the SOL harness needs the Debian package(s): %s" % ", ".join(missing))
    port = SerialPort()
    with IpmiSim("/nonexistent.qmp", diag=False, sol="telnet:127.0.0.1:%d" % port.port) as sim:
        sim.serial = port
        yield sim
    port.close()


def _target(bmc, **change):
    target = {k: v for k, v in bmc.target.items() if v is not None}
    target.update(change)
    return target


def _wait(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met within %ss" % timeout
        time.sleep(0.1)


def test_break_then_key_and_a_lone_cr_before_the_next(bmc, module):
    with oob_sol.console(module, _target(bmc)) as session:
        start = session.position()
        sent = session.send_sysrq(module, None, ["9", "w"])
        session.capture(20, until=lambda t: "sysrq: key w" in t)  # ends when the w arrives
        text = session.read(start)[0]                       # everything since before the first key
        assert "sysrq: key 9" in text and "sysrq: key w" in text, text
    assert [s["request"]["send"] for s in sent] == [["break", "9"], ["break", "w"]]
    assert session.left == "escape"                         # ipmitool left on ~. (not killed)
    _wait(lambda: bmc.serial.payload().endswith(b"w\r"))
    time.sleep(0.5)
    # the escapes (~B, ~.) never reach the host: a break, the key, and one lone CR before the next key or ~.
    assert bmc.serial.payload() == IAC_BREAK + b"9\r" + IAC_BREAK + b"w\r"


def test_the_session_is_free_after_close(bmc, module):
    oob_sol.console(module, _target(bmc)).close()
    again = oob_sol.console(module, _target(bmc))
    assert again.took_over is False
    again.close()


def test_held_by_someone_else_then_takeover(bmc, module):
    other = oob_sol.console(module, _target(bmc))
    try:
        with pytest.raises(oob.OobError, match=r"already has an SOL session open for someone else .*Nothing was "
                                               r"sent.*sol.takeover=true") as info:
            oob_sol.console(module, _target(bmc))
        assert bmc.password not in str(info.value)
        mine = oob_sol.console(module, _target(bmc, takeover=True))
        assert mine.took_over is True
        start = mine.position()
        mine.send_sysrq(module, None, ["h"])
        mine.capture(20, until=lambda t: "sysrq: key h" in t)  # ends when the h arrives
        assert "sysrq: key h" in mine.read(start)[0]
        mine.close()
    finally:
        other.close()


def test_wrong_password_and_no_bmc(bmc, module):
    with pytest.raises(oob.OobError, match=r"refused the password of user 'admin'"):
        oob_sol.console(module, _target(bmc, password="wrong-password"))
    free = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    free.bind(("127.0.0.1", 0))
    port = free.getsockname()[1]
    free.close()
    with pytest.raises(oob.OobError, match=r"no IPMI answer from 127\.0\.0\.1:%d" % port):
        oob_sol.console(module, _target(bmc, port=port, timeout=1, retries=1))
