"""Helpers of the real-kernel suite: ansible-playbook runs with JSON results.

Every run has deprecation warnings on and fails when ansible-core warns ([WARNING], [DEPRECATION WARNING], or a
task result's `warnings`/`deprecations` under the JSON callback), unless the caller names the warning it expects
(`allow_warnings`: regular expressions). The playbooks and roles must run clean on the ansible-core they support.
"""
from __future__ import annotations

import concurrent.futures
import json
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.lab import GUESTS, Lab

REPO = Path(__file__).resolve().parents[2]
PLAYBOOKS = Path(__file__).resolve().parent / "playbooks"
HOSTS = list(GUESTS)


def _env() -> dict[str, str]:
    """The environment scripts/env.sh gives (also when pytest was not started from `make`)."""
    out = subprocess.run(["bash", "-c", f". {REPO}/scripts/env.sh && env -0"], capture_output=True,
                         check=True).stdout.decode()
    env = dict(kv.split("=", 1) for kv in out.split("\0") if "=" in kv)
    env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
    env["ANSIBLE_CALLBACK_RESULT_FORMAT"] = "json"
    env["ANSIBLE_FORKS"] = str(max(len(HOSTS), 5))
    env["ANSIBLE_DEPRECATION_WARNINGS"] = "True"
    env["ANSIBLE_PIPELINING"] = "True"  # one SSH round trip a task: about half the time under TCG
    env.pop("ANSIBLE_NOCOLOR", None)
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


# For the suite's own module-level playbooks (edge cases on purpose, not the collection's playbooks and roles): the
# modules' own warnings are what some of those runs test; ansible-core's deprecations still fail.
MODULE_WARNINGS = (r"^\[WARNING\]: ",)
_WARNING = re.compile(r"^\[(WARNING|DEPRECATION WARNING)\]: ?(.*)$", re.M)


def _result_warnings(data) -> list[str]:
    """`warnings` and `deprecations` of every task result (and loop item) in the JSON callback's output."""
    found = []
    if isinstance(data, dict):
        for w in data.get("warnings") or []:
            found.append(f"[WARNING]: {w}")
        for d in data.get("deprecations") or []:
            found.append(f"[DEPRECATION WARNING]: {d.get('msg', d) if isinstance(d, dict) else d}")
        for key, value in data.items():
            if key not in ("warnings", "deprecations"):
                found += _result_warnings(value)
    elif isinstance(data, list):
        for item in data:
            found += _result_warnings(item)
    return found


def assert_no_warnings(playbook: str, text: str, data=None, allow=()) -> None:
    """Fail on any ansible-core warning in a run's output (or JSON results) that no `allow` pattern matches."""
    found = [f"[{m.group(1)}]: {m.group(2)}" for m in _WARNING.finditer(text)] + _result_warnings(data or {})
    unexpected = [w for w in found if not any(re.search(a, w) for a in allow)]
    # the hint ansible-core adds after any deprecation warning is not a warning of its own
    real = [w for w in unexpected if "Deprecation warnings can be disabled" not in w]
    assert not real, f"{playbook} warned:\n" + "\n".join(dict.fromkeys(unexpected))


@dataclass
class PlaybookRun:
    playbook: str
    rc: int
    stdout: str
    stderr: str
    seconds: float
    data: dict = field(default_factory=dict)

    def result(self, task: str, host: str) -> dict:
        """The result of the named task on a host (the last one of that name)."""
        found = None
        for play in self.data.get("plays", []):
            for t in play.get("tasks", []):
                if t["task"]["name"] == task and host in t.get("hosts", {}):
                    found = t["hosts"][host]
        if found is None:
            raise AssertionError(f"{self.playbook}: no result for task {task!r} on {host}\n{self.summary()}")
        return found

    def summary(self) -> str:
        lines = [f"{self.playbook}: rc={self.rc} in {self.seconds:.0f}s"]
        for play in self.data.get("plays", []):
            for t in play.get("tasks", []):
                for host, r in t.get("hosts", {}).items():
                    flag = "FAILED" if r.get("failed") else ("changed" if r.get("changed") else "ok")
                    if r.get("skipped"):
                        flag = "skipped"
                    msg = f" -- {r.get('msg')}" if r.get("failed") else ""
                    lines.append(f"  [{host}] {t['task']['name']}: {flag}{msg}")
        if not self.data:
            lines += [self.stdout[-3000:], self.stderr[-3000:]]
        elif self.stderr.strip():
            lines.append("stderr: " + self.stderr[-2000:])
        return "\n".join(lines)


