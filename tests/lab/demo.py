"""The README's main job on the built-in lab (`make demo`).

Boots the lab, applies the SysRq policy (playbooks/harden-sysrq.yml), makes a few tasks hang in
uninterruptible sleep on every guest (writers into a frozen filesystem, so the dump has something
to show), takes a fleet-wide `w` dump (playbooks/sysrq-dump.yml), releases the tasks, prints where
the results are and shuts the lab down.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from .config import REPO
from .dumps import MAKE_DSTATE, RELEASE_DSTATE
from .lab import Lab


def _env() -> dict[str, str]:
    out = subprocess.run(["bash", "-c", f". {REPO}/scripts/env.sh && env -0"], capture_output=True,
                         check=True).stdout.decode()
    env = dict(kv.split("=", 1) for kv in out.split("\0") if "=" in kv)
    env.setdefault("ANSIBLE_PIPELINING", "True")
    return env


def _playbook(lab: Lab, env: dict[str, str], *args: str) -> None:
    cmd = ["ansible-playbook", "-i", str(lab.inventory_file), *args]
    print("$ " + " ".join(cmd), flush=True)
    rc = subprocess.run(cmd, env=env, cwd=REPO, check=False).returncode
    if rc:
        raise SystemExit(f"demo: {' '.join(cmd)} failed (exit {rc})")


def main(out_root: str | None = None) -> int:
    out = Path(out_root or os.environ.get("SYSRQ_DUMP_ROOT") or REPO / "sysrq-dumps")
    env = _env()
    t0 = time.monotonic()
    with Lab() as lab:
        print(f"demo: lab up in {time.monotonic() - t0:.0f}s ({', '.join(lab.names)})", flush=True)
        _playbook(lab, env, "playbooks/harden-sysrq.yml")
        for name in lab.names:
            lab.ssh(name, MAKE_DSTATE, timeout=120)
        before = set(out.glob("*")) if out.exists() else set()
        try:
            _playbook(lab, env, "playbooks/sysrq-dump.yml", "-e", "key=w", "-e", f"sysrq_dump_root={out}")
        finally:
            for name in lab.names:
                lab.ssh(name, RELEASE_DSTATE, check=False, timeout=120)
        new = sorted(set(out.glob("*")) - before)
        where = new[-1] if new else out
        print(f"\ndemo: fleet-wide w dump in {where}")
        for p in sorted(where.rglob("*")) if where.is_dir() else []:
            if p.is_file():
                print(f"  {p.relative_to(where)}")
        summary = where / "summary.md"
        if summary.exists():
            print("\n" + summary.read_text())
    print(f"demo: done in {time.monotonic() - t0:.0f}s; lab shut down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
