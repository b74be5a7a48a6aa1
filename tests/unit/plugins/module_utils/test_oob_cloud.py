"""Cloud methods of the out-of-band NMI/SysRq (module_utils/_oob/aws.py, gcp.py, azure.py), against the SDKs' own test seams.

AWS: botocore's Stubber on a real boto3 EC2 client. GCP: a real google-cloud-compute REST client whose HTTP
session is replaced (as the library's own tests do). Azure: a requests Session with a fake transport adapter and
a fake websocket. No test reaches a network.
"""

from __future__ import annotations

import json

import pytest
import requests

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import aws as oob_aws
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import azure as oob_azure
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import gcp as oob_gcp

# The SDKs are optional for the collection: a test that needs one is skipped without it (named in the skip
# reason); the tests of options, messages and documentation run whatever is installed.
try:
    import boto3
    from botocore.stub import Stubber
except ImportError:
    boto3 = None
try:
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import compute_v1
except ImportError:
    compute_v1 = None
try:
    from azure.core import exceptions as azure_exceptions
    from azure.core.credentials import AccessToken
    import azure.identity as azure_identity
    import websocket
except ImportError:
    azure_identity = None

needs_boto3 = pytest.mark.skipif(boto3 is None, reason="needs boto3")
needs_google = pytest.mark.skipif(compute_v1 is None, reason="needs google-cloud-compute")
needs_azure = pytest.mark.skipif(azure_identity is None, reason="needs azure-identity and websocket-client")

INSTANCE = "i-0123456789abcdef0"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AWS_TOKEN = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"
AZURE_SECRET = "azure-client-secret-value-123"
AZURE_TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.fake-arm-token.sig"
CONNECTION = "wss://eastus.console.azure.com/session/4f2a/client"


def aws_target(**extra):
    target = {"instance_id": INSTANCE, "region": "us-east-1", "profile": None, "access_key": "AKIAIOSFODNN7EXAMPLE",
              "secret_key": AWS_SECRET, "session_token": AWS_TOKEN, "endpoint_url": None}
    target.update(extra)
    return target


def ec2_client():
    return boto3.client("ec2", region_name="us-east-1", aws_access_key_id="AKIAIOSFODNN7EXAMPLE",
                        aws_secret_access_key=AWS_SECRET)


# --------------------------------------------------------------------------------------------------------- AWS

@needs_boto3
def test_aws_sends_exactly_the_instance_id():
    client = ec2_client()
    with Stubber(client) as stub:
        stub.add_response("send_diagnostic_interrupt",
                          {"ResponseMetadata": {"RequestId": "req-1", "HTTPStatusCode": 200}},
                          expected_params={"InstanceId": INSTANCE})
        result = oob_aws.inject_nmi(None, aws_target(), client=client)
        stub.assert_no_pending_responses()
    assert result == {
        "request": {"action": "SendDiagnosticInterrupt", "params": {"InstanceId": INSTANCE}, "region": "us-east-1",
                    "endpoint_url": "https://ec2.us-east-1.amazonaws.com"},
        "response": {"http_status": 200, "request_id": "req-1"},
    }


@needs_boto3
@pytest.mark.parametrize("code, message, hint", [
    ("IncorrectState", "The instance 'i-0123456789abcdef0' is not in the 'running' state.",
     "the instance must be running"),
    ("UnauthorizedOperation", "You are not authorized to perform this operation.",
     "grant that IAM action"),
    ("InvalidInstanceID.NotFound", "The instance ID 'i-0123456789abcdef0' does not exist",
     "check aws.instance_id and aws.region"),
])
def test_aws_error_becomes_oob_error(code, message, hint):
    client = ec2_client()
    with Stubber(client) as stub:
        stub.add_client_error("send_diagnostic_interrupt", service_error_code=code, service_message=message,
                              http_status_code=400, expected_params={"InstanceId": INSTANCE})
        with pytest.raises(oob.OobError) as err:
            oob_aws.inject_nmi(None, aws_target(), client=client)
    text = str(err.value)
    assert text.startswith("EC2 SendDiagnosticInterrupt on %s in us-east-1 failed: %s: %s; "
                           % (INSTANCE, code, message))
    assert hint in text
    if code == "UnauthorizedOperation":
        assert "ec2:SendDiagnosticInterrupt" in text


