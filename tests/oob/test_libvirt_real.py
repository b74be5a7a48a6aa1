"""Method libvirt for real: libvirtd's QEMU driver runs the lab's Debian 12 image (a copy-on-write overlay, TCG,
domain type 'qemu') as a transient domain with its serial console in a file; oob_libvirt presses Alt+SysRq+key
through virDomainSendKey and raises an NMI through virDomainInjectNMI, and the kernel's own lines on the serial log
show each arrived.

Debian's default kernel.sysrq is 438 (log level, keyboard, sync, remount, reboot, nice; no dumps bit), so:
``h`` prints "sysrq: HELP : ..." (help has no mask bit), ``9`` prints "sysrq: Loglevel set to 9" (log-level bit),
``w`` is refused with "sysrq: This sysrq operation is disabled." (which still proves the key arrived), and the NMI
gives "Uhhuh. NMI received for unknown reason ..".

libvirtd: a running one (qemu:///system answers) is used as it is; otherwise the test starts virtlogd and libvirtd
by hand (the machine need not run systemd) and stops them at the end. When libvirtd is missing, does not start or
does not answer, every test fails saying why (with the daemon's own log): these are the only real libvirt evidence.
The guest boots through GRUB in about a minute under TCG.

Needs the Debian packages libvirt-daemon-system and qemu-system-x86, the libvirt-python binding, and the lab's
base image (python -m tests.lab build deb12). Run with ``pytest tests/oob/test_libvirt_real.py``.
"""
from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob  # noqa: E402

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import libvirt as oob_libvirt  # noqa: E402
from ansible.module_utils.testing import patch_module_args  # noqa: E402
from ansible_collections.magic_sysrq.fleet.plugins.modules import oob_nmi, oob_sysrq  # noqa: E402
from tests.lab import GUESTS, image  # noqa: E402

URI = "qemu:///system"
RUN = Path("/run/libvirt")
BOOT_TIMEOUT = float(os.environ.get("MAGIC_SYSRQ_LAB_BOOT_TIMEOUT", "300"))


def _pdeathsig() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def _socket_answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(2)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no %s)" % path


class Libvirtd:
    """A usable qemu:///system: the running daemon, or virtlogd + libvirtd started here (and stopped by stop())."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.procs: list[subprocess.Popen] = []
        self.started = False

    def _connect(self):
        try:
            conn = oob_libvirt.connect({"uri": URI})
        except oob.OobError:
            return None
        conn.close()
        return True

    def _spawn(self, name: str, log_file: Path) -> subprocess.Popen:
        env = dict(os.environ, LIBVIRT_LOG_OUTPUTS="3:file:%s" % log_file)
        out = open(self.workdir / f"{name}.out", "wb")  # noqa: SIM115
        proc = subprocess.Popen([shutil.which(name) or f"/usr/sbin/{name}"], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True, preexec_fn=_pdeathsig)
        out.close()
        self.procs.append(proc)
        return proc

    def ensure(self) -> str | None:
        """None when qemu:///system answers; otherwise why libvirtd could not be started here."""
        if self._connect():
            return None
        if not shutil.which("libvirtd") and not Path("/usr/sbin/libvirtd").exists():
            return "libvirtd is not installed (Debian: apt-get install libvirt-daemon-system)"
        self.started = True
        if not _socket_answers(RUN / "virtlogd-sock"):
            self._spawn("virtlogd", self.workdir / "virtlogd.log")
        daemon = self._spawn("libvirtd", self.workdir / "libvirtd.log")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if daemon.poll() is not None:
                return "libvirtd exited with status %s at start: %s\n%s" % (
                    daemon.returncode, _tail(self.workdir / "libvirtd.out"), _tail(self.workdir / "libvirtd.log"))
            if self._connect():
                return None
            time.sleep(0.5)
        try:
            oob_libvirt.connect({"uri": URI})
        except oob.OobError as exc:
            return "libvirtd started but %s within 30s: %s" % (exc, _tail(self.workdir / "libvirtd.log"))
        return None

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self.procs = []


@pytest.fixture(scope="module")
def libvirtd(tmp_path_factory):
    if oob_libvirt.libvirt is None:
        pytest.fail("the libvirt Python binding is not installed: .venv/bin/pip install libvirt-python==12.8.0 "
                    "(builds against the Debian packages libvirt-dev and pkg-config)")
    daemon = Libvirtd(tmp_path_factory.mktemp("libvirtd"))
    try:
        why = daemon.ensure()
        if why:
            pytest.fail("libvirtd cannot run here: %s" % why)
        yield daemon
    finally:
        daemon.stop()


def domain_xml(name: str, overlay: Path, serial: Path) -> str:
    """TCG ('qemu' domain type), pc machine (SeaBIOS, i8042 keyboard), the lab's disk, serial console to a file.
    QEMU runs as root without relabelling, so libvirt neither chowns the shared base image nor needs it readable
    by libvirt-qemu."""
    return f"""<domain type='qemu'>
  <name>{name}</name>
  <uuid>{uuid.uuid4()}</uuid>
  <memory unit='MiB'>1024</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/></features>
  <clock offset='utc'/>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>{shutil.which("qemu-system-x86_64") or "/usr/bin/qemu-system-x86_64"}</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2' cache='unsafe'/>
      <source file='{overlay}'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'><source path='{serial}'/><target port='0'/></serial>
    <console type='file'><source path='{serial}'/><target type='serial' port='0'/></console>
    <input type='keyboard' bus='ps2'/>
    <memballoon model='none'/>
  </devices>
  <seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>
</domain>
"""


