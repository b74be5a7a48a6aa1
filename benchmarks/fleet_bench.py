"""sysrq_dump.yml against the floor (one `ping` task a host) on the scale lab, at N = 2, 10, 50 hosts, forks = N.

    . scripts/env.sh && python -m tests.scale up 50
    python benchmarks/fleet_bench.py [--sizes 2,10,50] [--rounds 3] [--pipelining both|on|off] [--json out.json]
    python -m tests.scale down

The hosts are user-mode-linux kernels (tests/scale/fleet.py): each has its own /proc/sysrq-trigger, /dev/kmsg and
sshd, reached through an SSH ProxyCommand into the lab's network namespace. For each N (the first N kernels,
`-e target=scale[0:N-1]`) and pipelining setting, every round runs three plays with the same Ansible settings,
in rotating order:

  floor           benchmarks/floor-ping.yml: one ansible.builtin.ping task a host, gather_facts off
  sysrq_dump.yml  playbooks/sysrq_dump.yml as shipped (key w, default settings, the whole report written)
  naive           benchmarks/naive-dump.yml: shell `echo w > /proc/sysrq-trigger`, shell dmesg > file, fetch

It prints the median wall time of each, the ratios of the medians dump/floor and naive/floor (target: dump/floor
<= 1.3), and "paired": the median of each round's dump/floor, the two plays of a round run one after the other.
Wall time is the whole ansible-playbook run, from process start to exit.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TARGET = 1.3

from tests.scale.fleet import Fleet  # noqa: E402  pylint: disable=wrong-import-position


def ansible_env(pipelining: bool, forks: int) -> dict[str, str]:
    out = subprocess.run(["bash", "-c", f". {shlex.quote(str(REPO / 'scripts/env.sh'))} && env -0"],
                         capture_output=True, check=True).stdout.decode()
    env = dict(kv.split("=", 1) for kv in out.split("\0") if "=" in kv)
    env.update(ANSIBLE_PIPELINING=str(pipelining), ANSIBLE_FORKS=str(forks), ANSIBLE_DEPRECATION_WARNINGS="False",
               ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_TIMEOUT="30")
    return env


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess]:
    """One whole ansible-playbook run. Each run opens its own SSH connections (a new ControlPath directory), as an
    incident's first run does: otherwise the play that runs second reuses the first one's SSH masters."""
    with tempfile.TemporaryDirectory(prefix="cp-") as control:
        start = time.monotonic()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(env, ANSIBLE_SSH_CONTROL_PATH_DIR=control),
                              cwd=REPO, check=False, timeout=1800)
        seconds = time.monotonic() - start
        subprocess.run(["pkill", "-f", control], check=False)  # its SSH masters go with it
    return seconds, proc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--sizes", default="2,10,50")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pipelining", choices=["both", "on", "off"], default="both")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.sizes.split(",")]
    fleet = Fleet()
    running = [n for n in fleet.names() if fleet.running(n)]
    if len(running) < max(sizes):
        print(f"{len(running)} scale-lab kernel(s) running, {max(sizes)} needed: python -m tests.scale up {max(sizes)}",
              file=sys.stderr)
        return 2
    inventory = str(fleet.inventory_file)
    out = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    settings = {"both": [False, True], "on": [True], "off": [False]}[args.pipelining]
    rows = []
    for size in sizes:
        target = f"scale[0:{size - 1}]"
        plays = {
            "floor": ["ansible-playbook", "-i", inventory, "benchmarks/floor-ping.yml", "-e", f"target={target}"],
            "sysrq_dump.yml": ["ansible-playbook", "-i", inventory, "playbooks/sysrq_dump.yml", "-e", f"target={target}",
                               "-e", f"sysrq_dump_root={out}/sysrq-dumps"],
            "naive": ["ansible-playbook", "-i", inventory, "benchmarks/naive-dump.yml", "-e", f"target={target}",
                      "-e", f"naive_dest={out}/naive"],
        }
        for pipelining in settings:
            env = ansible_env(pipelining, size)
            walls: dict[str, list[float]] = {name: [] for name in plays}
            for number in range(args.rounds):
                names = list(plays)
                order = names[number % 3:] + names[:number % 3]
                for name in order:
                    seconds, proc = run(plays[name], env)
                    if proc.returncode != 0:
                        print(f"{name} failed at N={size} (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                              f"{proc.stderr[-2000:]}", file=sys.stderr)
                        return 1
                    walls[name].append(seconds)
                    print(f"N={size:3d} pipelining={'on ' if pipelining else 'off'} round {number + 1}: "
                          f"{name:15s} {seconds:6.1f} s", flush=True)
            med = {name: statistics.median(values) for name, values in walls.items()}
            # side by side: each round's dump against the same round's floor, run back to back (load on a shared
            # machine changes from minute to minute, less from one play to the next)
            paired = [dump / floor for dump, floor in zip(walls["sysrq_dump.yml"], walls["floor"])]
            rows.append({"hosts": size, "forks": size, "pipelining": pipelining, "rounds": args.rounds,
                         "wall_seconds": walls, "median_seconds": med,
                         "dump_over_floor": med["sysrq_dump.yml"] / med["floor"],
                         "dump_over_floor_paired": statistics.median(paired),
                         "naive_over_floor": med["naive"] / med["floor"]})
    print()
    print(f"{'N':>4s} {'pipelining':>10s} {'floor s':>8s} {'dump s':>8s} {'naive s':>8s} {'dump/floor':>10s} "
          f"{'paired':>7s} {'naive/floor':>11s}")
    for row in rows:
        med = row["median_seconds"]
        print(f"{row['hosts']:4d} {'on' if row['pipelining'] else 'off':>10s} {med['floor']:8.1f} "
              f"{med['sysrq_dump.yml']:8.1f} {med['naive']:8.1f} {row['dump_over_floor']:10.2f} "
              f"{row['dump_over_floor_paired']:7.2f} {row['naive_over_floor']:11.2f}")
    met = all(row["dump_over_floor"] <= TARGET for row in rows)
    print(f"target dump/floor <= {TARGET} at every N: {'met' if met else 'NOT met'}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "target": TARGET, "met": met,
                                         "load_average": os.getloadavg()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
