"""Bare-metal out-of-band for real: one libvirt TCG domain (the lab's Debian 12 image on a copy-on-write overlay)
stands for a server, with two real BMC emulators in front of it on 127.0.0.1:

* sushy-tools' ``sushy-emulator`` (Redfish) with its libvirt driver: ``ComputerSystem.Reset`` ``ResetType: Nmi``
  becomes ``virDomainInjectNMI``. With ``kernel.unknown_nmi_panic=1`` and kdump loaded, oob_nmi's ``redfish``
  method ends in a kdump vmcore whose dmesg names the NMI, read back over SSH after the capture kernel rebooted.
* Debian's ``ipmi_sim`` with Serial-over-LAN: its ``sol "telnet:127.0.0.1:PORT"`` connects to the domain's
  ttyS0, a QEMU telnet chardev (libvirt ``<serial type='tcp'>`` with ``<protocol type='telnet'/>``), so an SOL
  break arrives as a telnet IAC BREAK that QEMU turns into a UART break: BREAK + key is a SysRq key.

The domain has user-mode networking only, with SSH forwarded from 127.0.0.1 (qemu:commandline), for setting up
the guest (stuck writers, kdump) and reading /var/crash afterwards. Order matters: the SOL tests first (the guest
alive), then Redfish's refusals, then the NMI that crashes it, then the vmcore.

Needs libvirtd (started here when not running), qemu-system-x86, ipmitool, openipmi, sushy-tools and
libvirt-python in the venv, and the lab's Debian 12 base image. In CI every missing part is a failure.
"""
from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.testing import patch_module_args  # noqa: E402
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob  # noqa: E402
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import libvirt as oob_libvirt  # noqa: E402
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import redfish as oob_redfish  # noqa: E402
from ansible_collections.magic_sysrq.fleet.plugins.modules import oob_nmi  # noqa: E402
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import sol as oob_sol  # noqa: E402
from ansible_collections.magic_sysrq.fleet.plugins.modules import oob_console, oob_sysrq  # noqa: E402
from tests.lab import GUESTS, image  # noqa: E402
from tests.lab.ipmi_sim import IpmiSim, missing_tools  # noqa: E402
from tests.oob.test_libvirt_real import Libvirtd  # noqa: E402

URI = "qemu:///system"
BOOT_TIMEOUT = float(os.environ.get("MAGIC_SYSRQ_LAB_BOOT_TIMEOUT", "300"))
SECRET = "Redfish-" + uuid.uuid4().hex[:12]
SUSHY = Path(sys.executable).with_name("sushy-emulator")


def _pdeathsig() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------------------------------------- the server
def domain_xml(name: str, overlay: Path, serial_log: Path, sol_port: int, ssh_port: int) -> str:
    return f"""<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
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
    <serial type='tcp'>
      <source mode='bind' host='127.0.0.1' service='{sol_port}'/>
      <protocol type='telnet'/>
      <log file='{serial_log}' append='off'/>
      <target port='0'/>
    </serial>
    <input type='keyboard' bus='ps2'/>
    <memballoon model='none'/>
  </devices>
  <seclabel type='static' model='dac' relabel='no'><label>+0:+0</label></seclabel>
  <qemu:commandline>
    <qemu:arg value='-netdev'/>
    <qemu:arg value='user,id=bmcnet,hostfwd=tcp:127.0.0.1:{ssh_port}-:22'/>
    <qemu:arg value='-device'/>
    <qemu:arg value='virtio-net-pci,netdev=bmcnet,bus=pci.0,addr=0x7'/>
  </qemu:commandline>
</domain>
"""