class Ansible:
    def __init__(self, lab: Lab, logdir: Path):
        self.lab = lab
        self.env = _env()
        self.logdir = logdir
        logdir.mkdir(parents=True, exist_ok=True)

    def playbook(self, name: str, extra_vars: dict | None = None, check: bool = False,
                 env: dict | None = None, allow_warnings=()) -> PlaybookRun:
        cmd = ["ansible-playbook", "-i", str(self.lab.inventory_file), str(PLAYBOOKS / name)]
        if extra_vars:
            cmd += ["--extra-vars", json.dumps(extra_vars)]
        if check:
            cmd.append("--check")
        t0 = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, text=True, env=dict(self.env, **(env or {})), cwd=REPO,
                           timeout=1800, check=False)
        run = PlaybookRun(name, p.returncode, p.stdout, p.stderr, time.monotonic() - t0)
        stem = Path(name).stem
        (self.logdir / f"{stem}.json").write_text(p.stdout)
        (self.logdir / f"{stem}.stderr").write_text(p.stderr)
        try:
            run.data = json.loads(p.stdout[p.stdout.index("{"):])
        except ValueError:
            run.data = {}
        print(run.summary())
        assert_no_warnings(name, p.stdout + p.stderr if not run.data else p.stderr, run.data, allow_warnings)
        return run


def ok(run: PlaybookRun, task: str, host: str) -> dict:
    """A task's result that must have succeeded."""
    r = run.result(task, host)
    assert not r.get("failed"), f"{task} failed on {host}: {r.get('msg')}\n{run.summary()}"
    assert not r.get("skipped"), f"{task} was skipped on {host}\n{run.summary()}"
    return r


def parallel(fn, names=tuple(HOSTS)):
    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        return dict(zip(names, pool.map(fn, names)))


def keyboard_w(lab, name):
    """Press alt+sysrq+w on the guest's (i8042) keyboard through QMP; return what the serial console showed."""
    offset = lab.serial_size(name)
    lab.send_keys(name, "alt", "sysrq", "w")
    deadline = time.monotonic() + 30
    text = ""
    while time.monotonic() < deadline:
        text = lab.serial_since(name, offset)
        if "Show Blocked State" in text or "operation is disabled" in text:
            break
        time.sleep(0.5)
    return text


def run_playbook(ansible, playbook, extra=None, env=None, out=None, collections=None, allow_warnings=()):
    """ansible-playbook on the lab's inventory; returns (rc, stdout+stderr, seconds).

    By path from this checkout, or with `collections` (a collections path holding the installed tarball, see
    `installed_collection`) by fully qualified name, as a user of the installed collection runs it."""
    if collections:
        target = f"magic_sysrq.fleet.{Path(playbook).stem}"
    else:
        target = str(REPO / "playbooks" / playbook)
    cmd = ["ansible-playbook", "-i", str(ansible.lab.inventory_file), target]
    if extra:
        cmd += ["--extra-vars", json.dumps(extra)]
    environment = dict(ansible.env, **(env or {}))
    environment["ANSIBLE_STDOUT_CALLBACK"] = "default"
    if collections:
        environment["ANSIBLE_COLLECTIONS_PATH"] = str(collections)
        environment.pop("PYTHONPATH", None)
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=environment, cwd=REPO, timeout=900, check=False)
    seconds = time.monotonic() - start
    text = proc.stdout + proc.stderr
    (ansible.logdir / f"{out or Path(playbook).stem}.log").write_text(text)
    print(f"{' '.join(cmd[3:4])} {extra or ''}: rc={proc.returncode} in {seconds:.0f}s")
    assert_no_warnings(target, text, allow=allow_warnings)
    return proc.returncode, text, seconds


def installed_collection(dest: Path) -> Path:
    """Build the collection tarball from what git ships and install it into an empty collections path `dest`."""
    src, dist = dest / "src", dest / "dist"
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                           capture_output=True, check=True).stdout
    subprocess.run(["rsync", "-a", "--from0", "--files-from=-", "./", f"{src}/"], input=files, cwd=REPO, check=True)
    env = _env()
    subprocess.run(["ansible-galaxy", "collection", "build", "--force", "--output-path", str(dist)], cwd=src,
                   env=env, check=True, capture_output=True)
    tarball = next(dist.glob("magic_sysrq-fleet-*.tar.gz"))
    collections = dest / "collections"
    env = dict(env, ANSIBLE_COLLECTIONS_PATH=str(collections))
    env.pop("PYTHONPATH", None)  # scripts/env.sh's path holds this checkout as magic_sysrq.fleet: "already installed"
    subprocess.run(["ansible-galaxy", "collection", "install", "-p", str(collections), str(tarball)], env=env,
                   check=True, capture_output=True)
    installed = collections / "ansible_collections" / "magic_sysrq" / "fleet"
    assert (installed / "MANIFEST.json").is_file(), f"the tarball was not installed into {collections}"
    return collections


def latest_dir(root: Path) -> Path:
    runs = sorted(p for p in root.iterdir() if p.is_dir())
    assert runs, f"no dump directory under {root}"
    return runs[-1]
