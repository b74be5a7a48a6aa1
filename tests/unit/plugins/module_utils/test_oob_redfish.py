"""Method redfish against a real local HTTP(S) server that plays a BMC: the exact requests sent (method, path,
headers, body), basic and session authentication (the session deleted afterwards, also after an error), TLS
verification and a CA bundle, the refusals, and the password in no result, warning or error.

The server is Python's own http.server on 127.0.0.1 in a thread; its answers follow DSP0266 and what iDRAC9, iLO 5
and bmcweb return (ActionInfo, ExtendedInfo). sushy-tools' emulator over a real libvirt domain is in
tests/oob/test_redfish_sushy.py."""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible.module_utils.testing import patch_module_args
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import redfish as oob_redfish
from ansible_collections.magic_sysrq.fleet.plugins.modules import oob_nmi

SECRET = "s3cret-Pw!-Redfish"
TOKEN = "tok-0123456789abcdef"
RESET_TARGET = "/redfish/v1/Systems/1/Actions/ComputerSystem.Reset"
ALL_RESETS = ("On", "ForceOff", "GracefulShutdown", "GracefulRestart", "ForceRestart", "Nmi", "PushPowerButton")


class BMC:
    """A BMC's Redfish tree in a dict, served over HTTP; records every request."""

    def __init__(self, systems=None, allowable=ALL_RESETS, action_info=False, power="On", reset_status=204,
                 reset_body=None, basic=True, sessions=True):
        self.systems = systems or {"1": {}}
        self.allowable, self.action_info, self.power = allowable, action_info, power
        self.reset_status, self.reset_body = reset_status, reset_body
        self.basic, self.sessions = basic, sessions
        self.requests = []
        self.live_sessions = set()

    # what the BMC serves
    def resource(self, path):
        if path == "/redfish/v1/":
            root = {"@odata.id": "/redfish/v1/", "RedfishVersion": "1.15.0",
                    "Systems": {"@odata.id": "/redfish/v1/Systems"}}
            if self.sessions:
                root["Links"] = {"Sessions": {"@odata.id": "/redfish/v1/SessionService/Sessions"}}
            return root
        if path == "/redfish/v1/Systems":
            return {"Members": [{"@odata.id": "/redfish/v1/Systems/%s" % k} for k in self.systems],
                    "Members@odata.count": len(self.systems)}
        for key in self.systems:
            if path == "/redfish/v1/Systems/%s" % key:
                action = {"target": "/redfish/v1/Systems/%s/Actions/ComputerSystem.Reset" % key}
                if self.action_info:
                    action["@Redfish.ActionInfo"] = "/redfish/v1/Systems/%s/ResetActionInfo" % key
                elif self.allowable is not None:
                    action["ResetType@Redfish.AllowableValues"] = list(self.allowable)
                return {"@odata.id": path, "Id": key, "PowerState": self.power,
                        "Actions": {"#ComputerSystem.Reset": action}}
            if path == "/redfish/v1/Systems/%s/ResetActionInfo" % key:
                return {"Parameters": [{"Name": "ResetType", "Required": True, "DataType": "String",
                                        "AllowableValues": list(self.allowable)}]}
        return None


