"""Method ipmi: the exact ipmitool command lines and environment, the password kept off the command line and out of
the results, and ipmitool's error output (as captured from ipmitool 1.8.19 against OpenIPMI's ipmi_sim) turned into
messages that say what to check."""

from __future__ import annotations

import json

import pytest

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.testing import patch_module_args
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import ipmi as oob_ipmi

IPMITOOL = "/usr/bin/ipmitool"
SECRET = "s3cret-Pw!"
# What ipmitool -v prints around every successful command on ipmi_sim (dropped from messages).
NOISE = ("Loading IANA PEN Registry...\nRunning Get VSO Capabilities my_addr 0x20, transit 0, target 0x20\n"
         "Invalid completion code received: Invalid command\nDiscovered IPMB address 0x0\n")


class FakeModule:
    """Just enough of AnsibleModule: records each run_command (argv, environment) and answers from a script."""

    def __init__(self, *answers, ipmitool=IPMITOOL):
        self.answers = list(answers)
        self.calls = []
        self.ipmitool = ipmitool

    def get_bin_path(self, name, required=False, opt_dirs=None):
        assert name == "ipmitool"
        return self.ipmitool

    def run_command(self, args, environ_update=None, **kwargs):
        self.calls.append({"args": list(args), "env": dict(environ_update or {}), "kwargs": kwargs})
        return self.answers.pop(0)


ON = (0, "Chassis Power is on\n", NOISE)
OFF = (0, "Chassis Power is off\n", NOISE)
DIAG_OK = (0, "Chassis Power Control: Diag\n", NOISE)


def target(**extra):
    base = {"host": "web1-bmc.example.com", "username": "admin", "password": SECRET}
    base.update(extra)
    return base


def assert_secret_kept(module, result=None):
    for call in module.calls:
        assert not any(SECRET in arg for arg in call["args"]), call["args"]
    if result is not None:
        assert SECRET not in json.dumps(result)


# ------------------------------------------------------------------------------------------- command lines
def test_inject_nmi_checks_power_then_pulses_diag():
    module = FakeModule(ON, DIAG_OK)
    result = oob_ipmi.inject_nmi(module, target())
    assert [c["args"] for c in module.calls] == [
        [IPMITOOL, "-v", "-I", "lanplus", "-H", "web1-bmc.example.com", "-p", "623", "-U", "admin", "-E",
         "chassis", "power", "status"],
        [IPMITOOL, "-v", "-I", "lanplus", "-H", "web1-bmc.example.com", "-p", "623", "-U", "admin", "-E",
         "chassis", "power", "diag"],
    ]
    assert [c["env"] for c in module.calls] == [{"IPMI_PASSWORD": SECRET}] * 2
    assert result["request"] == {
        "tool": "ipmitool", "command": "chassis power diag", "host": "web1-bmc.example.com", "port": 623,
        "interface": "lanplus", "argv": module.calls[1]["args"]}
    assert result["response"] == {"rc": 0, "stdout": "Chassis Power Control: Diag", "power_before": "on"}
    assert_secret_kept(module, result)


def test_every_option_on_the_command_line():
    module = FakeModule(ON)
    oob_ipmi.power_status(module, target(port=6230, privilege_level="operator", cipher_suite=17, timeout=2,
                                         retries=1, interface="lanplus"))
    assert module.calls[0]["args"] == [
        IPMITOOL, "-v", "-I", "lanplus", "-H", "web1-bmc.example.com", "-p", "6230", "-U", "admin", "-L", "OPERATOR",
        "-C", "17", "-N", "2", "-R", "1", "-E", "chassis", "power", "status"]


def test_cipher_suite_zero_is_passed():
    module = FakeModule(ON)
    oob_ipmi.power_status(module, target(cipher_suite=0))
    assert module.calls[0]["args"][-6:-4] == ["-C", "0"]


def test_ipmi_15_lan_interface():
    module = FakeModule(ON)
    oob_ipmi.power_status(module, target(interface="lan"))
    assert module.calls[0]["args"][:4] == [IPMITOOL, "-v", "-I", "lan"]


