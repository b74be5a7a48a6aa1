"""A real IPMI BMC for one QEMU guest: Debian's ``ipmi_sim`` (OpenIPMI's LAN BMC simulator) on 127.0.0.1.

    with IpmiSim("/path/guest.qmp") as bmc:
        oob_ipmi.inject_nmi(module, bmc.target)     # ipmitool -I lanplus ... chassis power diag
        bmc.log()                                   # what the chassis control program did, with QMP's answers

ipmitool talks RMCP+ to ipmi_sim on a free UDP port with a generated user and password. ipmi_sim hands chassis
control to an external program (``chassis_control`` in lan.conf, the protocol of OpenIPMI's sample
``ipmi_sim_chassiscontrol``: ``PROG DEVICE get power`` prints ``power:1``, ``PROG DEVICE set reset "1"`` acts, a
non-zero exit is an error); ours turns each request into a QMP command on the guest's socket and logs it.

One gap in ipmi_sim: its Chassis Control handler (lanserv/bmc_chassis.c, OpenIPMI 2.0.33 and upstream) answers
directive 4, "pulse diagnostic interrupt" (``chassis power diag``), with completion code 0xcc (Invalid data field)
without asking the program. So the harness compiles a small ``loadlib`` module (C, against libopenipmi-dev) that
wraps that handler: directive 4 becomes ``PROG DEVICE set diag "1"`` (-> QMP ``inject-nmi``), everything else
goes to ipmi_sim's own handler. ``IpmiSim(..., diag=False)`` runs the stock simulator, which refuses ``diag`` like
a BMC without the feature.

Needs the Debian packages openipmi (ipmi_sim), ipmitool, libopenipmi-dev and gcc. Standard library only.
QEMU serves one QMP client at a time: do not hold the guest's QMP socket while ipmitool runs.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BMC_ADDRESS = "0x20"

# The loadlib module: chassis control directive 4 (pulse diag) goes to the chassis control program as "diag".
DIAG_MODULE_C = r"""
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <OpenIPMI/lanserv.h>
#include <OpenIPMI/mcserv.h>
#include <OpenIPMI/extcmd.h>
#include <OpenIPMI/ipmi_msgbits.h>
#include <OpenIPMI/ipmi_err.h>

/* ipmi_sim exports its chassis command table; remember its Chassis Control handler before replacing it. */
extern cmd_handler_f chassis_netfn_handlers[256];
static cmd_handler_f stock_chassis_control;
static sys_data_t *diag_sys;
static char *diag_prog;
static extcmd_info_t diag_info[] = { { "diag", extcmd_int, NULL, 0 } };

static void
chassis_control_with_diag(lmc_data_t *mc, msg_t *msg, unsigned char *rdata, unsigned int *rdata_len,
                          void *cb_data)
{
    int val = 1;

    if (msg->len < 1 || (msg->data[0] & 0xf) != 4) {
        stock_chassis_control(mc, msg, rdata, rdata_len, NULL);
        return;
    }
    rdata[0] = 0;
    *rdata_len = 1;
    if (extcmd_setvals(diag_sys, &val, diag_prog, diag_info, NULL, 1))
        rdata[0] = IPMI_UNKNOWN_ERR_CC;
}

int
ipmi_sim_module_print_version(sys_data_t *sys, char *initstr)
{
    printf("magic_sysrq.fleet chassis diag module 1\n");
    return 0;
}

