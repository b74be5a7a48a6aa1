# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Method ``azure``: the Azure serial console (the service behind ``az serial-console send sysrq`` / ``send nmi``).
Three steps, as the azure-cli ``serial-console`` extension takes them:

1. ARM ``POST .../providers/Microsoft.Compute/virtualMachines/VM/providers/Microsoft.SerialConsole/
   serialPorts/0/connect?api-version=2018-05-01`` answers ``{"connectionString": "wss://.../client"}``.
2. A websocket to that connection string with ``?authorization=TOKEN&new=1`` opens a console session; the
   service's first message says the session is live. Nothing is typed into it.
3. The command itself is an HTTPS ``POST`` to the connection string with ``wss`` made ``https`` and the last
   ``/client`` made ``/adminCommand/sysrq`` (or ``/adminCommand/nmi``), bearer token, JSON body
   ``{"command": "sysrq", "requestId": UUID, "commandParameters": {"SysRqCommand": "w"}}`` (NMI:
   ``{"command": "nmi", "requestId": UUID, "commandParameters": {}}``); HTTP 200 means sent. One key per
   command. A refused command is tried once more after the console's next message.

The SDK is optional: this file imports without it and says which package is missing when the method is used.
The ``client`` argument of each function lets tests (and callers that already hold one) pass a client in.
"""

from __future__ import annotations

import functools
import json
import traceback
import uuid

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysrq.keys import DESTRUCTIVE

try:
    import azure.core.exceptions
    import azure.identity
    HAS_AZURE_IDENTITY = True
    AZURE_IDENTITY_IMPORT_ERROR = None
    AZURE_ERRORS = (azure.core.exceptions.AzureError,)
except ImportError:
    HAS_AZURE_IDENTITY = False
    AZURE_IDENTITY_IMPORT_ERROR = traceback.format_exc()
    AZURE_ERRORS = ()

try:
    import requests
    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
    REQUESTS_ERRORS = (requests.RequestException,)
except ImportError:
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = traceback.format_exc()
    REQUESTS_ERRORS = ()

try:
    import websocket
    HAS_WEBSOCKET = True
    WEBSOCKET_IMPORT_ERROR = None
    WEBSOCKET_ERRORS = (websocket.WebSocketException, OSError)
except ImportError:
    HAS_WEBSOCKET = False
    WEBSOCKET_IMPORT_ERROR = traceback.format_exc()
    WEBSOCKET_ERRORS = (OSError,)


ARGUMENT_SPEC = {
    "azure": dict(type="dict", options=dict(
        subscription_id=dict(type="str", required=True),
        resource_group=dict(type="str", required=True),
        vm_name=dict(type="str", required=True),
        vmss_instance_id=dict(type="str"),
        tenant_id=dict(type="str"),
        client_id=dict(type="str"),
        client_secret=dict(type="str", no_log=True),
        timeout=dict(type="float", default=30.0),
    ), required_together=[["tenant_id", "client_id", "client_secret"]])
}

# Options that are credentials: never in a returned request, whatever the caller passed.
SECRET_OPTIONS = ("client_secret",)


AZURE_ARM = "https://management.azure.com"
AZURE_SCOPE = "https://management.azure.com/.default"
AZURE_API_VERSION = "2018-05-01"
AZURE_PERMISSION = "Microsoft.SerialConsole/serialPorts/connect/action"
AZURE_CHECKS = ("check that the VM exists and runs, that boot diagnostics is enabled on it, that the serial "
                "console is enabled for the subscription (az serial-console enable) and that the identity has %s "
                "(role Virtual Machine Contributor)" % AZURE_PERMISSION)


def _azure_parent(target):
    if target.get("vmss_instance_id"):
        return "virtualMachineScaleSets/%s/virtualMachines/%s" % (target["vm_name"], target["vmss_instance_id"])
    return "virtualMachines/%s" % target["vm_name"]


def azure_connect_url(target):
    """The ARM URL (without query) that opens serial port 0 of the VM (or scale set instance)."""
    return ("%s/subscriptions/%s/resourcegroups/%s/providers/Microsoft.Compute/%s/providers/"
            "Microsoft.SerialConsole/serialPorts/0/connect"
            % (AZURE_ARM, target["subscription_id"], target["resource_group"], _azure_parent(target)))


def azure_admin_url(connection_string, command):
    """The HTTPS URL of a serial console admin command: the websocket URL with ``/client`` -> ``/adminCommand/X``."""
    if connection_string.startswith("wss://"):
        url = "https://" + connection_string[len("wss://"):]
    elif connection_string.startswith("ws://"):
        url = "http://" + connection_string[len("ws://"):]
    else:
        raise oob.OobError("the serial console answered a connection string that is not a websocket URL: %r"
                           % connection_string[:80])
    url = url.split("?", 1)[0]
    head, sep, tail = url.rpartition("/client")
    if not sep:
        raise oob.OobError("the serial console's connection string has no /client part: %r" % connection_string[:80])
    return head + "/adminCommand/" + command + tail


def _redact_url(url):
    """scheme://host/... without the path (a console session's path is its address) nor any query."""
    scheme, _sep, rest = url.partition("://")
    return "%s://%s" % (scheme, rest.split("/", 1)[0].split("?", 1)[0])