class Server:
    """The libvirt domain playing a bare-metal server: SSH on 127.0.0.1, ttyS0 on a telnet port."""

    def __init__(self, domain, serial_log: Path, sol_port: int, ssh_port: int):
        self.domain, self.serial_log, self.sol_port, self.ssh_port = domain, serial_log, sol_port, ssh_port
        self.name = domain.name()
        self.uuid = domain.UUIDString()
        self.key = image.ssh_key()

    def serial(self) -> str:
        try:
            return self.serial_log.read_bytes().decode(errors="replace").replace("\r", "")
        except OSError:
            return ""

    def ssh(self, cmd: str, timeout: float = 120, check: bool = True, input: str | None = None
            ) -> subprocess.CompletedProcess:
        argv = ["ssh", "-i", str(self.key), "-p", str(self.ssh_port), "-o", "BatchMode=yes",
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
                "-o", "ConnectTimeout=5", "root@127.0.0.1", "--", cmd]
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input,
                               stdin=None if input is not None else subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            r = subprocess.CompletedProcess(argv, 255, "", "ssh timed out after %ss" % timeout)
        if check and r.returncode != 0:
            raise AssertionError("%s: `%s` failed (%s): %s %s" % (self.name, cmd, r.returncode, r.stdout, r.stderr))
        return r

    def wait_ssh(self, timeout: float, boot_id_not: str | None = None) -> str:
        deadline = time.monotonic() + timeout
        while True:
            r = self.ssh("cat /proc/sys/kernel/random/boot_id", timeout=20, check=False)
            if r.returncode == 0 and r.stdout.strip() and r.stdout.strip() != boot_id_not:
                return r.stdout.strip()
            if time.monotonic() > deadline:
                raise AssertionError("%s: no SSH on 127.0.0.1:%s within %ss; serial tail:\n%s" % (
                    self.name, self.ssh_port, timeout, "\n".join(self.serial().splitlines()[-30:])))
            time.sleep(2)


@pytest.fixture(scope="module")
def libvirtd(tmp_path_factory):
    if oob_libvirt.libvirt is None:
        pytest.fail("the libvirt Python binding is not installed: .venv/bin/pip install libvirt-python==12.8.0")
    daemon = Libvirtd(tmp_path_factory.mktemp("libvirtd"))
    try:
        why = daemon.ensure()
        if why:
            pytest.fail("libvirtd cannot run here: %s" % why)
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def server(libvirtd, tmp_path_factory):
    libvirt = oob_libvirt.libvirt
    base = image.image_path(GUESTS["deb12"])
    if not base.exists():
        pytest.fail("no lab base image %s: build it first (python -m tests.lab build deb12)" % base)
    work = tmp_path_factory.mktemp("bmc-server")
    overlay, serial_log = work / "deb12.qcow2", work / "deb12.serial.log"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base), str(overlay)],
                   check=True)
    conn = libvirt.open(URI)
    sol_port, ssh_port = free_port(), free_port()
    name = "magic-sysrq-bmc-%d" % os.getpid()
    start = time.monotonic()
    domain = conn.createXML(domain_xml(name, overlay, serial_log, sol_port, ssh_port), 0)
    try:
        srv = Server(domain, serial_log, sol_port, ssh_port)
        srv.boot_id = srv.wait_ssh(BOOT_TIMEOUT)
        print("\n%s: SSH up after %.0fs (GRUB, Debian 12, TCG)" % (name, time.monotonic() - start))
        yield srv
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            domain.destroy()
        conn.close()


# ------------------------------------------------------------------------------------------ IPMI Serial-over-LAN
STUCK = (REPO / "tests" / "lab" / "stuck.sh").read_text()


@pytest.fixture(scope="module")
def sol_bmc(server):
    missing = missing_tools(diag=False)
    if missing:
        pytest.fail("the SOL tests need the Debian package(s): %s" % ", ".join(missing))
    # no chassis control here (no QMP of a libvirt domain to give it); SOL to the domain's telnet ttyS0
    with IpmiSim("/nonexistent.qmp", diag=False, sol="telnet:127.0.0.1:%d" % server.sol_port) as bmc:
        yield bmc


@pytest.fixture
def ansible_module():
    with patch_module_args({}):
        return AnsibleModule(argument_spec={})


def _sol(bmc, **change):
    target = {k: v for k, v in bmc.target.items() if v is not None}
    target.update(change)
    return target


def _ipmitools_of(bmc):
    r = subprocess.run(["pgrep", "-f", "ipmitool .* -p %d .*sol activate" % bmc.port], capture_output=True, text=True,
                       check=False)
    return r.stdout.split()