class Guest:
    def __init__(self, domain, serial: Path, boot_seconds: float):
        self.domain, self.serial, self.boot_seconds = domain, serial, boot_seconds
        self.name = domain.name()

    def text(self) -> str:
        try:
            return self.serial.read_bytes().decode(errors="replace").replace("\r", "")
        except OSError:
            return ""

    def wait_for(self, needle: str, after: int = 0, timeout: float = 30) -> str:
        """The first serial line holding ``needle`` past offset ``after``."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            for line in text[after:].splitlines():
                if needle in line:
                    return line
            if time.monotonic() > deadline:
                raise AssertionError("%r not on %s's serial console within %ss; tail:\n%s"
                                     % (needle, self.name, timeout, "\n".join(text.splitlines()[-25:])))
            time.sleep(0.3)


@pytest.fixture(scope="module")
def guest(libvirtd, tmp_path_factory):
    libvirt = oob_libvirt.libvirt
    base = image.image_path(GUESTS["deb12"])
    if not base.exists():
        pytest.fail("no lab base image %s: build it first (python -m tests.lab build deb12)" % base)
    work = tmp_path_factory.mktemp("libvirt-guest")
    overlay, serial = work / "deb12.qcow2", work / "deb12.serial.log"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(overlay)],
                   check=True)
    conn = libvirt.open(URI)
    name = "magic-sysrq-oob-%d" % os.getpid()
    start = time.monotonic()
    domain = conn.createXML(domain_xml(name, overlay, serial), 0)   # transient: gone once destroyed
    try:
        booted = Guest(domain, serial, 0.0)
        booted.wait_for(" login:", timeout=BOOT_TIMEOUT)
        booted.boot_seconds = time.monotonic() - start
        print("\n%s booted (GRUB, Debian 12, TCG) to the login prompt in %.0fs" % (name, booted.boot_seconds))
        yield booted
    finally:
        try:
            domain.destroy()
        except libvirt.libvirtError:
            pass
        conn.close()


def target(guest):
    return {"uri": URI, "domain": guest.name}


# ------------------------------------------------------------------------------------------------------ keys
@pytest.mark.parametrize("key, expected", [
    ("h", "sysrq: HELP : loglevel(0-9)"),
    ("9", "sysrq: Loglevel set to 9"),
    ("w", "sysrq: " + oob.DISABLED_MARKER),   # mask 438: no dumps bit, refused, but the key did arrive
])
def test_send_sysrq_reaches_the_kernel(guest, key, expected):
    offset = len(guest.text())
    sent = oob_libvirt.send_sysrq(None, target(guest), [key], 100)
    assert sent[0]["request"]["keycodes"] == oob.linux_chord(key)
    line = guest.wait_for(expected, after=offset)
    print("%s -> %s" % (key, line.strip()))


def test_inject_nmi_reaches_the_kernel(guest):
    offset = len(guest.text())
    result = oob_libvirt.inject_nmi(None, target(guest))
    assert result["response"]["return"] == 0 and result["response"]["state_before"] == "running"
    line = guest.wait_for("NMI received for unknown reason", after=offset)
    print("nmi -> %s" % line.strip())


def test_by_uuid(guest):
    offset = len(guest.text())
    oob_libvirt.send_sysrq(None, {"uri": URI, "domain": guest.domain.UUIDString()}, ["h"], 100)
    guest.wait_for("sysrq: HELP", after=offset)


# ---------------------------------------------------------------------------------------------- the modules
def _run(module, args, capsys, monkeypatch):
    from ansible.module_utils import _internal
    monkeypatch.setattr(_internal, "is_controller", False)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


def test_oob_sysrq_module_reads_the_refusal_back(guest, capsys, monkeypatch):
    result = _run(oob_sysrq, {"method": "libvirt", "libvirt": target(guest), "keys": "w", "mask": 438,
                              "console": {"path": str(guest.serial)}, "settle": 1.0, "timeout": 30}, capsys,
                  monkeypatch)
    assert not result.get("failed"), result
    assert result["sent"][0]["request"]["keys"] == ["KEY_LEFTALT", "KEY_SYSRQ", "KEY_W"]
    assert result["captured"] is True and result["refused"] is True and result["timed_out"] is False
    assert any(oob.DISABLED_MARKER in line for line in result["output"])


def test_oob_nmi_module(guest, capsys, monkeypatch):
    offset = len(guest.text())
    result = _run(oob_nmi, {"method": "libvirt", "libvirt": target(guest), "allow_crash": True}, capsys, monkeypatch)
    assert result["changed"] is True and result["request"]["call"] == "virDomainInjectNMI", result
    guest.wait_for("NMI received for unknown reason", after=offset)


# ------------------------------------------------------------------------------------------------- refusals
def test_paused_domain_is_refused(guest):
    guest.domain.suspend()
    try:
        with pytest.raises(oob.OobError, match=r"domain %s on qemu:///system is paused, not running: .*virsh resume"
                                               % guest.name):
            oob_libvirt.inject_nmi(None, target(guest))
    finally:
        guest.domain.resume()


def test_unknown_domain_with_the_qemu_driver_text(libvirtd, guest):
    with pytest.raises(oob.OobError, match=r"has no domain 'no-such-guest' \(Domain not found: no domain with "
                                           r"matching name 'no-such-guest'\); domains there: .*%s" % guest.name):
        oob_libvirt.inject_nmi(None, {"uri": URI, "domain": "no-such-guest"})
