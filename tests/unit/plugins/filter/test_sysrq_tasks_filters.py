"""The sysrq_tasks and sysrq_stack_groups filters: same parser and grouping as the module, error handling,
and a playbook run to show they answer through Jinja."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.magic_sysrq.fleet.plugins.filter import sysrq_stack_groups, sysrq_tasks
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import parser

from ..module_utils.kmsg_fakes import read_dump

TASKS = sysrq_tasks.FilterModule().filters()["sysrq_tasks"]
GROUPS = sysrq_stack_groups.FilterModule().filters()["sysrq_stack_groups"]


@pytest.mark.parametrize("name", ["deb12-w.dmesg.txt", "deb13-w.serial.txt", "deb13-t.dmesg.txt",
                                  "deb12-l.serial.txt"])
def test_sysrq_tasks_is_the_module_parser(name):
    text = read_dump(name)
    assert TASKS(text) == parser.parse_text(text)
    assert TASKS(text.splitlines()) == parser.parse_text(text)


def test_sysrq_tasks_d_state_from_dmesg_lines():
    tasks = TASKS(read_dump("deb13-w.dmesg.txt").splitlines())
    assert [(t["comm"], t["pid"], t["tgid"], t["state"]) for t in tasks] == [
        ("dd", 448, 448, "D"), ("touch", 449, 449, "D"), ("mkdir", 450, 450, "D")]


def test_sysrq_tasks_empty_and_bad_input():
    assert TASKS(None) == [] and TASKS("") == [] and TASKS([]) == []
    with pytest.raises(AnsibleFilterError, match="string or a list of lines"):
        TASKS(42)


def test_sysrq_stack_groups():
    fleet = {guest: TASKS(read_dump("%s-w.dmesg.txt" % guest)) for guest in ("deb12", "deb13")}
    groups = GROUPS(fleet, states=["D"])
    assert [(g["count"], g["host_count"], g["comms"]) for g in groups] == [(4, 2, ["dd", "touch"]), (2, 2, ["mkdir"])]
    assert GROUPS(fleet, limit=1) == groups[:1]
    assert GROUPS(fleet, states=["D"], max_depth=5)[0]["count"] == 6


def test_sysrq_stack_groups_bad_input():
    with pytest.raises(AnsibleFilterError, match="sysrq_stack_groups: input is int"):
        GROUPS(3)


PLAYBOOK = """
- hosts: localhost
  gather_facts: false
  vars:
    dumps: {dumps}
  tasks:
    - name: Parse and group through the filters
      ansible.builtin.set_fact:
        fleet: "{{{{ dict(dumps.keys() | zip(dumps.values() | map('magic_sysrq.fleet.sysrq_tasks'))) }}}}"
    - name: Report
      ansible.builtin.debug:
        msg: "{{{{ fleet | magic_sysrq.fleet.sysrq_stack_groups(states=['D']) | to_json }}}}"
"""


def test_filters_answer_in_a_playbook(tmp_path):
    dumps = {guest: read_dump("%s-w.dmesg.txt" % guest) for guest in ("deb12", "deb13")}
    book = tmp_path / "play.yml"
    book.write_text(PLAYBOOK.format(dumps=json.dumps(dumps)))
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOCALHOST_WARNING="False",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="False")
    playbook = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
    if not os.path.exists(playbook):
        pytest.skip("ansible-playbook not installed next to this python")
    run = subprocess.run([playbook, "-i", "localhost,", "-c", "local", str(book)], env=env,
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stdout + run.stderr
    report = json.loads(run.stdout)["plays"][0]["tasks"][1]["hosts"]["localhost"]["msg"]
    groups = json.loads(report) if isinstance(report, str) else report
    assert [(g["count"], g["hosts"], g["comms"]) for g in groups] == [
        (4, ["deb12", "deb13"], ["dd", "touch"]), (2, ["deb12", "deb13"], ["mkdir"])]
