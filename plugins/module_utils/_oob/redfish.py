# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Method ``redfish``: the host's BMC over Redfish (DMTF DSP0266), through Ansible's own ``open_url``.

An NMI is the action ``ComputerSystem.Reset`` with ``{"ResetType": "Nmi"}`` ("generate a diagnostic interrupt,
usually an NMI on x86"), offered by iDRAC9, iLO 4/5/6, Lenovo XCC, Supermicro X11+ and OpenBMC's bmcweb. The
calls, in order::

    [POST <SessionService>/Sessions {UserName, Password}]   auth=session: X-Auth-Token, deleted at the end
    GET  /redfish/v1/                                       service root: where Systems (and Sessions) are
    GET  /redfish/v1/Systems                                the only member, or the one whose Id is system_id
    GET  /redfish/v1/Systems/<id>                           PowerState, Actions.#ComputerSystem.Reset
    [GET <@Redfish.ActionInfo>]                             allowable values when the BMC lists them there
    POST <target> {"ResetType": "Nmi"}                      the NMI
    [DELETE <session>]

``Nmi`` must be among the action's allowable values (``ResetType@Redfish.AllowableValues`` on the action, or
the ``ResetType`` parameter of its ``@Redfish.ActionInfo``); a BMC that lists neither gets the request and
answers for itself. A host whose ``PowerState`` is ``Off`` is refused, as method ``ipmi`` refuses it.

