"""Hostile hosts through the controller side of the reports, second review (docs/threat-model.md): a host named like
a report file, and hosts whose results have the wrong shape, lose no one else's report."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

from .test_hostile_reports import assert_renders_literally, tree
from .test_incident_playbooks import REPO, only_dir, play

TEMPLATES = os.path.join(REPO, "playbooks", "templates")


def test_collect_dmesg_of_a_host_named_summary_md(tmp_path):
    local = {"ansible_connection": "local", "ansible_become": False, "ansible_python_interpreter": sys.executable}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": {"web1": local, "summary.md": local,
                                                           "web1\u200b": local}}}))
    root = tmp_path / "logs"
    (tmp_path / "nocrash").mkdir()
    rc, out = play(str(inventory), "collect_dmesg.yml", "-e", "collect_dmesg_root=%s" % root,
                   "-e", "crash_dir=%s" % (tmp_path / "nocrash"))
    assert rc == 0, out
    where = only_dir(str(root))
    files = tree(where)
    assert {"summary.md", "summary.json"} <= set(files), files
    summary = json.load(open(os.path.join(where, "summary.json"), encoding="utf-8"))
    assert summary["host_dirs"] == {"summary.md": "%73ummary.md", "web1\u200b": "web1%E2%80%8B"}
    text = open(os.path.join(where, "summary.md"), encoding="utf-8").read()
    assert text.startswith("# Kernel logs") and "`web1\\u200b`" in text


PLAYBOOK = """
- name: The summaries of hostile results
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Summarise
      ansible.builtin.set_fact:
        sysrq_dump_summary: "{{ results | magic_sysrq.fleet.sysrq_dump_summary(directory=dump_dir) }}"
        sysrq_dump_folded: "{{ results | magic_sysrq.fleet.sysrq_stacks_folded }}"
        collect_dmesg_summary: "{{ logs | magic_sysrq.fleet.kernel_log_summary(directory=log_dir) }}"

    - name: Write the dump report
      magic_sysrq.fleet.report_files:
        dest: "{{ dump_dir }}"
        files: >-
          {{ results | magic_sysrq.fleet.sysrq_dump_files
             | combine({'summary.md': lookup('ansible.builtin.template', templates ~ '/sysrq-dump-summary.md.j2'),
                        'stacks.folded': sysrq_dump_folded}) }}

    - name: Write the log report
      magic_sysrq.fleet.report_files:
        dest: "{{ log_dir }}"
        files: >-
          {{ logs | magic_sysrq.fleet.kernel_log_files
             | combine({'summary.md': lookup('ansible.builtin.template',
                                             templates ~ '/collect-dmesg-summary.md.j2')}) }}
"""


def test_malformed_results_fail_their_hosts_in_the_summaries(tmp_path):
    deep = ["f%d" % i for i in range(300)]
    good = {"tasks": [{"comm": "dd", "state": "D", "frames": ["schedule"], "frames_cut": 44}], "output": ["x"]}
    results = {"web1": good, "deep": {"tasks": [{"comm": "x", "state": "D", "frames": deep}]},
               "e1": {"tasks": ["x"]}, "e2": {"tasks": [], "lost_records": "many"},
               "e3": {"tasks": [{"state": "D", "frames": 5}]}, "e4": {"tasks": [{"frames": [{}]}]},
               "e5": {"tasks": [{"frames": [1]}, {"frames": ["x"]}]}, "e6": {"tasks": [], "output": 5}}
    crash = {"path": "/var/crash/1/dmesg.1", "mtime": 1700000000.0, "text": "x"}
    line = "2026-11-22T10:30:00,000000+00:00 l"
    logs = {"web1": {"status": "answered", "lines": [line], "crash_files": [crash]},
            "m1": {"status": "answered", "lines": [line], "crash_files": [dict(crash, mtime="abc")]},
            "m2": {"status": "answered", "lines": [line], "crash_files": [dict(crash, mtime=1e20)]}}
    extra = tmp_path / "vars.json"
    extra.write_text(json.dumps({"results": results, "logs": logs, "templates": TEMPLATES,
                                 "dump_dir": str(tmp_path / "dump"), "log_dir": str(tmp_path / "log")}))
    playbook = tmp_path / "play.yml"
    playbook.write_text(PLAYBOOK)
    proc = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", str(playbook), "-e", "@%s" % extra],
                          capture_output=True, text=True, timeout=300, check=False,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dump = (tmp_path / "dump" / "summary.md").read_text()
    for host in ("e1", "e2", "e3", "e4", "e5", "e6"):
        assert "- Failed: `%s`: `malformed result: " % host in dump, dump
    assert "`web1`: 44 stack frame(s) left out, past the 256 kept of a task" in dump
    assert tree(str(tmp_path / "dump")) == ["deep/output.txt", "deep/tasks.json", "stacks.folded", "summary.md",
                                            "web1/output.txt", "web1/tasks.json"]
    log = (tmp_path / "log" / "summary.md").read_text()
    assert "- Failed: `m1`: `malformed result: a crash file's mtime is not a time`" in log, log
    assert "- Failed: `m2`: `malformed result: a crash file's mtime is not a time`" in log, log
    assert "written 2023-11-14 22:13:20 UTC" in log
    assert_renders_literally(dump, "malformed result: a task is text, not a dict")