def _arm_error(response):
    try:
        error = response.json().get("error", {})
        return error.get("code") or "", error.get("message") or ""
    except (ValueError, AttributeError):
        return "", (response.text or "")[:300]


class AzureSerialConsole:
    """One serial console session: ARM connect, websocket, admin commands.

    ``credential`` has ``get_token(scope)`` (azure-identity); ``session`` is a ``requests.Session`` (tests mount a
    fake adapter on it); ``websocket_connect(url, timeout)`` returns an object with ``recv()`` and ``close()``
    (default ``websocket.create_connection``).
    """

    def __init__(self, credential, session=None, websocket_connect=None, timeout=30.0):
        self.credential = credential
        self.session = session
        self.websocket_connect = websocket_connect
        self.timeout = float(timeout)
        self.token = None
        self.connection_string = None
        self.ws = None
        self.greeted = False

    def _token(self):
        try:
            return self.credential.get_token(AZURE_SCOPE).token
        except AZURE_ERRORS as exc:  # ClientAuthenticationError, CredentialUnavailableError
            raise oob.OobError("Azure sign-in failed (%s): %s; check azure.tenant_id, azure.client_id and "
                               "azure.client_secret, or without them the credentials of the host that runs the "
                               "task (AZURE_* environment, managed identity, az login)"
                               % (type(exc).__name__, str(exc).splitlines()[0] if str(exc) else ""))

    def _post(self, url, **kwargs):
        try:
            return self.session.post(url, timeout=self.timeout, **kwargs)
        except REQUESTS_ERRORS as exc:
            raise oob.OobError("cannot reach %s: %s; check the network of the host that runs the task"
                               % (_redact_url(url), exc))

    def connect(self, target):
        """ARM connect, then open the websocket and wait for the console's first message."""
        self.token = self._token()
        url = azure_connect_url(target)
        response = self._post(url, params={"api-version": AZURE_API_VERSION},
                              headers={"Authorization": "Bearer " + self.token, "Accept": "application/json",
                                       "Accept-Language": "en", "Content-Type": "application/json"})
        if response.status_code != 200:
            code, message = _arm_error(response)
            raise oob.OobError("Azure serial console connect for VM %s failed: HTTP %s %s: %s; %s"
                               % (target["vm_name"], response.status_code, code, message, AZURE_CHECKS))
        try:
            self.connection_string = response.json()["connectionString"]
        except (ValueError, KeyError, TypeError):
            raise oob.OobError("Azure serial console connect for VM %s answered no connectionString: %s"
                               % (target["vm_name"], (response.text or "")[:300]))
        ws_url = "%s?authorization=%s&new=1" % (self.connection_string, self.token)
        try:
            self.ws = self.websocket_connect(ws_url, timeout=self.timeout)
        except WEBSOCKET_ERRORS as exc:  # handshake refused (WebSocketBadStatusException), timeout, network
            status = getattr(exc, "status_code", None)
            why = ("handshake refused: HTTP %s %s" % (status, getattr(exc, "status_message", None) or "")).strip() \
                if status else (str(exc) or type(exc).__name__)
            raise oob.OobError("cannot open the serial console session of VM %s (%s): %s; %s"
                               % (target["vm_name"], _redact_url(self.connection_string), why, AZURE_CHECKS))
        self._wait_message(target, first=True)

    def _wait_message(self, target, first=False):
        try:
            self.ws.recv()
            self.greeted = True
            return True
        except WEBSOCKET_ERRORS as exc:  # timeout or closed
            if first:
                raise oob.OobError("the serial console of VM %s said nothing within %ss (%s): the VM must be "
                                   "running with boot diagnostics enabled; %s"
                                   % (target["vm_name"], self.timeout, str(exc) or type(exc).__name__, AZURE_CHECKS))
            return False

    def admin_command(self, target, command, parameters):
        """POST one admin command. A refused command that is safe to send twice (a SysRq key that is not
        destructive) is tried once more after the console's next message. An NMI or a destructive key is never
        sent again: the service may have acted on a command it then answered with an error, and a second NMI or
        crash on a host that is already going down is exactly what the consent rules are there to prevent."""
        url = azure_admin_url(self.connection_string, command)
        body = {"command": command, "requestId": str(uuid.uuid4()), "commandParameters": parameters}
        headers = {"Accept": "application/json", "Authorization": "Bearer " + self.token, "Accept-Language": "en",
                   "Content-Type": "application/json"}
        key = parameters.get("SysRqCommand")
        attempts = (1, 2) if command == "sysrq" and key and key not in DESTRUCTIVE else (1,)
        tries = []
        for attempt in attempts:
            response = self._post(url, headers=headers, data=json.dumps(body))
            tries.append(response.status_code)
            if response.status_code == 200:
                break
            if attempt < attempts[-1]:
                self._wait_message(target)
        if response.status_code != 200:
            code, message = _arm_error(response)
            again = "" if len(attempts) > 1 else " (not sent again: the service may have acted on it)"
            raise oob.OobError("the Azure serial console refused %s %s for VM %s: HTTP %s %s %s%s; %s"
                               % (command, json.dumps(parameters, sort_keys=True), target["vm_name"], tries,
                                  code, message, again, AZURE_CHECKS))
        try:
            answer = response.json()
        except ValueError:
            answer = response.text or ""
        request = {"method": "POST", "url": _redact_url(url) + "/.../adminCommand/" + command, "body": body}
        return request, {"status_code": response.status_code, "tries": len(tries), "body": answer}

    def close(self):
        if self.ws is not None:
            try:
                self.ws.close()
            except WEBSOCKET_ERRORS:  # closing a broken session: nothing left to do
                pass
            self.ws = None


