"""The sysrq_policy role's validation step: each host gets the policy of its own variables (and the role defaults
where it sets none), and one invalid policy stops the play before any host goes on."""
from __future__ import annotations

import json
import os
import subprocess

PLAY = """
- hosts: all
  connection: local
  gather_facts: false
  vars:
    sysrq_policy_profile: "{{ 'debuggable' if 'db' in group_names else 'recovery' }}"
  tasks:
    - name: Validate
      ansible.builtin.include_role:
        name: magic_sysrq.fleet.sysrq_policy
        tasks_from: validate.yml
    - name: Record what each host got
      ansible.builtin.copy:
        content: "{{ sysrq_policy_effective | to_json }}"
        dest: "%(out)s/{{ inventory_hostname }}.json"
        mode: "0644"
"""


def run(tmp_path, inventory, play=PLAY):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "hosts.ini").write_text(inventory)
    (tmp_path / "play.yml").write_text(play % {"out": out})
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_RETRY_FILES_ENABLED="False")
    proc = subprocess.run(["ansible-playbook", "-i", str(tmp_path / "hosts.ini"), str(tmp_path / "play.yml")],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    got = {p.stem: json.loads(p.read_text()) for p in out.iterdir()}
    return proc.returncode, proc.stdout + proc.stderr, got


def test_each_host_gets_the_policy_of_its_own_variables(tmp_path):
    rc, out, got = run(tmp_path, "[db]\ndb1\n[web]\nweb1\n"
                                 "[all:vars]\nansible_python_interpreter=%s\n" % _python())
    assert rc == 0, out
    assert (got["db1"]["profile"], got["db1"]["mask"]) == ("debuggable", 186)
    assert (got["web1"]["profile"], got["web1"]["mask"]) == ("recovery", 176)


# The same play without play vars: each host's inventory variables, or none.
INVENTORY_ONLY = PLAY.replace("""  vars:
    sysrq_policy_profile: "{{ 'debuggable' if 'db' in group_names else 'recovery' }}"
""", "")


def test_a_host_without_policy_variables_gets_the_role_defaults_not_another_hosts(tmp_path):
    rc, out, got = run(tmp_path, "a1 sysrq_policy_profile=debuggable\nb1\n[all:vars]\nansible_python_interpreter=%s\n"
                       % _python(), INVENTORY_ONLY)
    assert rc == 0, out
    assert got["a1"]["mask"] == 186
    assert got["b1"]["profile"] == "recovery" and got["b1"]["mask"] == 176


def test_one_invalid_policy_stops_every_host_before_the_next_task(tmp_path):
    rc, out, got = run(tmp_path, "a1\nb1 sysrq_policy_profile=wide-open\n[all:vars]\nansible_python_interpreter=%s\n"
                       % _python(), INVENTORY_ONLY)
    assert rc != 0
    assert "wide-open" in out and "debuggable" in out, out
    assert got == {}


def _python():
    import sys
    return sys.executable