def _handler(bmc):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _reply(self, status, body=None, headers=None):
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            entry = {"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                     "body": json.loads(raw) if raw else None}
            bmc.requests.append(entry)
            return entry

        def _authorised(self):
            if self.path == "/redfish/v1/":
                return True
            token = self.headers.get("X-Auth-Token")
            if token:
                return token in bmc.live_sessions
            auth = self.headers.get("Authorization") or ""
            return bmc.basic and auth == "Basic " + base64.b64encode(("admin:" + SECRET).encode()).decode()

        def _error(self, status, message):
            self._reply(status, {"error": {"code": "Base.1.8.GeneralError", "message": "See ExtendedInfo",
                                           "@Message.ExtendedInfo": [{"MessageId": "Base.1.8.X",
                                                                      "Message": message}]}})

        def do_GET(self):
            entry = self._record()
            if not self._authorised():
                return self._error(401, "Authentication failed for %s" % entry["path"])
            body = bmc.resource(self.path)
            if body is None:
                return self._error(404, "The resource at the URI %s was not found." % self.path)
            self._reply(200, body)

        def do_POST(self):
            entry = self._record()
            if self.path == "/redfish/v1/SessionService/Sessions" and bmc.sessions:
                if entry["body"] == {"UserName": "admin", "Password": SECRET}:
                    bmc.live_sessions.add(TOKEN)
                    return self._reply(201, {"@odata.id": "/redfish/v1/SessionService/Sessions/7", "Id": "7"},
                                       {"X-Auth-Token": TOKEN, "Location": "/redfish/v1/SessionService/Sessions/7"})
                return self._error(401, "Invalid username or password")
            if not self._authorised():
                return self._error(401, "Authentication failed")
            if self.path.endswith("/Actions/ComputerSystem.Reset"):
                if bmc.reset_status >= 400:
                    return self._error(bmc.reset_status, bmc.reset_body or "refused")
                return self._reply(bmc.reset_status, bmc.reset_body)
            self._error(404, "no such action")

        def do_DELETE(self):
            self._record()
            if self.path == "/redfish/v1/SessionService/Sessions/7" and TOKEN in bmc.live_sessions:
                bmc.live_sessions.discard(TOKEN)
                return self._reply(204)
            self._error(401, "no session")

    return Handler


@pytest.fixture
def serve():
    servers = []

    def start(bmc, tls=None):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(bmc))
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls["cert"], tls["key"])
            server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return {"host": "127.0.0.1", "port": server.server_address[1], "scheme": "https" if tls else "http",
                "username": "admin", "password": SECRET, "auth": "basic", "timeout": 5.0}

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _no_secret(*things):
    text = json.dumps(things, default=str)
    assert SECRET not in text
    assert base64.b64encode(("admin:" + SECRET).encode()).decode() not in text


# ------------------------------------------------------------------------------------------ the happy paths
def test_basic_auth_exact_requests(serve):
    bmc = BMC()
    target = serve(bmc)
    result = oob_redfish.inject_nmi(None, target)
    assert [(r["method"], r["path"]) for r in bmc.requests] == [
        ("GET", "/redfish/v1/"), ("GET", "/redfish/v1/Systems"), ("GET", "/redfish/v1/Systems/1"),
        ("POST", RESET_TARGET)]
    post = bmc.requests[-1]
    assert post["body"] == {"ResetType": "Nmi"}
    assert post["headers"]["Content-Type"] == "application/json"
    assert post["headers"]["Authorization"] == "Basic " + base64.b64encode(("admin:" + SECRET).encode()).decode()
    assert "Authorization" not in bmc.requests[0]["headers"]   # the service root is read without credentials
    assert result["request"] == {"method": "POST", "url": "http://127.0.0.1:%d%s" % (target["port"], RESET_TARGET),
                                 "body": {"ResetType": "Nmi"}, "auth": "basic", "system": "1", "username": "admin"}
    assert result["response"]["status"] == 204 and result["response"]["power_state_before"] == "On"
    assert [e["status"] for e in result["response"]["exchanges"]] == [200, 200, 200, 204]
    _no_secret(result)


def test_session_auth_logs_in_uses_the_token_and_deletes_the_session(serve):
    bmc = BMC(basic=False)
    target = serve(bmc)
    target["auth"] = "session"
    result = oob_redfish.inject_nmi(None, target)
    assert [(r["method"], r["path"]) for r in bmc.requests] == [
        ("GET", "/redfish/v1/"), ("POST", "/redfish/v1/SessionService/Sessions"), ("GET", "/redfish/v1/Systems"),
        ("GET", "/redfish/v1/Systems/1"), ("POST", RESET_TARGET), ("DELETE", "/redfish/v1/SessionService/Sessions/7")]
    assert bmc.requests[1]["body"] == {"UserName": "admin", "Password": SECRET}
    for r in bmc.requests[2:]:
        assert r["headers"]["X-Auth-Token"] == TOKEN and "Authorization" not in r["headers"]
    assert bmc.live_sessions == set()
    assert result["response"]["status"] == 204
    _no_secret(result)