def test_sol_break_w_under_mask_438_is_refused_and_detected(server, sol_bmc, capsys, monkeypatch):
    assert server.ssh("cat /proc/sys/kernel/sysrq").stdout.strip() == "438"
    result, out = _module(oob_sysrq, {"method": "sol", "sol": _sol(sol_bmc), "keys": "w", "mask": 438,
                                      "settle": 2.0, "timeout": 30}, capsys, monkeypatch)
    assert not result.get("failed"), result
    assert result["mask"]["refused"] == ["w"]                       # said before sending
    assert result["refused"] is True and result["captured"] is True and result["timed_out"] is False
    assert any("sysrq: " + oob.DISABLED_MARKER in line for line in result["output"]), result["output"]
    assert oob.DISABLED_MARKER in json.dumps(result.get("warnings", []))   # warned (before and after sending)
    assert sol_bmc.password not in out
    assert result["sent"] == [{"key": "w", "request": {"tool": "ipmitool", "command": "sol activate",
                                                       "send": ["break", "w"], "host": "127.0.0.1",
                                                       "port": sol_bmc.port}}]
    assert _ipmitools_of(sol_bmc) == []                              # the capture stopped, ipmitool left


def test_sol_break_w_brings_back_the_d_state_writers(server, sol_bmc, capsys, monkeypatch):
    pids = [int(p) for p in server.ssh("bash -s make bmc-frz", input=STUCK, timeout=120).stdout.split()]
    assert len(pids) == 3
    try:
        server.ssh("sysctl -q -w kernel.sysrq=446")                 # 438 + the dumps bit (8)
        result, out = _module(oob_sysrq, {"method": "sol", "sol": _sol(sol_bmc), "keys": "w", "mask": 446,
                                          "settle": 3.0, "timeout": 60}, capsys, monkeypatch)
        assert not result.get("failed"), result
        assert result["refused"] is False and result["mask"]["refused"] == []
        assert any("sysrq: Show Blocked State" in line for line in result["output"]), result["output"]
        found = {t["pid"]: t for t in result["tasks"]}
        assert set(pids) <= set(found), (pids, sorted(found), result["output"][-40:])
        assert {found[p]["state"] for p in pids} == {"D"}
        assert {found[p]["comm"] for p in pids} == {"dd", "touch", "mkdir"}
        assert result["task_states"]["D"] >= 3
        assert sol_bmc.password not in out
        assert _ipmitools_of(sol_bmc) == []
        print("SOL BREAK+w: %d tasks, D-state writers %s found" % (len(result["tasks"]), pids))
    finally:
        server.ssh("bash -s release bmc-frz", input=STUCK, timeout=120, check=False)
        server.ssh("sysctl -q -w kernel.sysrq=438", check=False)


def test_sol_held_by_someone_else_then_taken_over(server, sol_bmc, ansible_module, capsys, monkeypatch):
    other = oob_sol.console(ansible_module, _sol(sol_bmc))            # someone at the console
    try:
        result, out = _module(oob_sysrq, {"method": "sol", "sol": _sol(sol_bmc), "keys": "h"}, capsys,
                              monkeypatch)
        assert result["failed"] and result["sent"] == []
        assert "already has an SOL session open for someone else" in result["msg"]
        assert "sol.takeover=true" in result["msg"] and sol_bmc.password not in out

        result, out = _module(oob_console, {"sol": _sol(sol_bmc, takeover=True), "duration": 3}, capsys,
                              monkeypatch)
        assert not result.get("failed"), result
        assert "took over the SOL session" in json.dumps(result.get("warnings", []))
        assert result["changed"] is True and result["lines_cut"] == 0   # someone's session was ended
    finally:
        other.close()
    assert _ipmitools_of(sol_bmc) == []


def test_sol_wrong_password(sol_bmc, ansible_module):
    with pytest.raises(oob.OobError, match=r"refused the password of user 'admin'") as info:
        oob_sol.console(ansible_module, _sol(sol_bmc, password="wrong-password"))
    assert sol_bmc.password not in str(info.value)


# ---------------------------------------------------------------------------------------------- sushy-emulator
# A BMC whose ComputerSystem.Reset does not offer Nmi (as iLO 4 before 2.x, or a platform without a diagnostic
# interrupt): the emulator's own system template with "Nmi" taken out of the allowable values, put in front of
# the package's templates.
RUNNER = textwrap.dedent("""
    import os, sys
    import jinja2
    from sushy_tools.emulator import main
    override = os.environ.get("MAGIC_SYSRQ_SUSHY_TEMPLATES")
    if override:
        main.app.jinja_loader = jinja2.ChoiceLoader([jinja2.FileSystemLoader(override), main.app.jinja_loader])
    sys.argv[0] = "sushy-emulator"
    sys.exit(main.main())
""")