def test_password_file_goes_to_f_and_not_the_environment(tmp_path):
    secret_file = tmp_path / "bmc.pw"
    secret_file.write_text(SECRET + "\n")
    module = FakeModule(ON, DIAG_OK)
    result = oob_ipmi.inject_nmi(module, {"host": "10.0.0.5", "username": "admin", "password_file": str(secret_file)})
    assert module.calls[1]["args"] == [IPMITOOL, "-v", "-I", "lanplus", "-H", "10.0.0.5", "-p", "623", "-U", "admin",
                                       "-f", str(secret_file), "chassis", "power", "diag"]
    assert module.calls[1]["env"] == {}
    assert_secret_kept(module, result)


def test_no_password_means_an_empty_one_not_a_prompt():
    module = FakeModule(ON)
    oob_ipmi.power_status(module, {"host": "bmc", "username": "admin"})
    assert module.calls[0]["args"][-4:] == ["-E", "chassis", "power", "status"]
    assert module.calls[0]["env"] == {"IPMI_PASSWORD": ""}


def test_no_username_leaves_out_u():
    module = FakeModule(ON)
    oob_ipmi.power_status(module, {"host": "bmc", "password": SECRET})
    assert "-U" not in module.calls[0]["args"]


# -------------------------------------------------------------------------------------- refusals before ipmitool
@pytest.mark.parametrize("bad, message", [
    ({"host": None}, r"method ipmi needs ipmi\.host"),
    ({"interface": "serial"}, r"ipmi\.interface must be lanplus .* or lan"),
    ({"interface": "lan", "cipher_suite": 3}, r"cipher_suite applies to interface lanplus only"),
    ({"password_file": "/etc/hostname"}, r"mutually exclusive"),
])
def test_bad_targets_are_refused_before_running_anything(bad, message):
    module = FakeModule()
    with pytest.raises(oob.OobError, match=message):
        oob_ipmi.inject_nmi(module, target(**bad))
    assert module.calls == []


def test_unreadable_password_file(tmp_path):
    module = FakeModule()
    with pytest.raises(oob.OobError, match=r"ipmi\.password_file .*/nope cannot be read on the host that runs"):
        oob_ipmi.inject_nmi(module, {"host": "bmc", "password_file": str(tmp_path / "nope")})
    assert module.calls == []


def test_ipmitool_missing():
    with pytest.raises(oob.OobError, match=r"ipmitool is not installed .*install the ipmitool package"):
        oob_ipmi.inject_nmi(FakeModule(ipmitool=None), target())


def test_powered_off_host_gets_no_nmi():
    module = FakeModule(OFF)
    with pytest.raises(oob.OobError, match=r"web1-bmc.example.com:623 says the host is powered off"):
        oob_ipmi.inject_nmi(module, target())
    assert len(module.calls) == 1


def test_power_status_parses():
    assert oob_ipmi.power_status(FakeModule(ON), target())["response"]["power"] == "on"
    assert oob_ipmi.power_status(FakeModule(OFF), target())["response"]["power"] == "off"
    assert oob_ipmi.power_status(FakeModule((0, "???\n", "")), target())["response"]["power"] == "unknown"