def test_session_deleted_after_a_refusal(serve):
    bmc = BMC(allowable=["On", "ForceOff"])
    target = serve(bmc)
    target["auth"] = "session"
    with pytest.raises(oob.OobError):
        oob_redfish.inject_nmi(None, target)
    assert bmc.requests[-1]["method"] == "DELETE" and bmc.live_sessions == set()


def test_allowable_values_from_action_info(serve):
    bmc = BMC(action_info=True)
    oob_redfish.inject_nmi(None, serve(bmc))
    assert ("GET", "/redfish/v1/Systems/1/ResetActionInfo") in [(r["method"], r["path"]) for r in bmc.requests]
    assert bmc.requests[-1]["body"] == {"ResetType": "Nmi"}


def test_system_by_id_among_several(serve):
    bmc = BMC(systems={"System.Embedded.1": {}, "System.Embedded.2": {}})
    target = dict(serve(bmc), system_id="System.Embedded.2")
    result = oob_redfish.inject_nmi(None, target)
    assert bmc.requests[-1]["path"] == "/redfish/v1/Systems/System.Embedded.2/Actions/ComputerSystem.Reset"
    assert result["request"]["system"] == "System.Embedded.2"


def test_accepted_with_a_task_reports_its_location(serve):
    bmc = BMC(reset_status=200, reset_body={"@Message.ExtendedInfo": [{"MessageId": "Base.1.8.Success"}]})
    result = oob_redfish.inject_nmi(None, serve(bmc))
    assert result["response"]["status"] == 200
    assert result["response"]["body"]["@Message.ExtendedInfo"][0]["MessageId"] == "Base.1.8.Success"


# ------------------------------------------------------------------------------------------------- refusals
def test_nmi_not_allowed_names_the_allowed_and_sends_nothing(serve):
    bmc = BMC(allowable=["On", "ForceOff", "ForceRestart"])
    with pytest.raises(oob.OobError, match=r"system 1 on the BMC http://127\.0\.0\.1:\d+ does not allow ResetType "
                                           r"Nmi \(it allows: On, ForceOff, ForceRestart\); nothing was sent"):
        oob_redfish.inject_nmi(None, serve(bmc))
    assert [r["method"] for r in bmc.requests] == ["GET", "GET", "GET"]


def test_nmi_not_allowed_in_action_info(serve):
    bmc = BMC(allowable=["On"], action_info=True)
    with pytest.raises(oob.OobError, match=r"does not allow ResetType Nmi \(it allows: On\)"):
        oob_redfish.inject_nmi(None, serve(bmc))
    assert "POST" not in [r["method"] for r in bmc.requests]


def test_powered_off_is_refused(serve):
    bmc = BMC(power="Off")
    with pytest.raises(oob.OobError, match=r"says system 1 is powered off"):
        oob_redfish.inject_nmi(None, serve(bmc))
    assert "POST" not in [r["method"] for r in bmc.requests]


def test_several_systems_without_id(serve):
    bmc = BMC(systems={"a": {}, "b": {}})
    with pytest.raises(oob.OobError, match=r"has 2 systems \(a, b\): set redfish.system_id"):
        oob_redfish.inject_nmi(None, serve(bmc))


def test_unknown_system_id(serve):
    with pytest.raises(oob.OobError, match=r"has no system 'nope'; its systems: 1 "):
        oob_redfish.inject_nmi(None, dict(serve(BMC()), system_id="nope"))


@pytest.mark.parametrize("auth", ["basic", "session"])
def test_wrong_password(serve, auth):
    bmc = BMC()
    target = dict(serve(bmc), password="wrong-" + SECRET, auth=auth)
    with pytest.raises(oob.OobError, match=r"HTTP 401\): the BMC refused the credentials of user 'admin'") as info:
        oob_redfish.inject_nmi(None, target)
    assert SECRET not in str(info.value)
    assert "POST" not in [r["method"] for r in bmc.requests if r["path"].endswith("Reset")]


