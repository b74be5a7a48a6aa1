# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Method ``ipmi``: the host's BMC over IPMI-over-LAN, through ``ipmitool``.

``chassis power diag`` is IPMI's Chassis Control "pulse diagnostic interrupt" (directive 4): the BMC raises an NMI
on the host's CPUs. IPMI has no way to press keys, so this method offers ``inject_nmi`` only.

The password never reaches ipmitool's command line (where ``ps`` would show it): it goes in the environment
(``ipmitool -E`` reads ``IPMI_PASSWORD``) or in a file (``ipmitool -f FILE``). ipmitool runs with ``-v`` so that a
refused session says why (unknown user, wrong password, no answer); the messages below turn that into what to
check.
"""

from __future__ import annotations

import os
import re

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob

ARGUMENT_SPEC = {
    "ipmi": dict(type="dict", options=dict(
        host=dict(type="str", required=True),
        port=dict(type="int", default=623),
        username=dict(type="str"),
        password=dict(type="str", no_log=True),
        password_file=dict(type="path"),
        interface=dict(type="str", default="lanplus", choices=["lanplus", "lan"]),
        cipher_suite=dict(type="int"),
        privilege_level=dict(type="str", choices=["callback", "user", "operator", "administrator"]),
        timeout=dict(type="int"),
        retries=dict(type="int"),
    ), mutually_exclusive=[["password", "password_file"]]),
}

POWER_DIAG = ["chassis", "power", "diag"]
POWER_STATUS = ["chassis", "power", "status"]

# Lines ``ipmitool -v`` prints on every run; dropped from error messages.
_NOISE = re.compile(r"^(Loading IANA PEN Registry|Running Get VSO Capabilities|Invalid completion code received: "
                    r"Invalid command|Discovered IPMB address|Get HPM\.x Capabilities request failed|Password:\s*$)")


def _ipmitool(module):
    path = module.get_bin_path("ipmitool")
    if not path:
        raise oob.OobError("ipmitool is not installed on the host that runs this task: install the ipmitool package "
                           "there (Debian/Ubuntu/RHEL: ipmitool), or delegate_to a host that has it")
    return path


def _check(target):
    oob.require(target, "ipmi", "host")
    interface = target.get("interface") or "lanplus"
    if interface not in ("lanplus", "lan"):
        raise oob.OobError("ipmi.interface must be lanplus (IPMI 2.0, RMCP+) or lan (IPMI 1.5), not %r" % interface)
    if target.get("cipher_suite") is not None and interface != "lanplus":
        raise oob.OobError("ipmi.cipher_suite applies to interface lanplus only (IPMI 1.5 has no cipher suites)")
    if target.get("password") and target.get("password_file"):
        raise oob.OobError("ipmi.password and ipmi.password_file are mutually exclusive: give one")
    password_file = target.get("password_file")
    if password_file and not os.access(password_file, os.R_OK):
        raise oob.OobError("ipmi.password_file %s cannot be read on the host that runs this task (it must exist there "
                           "and be readable by the task's user; ipmitool reads its first line)" % password_file)
    return interface


def command_line(ipmitool, target, command):
    """``ipmitool`` argv (no secret in it) and the environment to run it with."""
    interface = _check(target)
    argv = [ipmitool, "-v", "-I", interface, "-H", str(target["host"]), "-p", str(target.get("port") or 623)]
    if target.get("username"):
        argv += ["-U", str(target["username"])]
    if target.get("privilege_level"):
        argv += ["-L", str(target["privilege_level"]).upper()]
    if target.get("cipher_suite") is not None:
        argv += ["-C", str(target["cipher_suite"])]
    if target.get("timeout") is not None:
        argv += ["-N", str(target["timeout"])]
    if target.get("retries") is not None:
        argv += ["-R", str(target["retries"])]
    environ = {}
    if target.get("password_file"):
        argv += ["-f", str(target["password_file"])]
    else:
        # -E even without a password: an empty IPMI_PASSWORD means "no password", where no -E/-P/-f at all would
        # make ipmitool prompt on the terminal.
        argv += ["-E"]
        environ["IPMI_PASSWORD"] = str(target.get("password") or "")
    return argv + list(command), environ


def _scrub(text, target):
    password = target.get("password")
    if password:
        text = text.replace(str(password), "********")
    return text


def _said(stdout, stderr):
    lines = [line.strip() for line in (stderr or "").splitlines() + (stdout or "").splitlines()]
    return [line for line in lines if line and not _NOISE.match(line)]


def error_text(target, command, rc, stdout, stderr):
    """What went wrong with ``ipmitool ... command`` and what to check, from ipmitool's own output."""
    said = _said(stdout, stderr)
    text = "\n".join(said)
    where = "%s:%s" % (target.get("host"), target.get("port") or 623)
    user = target.get("username")
    what = " ".join(command)
    lowered = text.lower()
    no_answer = ("Get Auth Capabilities error" in text or "Get Auth Capabilities command failed" in text
                 or "No response from remote controller" in text)
    if "Address lookup for" in text:
        hint = "ipmi.host %r does not resolve: check the BMC's name (or give its address)" % target.get("host")
    elif "Unable to read password from file" in text or "Unable to open password file" in text:
        hint = "ipmitool cannot read ipmi.password_file %s on the host that runs this task" % (
            target.get("password_file"),)
    elif "unauthorized name" in text or "Invalid user name" in text:
        hint = "the BMC does not know user %r: check ipmi.username (an account of the BMC, not of the host)" % user
    elif "HMAC is invalid" in text:
        hint = "the BMC refused the password of user %r: check ipmi.password or ipmi.password_file" % user
    elif "Activate Session command failed" in text or ("Unable to establish LAN session" in text and not no_answer):
        hint = ("the BMC refused the IPMI 1.5 session: check ipmi.username and the password, and that the BMC allows "
                "an authentication type (MD5, MD2, password) for that user; or use interface lanplus")
    elif re.search(r"invalid (authentication|integrity|confidentiality) algorithm|cipher suite", text, re.I):
        hint = ("the BMC does not offer cipher suite %s: set ipmi.cipher_suite to one it does (3 is the most widely "
                "supported, 17 on newer BMCs; `ipmitool -I lanplus ... channel getciphers ipmi` lists them)"
                % (target.get("cipher_suite") if target.get("cipher_suite") is not None else "(ipmitool's default)"))
    elif no_answer or "Error issuing Get Channel Authentication Capabilities" in text:
        hint = ("no IPMI answer from %s (UDP): check ipmi.host and ipmi.port, that IPMI over LAN is enabled on the "
                "BMC, and that nothing between drops UDP to that port" % where)
    elif "insufficient privilege level" in lowered or "privilege level exceeds" in lowered or \
            "unauthorized role" in lowered:
        hint = ("user %r at privilege %s may not run %s: chassis control needs operator or administrator (set "
                "ipmi.privilege_level, and the user's privilege limit on the BMC)"
                % (user, target.get("privilege_level") or "administrator (ipmitool's default)", what))
    elif command == POWER_DIAG and ("Invalid data field in request" in text or "Invalid command" in text):
        hint = ("the BMC refused chassis power diag: it does not implement the diagnostic interrupt (Chassis Control "
                "directive 4, pulse diag); use the host's hypervisor or the vendor's own NMI action (iDRAC, iLO, "
                "XCC) instead")
    elif "Unable to establish" in text:
        hint = ("no IPMI session with %s: check ipmi.host, ipmi.port, ipmi.username, the password, ipmi.interface "
                "and ipmi.cipher_suite" % where)
    else:
        hint = "see ipmitool's output"
    message = "ipmitool %s on the BMC %s failed (rc=%s): %s" % (what, where, rc, hint)
    if said:
        message += ". ipmitool said: %s" % " | ".join(said[-6:])
    return _scrub(message, target)


