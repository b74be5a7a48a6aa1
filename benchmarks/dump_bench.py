"""sysrq_dump.yml against a naive dump playbook, side by side on the lab: wall time and module calls per host.

    . scripts/env.sh && MAGIC_SYSRQ_LAB_DIR=.lab-bench python -m tests.lab up
    MAGIC_SYSRQ_LAB_DIR=.lab-bench python benchmarks/dump_bench.py [--rounds 3] [--pipelining] [--json out.json]
    MAGIC_SYSRQ_LAB_DIR=.lab-bench python -m tests.lab down

The naive playbook (benchmarks/naive-dump.yml) is a shell task `echo w > /proc/sysrq-trigger`, a shell task
`dmesg > /tmp/naive-dmesg.txt` and a fetch of that file. sysrq_dump.yml is run as shipped (w key, default
settings) and writes its whole report (per-host output and tasks, summary.md/json, stacks.folded, flame
graph). Both run with the same Ansible settings against the same hosts, alternating which goes first each round.

Wall time is the whole ansible-playbook run. Module calls per host are counted from one extra -vvv run of each:
a module call is a remote Python run (an SSH exec of the interpreter); SSH round trips count every ssh/sftp exec
(without pipelining a module call also costs mkdir, put, chmod and rm round trips).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_RATIO = 0.5
TARGET_CALLS = 1


def ansible_env(pipelining: bool) -> dict[str, str]:
    out = subprocess.run(["bash", "-c", f". {shlex.quote(str(REPO / 'scripts/env.sh'))} && env -0"],
                         capture_output=True, check=True).stdout.decode()
    env = dict(kv.split("=", 1) for kv in out.split("\0") if "=" in kv)
    env["ANSIBLE_PIPELINING"] = "True" if pipelining else "False"
    env["ANSIBLE_FORKS"] = "10"
    env["ANSIBLE_DEPRECATION_WARNINGS"] = "False"
    return env


def default_inventory() -> Path:
    run_dir = Path(os.environ.get("MAGIC_SYSRQ_LAB_DIR", REPO / ".lab"))
    return run_dir / "inventory.ini"


def inventory_ports(inventory: Path) -> dict[str, str]:
    """port -> host name, for telling the lab's guests apart in -vvv output (they share 127.0.0.1)."""
    ports = {}
    for line in inventory.read_text().splitlines():
        if line.strip() and not line.startswith(("#", "[")):
            name = line.split()[0]
            port = re.search(r"\bansible_port=(\d+)", line)
            ports[port.group(1) if port else "22"] = name
    return ports


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO, check=False, timeout=1800)
    return time.monotonic() - start, proc


def count_calls(output: str, ports: dict[str, str]) -> dict[str, dict[str, int]]:
    counts = {host: {"module_calls": 0, "ssh_round_trips": 0} for host in ports.values()}
    for line in output.splitlines():
        if "SSH: EXEC" not in line:
            continue
        port = re.search(r"-o Port=(\d+)", line)
        host = ports.get(port.group(1) if port else "22")
        if host is None:
            continue
        counts[host]["ssh_round_trips"] += 1
        if line.split("SSH: EXEC", 1)[1].lstrip().startswith("ssh") and "python" in line:
            counts[host]["module_calls"] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--inventory", type=Path, default=None, help="default: the lab's inventory")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pipelining", action="store_true", help="run both with ANSIBLE_PIPELINING=True")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)
    inventory = args.inventory or default_inventory()
    if not inventory.exists():
        print(f"no inventory at {inventory}: start the lab (python -m tests.lab up) or pass --inventory",
              file=sys.stderr)
        return 2
    ports = inventory_ports(inventory)
    env = ansible_env(args.pipelining)
    out = Path(tempfile.mkdtemp(prefix="dump-bench-"))
    playbooks = {
        "sysrq_dump.yml": ["ansible-playbook", "-i", str(inventory), "playbooks/sysrq_dump.yml",
                           "-e", f"sysrq_dump_root={out}/sysrq-dumps"],
        "naive-dump.yml": ["ansible-playbook", "-i", str(inventory), "benchmarks/naive-dump.yml",
                           "-e", f"naive_dest={out}/naive"],
    }
    walls: dict[str, list[float]] = {name: [] for name in playbooks}
    for number in range(args.rounds):
        order = list(playbooks) if number % 2 == 0 else list(reversed(playbooks))
        for name in order:
            seconds, proc = run(playbooks[name], env)
            if proc.returncode != 0:
                print(f"{name} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}",
                      file=sys.stderr)
                return 1
            walls[name].append(seconds)
            print(f"round {number + 1}: {name:15s} {seconds:6.1f} s", flush=True)
    calls = {}
    for name, cmd in playbooks.items():
        proc = run(cmd + ["-vvv"], env)[1]
        calls[name] = count_calls(proc.stdout + proc.stderr, ports)
    dump, naive = statistics.median(walls["sysrq_dump.yml"]), statistics.median(walls["naive-dump.yml"])
    result = {
        "hosts": sorted(ports.values()), "rounds": args.rounds, "pipelining": args.pipelining,
        "wall_seconds": walls, "median_seconds": {"sysrq_dump.yml": dump, "naive-dump.yml": naive},
        "ratio": dump / naive, "calls_per_host": calls,
        "targets": {"ratio_at_most": TARGET_RATIO, "module_calls_per_host": TARGET_CALLS},
    }
    dump_calls = {h: c["module_calls"] for h, c in calls["sysrq_dump.yml"].items()}
    result["met"] = {"wall": result["ratio"] <= TARGET_RATIO,
                     "module_calls": all(n == TARGET_CALLS for n in dump_calls.values())}
    print()
    print(f"{'playbook':16s} {'median wall':>12s}  module calls / SSH round trips per host")
    for name in playbooks:
        per_host = ", ".join(f"{h} {c['module_calls']}/{c['ssh_round_trips']}" for h, c in sorted(calls[name].items()))
        print(f"{name:16s} {result['median_seconds'][name]:10.1f} s  {per_host}")
    print(f"ratio sysrq-dump / naive: {result['ratio']:.2f} (target <= {TARGET_RATIO}); "
          f"pipelining {'on' if args.pipelining else 'off'}; targets met: {result['met']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