def test_bmc_error_body_is_reported(serve):
    bmc = BMC(reset_status=400, reset_body="Power state Nmi is not supported")
    with pytest.raises(oob.OobError, match=r"POST %s .*HTTP 400\): the BMC refused the request\. The BMC said: "
                                           r"Power state Nmi is not supported" % RESET_TARGET):
        oob_redfish.inject_nmi(None, serve(bmc))


def test_nothing_listening(serve):
    target = serve(BMC())
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        target["port"] = s.getsockname()[1]
    with pytest.raises(oob.OobError, match=r"connection refused: nothing listens on http://127\.0\.0\.1:\d+"):
        oob_redfish.inject_nmi(None, target)


def test_host_with_a_scheme_is_refused():
    with pytest.raises(oob.OobError, match=r"redfish.host is a name or an address"):
        oob_redfish.inject_nmi(None, {"host": "https://bmc", "password": SECRET})


# --------------------------------------------------------------------------------------------------------- TLS
@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.fail("openssl is needed to make the test BMC's certificate (Debian: openssl)")
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(d / "key.pem"), "-out",
                    str(d / "cert.pem")], check=True, capture_output=True)
    return {"cert": str(d / "cert.pem"), "key": str(d / "key.pem")}


def test_tls_verified_by_default_and_refused(serve, tls):
    bmc = BMC()
    with pytest.raises(oob.OobError, match=r"TLS certificate is not trusted .*redfish.ca_path"):
        oob_redfish.inject_nmi(None, serve(bmc, tls))
    assert bmc.requests == []


def test_tls_with_ca_path(serve, tls):
    bmc = BMC()
    result = oob_redfish.inject_nmi(None, dict(serve(bmc, tls), ca_path=tls["cert"]))
    assert result["request"]["url"].startswith("https://127.0.0.1:") and result["response"]["status"] == 204


def test_tls_without_verification(serve, tls):
    bmc = BMC()
    result = oob_redfish.inject_nmi(None, dict(serve(bmc, tls), validate_certs=False))
    assert result["response"]["status"] == 204


# ------------------------------------------------------------------------------------------------ the module
def _module(args, capsys, monkeypatch):
    from ansible.module_utils import _internal
    monkeypatch.setattr(_internal, "is_controller", False)
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            oob_nmi.main()
    out = capsys.readouterr().out
    return json.loads(out), out


def test_module_sends_and_hides_the_password(serve, capsys, monkeypatch):
    bmc = BMC()
    result, out = _module({"method": "redfish", "redfish": serve(bmc), "allow_crash": True}, capsys, monkeypatch)
    assert result["changed"] is True and result["response"]["status"] == 204, result
    assert SECRET not in out
    assert bmc.requests[-1]["body"] == {"ResetType": "Nmi"}


def test_module_check_mode_sends_nothing(serve, capsys, monkeypatch):
    bmc = BMC()
    result, out = _module({"method": "redfish", "redfish": serve(bmc), "allow_crash": True, "_ansible_check_mode": True},
                          capsys, monkeypatch)
    assert result["changed"] is True and "would send" in result["msg"]
    assert bmc.requests == [] and SECRET not in out


def test_module_without_consent_sends_nothing(serve, capsys, monkeypatch):
    bmc = BMC()
    result, out = _module({"method": "redfish", "redfish": serve(bmc)}, capsys, monkeypatch)
    assert result["failed"] and "allow_crash=true" in result["msg"]
    assert bmc.requests == [] and SECRET not in out


def test_module_error_hides_the_password(serve, capsys, monkeypatch):
    bmc = BMC(allowable=["On"])
    result, out = _module({"method": "redfish", "redfish": serve(bmc), "allow_crash": True}, capsys, monkeypatch)
    assert result["failed"] and "does not allow ResetType Nmi" in result["msg"]
    assert SECRET not in out
