"""The playbooks inside the execution environment, as AWX / Automation Platform run them.

scripts/ee-image builds the EE with ansible-builder 3 from the collection's built tarball (on a base image made
locally with debootstrap: no registry is reachable here; cached by content). Then ansible-runner runs
magic_sysrq.fleet.sysrq_dump and magic_sysrq.fleet.check_sysrq_policy by name inside it (process isolation with
the Docker engine of scripts/docker-engine, the host's network so the guests' forwarded SSH ports on 127.0.0.1
answer), against both lab guests. The SSH key goes in the way AWX hands over a machine credential (ansible-runner's
env/ssh_key, loaded into an ssh-agent inside the container); the reports are written under the private data
directory, which ansible-runner mounts into the container, and are read here on the host.
"""
from __future__ import annotations

import json
import re
import subprocess
import time
import xml.etree.ElementTree as ET

import pytest

from tests.realkernel.support import HOSTS, REPO, assert_no_warnings, latest_dir


@pytest.fixture(scope="module")
def ee_image():
    t0 = time.monotonic()
    p = subprocess.run([str(REPO / "scripts" / "ee-image")], capture_output=True, text=True, timeout=1200, check=False)
    print(p.stderr[-3000:])
    assert p.returncode == 0, f"scripts/ee-image failed:\n{p.stderr[-5000:]}"
    print(f"ee image {p.stdout.strip()} ready in {time.monotonic() - t0:.0f}s")
    return p.stdout.strip().splitlines()[-1]


def _private_data_dir(lab, root):
    """ansible-runner's input: the lab inventory (without the host-side key path), the key as env/ssh_key."""
    (root / "inventory").mkdir(parents=True)
    (root / "env").mkdir()
    key = None
    lines = []
    for line in lab.inventory_file.read_text().splitlines():
        m = re.search(r" ansible_ssh_private_key_file=(\S+)", line)
        if m:
            key = m.group(1)
            line = line.replace(m.group(0), "")
        lines.append(line)
    assert key, "no SSH key in the lab inventory"
    (root / "inventory" / "hosts").write_text("\n".join(lines) + "\n")
    (root / "env" / "ssh_key").write_text(open(key).read())
    (root / "env" / "envvars").write_text(json.dumps({
        "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_DEPRECATION_WARNINGS": "True", "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}))
    return root


def _runner(root, image, playbook, extra, ident):
    (root / "env" / "extravars").write_text(json.dumps(extra))
    cmd = ["ansible-runner", "run", str(root), "-p", playbook, "--ident", ident,
           "--process-isolation", "--process-isolation-executable", "docker", "--container-image", image,
           "--container-option=--network=host"]
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
    seconds = time.monotonic() - t0
    print(f"ansible-runner {playbook} in {image}: rc={p.returncode} in {seconds:.0f}s")
    command = json.loads((root / "artifacts" / ident / "command").read_text())
    return {"rc": p.returncode, "text": p.stdout + p.stderr, "seconds": seconds, "command": command["command"]}


@pytest.fixture(scope="module")
def ee_runs(lab, ee_image, tmp_path_factory):
    root = _private_data_dir(lab, tmp_path_factory.mktemp("runner"))
    dump = _runner(root, ee_image, "magic_sysrq.fleet.sysrq_dump", {"sysrq_dump_root": "/runner/reports/dumps"},
                   "dump")
    policy = _runner(root, ee_image, "magic_sysrq.fleet.check_sysrq_policy",
                     {"sysrq_report_dir": "/runner/reports/policy"}, "policy")
    return {"root": root, "dump": dump, "policy": policy}


def test_the_dump_runs_in_the_ee_and_its_report_lands_on_the_host(ee_runs, ee_image):
    dump = ee_runs["dump"]
    assert dump["rc"] == 0, dump["text"][-4000:]
    assert dump["command"][:2] == ["docker", "run"] and ee_image in dump["command"], dump["command"]
    where = latest_dir(ee_runs["root"] / "reports" / "dumps")
    summary = json.loads((where / "summary.json").read_text())
    assert (summary["asked"], summary["answered"], summary["unreachable"]) == (2, 2, []), summary
    for host in HOSTS:
        assert "Show Blocked State" in (where / host / "output.txt").read_text()
    assert (where / "summary.md").is_file()
    assert (where / "flamegraph.html").exists() is (not summary["flamegraph_missing"])  # plotly from the EE
    assert_no_warnings("sysrq_dump in the EE", dump["text"])


def test_the_policy_check_runs_in_the_ee_and_its_reports_land_on_the_host(ee_runs):
    policy = ee_runs["policy"]
    junit = ee_runs["root"] / "reports" / "policy" / "sysrq-policy.junit.xml"
    assert junit.is_file(), policy["text"][-4000:]
    cases = {c.get("name") for c in ET.parse(junit).getroot().iter("testcase")}
    assert cases == set(HOSTS)
    assert {r["host"] for r in json.loads((junit.parent / "sysrq-policy.json").read_text())["hosts"]} == set(HOSTS)
    # the exit code is the verdict (drift fails the job): the guests' masks decide it, not the EE
    assert policy["rc"] in (0, 2), policy["text"][-4000:]
    assert_no_warnings("check_sysrq_policy in the EE", policy["text"])
