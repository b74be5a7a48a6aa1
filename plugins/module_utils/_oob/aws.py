# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Method ``aws``: EC2 ``SendDiagnosticInterrupt`` (boto3). The hypervisor raises an NMI in the instance.

The SDK is optional: this file imports without it and says which package is missing when the method is used.
The ``client`` argument of each function lets tests (and callers that already hold one) pass a client in.
"""

from __future__ import annotations

import traceback

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob

try:
    import boto3
    import botocore.config
    import botocore.exceptions
    HAS_BOTO3 = True
    BOTO3_IMPORT_ERROR = None
except ImportError:
    HAS_BOTO3 = False
    BOTO3_IMPORT_ERROR = traceback.format_exc()


ARGUMENT_SPEC = {
    "aws": dict(type="dict", options=dict(
        instance_id=dict(type="str", required=True),
        region=dict(type="str"),
        profile=dict(type="str"),
        access_key=dict(type="str", no_log=False),
        secret_key=dict(type="str", no_log=True),
        session_token=dict(type="str", no_log=True),
        endpoint_url=dict(type="str"),
    ), required_together=[["access_key", "secret_key"]], mutually_exclusive=[["profile", "access_key"]])
}

# Options that are credentials: never in a returned request, whatever the caller passed.
SECRET_OPTIONS = ("secret_key", "session_token")


AWS_PERMISSION = "ec2:SendDiagnosticInterrupt"

# EC2 error code -> what to check.
AWS_HINTS = {
    "UnauthorizedOperation": "the credentials may not call %s on this instance: grant that IAM action" % AWS_PERMISSION,
    "AccessDenied": "the credentials may not call %s on this instance: grant that IAM action" % AWS_PERMISSION,
    "AuthFailure": "the credentials were refused: check aws.access_key/aws.secret_key, aws.profile or the environment",
    "InvalidClientTokenId": "the access key is not known: check aws.access_key, aws.profile or the environment",
    "SignatureDoesNotMatch": "the secret key does not match the access key: check aws.secret_key",
    "ExpiredToken": "the session token has expired: renew aws.session_token (or the profile's credentials)",
    "RequestExpired": "the request expired: check the clock of the host that runs the task",
    "InvalidInstanceID.NotFound": "no such instance in this region: check aws.instance_id and aws.region",
    "InvalidInstanceID.Malformed": "aws.instance_id is not an instance id (i-0123456789abcdef0)",
    "IncorrectState": "the instance must be running to take a diagnostic interrupt",
    "IncorrectInstanceState": "the instance must be running to take a diagnostic interrupt",
    "UnsupportedOperation": "this instance type does not take diagnostic interrupts (AWS documents it for "
                            "Nitro-based instance types)",
}


def _client(target):
    oob.need_package(HAS_BOTO3, "boto3", "aws")
    try:
        session = boto3.session.Session(
            profile_name=target.get("profile") or None,
            aws_access_key_id=target.get("access_key") or None,
            aws_secret_access_key=target.get("secret_key") or None,
            aws_session_token=target.get("session_token") or None,
            region_name=target.get("region") or None)
        # No retry: a retried request after a lost answer would raise a second NMI.
        return session.client("ec2", endpoint_url=target.get("endpoint_url") or None,
                              config=botocore.config.Config(retries={"total_max_attempts": 1, "mode": "standard"}))
    except botocore.exceptions.ProfileNotFound as exc:
        raise oob.OobError("AWS profile not found: %s; check aws.profile (~/.aws/config of the user that runs "
                           "the task)" % exc)
    except botocore.exceptions.NoRegionError:
        raise oob.OobError("method aws needs a region: set aws.region (or AWS_DEFAULT_REGION, or a profile's "
                           "region)")
    except botocore.exceptions.BotoCoreError as exc:
        raise oob.OobError("cannot make an EC2 client: %s" % exc)


def inject_nmi(module, target, client=None):
    """EC2 SendDiagnosticInterrupt on ``aws.instance_id``; ``client`` is a boto3 EC2 client (tests: Stubber)."""
    oob.require(target, "aws", "instance_id")
    oob.need_package(HAS_BOTO3, "boto3", "aws")
    instance_id = target["instance_id"]
    if client is None:
        client = _client(target)
    region = client.meta.region_name
    request = {"action": "SendDiagnosticInterrupt", "params": {"InstanceId": instance_id}, "region": region,
               "endpoint_url": client.meta.endpoint_url}
    where = "EC2 SendDiagnosticInterrupt on %s in %s" % (instance_id, region)
    try:
        answer = client.send_diagnostic_interrupt(InstanceId=instance_id)
    except botocore.exceptions.ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "Unknown")
        hint = AWS_HINTS.get(code, "check the credentials, aws.instance_id, aws.region and the IAM action %s"
                             % AWS_PERMISSION)
        raise oob.OobError("%s failed: %s: %s; %s" % (where, code, error.get("Message", exc), hint))
    except botocore.exceptions.NoCredentialsError:
        raise oob.OobError("%s: no AWS credentials found; set aws.access_key and aws.secret_key, or aws.profile, "
                           "or give the host that runs the task credentials (environment, instance role)" % where)
    except botocore.exceptions.BotoCoreError as exc:
        raise oob.OobError("%s failed: %s; check aws.region, aws.endpoint_url and the network" % (where, exc))
    meta = answer.get("ResponseMetadata", {})
    return {"request": request,
            "response": {"http_status": meta.get("HTTPStatusCode"), "request_id": meta.get("RequestId")}}