int
ipmi_sim_module_init(sys_data_t *sys, const char *initstr)
{
    if (!initstr || !*initstr) {
        sys->log(sys, SETUP_ERROR, NULL, "diag module: the loadlib option must be the chassis control program");
        return EINVAL;
    }
    diag_sys = sys;
    diag_prog = strdup(initstr);
    stock_chassis_control = chassis_netfn_handlers[IPMI_CHASSIS_CONTROL_CMD];
    if (!diag_prog || !stock_chassis_control)
        return EINVAL;
    return ipmi_emu_register_cmd_handler(IPMI_CHASSIS_NETFN, IPMI_CHASSIS_CONTROL_CMD,
                                         chassis_control_with_diag, NULL);
}
"""

# The chassis control program (ipmi_sim runs it through popen, so through sh). Placeholders: @QMP@, @LOG@.
CHASSIS_PROGRAM = r'''
"""ipmi_sim chassis control -> QMP. Usage: PROG DEVICE get PARM... | PROG DEVICE set PARM VALUE..."""
import json, socket, sys, time

QMP_SOCKET = @QMP@
LOG = @LOG@
# set PARM -> QMP command (value "1"); power "0" is a hard power off (quit), power "1" only works while QEMU runs.
SET = {"diag": "inject-nmi", "reset": "system_reset", "shutdown": "system_powerdown"}


def qmp(execute, timeout=5.0):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(QMP_SOCKET)
    buf = b""

    def read():
        nonlocal buf
        while b"\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError("QEMU closed the QMP connection")
            buf += chunk
        line, buf = buf.split(b"\n", 1)
        return json.loads(line)

    try:
        read()
        for command in ("qmp_capabilities", execute):
            sock.sendall(json.dumps({"execute": command}).encode() + b"\n")
            while True:
                reply = read()
                if "event" not in reply:
                    break
        return reply
    finally:
        sock.close()


def log(entry):
    entry["time"] = time.time()
    with open(LOG, "a") as handle:
        handle.write(json.dumps(entry) + "\n")


def power():
    try:
        status = qmp("query-status").get("return", {}).get("status")
    except (OSError, ValueError) as exc:
        return 0, "QMP: %s" % exc
    return (0 if status in ("shutdown", None) else 1), status


def main(argv):
    if len(argv) < 3:
        print("usage: %s DEVICE get|set PARM [VALUE] ..." % argv[0])
        return 1
    device, op, args = argv[1], argv[2], argv[3:]
    entry = {"argv": argv[1:], "device": device, "op": op}
    try:
        if op == "get":
            out = []
            for parm in args:
                if parm == "power":
                    value, entry["status"] = power()
                elif parm == "boot":
                    value = "default"
                else:
                    print("Invalid parameter: %s" % parm)
                    entry["error"] = "invalid parameter %s" % parm
                    return 1
                out.append("%s:%s" % (parm, value))
            entry["output"] = out
            print("\n".join(out))
            return 0
        if op != "set":
            print("Unknown operation: %s" % op)
            entry["error"] = "unknown operation"
            return 1
        entry["qmp"] = []
        while args:
            parm, value, args = args[0], args[1] if len(args) > 1 else None, args[2:]
            if value is None:
                print("No value present for parameter %s" % parm)
                entry["error"] = "no value for %s" % parm
                return 1
            if parm == "identify":          # identify INTERVAL FORCE
                args = args[1:]
                continue
            if parm == "boot":
                continue
            if parm == "power":
                if value == "1":
                    on, status = power()
                    if not on:
                        print("cannot power on: no running QEMU behind %s (%s)" % (QMP_SOCKET, status))
                        entry["error"] = "power on without QEMU"
                        return 1
                    continue
                execute = "quit"
            elif parm in SET:
                if value != "1":
                    continue
                execute = SET[parm]
            else:
                print("Invalid parameter: %s" % parm)
                entry["error"] = "invalid parameter %s" % parm
                return 1
            try:
                reply = qmp(execute)
            except (OSError, ValueError) as exc:
                print("QMP %s on %s failed: %s" % (execute, QMP_SOCKET, exc))
                entry["error"] = "QMP %s: %s" % (execute, exc)
                return 1
            entry["qmp"].append({"execute": execute, "reply": reply})
            if "error" in reply:
                print("QMP %s failed: %s" % (execute, reply["error"].get("desc")))
                entry["error"] = reply["error"].get("desc")
                return 1
        return 0
    finally:
        log(entry)


sys.exit(main(sys.argv))
'''

# RMCP / ASF Presence Ping (DSP0136): version 6, sequence 0xff (no ACK), class ASF; IANA 4542, type 0x80.
_ASF_PING = bytes([0x06, 0x00, 0xFF, 0x06, 0x00, 0x00, 0x11, 0xBE, 0x80, 0x00, 0x00, 0x00])
_ASF_PONG = 0x40


class IpmiSimError(RuntimeError):
    pass


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def asf_ping(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when an RMCP presence ping gets a pong: the BMC listens."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(_ASF_PING, (host, port))
            data = s.recv(512)
        except OSError:
            return False
    return len(data) > 8 and data[3] == 0x06 and data[8] == _ASF_PONG


def _pdeathsig() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: the BMC dies with the test process


def missing_tools(diag: bool = True) -> list[str]:
    """What this machine lacks to run the harness, as Debian package names."""
    missing = []
    if not shutil.which("ipmi_sim"):
        missing.append("openipmi (ipmi_sim)")
    if not shutil.which("ipmitool"):
        missing.append("ipmitool")
    if diag:
        if not shutil.which("gcc"):
            missing.append("gcc")
        if not Path("/usr/include/OpenIPMI/mcserv.h").exists():
            missing.append("libopenipmi-dev")
    return missing


class IpmiSim:
    """ipmi_sim as the BMC of the QEMU guest behind ``qmp_socket``; ``.target`` is an ``ipmi`` option dict."""

    def __init__(self, qmp_socket: str | os.PathLike, *, username: str = "admin", password: str | None = None,
                 host: str = "127.0.0.1", port: int | None = None, cipher_suite: int = 3, diag: bool = True,
                 workdir: str | os.PathLike | None = None, start_timeout: float = 10.0, sol: str | None = None):
        self.qmp_socket = str(qmp_socket)
        # Serial-over-LAN: where ipmi_sim connects the SOL payload, for example "telnet:127.0.0.1:4555" (a QEMU
        # telnet chardev: an SOL break goes out as telnet IAC BREAK, which QEMU turns into a UART break).
        self.sol = sol
        self.username = username
        # IPMI 2.0 passwords are at most 20 bytes; 16 hex characters.
        self.password = password if password is not None else secrets.token_hex(8)
        self.host = host
        self.port = port
        self.cipher_suite = cipher_suite
        self.diag = diag
        self.start_timeout = start_timeout
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else None
        self.proc: subprocess.Popen | None = None

    # ------------------------------------------------------------------------------------------ lifecycle
    def __enter__(self) -> IpmiSim:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def target(self) -> dict:
        """Options for ``oob_ipmi`` (``ipmi:`` of the modules) that reach this BMC. Only the options set: a module
        given ``password_file: null`` next to ``password`` counts both as present (mutually exclusive)."""
        return {"host": self.host, "port": self.port, "username": self.username, "password": self.password,
                "interface": "lanplus", "cipher_suite": self.cipher_suite, "timeout": 2, "retries": 1}

    @property
    def log_path(self) -> Path:
        return self.workdir / "chassis.log"

    def start(self) -> None:
        missing = missing_tools(self.diag)
        if missing:
            raise IpmiSimError("the IPMI harness needs the Debian package(s): %s" % ", ".join(missing))
        if self.workdir is None:
            self.workdir = Path(tempfile.mkdtemp(prefix="magic-sysrq-ipmi-sim-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "state").mkdir(exist_ok=True)
        if self.port is None:
            self.port = free_udp_port(self.host)
        program = self._write_program()
        chassis = "%s %s" % (shlex.quote(str(program)), BMC_ADDRESS)
        lines = [
            'name "magic-sysrq-bmc"',
            "set_working_mc %s" % BMC_ADDRESS,
            "  startlan 1",
            "    addr %s %d" % (self.host, self.port),
            "    priv_limit admin",
            "    allowed_auths_callback none md2 md5 straight",
            "    allowed_auths_user none md2 md5 straight",
            "    allowed_auths_operator none md2 md5 straight",
            "    allowed_auths_admin none md2 md5 straight",
            "    guid a123456789abcdefa123456789abcdef",
            "  endlan",
            '  chassis_control "%s"' % chassis,
            # user 1 is the anonymous user; 2: ours. usernum enabled name password max-priv max-sessions auths
            '  user 2 true "%s" "%s" admin 10 none md2 md5 straight' % (self.username, self.password),
        ]
        if self.sol:
            lines.append('  sol "%s" 115200' % self.sol)
        if self.diag:
            lines.append('loadlib "%s" "%s"' % (self._build_module(), chassis))
        (self.workdir / "lan.conf").write_text("\n".join(lines) + "\n")
        os.chmod(self.workdir / "lan.conf", 0o600)
        (self.workdir / "bmc.emu").write_text(
            "mc_setbmc {a}\n"
            "mc_add {a} 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\n"
            "mc_enable {a}\n".format(a=BMC_ADDRESS))
        out = open(self.workdir / "ipmi_sim.out", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            ["ipmi_sim", "-n", "-c", str(self.workdir / "lan.conf"), "-f", str(self.workdir / "bmc.emu"),
             "-s", str(self.workdir / "state")],
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=str(self.workdir),
            start_new_session=True, preexec_fn=_pdeathsig)
        out.close()
        deadline = time.monotonic() + self.start_timeout
        while not asf_ping(self.host, self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                output = self.output()
                self.stop()
                raise IpmiSimError("ipmi_sim did not come up on %s:%s (%s): %s"
                                   % (self.host, self.port, "exited %s" % self.proc.returncode
                                      if self.proc.returncode is not None else "no RMCP pong", output))

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._own_workdir and self.workdir is not None and os.environ.get("MAGIC_SYSRQ_KEEP_IPMI_SIM") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ---------------------------------------------------------------------------------------------- reading
    def log(self) -> list[dict]:
        """One entry per run of the chassis control program: argv, QMP commands and replies, errors."""
        try:
            text = self.log_path.read_text()
        except OSError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def output(self) -> str:
        with contextlib.suppress(OSError):
            return (self.workdir / "ipmi_sim.out").read_text(errors="replace").strip()
        return ""

    # ---------------------------------------------------------------------------------------------- helpers
    def _write_program(self) -> Path:
        path = self.workdir / "chassis_control.py"
        body = CHASSIS_PROGRAM.replace("@QMP@", repr(self.qmp_socket)).replace("@LOG@", repr(str(self.log_path)))
        path.write_text("#!%s\n%s" % (sys.executable, body))
        path.chmod(0o755)
        return path

    def _build_module(self) -> Path:
        source = self.workdir / "chassis_diag.c"
        module = self.workdir / "chassis_diag.so"
        source.write_text(DIAG_MODULE_C)
        result = subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-Wall", "-o", str(module), str(source)],
                                capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise IpmiSimError("cannot build the ipmi_sim diag module (gcc, libopenipmi-dev): %s"
                               % (result.stderr.strip() or result.stdout.strip()))
        return module