def _azure_credential(target):
    oob.need_package(HAS_AZURE_IDENTITY, "azure-identity", "azure")
    given = [n for n in ("tenant_id", "client_id", "client_secret") if target.get(n)]
    if given and len(given) != 3:
        oob.require(target, "azure", "tenant_id", "client_id", "client_secret")
    if given:
        return azure.identity.ClientSecretCredential(target["tenant_id"], target["client_id"],
                                                     target["client_secret"])
    return azure.identity.DefaultAzureCredential()


def _client(target):
    oob.need_package(HAS_AZURE_IDENTITY, "azure-identity", "azure")
    oob.need_package(HAS_REQUESTS, "requests", "azure")
    oob.need_package(HAS_WEBSOCKET, "websocket-client", "azure")
    # The console relays whatever the guest prints: do not fail a session on bytes that are not UTF-8.
    return AzureSerialConsole(_azure_credential(target), session=requests.Session(),
                              websocket_connect=functools.partial(websocket.create_connection,
                                                                  skip_utf8_validation=True),
                              timeout=target.get("timeout") or 30.0)


def _azure_request(target):
    return {"connect": {"method": "POST", "url": azure_connect_url(target), "api-version": AZURE_API_VERSION}}


def _azure_run(target, client, commands):
    """Open one session, run ``commands`` (list of (command, parameters)), close. Returns [(request, response)]."""
    oob.require(target, "azure", "subscription_id", "resource_group", "vm_name")
    if client is None:
        client = _client(target)
    done = []
    try:
        client.connect(target)
        for command, parameters in commands:
            done.append(client.admin_command(target, command, parameters))
    finally:
        client.close()
    return done


def send_sysrq(module, target, keys, hold_time_ms=100, client=None):
    """SysRq ``keys`` (one admin command each) through the Azure serial console. ``hold_time_ms`` does not apply:
    the service presses the chord itself."""
    keys = list(keys)
    bad = [k for k in keys if k not in oob.LINUX_KEYCODES]
    if bad:
        raise oob.OobError("the Azure serial console sends one letter or digit per SysRq command; not %s"
                           % ", ".join(repr(k) for k in bad))
    commands = [("sysrq", {"SysRqCommand": key}) for key in keys]
    results = []
    for key, (admin, response) in zip(keys, _azure_run(target, client, commands)):
        request = _azure_request(target)
        request["admin_command"] = admin
        results.append({"key": key, "request": request, "response": response})
    return results


def inject_nmi(module, target, client=None):
    """An NMI through the Azure serial console."""
    (admin, response), = _azure_run(target, client, [("nmi", {})])
    request = _azure_request(target)
    request["admin_command"] = admin
    return {"request": request, "response": response}