def run(module, target, command):
    """Run ``ipmitool ... command``; ``{"request": ..., "response": ...}`` or OobError."""
    argv, environ = command_line(_ipmitool(module), target, command)
    rc, stdout, stderr = module.run_command(argv, environ_update=environ)
    request = {"tool": "ipmitool", "command": " ".join(command), "argv": argv, "host": target["host"],
               "port": target.get("port") or 623, "interface": argv[argv.index("-I") + 1]}
    if rc != 0:
        raise oob.OobError(error_text(target, command, rc, stdout, stderr))
    return {"request": request, "response": {"rc": rc, "stdout": _scrub((stdout or "").strip(), target)}}


def power_status(module, target):
    """``chassis power status``: ``response.power`` is ``on`` or ``off`` (``unknown`` when ipmitool says otherwise)."""
    answer = run(module, target, POWER_STATUS)
    match = re.search(r"Chassis Power is (\w+)", answer["response"]["stdout"])
    answer["response"]["power"] = match.group(1).lower() if match else "unknown"
    return answer


def inject_nmi(module, target):
    """``chassis power diag``: the BMC pulses the diagnostic interrupt (an NMI). Refuses a host that is powered off."""
    status = power_status(module, target)
    power = status["response"]["power"]
    if power == "off":
        raise oob.OobError("the BMC %s:%s says the host is powered off (chassis power status): an NMI would reach no "
                           "running kernel; power it on, or look at why it went off"
                           % (target["host"], target.get("port") or 623))
    answer = run(module, target, POWER_DIAG)
    answer["response"]["power_before"] = power
    return answer
