"""Method ipmi for real: ipmitool (run by AnsibleModule.run_command) -> RMCP+ -> ipmi_sim (tests/lab/ipmi_sim.py)
-> chassis control program -> QMP ``inject-nmi`` -> a QEMU of our own.

Two QEMUs: SeaBIOS with no disk (about 1 s; QEMU answers inject-nmi with ``{}``, which the chassis control program
logs) and, once, a Debian 12 kernel (from the lab's package cache, else fetched with ``apt-get download``) waiting
for a root disk that never comes (about 7 s under TCG), whose "Uhhuh. NMI received for unknown reason" line on the
serial console shows the NMI reached Linux.

Needs the Debian packages qemu-system-x86, openipmi, ipmitool, libopenipmi-dev and gcc; run with
``pytest tests/oob/test_ipmi_sim.py``.
"""
from __future__ import annotations

import ctypes
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.testing import patch_module_args  # noqa: E402
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob  # noqa: E402
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import ipmi as oob_ipmi  # noqa: E402
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob.qmp import QMPClient  # noqa: E402
from ansible_collections.magic_sysrq.fleet.plugins.modules import oob_nmi  # noqa: E402
from tests.lab.config import cache_dir  # noqa: E402
from tests.lab.ipmi_sim import IpmiSim  # noqa: E402

QEMU = os.environ.get("MAGIC_SYSRQ_QEMU", "qemu-system-x86_64")


def _pdeathsig() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


@pytest.fixture
def module():
    """A real AnsibleModule: its run_command runs ipmitool."""
    with patch_module_args({}):
        return AnsibleModule(argument_spec={})


