# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run a role's steps with ansible-playbook on pretend hosts, for the role tests in this directory.

Every pretend host is localhost over the local connection, as the user running the tests (no root needed). The
playbooks under playbooks/ give each host the facts the role reads (os_family, distribution, ...) from its inventory
entry with set_fact cacheable, so no real host of that distribution is needed, and the tests point the role's file
paths into a temporary directory through extra vars (which beat the role's vars). Results come back through the
ansible.posix.json callback: per host, every task's result and the play recap.
"""

from __future__ import annotations

import glob
import grp
import json
import os
import pwd
import subprocess
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
PLAYBOOKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "playbooks")


def me():
    """``(user, group)`` names of the user running the tests: the owner the role's files get here."""
    return pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name


def put(path, text, mode=0o644):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, mode)


def get(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def tree(root):
    """Every file under ``root`` with its bytes and mode: to prove that a run changed nothing."""
    out = {}
    for path in sorted(glob.glob(os.path.join(str(root), "**"), recursive=True)):
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                out[path] = (handle.read(), os.stat(path).st_mode)
    return out


def backups(path):
    """The backups ansible.builtin.lineinfile made of ``path`` (``<path>.<pid>.<date>@<time>~``)."""
    return sorted(glob.glob(glob.escape(path) + ".*~"))


def write_inventory(path, hosts):
    """An inventory of pretend hosts: ``{name: host vars}``, each on the local connection."""
    entries = {}
    for name, hostvars in hosts.items():
        entry = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        entry.update(hostvars)
        entries[name] = entry
    put(path, json.dumps({"all": {"hosts": entries}}, indent=1))
    return path


class Run:
    """One ansible-playbook run: its exit code, output and, per host, task results and recap."""

    def __init__(self, rc, stdout, stderr):
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        try:
            self.data = json.loads(stdout)
        except ValueError:
            self.data = {"plays": [], "stats": {}}

    def failures(self):
        """``[(host, task name, msg)]`` of every failed task."""
        out = []
        for play in self.data["plays"]:
            for task in play["tasks"]:
                for host, result in task["hosts"].items():
                    if result.get("failed"):
                        msg = result.get("msg") or [r.get("msg") for r in result.get("results", []) if r.get("failed")]
                        out.append((host, task["task"]["name"], msg))
        return out

    def __repr__(self):
        if self.data["plays"]:
            return "ansible-playbook rc %d, failed: %s\nstderr: %s" % (self.rc, self.failures(), self.stderr[-3000:])
        return "ansible-playbook rc %d\nstdout: %s\nstderr: %s" % (self.rc, self.stdout[-6000:], self.stderr[-3000:])

    def stats(self, host):
        return self.data["stats"][host]

    def tasks(self, host):
        """``[(task name, result)]`` of ``host``, in order (task names without the role prefix)."""
        out = []
        for play in self.data["plays"]:
            for task in play["tasks"]:
                if host in task["hosts"]:
                    out.append((task["task"]["name"].split(" : ", 1)[-1], task["hosts"][host]))
        return out

    def result(self, host, name):
        """The result of the last task named ``name`` on ``host``."""
        found = [r for n, r in self.tasks(host) if n == name]
        assert found, "no task %r ran on %s: %s" % (name, host, [task for task, _result in self.tasks(host)])
        return found[-1]

    def changed_items(self, host, name):
        """The loop items of task ``name`` that changed on ``host``: the keys the role rewrote."""
        result = self.result(host, name)
        return [r["item"]["key"] for r in result.get("results", []) if r.get("changed")]

    def debug(self, host, name):
        """The ``msg`` of debug task ``name`` on ``host``."""
        return self.result(host, name)["msg"]


def run_playbook(playbook, inventory, extra_vars, cwd, check=False, diff=False):
    """ansible-playbook ``playbooks/<playbook>`` on ``inventory`` with ``extra_vars`` (a dict, given as a file)."""
    vars_file = os.path.join(str(cwd), "extra-vars.json")
    with open(vars_file, "w", encoding="utf-8") as handle:
        json.dump(extra_vars, handle)
    config = os.path.join(str(cwd), "ansible.cfg")
    if not os.path.exists(config):
        put(config, "[defaults]\n")
    env = dict(os.environ)
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", os.path.join(REPO, ".venv", "collections"))
    env.update({
        "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_RETRY_FILES_ENABLED": "False",
        "ANSIBLE_FORKS": "10",
        # an empty ansible.cfg rather than one of the user's: the run depends only on what is given here
        "ANSIBLE_CONFIG": config,
        "ANSIBLE_LOCAL_TEMP": os.path.join(str(cwd), ".ansible-tmp"),
        "ANSIBLE_REMOTE_TEMP": os.path.join(str(cwd), ".ansible-tmp"),
    })
    cmd = ["ansible-playbook", "-i", inventory, "-e", "@" + vars_file, os.path.join(PLAYBOOKS, playbook)]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=str(cwd), timeout=300, check=False)
    return Run(proc.returncode, proc.stdout, proc.stderr)
