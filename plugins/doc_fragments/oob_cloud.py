# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options of the out-of-band methods aws, gcp and azure (module_utils/_oob/aws.py, gcp.py, azure.py).

``AWS``, ``GCP`` and ``AZURE`` document one method each: ``magic_sysrq.fleet.oob_cloud.aws`` and so on.
"""

from __future__ import annotations


class ModuleDocFragment:
    # One fragment a method: oob_nmi extends all three, oob_sysrq only AZURE (Azure is the one cloud that presses keys).
    DOCUMENTATION = r"""
options: {}
"""

    AWS = r"""
options:
  aws:
    description:
      - With O(method=aws), the EC2 instance that gets the diagnostic interrupt (EC2 C(SendDiagnosticInterrupt)).
      - Runs where the task runs (usually C(delegate_to=localhost)); needs the Python package C(boto3) there and
        credentials allowed the IAM action C(ec2:SendDiagnosticInterrupt) on the instance.
      - Without O(aws.access_key), O(aws.secret_key) and O(aws.profile), boto3 looks for credentials as usual
        (C(AWS_*) environment variables, C(~/.aws/credentials), an instance role).
    type: dict
    suboptions:
      instance_id:
        description: The instance, for example V(i-0123456789abcdef0).
        type: str
        required: true
      region:
        description:
          - The instance's region, for example V(eu-west-1).
          - Without it, the profile's region or C(AWS_DEFAULT_REGION).
        type: str
      profile:
        description:
          - A named profile of the AWS configuration files of the user that runs the task.
          - Not with O(aws.access_key).
        type: str
      access_key:
        description: An access key id; needs O(aws.secret_key).
        type: str
      secret_key:
        description: The secret access key of O(aws.access_key).
        type: str
      session_token:
        description: A session token, with temporary credentials.
        type: str
      endpoint_url:
        description: Another EC2 endpoint, for example a VPC endpoint or a test double.
        type: str
"""

    GCP = r"""
options:
  gcp:
    description:
      - With O(method=gcp), the Compute Engine instance that gets the diagnostic interrupt
        (C(instances.sendDiagnosticInterrupt)).
      - Runs where the task runs (usually C(delegate_to=localhost)); needs the Python package
        C(google-cloud-compute) there and credentials with the permission
        C(compute.instances.sendDiagnosticInterrupt) (role C(roles/compute.instanceAdmin.v1)).
    type: dict
    suboptions:
      project:
        description: The project id.
        type: str
        required: true
      zone:
        description: The instance's zone, for example V(europe-west1-b).
        type: str
        required: true
      instance:
        description: The instance's name.
        type: str
        required: true
      credentials_file:
        description:
          - A service account key (JSON) to sign in with.
          - Without it, the application default credentials of the host that runs the task
            (C(GOOGLE_APPLICATION_CREDENTIALS), C(gcloud auth application-default login), the metadata server).
        type: path
"""

    # Azure alone (oob_sysrq: of the clouds, only the Azure serial console presses SysRq keys).
    AZURE = r"""
options:
  azure:
    description:
      - With O(method=azure), the Azure VM whose serial console sends the SysRq keys or the NMI, as
        C(az serial-console send sysrq) and C(az serial-console send nmi) do.
      - The VM must be running with boot diagnostics enabled, the serial console must be enabled for the
        subscription, and the identity needs C(Microsoft.SerialConsole/serialPorts/connect/action) on the VM
        (role Virtual Machine Contributor).
      - Runs where the task runs (usually C(delegate_to=localhost)); needs the Python packages C(azure-identity),
        C(requests) and C(websocket-client) there.
      - Without O(azure.tenant_id), O(azure.client_id) and O(azure.client_secret), the credentials of the host
        that runs the task are used (C(AZURE_*) environment variables, a managed identity, C(az login)).
    type: dict
    suboptions:
      subscription_id:
        description: The subscription id.
        type: str
        required: true
      resource_group:
        description: The VM's resource group.
        type: str
        required: true
      vm_name:
        description: The VM's name; with O(azure.vmss_instance_id), the scale set's name.
        type: str
        required: true
      vmss_instance_id:
        description: The instance id of a virtual machine scale set instance.
        type: str
      tenant_id:
        description: The service principal's tenant (directory) id; needs O(azure.client_id) and O(azure.client_secret).
        type: str
      client_id:
        description: The service principal's application (client) id.
        type: str
      client_secret:
        description: The service principal's secret.
        type: str
      timeout:
        description: Seconds to wait for each HTTP answer and for the serial console session to open.
        type: float
        default: 30.0
"""