class Sushy:
    def __init__(self, workdir: Path, allowed_instances: list[str], *, nmi: bool = True, tls: dict | None = None):
        self.workdir = workdir
        self.port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        import bcrypt
        (workdir / "htpasswd").write_text(
            "admin:%s\n" % bcrypt.hashpw(SECRET.encode(), bcrypt.gensalt(rounds=4, prefix=b"2b")).decode())
        (workdir / "emulator.conf").write_text(
            "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\nSUSHY_EMULATOR_LISTEN_PORT = %d\n"
            "SUSHY_EMULATOR_LIBVIRT_URI = %r\nSUSHY_EMULATOR_AUTH_FILE = %r\n"
            "SUSHY_EMULATOR_ALLOWED_INSTANCES = %r\n"
            % (self.port, URI, str(workdir / "htpasswd"), allowed_instances))
        (workdir / "runner.py").write_text(RUNNER)
        env = dict(os.environ)
        env.pop("MAGIC_SYSRQ_SUSHY_TEMPLATES", None)
        if not nmi:
            import sushy_tools.emulator as pkg
            templates = workdir / "templates"
            templates.mkdir(exist_ok=True)
            text = (Path(pkg.__file__).parent / "templates" / "system.json").read_text()
            assert '"Nmi",' in text
            (templates / "system.json").write_text(text.replace('"Nmi",', ""))
            env["MAGIC_SYSRQ_SUSHY_TEMPLATES"] = str(templates)
        argv = [sys.executable, str(workdir / "runner.py"), "--config", str(workdir / "emulator.conf")]
        self.scheme = "http"
        if tls:
            argv += ["--ssl-certificate", tls["cert"], "--ssl-key", tls["key"]]
            self.scheme = "https"
        self.log = workdir / "sushy.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         env=env, start_new_session=True, preexec_fn=_pdeathsig)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise AssertionError("sushy-emulator did not listen on 127.0.0.1:%d: %s"
                                         % (self.port, self.log.read_text(errors="replace")[-3000:]))
                time.sleep(0.2)

    def target(self, **change) -> dict:
        target = {"host": "127.0.0.1", "port": self.port, "scheme": self.scheme, "username": "admin",
                  "password": SECRET, "auth": "basic", "timeout": 20.0}
        target.update(change)
        return target

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def sushy(server, tmp_path_factory):
    if not SUSHY.exists():
        pytest.fail("sushy-tools is not installed in the venv (requirements.txt: sushy-tools)")
    emulator = Sushy(tmp_path_factory.mktemp("sushy"), [server.uuid])
    yield emulator
    emulator.stop()


# --------------------------------------------------------------------------------------- Redfish: refusals
def test_redfish_sees_the_domain_as_the_only_system(sushy, server):
    body = json.loads(urllib.request.urlopen(urllib.request.Request(
        "http://127.0.0.1:%d/redfish/v1/Systems/%s" % (sushy.port, server.uuid),
        headers={"Authorization": "Basic " + base64.b64encode(("admin:" + SECRET).encode()).decode()}),
        timeout=20).read())
    assert body["PowerState"] == "On"
    assert "Nmi" in body["Actions"]["#ComputerSystem.Reset"]["ResetType@Redfish.AllowableValues"]


def test_redfish_wrong_password(sushy):
    with pytest.raises(oob.OobError, match=r"GET /redfish/v1/Systems on http://127\.0\.0\.1:\d+ failed \(HTTP 401\): "
                                           r"the BMC refused the credentials of user 'admin'") as info:
        oob_redfish.inject_nmi(None, sushy.target(password="not-" + SECRET))
    assert SECRET not in str(info.value)
    assert "ComputerSystem.Reset" not in sushy.output()


def test_redfish_unknown_system_id(sushy, server):
    with pytest.raises(oob.OobError, match=r"has no system 'no-such-system'; its systems: %s" % server.uuid):
        oob_redfish.inject_nmi(None, sushy.target(system_id="no-such-system"))


def test_redfish_bmc_without_nmi(server, tmp_path):
    before = server.serial()
    emulator = Sushy(tmp_path / "sushy-no-nmi", [server.uuid], nmi=False)
    try:
        with pytest.raises(oob.OobError, match=r"system %s on the BMC http://127\.0\.0\.1:\d+ does not allow ResetType "
                                               r"Nmi \(it allows: On, ForceOff, GracefulShutdown, GracefulRestart, "
                                               r"ForceRestart, ForceOn\); nothing was sent" % server.uuid):
            oob_redfish.inject_nmi(None, emulator.target())
        assert "POST /redfish/v1/Systems" not in emulator.output()
    finally:
        emulator.stop()
    assert "NMI" not in server.serial()[len(before):]