Why ``open_url`` and not a Redfish library (``sushy``, DMTF's ``redfish``): the NMI is six JSON requests;
``open_url`` ships with ansible-core (nothing to install on the controller or in an execution environment),
already does TLS verification with a CA bundle, basic authentication, proxies and timeouts the way every
Ansible module does, and leaves the exact requests visible here. The password goes in the ``Authorization``
header or the session request body only; it is never in a result, warning or error.
"""

from __future__ import annotations

import json
import socket
import ssl

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.six.moves.urllib.parse import urlsplit
from ansible.module_utils.urls import open_url

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob

ARGUMENT_SPEC = {
    "redfish": dict(type="dict", options=dict(
        host=dict(type="str", required=True),
        port=dict(type="int"),
        scheme=dict(type="str", default="https", choices=["https", "http"]),
        username=dict(type="str"),
        password=dict(type="str", no_log=True),
        auth=dict(type="str", default="basic", choices=["basic", "session"]),
        system_id=dict(type="str"),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        timeout=dict(type="float", default=30.0),
    )),
}

ROOT = "/redfish/v1/"
RESET_ACTION = "#ComputerSystem.Reset"
NMI = "Nmi"


class _Client:
    """One BMC's Redfish service: JSON requests, session login/logout, errors that say what to check.

    ``log`` records every request made (method, path, HTTP status; never a header or a credential)."""

    def __init__(self, target):
        oob.require(target, "redfish", "host")
        self.target = target
        self.scheme = target.get("scheme") or "https"
        host = str(target["host"])
        if "://" in host or "/" in host:
            raise oob.OobError("redfish.host is a name or an address (%r given); put the scheme in redfish.scheme "
                               "and the port in redfish.port" % _scrub(host, target))
        if ":" in host and not host.startswith("["):   # an IPv6 address
            host = "[%s]" % host
        self.base = "%s://%s" % (self.scheme, host) + (":%d" % target["port"] if target.get("port") else "")
        self.timeout = float(target.get("timeout") or 30.0)
        if self.timeout <= 0:
            raise oob.OobError("redfish.timeout must be > 0 seconds (got %s)" % target.get("timeout"))
        self.auth = target.get("auth") or "basic"
        if self.auth not in ("basic", "session"):
            raise oob.OobError("redfish.auth must be basic or session, not %r" % self.auth)
        if self.auth == "session" and not (target.get("username") and target.get("password") is not None):
            raise oob.OobError("redfish.auth=session needs redfish.username and redfish.password")
        self.token = None
        self.session_uri = None
        self.log = []

    # ------------------------------------------------------------------------------------------------ HTTP
    def url(self, path):
        return path if "://" in path else self.base + path

    def request(self, method, path, body=None, authenticated=True):
        """``(status, headers, json-or-None)``; OobError for a transport failure or an HTTP error."""
        headers = {"Accept": "application/json", "OData-Version": "4.0"}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        kwargs = {}
        if authenticated and self.token:
            headers["X-Auth-Token"] = self.token
        elif authenticated and self.auth == "basic" and self.target.get("username"):
            kwargs = dict(url_username=str(self.target["username"]),
                          url_password=str(self.target.get("password") or ""), force_basic_auth=True)
        entry = {"method": method, "path": urlsplit(self.url(path)).path}
        self.log.append(entry)
        try:
            response = open_url(self.url(path), data=data, headers=headers, method=method, timeout=self.timeout,
                                validate_certs=bool(self.target.get("validate_certs", True)),
                                ca_path=self.target.get("ca_path"), follow_redirects="safe", use_netrc=False,
                                **kwargs)
            status = response.getcode()
            raw = response.read()
            response_headers = dict((k.lower(), v) for k, v in response.headers.items())
        except HTTPError as exc:
            entry["status"] = exc.code
            raise oob.OobError(self._http_error(method, path, exc))
        except (URLError, socket.timeout, ssl.SSLError, ConnectionError, OSError) as exc:
            raise oob.OobError(self._transport_error(method, path, exc))
        entry["status"] = status
        return status, response_headers, _json(raw)

    def get(self, path):
        return self.request("GET", path)[2] or {}

    # ------------------------------------------------------------------------------------------- sessions
    def login(self, root):
        if self.auth != "session":
            return
        sessions = ((root.get("Links") or {}).get("Sessions") or {}).get("@odata.id") \
            or "/redfish/v1/SessionService/Sessions"
        status, headers, body = self.request(
            "POST", sessions, {"UserName": str(self.target["username"]), "Password": str(self.target["password"])},
            authenticated=False)
        self.token = headers.get("x-auth-token")
        self.session_uri = headers.get("location") or (body or {}).get("@odata.id")
        if not self.token:
            raise oob.OobError("the BMC %s answered the session login (POST %s, HTTP %s) without an X-Auth-Token "
                               "header: use redfish.auth=basic" % (self.base, sessions, status))

    def logout(self):
        """Delete the session (best effort: a BMC keeps few sessions, a leaked one expires on its own)."""
        if not (self.token and self.session_uri):
            return None
        try:
            self.request("DELETE", self.session_uri)
        except oob.OobError as exc:
            return str(exc)
        finally:
            self.token = None
        return None

    # ------------------------------------------------------------------------------------------- messages
    def _http_error(self, method, path, exc):
        body = b""
        try:
            body = exc.read() or b""
        except Exception:  # pragma: no cover - a body that cannot be read
            pass
        said = _extended_info(_json(body))
        user = self.target.get("username")
        what = "%s %s" % (method, urlsplit(self.url(path)).path)
        if exc.code == 401:
            hint = ("the BMC refused the credentials of user %r: check redfish.username and redfish.password"
                    % user) if user else "the BMC wants credentials: give redfish.username and redfish.password"
        elif exc.code == 403:
            hint = ("user %r may not do this: an NMI needs a role with ConfigureComponents (Operator or "
                    "Administrator on most BMCs)" % user)
        elif exc.code == 404:
            hint = "the BMC has no %s" % urlsplit(self.url(path)).path
        elif exc.code == 405:
            hint = "the BMC does not allow %s there" % method
        elif exc.code in (400, 409):
            hint = "the BMC refused the request"
        elif exc.code == 503:
            hint = "the BMC is busy or starting (HTTP 503): try again in a minute"
        else:
            hint = "HTTP %s %s" % (exc.code, getattr(exc, "reason", "") or "")
        message = "Redfish %s on %s failed (HTTP %s): %s" % (what, self.base, exc.code, hint)
        if said:
            message += ". The BMC said: %s" % " | ".join(said)
        return _scrub(message, self.target)

    def _transport_error(self, method, path, exc):
        reason = getattr(exc, "reason", exc)
        text = str(reason)
        where = self.base
        if isinstance(reason, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text \
                or "certificate verify failed" in text.lower():
            hint = ("the BMC's TLS certificate is not trusted (%s): give the CA that signed it in redfish.ca_path, "
                    "or, knowing what it means, redfish.validate_certs=false" % text)
        elif isinstance(reason, (socket.timeout, TimeoutError)) or "timed out" in text:
            hint = ("no answer within %ss: check redfish.host and redfish.port, that the BMC is up, and raise "
                    "redfish.timeout for a slow one" % self.timeout)
        elif isinstance(reason, ConnectionRefusedError) or "Connection refused" in text:
            hint = ("connection refused: nothing listens on %s; check redfish.host, redfish.port and "
                    "redfish.scheme, and that the BMC's Redfish service is enabled" % where)
        elif isinstance(reason, socket.gaierror) or "Name or service not known" in text:
            hint = "redfish.host %r does not resolve: check the BMC's name (or give its address)" % \
                self.target.get("host")
        elif "WRONG_VERSION_NUMBER" in text or "wrong version number" in text:
            hint = "the BMC does not speak TLS on that port: check redfish.scheme and redfish.port"
        else:
            hint = text
        return _scrub("Redfish %s %s on %s failed: %s" % (method, urlsplit(self.url(path)).path, where, hint),
                      self.target)


def _json(raw):
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw)
    except ValueError:
        return None


def _extended_info(body):
    """The messages of a Redfish error body (``error.message`` and ``@Message.ExtendedInfo[].Message``)."""
    if not isinstance(body, dict):
        return []
    error = body.get("error") if isinstance(body.get("error"), dict) else body
    said = []
    for info in error.get("@Message.ExtendedInfo") or []:
        if isinstance(info, dict) and info.get("Message"):
            said.append(str(info["Message"]))
    if not said and error.get("message"):
        said.append(str(error["message"]))
    return said[:4]


def _scrub(text, target):
    password = (target or {}).get("password")
    if password:
        text = text.replace(str(password), "********")
    return text


def _member_ids(collection):
    return [m["@odata.id"].rstrip("/") for m in (collection or {}).get("Members") or []
            if isinstance(m, dict) and m.get("@odata.id")]


def _last(uri):
    return uri.rstrip("/").rsplit("/", 1)[-1]


def find_system(client, root, system_id=None):
    """``(uri, system)``: the only member of Systems, or the member whose Id (or last path segment) is
    ``system_id``."""
    systems_uri = (root.get("Systems") or {}).get("@odata.id")
    if not systems_uri:
        raise oob.OobError("the BMC %s has no Systems collection in its service root (%s): it manages no host "
                           "through Redfish" % (client.base, ROOT))
    members = _member_ids(client.get(systems_uri))
    if system_id is not None:
        wanted = str(system_id)
        for uri in members:
            if _last(uri) == wanted:
                return uri, client.get(uri)
        # Member URIs usually end in the Id; when they do not, look at each Id.
        for uri in members:
            system = client.get(uri)
            if str(system.get("Id")) == wanted:
                return uri, system
        raise oob.OobError("the BMC %s has no system %r; its systems: %s (set redfish.system_id to one of them)"
                           % (client.base, wanted, ", ".join(_last(u) for u in members) or "none"))
    if len(members) != 1:
        raise oob.OobError("the BMC %s has %d systems (%s): set redfish.system_id to the one to interrupt"
                           % (client.base, len(members), ", ".join(_last(u) for u in members) or "none"))
    return members[0], client.get(members[0])


def reset_action(client, uri, system):
    """``(target, allowable-or-None)`` of the system's ComputerSystem.Reset action."""
    action = ((system.get("Actions") or {}).get(RESET_ACTION)) or {}
    target = action.get("target")
    if not target:
        raise oob.OobError("system %s on the BMC %s offers no ComputerSystem.Reset action: this BMC cannot send an "
                           "NMI through Redfish (try method ipmi)" % (_last(uri), client.base))
    allowable = action.get("ResetType@Redfish.AllowableValues")
    if allowable is None and action.get("@Redfish.ActionInfo"):
        info = client.get(action["@Redfish.ActionInfo"])
        for parameter in info.get("Parameters") or []:
            if isinstance(parameter, dict) and parameter.get("Name") == "ResetType":
                allowable = parameter.get("AllowableValues")
    return target, allowable


def inject_nmi(module, target):
    """POST ComputerSystem.Reset {ResetType: Nmi} to the host's system; refuses a BMC that does not allow Nmi."""
    client = _Client(target)
    root = client.request("GET", ROOT, authenticated=False)[2] or {}
    client.login(root)
    try:
        uri, system = find_system(client, root, target.get("system_id"))
        power = system.get("PowerState")
        if power == "Off":
            raise oob.OobError("the BMC %s says system %s is powered off (PowerState Off): an NMI would reach no "
                               "running kernel; power it on, or look at why it went off" % (client.base, _last(uri)))
        action_target, allowable = reset_action(client, uri, system)
        if allowable is not None and NMI not in allowable:
            raise oob.OobError("system %s on the BMC %s does not allow ResetType Nmi (it allows: %s); nothing was "
                               "sent. The BMC's firmware may be too old for a Redfish NMI (use method ipmi, "
                               "chassis power diag), or the platform has no diagnostic interrupt"
                               % (_last(uri), client.base, ", ".join(str(v) for v in allowable) or "none"))
        body = {"ResetType": NMI}
        status, headers, answer = client.request("POST", action_target, body)
    finally:
        logout_error = client.logout()
    request = {"method": "POST", "url": client.url(action_target), "body": body, "auth": client.auth,
               "system": _last(uri)}
    if target.get("username"):
        request["username"] = target["username"]
    response = {"status": status, "body": answer, "power_state_before": power, "allowable_values": allowable,
                "exchanges": client.log}
    if headers.get("location"):
        response["location"] = headers["location"]
    if logout_error:
        response["session_logout_error"] = logout_error
    return {"request": request, "response": response}