def test_aws_missing_instance_id_names_the_option():
    with pytest.raises(oob.OobError) as err:
        oob_aws.inject_nmi(None, aws_target(instance_id=None), client=object())
    assert str(err.value) == "method aws needs aws.instance_id"


def test_aws_missing_boto3_names_the_package(monkeypatch):
    monkeypatch.setattr(oob_aws, "HAS_BOTO3", False)
    with pytest.raises(oob.OobError) as err:
        oob_aws.inject_nmi(None, aws_target())
    assert str(err.value) == ("method aws needs the Python package boto3 on the host that runs the task "
                              "(pip install boto3)")


@needs_boto3
def test_aws_client_from_options_and_no_secret_in_result(monkeypatch):
    """The client the method builds itself from the options: region, endpoint and keys as given; the result
    carries neither the secret key nor the session token."""
    made = []
    real = oob_aws._client

    def stubbed(target):
        client = real(target)
        stub = Stubber(client)
        stub.add_response("send_diagnostic_interrupt", {}, expected_params={"InstanceId": INSTANCE})
        stub.activate()
        made.append((client, stub))
        return client
    monkeypatch.setattr(oob_aws, "_client", stubbed)
    result = oob_aws.inject_nmi(None, aws_target(region="eu-west-1",
                                                 endpoint_url="https://vpce-1.ec2.eu-west-1.vpce.example"))
    client, stub = made[0]
    stub.assert_no_pending_responses()
    credentials = client._request_signer._credentials
    assert (credentials.access_key, credentials.secret_key, credentials.token) == (
        "AKIAIOSFODNN7EXAMPLE", AWS_SECRET, AWS_TOKEN)
    assert client.meta.config.retries["total_max_attempts"] == 1
    assert result["request"]["region"] == "eu-west-1"
    assert result["request"]["endpoint_url"] == "https://vpce-1.ec2.eu-west-1.vpce.example"
    dumped = json.dumps(result)
    assert AWS_SECRET not in dumped and AWS_TOKEN not in dumped