# ------------------------------------------------------------------------------------------ ipmitool's errors
# stderr as ipmitool 1.8.19 -v prints it (captured against ipmi_sim 2.0.33 and by hand).
ERRORS = [
    ("unknown user (lanplus)", "Loading IANA PEN Registry...\nRAKP 2 message indicates an error : unauthorized name\n"
     "Error: Unable to establish IPMI v2 / RMCP+ session\n",
     r"the BMC does not know user 'admin': check ipmi\.username"),
    ("unknown user (lan)", "Loading IANA PEN Registry...\nInvalid user name\nError: Unable to establish LAN session\n"
     "Error: Unable to establish IPMI v1.5 / RMCP session\n", r"does not know user 'admin'"),
    ("wrong password (lanplus)", "Loading IANA PEN Registry...\n> RAKP 2 HMAC is invalid\n"
     "Error: Unable to establish IPMI v2 / RMCP+ session\n",
     r"refused the password of user 'admin': check ipmi\.password or ipmi\.password_file"),
    ("wrong password (lan)", "Loading IANA PEN Registry...\nActivate Session command failed\n"
     "Error: Unable to establish LAN session\nError: Unable to establish IPMI v1.5 / RMCP session\n",
     r"refused the IPMI 1\.5 session: check ipmi\.username and the password"),
    ("no answer (lanplus)", "Loading IANA PEN Registry...\nGet Auth Capabilities error\n"
     "Error issuing Get Channel Authentication Capabilities request\n"
     "Error: Unable to establish IPMI v2 / RMCP+ session\n",
     r"no IPMI answer from web1-bmc\.example\.com:623 \(UDP\): check ipmi\.host and ipmi\.port"),
    ("no answer (lan)", "Loading IANA PEN Registry...\nGet Auth Capabilities command failed\n"
     "Error: Unable to establish LAN session\nError: Unable to establish IPMI v1.5 / RMCP session\n",
     r"no IPMI answer from"),
    ("no DNS", "Address lookup for web1-bmc.example.com failed\nCould not open socket!\n"
     "Error: Unable to establish IPMI v2 / RMCP+ session\n", r"ipmi\.host 'web1-bmc\.example\.com' does not resolve"),
    ("cipher suite", "Loading IANA PEN Registry...\nError in open session response message : invalid authentication "
     "algorithm\n\nError: Unable to establish IPMI v2 / RMCP+ session\n",
     r"does not offer cipher suite \(ipmitool's default\): set ipmi\.cipher_suite"),
    ("privilege", NOISE + "Get HPM.x Capabilities request failed, compcode = d4\n"
     "Set Chassis Power Control to Diag failed: Insufficient privilege level\n",
     r"user 'admin' at privilege administrator \(ipmitool's default\) may not run chassis power diag: .*operator"),
    ("no diag", NOISE + "Set Chassis Power Control to Diag failed: Invalid data field in request\n",
     r"refused chassis power diag: it does not implement the diagnostic interrupt"),
    ("password file", "File /run/pw does not exist\nUnable to open password file /run/pw\n"
     "Unable to read password from file /run/pw\n", r"cannot read ipmi\.password_file"),
]


@pytest.mark.parametrize("stderr, message", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_ipmitool_errors_say_what_to_check(stderr, message):
    module = FakeModule(ON, (1, "", stderr))
    with pytest.raises(oob.OobError, match=message) as info:
        oob_ipmi.inject_nmi(module, target())
    text = str(info.value)
    assert text.startswith("ipmitool chassis power diag on the BMC web1-bmc.example.com:623 failed (rc=1): ")
    assert "ipmitool said: " in text and "Loading IANA" not in text and "Discovered IPMB" not in text
    assert SECRET not in text


def test_unknown_errors_keep_ipmitool_words():
    module = FakeModule((1, "", NOISE + "Set Chassis Power Control to Diag failed: Node busy\n"))
    with pytest.raises(oob.OobError, match=r"failed \(rc=1\): see ipmitool's output\. ipmitool said: Set Chassis "
                                           r"Power Control to Diag failed: Node busy$"):
        oob_ipmi.run(module, target(), oob_ipmi.POWER_DIAG)


def test_a_password_echoed_back_is_masked():
    module = FakeModule((1, "", "Error: bad thing with %s\n" % SECRET))
    with pytest.raises(oob.OobError) as info:
        oob_ipmi.power_status(module, target())
    assert SECRET not in str(info.value) and "********" in str(info.value)


# ------------------------------------------------------------------------------------------- options and docs
def _params(ipmi):
    with patch_module_args({"ipmi": ipmi}):
        return AnsibleModule(argument_spec=oob_ipmi.ARGUMENT_SPEC).params["ipmi"]


def test_argument_spec_defaults_and_no_log():
    params = _params({"host": "bmc", "password": SECRET})
    assert params == {"host": "bmc", "port": 623, "username": None, "password": SECRET, "password_file": None,
                      "interface": "lanplus", "cipher_suite": None, "privilege_level": None, "timeout": None,
                      "retries": None}
    assert oob_ipmi.ARGUMENT_SPEC["ipmi"]["options"]["password"]["no_log"] is True


def test_argument_spec_refuses_host_missing_and_both_passwords(capsys):
    for bad, text in (({"username": "admin"}, "missing required arguments: host"),
                      ({"host": "bmc", "password": SECRET, "password_file": "/f"}, "mutually exclusive")):
        with pytest.raises(SystemExit):
            _params(bad)
        assert text in capsys.readouterr().out