class Qemu:
    """One QEMU of our own (TCG, no display, no default devices) with a QMP socket; killed at the end."""

    def __init__(self, workdir: Path, *extra: str, name: str = "oob-ipmi"):
        self.qmp = workdir / f"{name}.qmp"
        self.serial = workdir / f"{name}.serial.log"
        cmd = [QEMU, "-name", name, "-machine", "pc", "-accel", "tcg", "-display", "none", "-nodefaults",
               "-no-user-config", "-m", "256", "-qmp", f"unix:{self.qmp},server=on,wait=off",
               "-chardev", f"file,id=ser0,path={self.serial}", "-serial", "chardev:ser0", *extra]
        self.log = open(workdir / f"{name}.qemu.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=_pdeathsig)
        deadline = time.monotonic() + 20
        while not self._accepts():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("QEMU did not open its QMP socket: %s"
                                   % (workdir / f"{name}.qemu.log").read_text(errors="replace"))
            time.sleep(0.1)

    def _accepts(self) -> bool:
        if not self.qmp.exists():
            return False
        with socket.socket(socket.AF_UNIX) as sock:
            try:
                sock.connect(str(self.qmp))
            except OSError:
                return False
            sock.recv(4096)  # the greeting; closing frees the monitor for the next client
        return True

    def status(self) -> str:
        with QMPClient(path=str(self.qmp), timeout=5) as qmp:
            return qmp.command("query-status")["status"]

    def serial_text(self) -> str:
        try:
            return self.serial.read_bytes().decode(errors="replace").replace("\r", "")
        except OSError:
            return ""

    def wait_serial(self, text: str, timeout: float) -> float:
        start = time.monotonic()
        while text not in self.serial_text():
            if self.proc.poll() is not None or time.monotonic() - start > timeout:
                raise AssertionError("%r not on the serial console within %ss; tail:\n%s"
                                     % (text, timeout, "\n".join(self.serial_text().splitlines()[-20:])))
            time.sleep(0.2)
        return time.monotonic() - start

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.log.close()


@pytest.fixture
def firmware(tmp_path):
    """QEMU in SeaBIOS with no disk: the cheapest guest that runs and takes an NMI."""
    qemu = Qemu(tmp_path)
    yield qemu
    qemu.stop()


def _diag_entries(bmc):
    return [e for e in bmc.log() if e["op"] == "set" and e["argv"][2:4] == ["diag", "1"]]


# ------------------------------------------------------------------------------------------------ delivery
def test_power_status_and_diag_reach_qemu(module, firmware):
    with IpmiSim(firmware.qmp) as bmc:
        status = oob_ipmi.power_status(module, bmc.target)
        assert status["response"]["power"] == "on"

        result = oob_ipmi.inject_nmi(module, bmc.target)
        assert result["response"]["stdout"] == "Chassis Power Control: Diag"
        assert result["response"]["power_before"] == "on"
        assert result["request"]["argv"][-3:] == ["chassis", "power", "diag"]
        assert bmc.password not in " ".join(result["request"]["argv"])

        diag = _diag_entries(bmc)
        assert len(diag) == 1, bmc.log()
        assert diag[0]["qmp"] == [{"execute": "inject-nmi", "reply": {"return": {}}}]
        gets = [e for e in bmc.log() if e["op"] == "get"]
        assert gets and gets[0]["output"] == ["power:1"] and gets[0]["status"] == "running"
    assert firmware.status() == "running"


def test_power_off_is_reported_and_refused(module, firmware):
    with IpmiSim(firmware.qmp) as bmc:
        firmware.stop()
        assert oob_ipmi.power_status(module, bmc.target)["response"]["power"] == "off"
        with pytest.raises(oob.OobError, match=r"127\.0\.0\.1:\d+ says the host is powered off"):
            oob_ipmi.inject_nmi(module, bmc.target)
        assert _diag_entries(bmc) == []


def test_ipmi_15_lan_interface(module, firmware):
    with IpmiSim(firmware.qmp) as bmc:
        target = dict(bmc.target, interface="lan", cipher_suite=None)
        oob_ipmi.inject_nmi(module, target)
        assert _diag_entries(bmc)[0]["qmp"][0]["reply"] == {"return": {}}


def test_password_file(module, firmware, tmp_path):
    with IpmiSim(firmware.qmp) as bmc:
        secret = tmp_path / "bmc.pw"
        secret.write_text(bmc.password + "\n")
        target = dict(bmc.target, password=None, password_file=str(secret))
        oob_ipmi.inject_nmi(module, target)
        assert len(_diag_entries(bmc)) == 1


def test_oob_nmi_module_through_the_bmc(firmware, capsys, monkeypatch):
    """The module: option parsing (ARGUMENT_SPEC), no_log on the password, the result."""
    from ansible.module_utils import _internal
    monkeypatch.setattr(_internal, "is_controller", False)
    with IpmiSim(firmware.qmp) as bmc:
        ipmi = {k: v for k, v in bmc.target.items() if v is not None}
        with patch_module_args({"method": "ipmi", "ipmi": ipmi, "allow_crash": True}):
            with pytest.raises(SystemExit):
                oob_nmi.main()
        out = capsys.readouterr().out
        result = json.loads(out)
        assert result["changed"] is True and not result.get("failed"), result
        assert result["request"]["command"] == "chassis power diag"
        assert result["response"]["stdout"] == "Chassis Power Control: Diag"
        assert bmc.password not in out
        assert len(_diag_entries(bmc)) == 1


# ------------------------------------------------------------------------------- ipmitool's real refusals
def test_real_errors_say_what_to_check(module, firmware):
    with IpmiSim(firmware.qmp) as bmc:
        cases = [
            (dict(password="wrong-password"), r"refused the password of user 'admin'"),
            (dict(username="nobody"), r"does not know user 'nobody'"),
            (dict(interface="lan", cipher_suite=None, password="wrong-password"), r"refused the IPMI 1\.5 session"),
            (dict(cipher_suite=17), r"does not offer cipher suite 17"),
            (dict(privilege_level="user"), r"user 'admin' at privilege user may not run chassis power diag"),
            (dict(port=bmc.port + 1 if bmc.port < 65535 else bmc.port - 1, timeout=1, retries=1),
             r"no IPMI answer from 127\.0\.0\.1:\d+ \(UDP\)"),
        ]
        for change, message in cases:
            target = dict(bmc.target, **change)
            with pytest.raises(oob.OobError, match=message) as info:
                oob_ipmi.inject_nmi(module, target)
            assert bmc.password not in str(info.value)
        assert _diag_entries(bmc) == []


def test_stock_ipmi_sim_refuses_diag(module, firmware):
    """Without the loadlib module ipmi_sim answers directive 4 with 0xcc, like a BMC without the feature."""
    with IpmiSim(firmware.qmp, diag=False) as bmc:
        with pytest.raises(oob.OobError, match=r"refused chassis power diag: it does not implement the diagnostic "
                                               r"interrupt.*Invalid data field in request"):
            oob_ipmi.inject_nmi(module, bmc.target)
        assert _diag_entries(bmc) == []


# ------------------------------------------------------------------------------------------- a real kernel
def _debian12_kernel_deb() -> Path:
    """Debian 12's kernel package: from the package cache the lab's image build keeps, else fetched with
    `apt-get download` (this machine is Debian 12) into the lab cache, so that the test runs without that cache."""
    debs = sorted(glob.glob(str(cache_dir() / "debs-bookworm" / "linux-image-*-amd64_*.deb")))
    if debs:
        return Path(debs[-1])
    where = cache_dir() / "oob-kernel"
    debs = sorted(where.glob("linux-image-*-amd64_*.deb"))
    if debs:
        return debs[-1]
    release = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    if "VERSION_CODENAME=bookworm" not in release:
        pytest.fail("no Debian 12 kernel package in %s, and this machine is not Debian 12, so apt-get cannot "
                    "fetch one: build the lab images first (python -m tests.lab build deb12)"
                    % (cache_dir() / "debs-bookworm"))
    depends = subprocess.run(["apt-cache", "depends", "linux-image-amd64"], capture_output=True, text=True,
                             check=False).stdout
    names = [ln.split(":", 1)[1].strip() for ln in depends.splitlines()
             if ln.strip().startswith("Depends:") and "linux-image-" in ln]
    if not names:
        pytest.fail("apt-cache depends linux-image-amd64 names no kernel package (run apt-get update): %s" % depends)
    where.mkdir(parents=True, exist_ok=True)
    got = subprocess.run(["apt-get", "download", names[0]], cwd=where, capture_output=True, text=True, timeout=600,
                         check=False)
    debs = sorted(where.glob("linux-image-*-amd64_*.deb"))
    if got.returncode != 0 or not debs:
        pytest.fail("apt-get download %s failed (exit %s): %s" % (names[0], got.returncode, got.stderr[-2000:]))
    return debs[-1]


@pytest.fixture(scope="module")
def debian_kernel(tmp_path_factory):
    """vmlinuz of Debian 12's kernel, unpacked from its package."""
    deb = _debian12_kernel_deb()
    out = tmp_path_factory.mktemp("kernel")
    subprocess.run("dpkg-deb --fsys-tarfile %s | tar -x -C %s --wildcards './boot/vmlinuz-*'" % (deb, out),
                   shell=True, check=True)
    return next((out / "boot").glob("vmlinuz-*"))


def test_diag_reaches_a_linux_kernel(module, tmp_path, debian_kernel):
    # No disk: the kernel waits for /dev/vda forever, alive, with its NMI handler installed.
    qemu = Qemu(tmp_path, "-kernel", str(debian_kernel), "-append", "console=ttyS0 root=/dev/vda rootwait",
                name="oob-ipmi-kernel")
    try:
        boot = qemu.wait_serial("Waiting for root device", timeout=120)
        with IpmiSim(qemu.qmp) as bmc:
            oob_ipmi.inject_nmi(module, bmc.target)
            qemu.wait_serial("NMI received for unknown reason", timeout=30)
            assert _diag_entries(bmc)[0]["qmp"] == [{"execute": "inject-nmi", "reply": {"return": {}}}]
        nmi_lines = [line for line in qemu.serial_text().splitlines() if "NMI" in line]
        print("kernel up in %.1fs; serial: %s" % (boot, nmi_lines[-2:]))
    finally:
        qemu.stop()