@needs_boto3
def test_aws_unknown_profile(monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    with pytest.raises(oob.OobError) as err:
        oob_aws.inject_nmi(None, aws_target(profile="nosuch", access_key=None, secret_key=None,
                                            session_token=None))
    assert "AWS profile not found" in str(err.value) and "nosuch" in str(err.value)


# --------------------------------------------------------------------------------------------------------- GCP

GCP_TARGET = {"project": "P", "zone": "Z", "instance": "I", "credentials_file": None}
GCP_URL = "https://compute.googleapis.com/compute/v1/projects/P/zones/Z/instances/I/sendDiagnosticInterrupt"


def gcp_client(monkeypatch, status, body):
    """A real REST InstancesClient; its authorized session's ``request`` answers ``status``/``body``."""
    client = compute_v1.InstancesClient(credentials=AnonymousCredentials(), transport="rest")
    calls = []

    def request(method, url, **kwargs):
        calls.append((method, url, kwargs))
        response = requests.Response()
        response.status_code = status
        response._content = json.dumps(body).encode("utf-8")
        response.request = requests.Request(method, url).prepare()
        return response
    monkeypatch.setattr(client.transport._session, "request", request)
    return client, calls


@needs_google
def test_gcp_posts_send_diagnostic_interrupt_once(monkeypatch):
    client, calls = gcp_client(monkeypatch, 200, {})
    result = oob_gcp.inject_nmi(None, dict(GCP_TARGET), client=client)
    assert len(calls) == 1
    method, url, kwargs = calls[0]
    assert (method, url) == ("POST", GCP_URL)
    assert kwargs["headers"]["x-goog-request-params"] == "project=P&zone=Z&instance=I"
    # api-core passes what is left of the deadline: the whole timeout unless a millisecond went by first.
    assert oob_gcp.GCP_TIMEOUT - 5 < kwargs["timeout"] <= oob_gcp.GCP_TIMEOUT
    assert result == {
        "request": {"method": "POST", "path": "/compute/v1/projects/P/zones/Z/instances/I/sendDiagnosticInterrupt",
                    "project": "P", "zone": "Z", "instance": "I"},
        "response": {"status": "sent", "body": {}},
    }


@needs_google
def test_gcp_forbidden_becomes_oob_error(monkeypatch):
    message = "Required 'compute.instances.sendDiagnosticInterrupt' permission for 'projects/P/zones/Z/instances/I'"
    client, calls = gcp_client(monkeypatch, 403, {"error": {"code": 403, "message": message, "errors": [
        {"message": message, "domain": "global", "reason": "forbidden"}]}})
    with pytest.raises(oob.OobError) as err:
        oob_gcp.inject_nmi(None, dict(GCP_TARGET), client=client)
    text = str(err.value)
    assert len(calls) == 1  # no retry: a second request could raise a second NMI
    assert text.startswith("Compute Engine sendDiagnosticInterrupt on P/Z/I failed: HTTP 403 forbidden: ")
    assert message in text
    assert "roles/compute.instanceAdmin.v1" in text


@needs_google
def test_gcp_not_found(monkeypatch):
    client, _calls = gcp_client(monkeypatch, 404, {"error": {"code": 404, "message": "The resource was not found"}})
    with pytest.raises(oob.OobError) as err:
        oob_gcp.inject_nmi(None, dict(GCP_TARGET), client=client)
    assert "HTTP 404" in str(err.value)
    assert "check gcp.project, gcp.zone and gcp.instance" in str(err.value)


def test_gcp_missing_options_named():
    with pytest.raises(oob.OobError) as err:
        oob_gcp.inject_nmi(None, {"project": "P", "zone": None, "instance": None})
    assert str(err.value) == "method gcp needs gcp.zone, gcp.instance"


def test_gcp_missing_sdk_names_the_package(monkeypatch):
    monkeypatch.setattr(oob_gcp, "HAS_GOOGLE_COMPUTE", False)
    with pytest.raises(oob.OobError) as err:
        oob_gcp.inject_nmi(None, dict(GCP_TARGET))
    assert str(err.value) == ("method gcp needs the Python package google-cloud-compute on the host that runs the "
                              "task (pip install google-cloud-compute)")


@needs_google
def test_gcp_unreadable_credentials_file(tmp_path):
    path = str(tmp_path / "missing.json")
    with pytest.raises(oob.OobError) as err:
        oob_gcp.inject_nmi(None, dict(GCP_TARGET, credentials_file=path))
    assert "gcp.credentials_file=%s" % path in str(err.value)


# ------------------------------------------------------------------------------------------------------- Azure

AZURE_TARGET = {"subscription_id": "00000000-1111-2222-3333-444444444444", "resource_group": "rg1",
                "vm_name": "web1", "vmss_instance_id": None, "tenant_id": None, "client_id": None,
                "client_secret": None, "timeout": 5.0}
ARM_URL = ("https://management.azure.com/subscriptions/00000000-1111-2222-3333-444444444444/resourcegroups/rg1/"
           "providers/Microsoft.Compute/virtualMachines/web1/providers/Microsoft.SerialConsole/serialPorts/0/connect")


class FakeCredential:
    def __init__(self, token=AZURE_TOKEN, error=None):
        self.token, self.error, self.scopes = token, error, []

    def get_token(self, *scopes, **kwargs):
        self.scopes.append(scopes)
        if self.error:
            raise self.error
        return AccessToken(self.token, 4102444800)


class FakeAdapter(requests.adapters.BaseAdapter):
    """A requests transport: records each PreparedRequest, answers from a queue of (status, body)."""

    def __init__(self, answers):
        super().__init__()
        self.answers = list(answers)
        self.sent = []

    def send(self, request, **kwargs):
        self.sent.append(request)
        status, body = self.answers.pop(0)
        response = requests.Response()
        response.status_code = status
        response._content = (json.dumps(body) if not isinstance(body, str) else body).encode("utf-8")
        response.headers["Content-Type"] = "application/json"
        response.url = request.url
        response.request = request
        return response

    def close(self):
        pass


class FakeWebSocket:
    def __init__(self, messages):
        self.messages = list(messages)
        self.sent = []
        self.closed = False

    def recv(self):
        if not self.messages:
            raise websocket.WebSocketTimeoutException("timed out")
        return self.messages.pop(0)

    def send(self, data):
        self.sent.append(data)

    def close(self):
        self.closed = True


def azure_client(answers, messages=("\x1b[2J",), credential=None, ws_error=None):
    adapter = FakeAdapter(answers)
    session = requests.Session()
    session.mount("https://", adapter)
    ws = FakeWebSocket(messages)
    opened = []

    def connect(url, timeout):
        opened.append((url, timeout))
        if ws_error:
            raise ws_error
        return ws
    client = oob_azure.AzureSerialConsole(credential or FakeCredential(), session=session, websocket_connect=connect,
                                          timeout=5.0)
    return client, adapter, ws, opened


def connect_ok():
    return (200, {"connectionString": CONNECTION})


def assert_arm_connect(prepared):
    assert prepared.method == "POST"
    assert prepared.url == ARM_URL + "?api-version=2018-05-01"
    assert prepared.headers["Authorization"] == "Bearer " + AZURE_TOKEN


def assert_admin(prepared, command, parameters):
    assert prepared.method == "POST"
    assert prepared.url == "https://eastus.console.azure.com/session/4f2a/adminCommand/" + command
    assert prepared.headers["Authorization"] == "Bearer " + AZURE_TOKEN
    assert prepared.headers["Content-Type"] == "application/json"
    body = json.loads(prepared.body)
    assert set(body) == {"command", "requestId", "commandParameters"}
    assert (body["command"], body["commandParameters"]) == (command, parameters)
    return body


@needs_azure
def test_azure_sysrq_w(monkeypatch):
    client, adapter, ws, opened = azure_client([connect_ok(), (200, {})])
    result = oob_azure.send_sysrq(None, dict(AZURE_TARGET), ["w"], 100, client=client)
    assert len(adapter.sent) == 2
    assert_arm_connect(adapter.sent[0])
    body = assert_admin(adapter.sent[1], "sysrq", {"SysRqCommand": "w"})
    # The websocket: the connection string, the token as its authorization, the new flow; nothing typed into it.
    assert opened == [(CONNECTION + "?authorization=" + AZURE_TOKEN + "&new=1", 5.0)]
    assert ws.sent == [] and ws.closed
    assert client.credential.scopes == [("https://management.azure.com/.default",)]
    assert result == [{
        "key": "w",
        "request": {
            "connect": {"method": "POST", "url": ARM_URL, "api-version": "2018-05-01"},
            "admin_command": {"method": "POST", "url": "https://eastus.console.azure.com/.../adminCommand/sysrq",
                              "body": body},
        },
        "response": {"status_code": 200, "tries": 1, "body": {}},
    }]


@needs_azure
def test_azure_sysrq_several_keys_one_session():
    client, adapter, ws, opened = azure_client([connect_ok(), (200, {}), (200, {})])
    result = oob_azure.send_sysrq(None, dict(AZURE_TARGET), ["9", "w"], 100, client=client)
    assert [r["key"] for r in result] == ["9", "w"]
    assert len(opened) == 1
    assert_admin(adapter.sent[1], "sysrq", {"SysRqCommand": "9"})
    assert_admin(adapter.sent[2], "sysrq", {"SysRqCommand": "w"})
    ids = [json.loads(p.body)["requestId"] for p in adapter.sent[1:]]
    assert len(set(ids)) == 2


@needs_azure
def test_azure_nmi():
    client, adapter, ws, _opened = azure_client([connect_ok(), (200, {})])
    result = oob_azure.inject_nmi(None, dict(AZURE_TARGET), client=client)
    assert_arm_connect(adapter.sent[0])
    body = assert_admin(adapter.sent[1], "nmi", {})
    assert result["request"]["admin_command"]["body"] == body
    assert result["response"] == {"status_code": 200, "tries": 1, "body": {}}
    assert ws.closed


@needs_azure
def test_azure_scale_set_instance_url():
    client, adapter, _ws, _opened = azure_client([connect_ok(), (200, {})])
    oob_azure.inject_nmi(None, dict(AZURE_TARGET, vm_name="pool", vmss_instance_id="3"), client=client)
    assert adapter.sent[0].url == (
        "https://management.azure.com/subscriptions/00000000-1111-2222-3333-444444444444/resourcegroups/rg1/"
        "providers/Microsoft.Compute/virtualMachineScaleSets/pool/virtualMachines/3/providers/"
        "Microsoft.SerialConsole/serialPorts/0/connect?api-version=2018-05-01")


@needs_azure
def test_azure_refused_key_tried_again_after_next_message():
    client, adapter, _ws, _opened = azure_client([connect_ok(), (500, ""), (200, {})], messages=["a", "b"])
    results = oob_azure.send_sysrq(None, dict(AZURE_TARGET), ["w"], 100, client=client)
    assert results[0]["response"]["tries"] == 2
    assert len(adapter.sent) == 3


@needs_azure
@pytest.mark.parametrize("send", [
    lambda client: oob_azure.inject_nmi(None, dict(AZURE_TARGET), client=client),
    lambda client: oob_azure.send_sysrq(None, dict(AZURE_TARGET), ["c"], 100, client=client),
], ids=["nmi", "destructive-key"])
def test_azure_refused_nmi_or_destructive_key_is_never_sent_twice(send):
    """A non-200 answer does not prove the service did nothing: a second NMI or crash key must not go out."""
    client, adapter, _ws, _opened = azure_client([connect_ok(), (500, ""), (200, {})], messages=["a", "b"])
    with pytest.raises(oob.OobError) as err:
        send(client)
    assert len(adapter.sent) == 2  # connect and one command
    assert "HTTP [500]" in str(err.value) and "not sent again" in str(err.value)


@needs_azure
def test_azure_refused_twice_is_an_error():
    client, _adapter, ws, _opened = azure_client([connect_ok(), (500, ""), (500, "")], messages=["a", "b"])
    with pytest.raises(oob.OobError) as err:
        oob_azure.send_sysrq(None, dict(AZURE_TARGET), ["w"], 100, client=client)
    assert 'refused sysrq {"SysRqCommand": "w"} for VM web1: HTTP [500, 500]' in str(err.value)
    assert ws.closed


@needs_azure
def test_azure_auth_failure():
    error = azure_exceptions.ClientAuthenticationError(
        "ClientSecretCredential.get_token failed: AADSTS7000215: Invalid client secret provided.")
    client, adapter, _ws, opened = azure_client([], credential=FakeCredential(error=error))
    with pytest.raises(oob.OobError) as err:
        oob_azure.inject_nmi(None, dict(AZURE_TARGET), client=client)
    assert str(err.value).startswith("Azure sign-in failed (ClientAuthenticationError): ClientSecretCredential."
                                     "get_token failed: AADSTS7000215: Invalid client secret provided.; check "
                                     "azure.tenant_id, azure.client_id and azure.client_secret")
    assert adapter.sent == [] and opened == []


@needs_azure
def test_azure_arm_forbidden():
    client, adapter, _ws, opened = azure_client([(403, {"error": {
        "code": "AuthorizationFailed",
        "message": "The client 'x' does not have authorization to perform action "
                   "'Microsoft.SerialConsole/serialPorts/connect/action'"}})])
    with pytest.raises(oob.OobError) as err:
        oob_azure.inject_nmi(None, dict(AZURE_TARGET), client=client)
    text = str(err.value)
    assert text.startswith("Azure serial console connect for VM web1 failed: HTTP 403 AuthorizationFailed: ")
    assert "boot diagnostics" in text and "Microsoft.SerialConsole/serialPorts/connect/action" in text
    assert opened == []


@needs_azure
def test_azure_console_silent():
    client, _adapter, ws, _opened = azure_client([connect_ok()], messages=[])
    with pytest.raises(oob.OobError) as err:
        oob_azure.inject_nmi(None, dict(AZURE_TARGET), client=client)
    assert "the serial console of VM web1 said nothing within 5.0s (timed out)" in str(err.value)
    assert ws.closed


@needs_azure
def test_azure_websocket_refused():
    refused = websocket.WebSocketBadStatusException(
        "Handshake status 401 Unauthorized -+-+- {} -+-+- None", 401, "Unauthorized", {}, None)
    client, _adapter, _ws, _opened = azure_client([connect_ok()], ws_error=refused)
    with pytest.raises(oob.OobError) as err:
        oob_azure.inject_nmi(None, dict(AZURE_TARGET), client=client)
    assert "cannot open the serial console session of VM web1 (wss://eastus.console.azure.com)" in str(err.value)
    assert "(wss://eastus.console.azure.com): handshake refused: HTTP 401 Unauthorized; check" in str(err.value)


@needs_azure
def test_azure_no_secret_nor_token_in_result():
    target = dict(AZURE_TARGET, tenant_id="t", client_id="c", client_secret=AZURE_SECRET)
    client, _adapter, _ws, _opened = azure_client([connect_ok(), (200, {}), (200, {})])
    dumped = json.dumps(oob_azure.send_sysrq(None, target, ["s", "w"], 100, client=client))
    assert AZURE_SECRET not in dumped and AZURE_TOKEN not in dumped and "/session/4f2a" not in dumped


def test_azure_keyboard_keys_only():
    with pytest.raises(oob.OobError) as err:
        oob_azure.send_sysrq(None, dict(AZURE_TARGET), ["R"], 100, client=object())
    assert str(err.value) == "the Azure serial console sends one letter or digit per SysRq command; not 'R'"


def test_azure_missing_options_named():
    with pytest.raises(oob.OobError) as err:
        oob_azure.inject_nmi(None, dict(AZURE_TARGET, vm_name=None, resource_group=""))
    assert str(err.value) == "method azure needs azure.resource_group, azure.vm_name"


@pytest.mark.parametrize("flag, package", [
    ("HAS_AZURE_IDENTITY", "azure-identity"), ("HAS_WEBSOCKET", "websocket-client"), ("HAS_REQUESTS", "requests")])
def test_azure_missing_packages_named(monkeypatch, flag, package):
    for other in ("HAS_AZURE_IDENTITY", "HAS_WEBSOCKET", "HAS_REQUESTS"):
        monkeypatch.setattr(oob_azure, other, other != flag)
    with pytest.raises(oob.OobError) as err:
        oob_azure.inject_nmi(None, dict(AZURE_TARGET))
    assert str(err.value) == ("method azure needs the Python package %s on the host that runs the task "
                              "(pip install %s)" % (package, package))


@needs_azure
def test_azure_credential_from_options():
    credential = oob_azure._azure_credential(dict(AZURE_TARGET, tenant_id="t", client_id="c", client_secret="s"))
    assert isinstance(credential, azure_identity.ClientSecretCredential)
    with pytest.raises(oob.OobError) as err:
        oob_azure._azure_credential(dict(AZURE_TARGET, tenant_id="t", client_id="c"))
    assert str(err.value) == "method azure needs azure.client_secret"


@needs_azure
def test_azure_client_from_options():
    client = oob_azure._client(dict(AZURE_TARGET, tenant_id="t", client_id="c", client_secret="s"))
    assert isinstance(client.credential, azure_identity.ClientSecretCredential)
    assert isinstance(client.session, requests.Session)
    assert client.websocket_connect.func is websocket.create_connection
    assert client.websocket_connect.keywords == {"skip_utf8_validation": True}
    assert client.timeout == 5.0


@pytest.mark.parametrize("connection, command, expected", [
    ("wss://h.example/a/client", "sysrq", "https://h.example/a/adminCommand/sysrq"),
    ("ws://h.example/client", "nmi", "http://h.example/adminCommand/nmi"),
    ("wss://wss.client.example/x/client?session=1", "nmi", "https://wss.client.example/x/adminCommand/nmi"),
])
def test_azure_admin_url(connection, command, expected):
    assert oob_azure.azure_admin_url(connection, command) == expected


def test_azure_admin_url_refuses_other_schemes():
    with pytest.raises(oob.OobError):
        oob_azure.azure_admin_url("https://h.example/client", "nmi")


# ------------------------------------------------------------------------------------ spec and documentation

def test_secrets_are_no_log():
    for module in (oob_aws, oob_gcp, oob_azure):
        for method, spec in module.ARGUMENT_SPEC.items():
            for name, option in spec["options"].items():
                if name in module.SECRET_OPTIONS:
                    assert option.get("no_log") is True, (method, name)
                else:
                    assert not option.get("no_log"), (method, name)
        assert {n for s in module.ARGUMENT_SPEC.values() for n in s["options"]} >= set(module.SECRET_OPTIONS)