def test_redfish_emulator_stopped(server, tmp_path):
    emulator = Sushy(tmp_path / "sushy-stopped", [server.uuid])
    emulator.stop()
    with pytest.raises(oob.OobError, match=r"GET /redfish/v1/ on http://127\.0\.0\.1:%d failed: connection refused: "
                                           r"nothing listens" % emulator.port):
        oob_redfish.inject_nmi(None, emulator.target())


def test_redfish_tls_verified_then_trusted_with_ca_path(server, tmp_path):
    d = tmp_path / "tls"
    d.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(d / "key.pem"),
                    "-out", str(d / "cert.pem")], check=True, capture_output=True)
    emulator = Sushy(tmp_path / "sushy-tls", [server.uuid], nmi=False,
                     tls={"cert": str(d / "cert.pem"), "key": str(d / "key.pem")})
    try:
        with pytest.raises(oob.OobError, match=r"TLS certificate is not trusted"):
            oob_redfish.inject_nmi(None, emulator.target())
        # trusted with the CA: it gets as far as the allowable values (this emulator offers no Nmi)
        with pytest.raises(oob.OobError, match=r"https://127\.0\.0\.1:\d+ does not allow ResetType Nmi"):
            oob_redfish.inject_nmi(None, emulator.target(ca_path=str(d / "cert.pem")))
    finally:
        emulator.stop()


# ------------------------------------------------------------------------------------ Redfish: NMI into kdump
ARM_KDUMP = r"""
set -e
sed -i 's/^USE_KDUMP=.*/USE_KDUMP=1/' /etc/default/kdump-tools
grep -q '^USE_KDUMP=1' /etc/default/kdump-tools || echo USE_KDUMP=1 >> /etc/default/kdump-tools
rm -rf /var/crash/2* || true
sysctl -q -w kernel.unknown_nmi_panic=1 kernel.panic=0
kdump-config load >/tmp/kdump-load.log 2>&1 || { cat /tmp/kdump-load.log; exit 1; }
cat /sys/kernel/kexec_crash_loaded
"""


def _module(module, args, capsys, monkeypatch):
    from ansible.module_utils import _internal
    monkeypatch.setattr(_internal, "is_controller", False)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    out = capsys.readouterr().out
    return json.loads(out), out


def test_redfish_nmi_ends_in_a_kdump_vmcore(server, sushy, capsys, monkeypatch):
    started = time.monotonic()
    armed = server.ssh(ARM_KDUMP, timeout=900).stdout.split()   # builds the kdump initrd (minutes under TCG)
    assert armed and armed[-1] == "1", "kdump did not load: %s" % armed
    armed_at = time.monotonic()
    result, out = _module(oob_nmi, {"method": "redfish", "redfish": sushy.target(), "allow_crash": True}, capsys,
                          monkeypatch)
    assert result["changed"] is True and not result.get("failed"), result
    assert result["request"]["body"] == {"ResetType": "Nmi"}
    assert result["request"]["system"] == server.uuid
    assert result["response"]["status"] == 204 and result["response"]["power_state_before"] == "On"
    assert SECRET not in out
    assert "POST /redfish/v1/Systems/%s/Actions/ComputerSystem.Reset HTTP/1.1\x1b[0m\" 204" % server.uuid in \
        sushy.output() or "Actions/ComputerSystem.Reset HTTP/1.1\" 204" in sushy.output(), sushy.output()[-2000:]
    boot_id = server.wait_ssh(BOOT_TIMEOUT, boot_id_not=server.boot_id)
    server.boot_id = boot_id
    back = time.monotonic()
    listing = server.ssh("ls /var/crash/2*/").stdout.split()
    assert any(f.startswith("dump.") for f in listing) and any(f.startswith("dmesg.") for f in listing), listing
    dmesg = server.ssh("cat /var/crash/2*/dmesg.*").stdout
    panic = [line for line in dmesg.splitlines() if "Kernel panic" in line or "NMI" in line]
    assert any("Kernel panic - not syncing: NMI: Not continuing" in line for line in panic), panic
    assert any("NMI received for unknown reason" in line for line in panic), panic
    print("kdump armed in %.0fs; NMI through Redfish -> vmcore, SSH back in %.0fs; dmesg: %s"
          % (armed_at - started, back - armed_at, panic[-3:]))
