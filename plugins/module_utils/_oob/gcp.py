# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Method ``gcp``: Compute Engine ``instances.sendDiagnosticInterrupt`` (google-cloud-compute, REST). The
hypervisor raises an NMI in the instance.

The SDK is optional: this file imports without it and says which package is missing when the method is used.
The ``client`` argument of each function lets tests (and callers that already hold one) pass a client in.
"""

from __future__ import annotations

import traceback

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob

try:
    import google.auth
    import google.auth.exceptions
    from google.api_core import exceptions as google_exceptions
    from google.cloud import compute_v1
    from google.oauth2 import service_account
    HAS_GOOGLE_COMPUTE = True
    GOOGLE_COMPUTE_IMPORT_ERROR = None
except ImportError:
    HAS_GOOGLE_COMPUTE = False
    GOOGLE_COMPUTE_IMPORT_ERROR = traceback.format_exc()


ARGUMENT_SPEC = {
    "gcp": dict(type="dict", options=dict(
        project=dict(type="str", required=True),
        zone=dict(type="str", required=True),
        instance=dict(type="str", required=True),
        credentials_file=dict(type="path"),
    ))
}

# Options that are credentials: never in a returned request, whatever the caller passed.
SECRET_OPTIONS = ()


GCP_PERMISSION = "compute.instances.sendDiagnosticInterrupt"
GCP_SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
GCP_TIMEOUT = 60.0
GCP_PATH = "/compute/v1/projects/%s/zones/%s/instances/%s/sendDiagnosticInterrupt"

GCP_HINTS = {
    401: "the credentials were refused: check gcp.credentials_file or the application default credentials",
    403: "the credentials lack %s on this instance (role roles/compute.instanceAdmin.v1 has it), or the "
         "Compute Engine API is not enabled in the project" % GCP_PERMISSION,
    404: "no such instance: check gcp.project, gcp.zone and gcp.instance",
    400: "the request was refused: check gcp.project, gcp.zone and gcp.instance",
}


def _gcp_credentials(target):
    path = target.get("credentials_file")
    if path:
        try:
            return service_account.Credentials.from_service_account_file(path, scopes=list(GCP_SCOPES))
        except (OSError, ValueError) as exc:
            raise oob.OobError("cannot read the service account key gcp.credentials_file=%s: %s" % (path, exc))
    try:
        credentials, _project = google.auth.default(scopes=list(GCP_SCOPES))
        return credentials
    except google.auth.exceptions.DefaultCredentialsError as exc:
        raise oob.OobError("no Google credentials: set gcp.credentials_file to a service account key (JSON) or "
                           "give the host that runs the task application default credentials: %s" % exc)


def _client(target):
    oob.need_package(HAS_GOOGLE_COMPUTE, "google-cloud-compute", "gcp")
    return compute_v1.InstancesClient(credentials=_gcp_credentials(target), transport="rest")


def inject_nmi(module, target, client=None):
    """Compute Engine instances.sendDiagnosticInterrupt; ``client`` is a compute_v1.InstancesClient."""
    oob.require(target, "gcp", "project", "zone", "instance")
    oob.need_package(HAS_GOOGLE_COMPUTE, "google-cloud-compute", "gcp")
    project, zone, instance = target["project"], target["zone"], target["instance"]
    if client is None:
        client = _client(target)
    request = {"method": "POST", "path": GCP_PATH % (project, zone, instance), "project": project, "zone": zone,
               "instance": instance}
    where = "Compute Engine sendDiagnosticInterrupt on %s/%s/%s" % (project, zone, instance)
    try:
        # No retry: a retried request after a lost answer would raise a second NMI.
        answer = client.send_diagnostic_interrupt(project=project, zone=zone, instance=instance, retry=None,
                                                  timeout=GCP_TIMEOUT)
    except google_exceptions.GoogleAPICallError as exc:
        status = exc.code if isinstance(exc.code, int) else None
        errors = [e for e in (exc.errors or []) if isinstance(e, dict)]
        reason = exc.reason or (errors[0].get("reason") if errors else None) or type(exc).__name__
        hint = GCP_HINTS.get(status, "check the credentials, gcp.project, gcp.zone, gcp.instance and the "
                                     "permission %s" % GCP_PERMISSION)
        raise oob.OobError("%s failed: HTTP %s %s: %s; %s" % (where, status, reason, exc.message, hint))
    except google.auth.exceptions.GoogleAuthError as exc:
        raise oob.OobError("%s: the Google credentials failed: %s; check gcp.credentials_file or the application "
                           "default credentials" % (where, exc))
    to_dict = getattr(type(answer), "to_dict", None)
    body = to_dict(answer) if to_dict else {}
    return {"request": request, "response": {"status": "sent", "body": body}}
