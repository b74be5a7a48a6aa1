"""Controller-side parse and group of 1,000 host dumps, against `grep -c` over the same bytes.

    . scripts/env.sh && python benchmarks/parse_bench.py [--hosts 1000] [--repeat 3] [--json out.json]

The dumps are the real SysRq `t` dumps captured on the lab guests (tests/unit/fixtures/dumps/deb12-t.dmesg.txt,
Debian 12 / 6.1, and deb13-t.dmesg.txt, Debian 13 / 6.12), alternated and replicated to --hosts hosts, each copy
with its pids and ppids shifted (so no two hosts share a pid) and its own host name. Each host's text is parsed
with the collection's parser (magic_sysrq.fleet's sysrq_tasks.parse_text, as the sysrq_tasks filter does, log
prefixes included), then all hosts are grouped by identical stack (stack_groups.group_stacks) and folded
(folded_lines), as sysrq_dump.yml does on the controller.

Timed: parse + group + fold, single process, best of --repeat (and the same over two processes, the machine's
cores). Baseline: `grep -c 'task:'` over a file holding the same bytes (best of --repeat, warm page cache).
Target: under 2 s for 1,000 hosts.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DUMPS = REPO / "tests" / "unit" / "fixtures" / "dumps"
SOURCES = ("deb12-t.dmesg.txt", "deb13-t.dmesg.txt")
TARGET_SECONDS = 2.0

try:
    from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import stack_groups
    from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import parser as sysrq_tasks
except ImportError:  # run without scripts/env.sh: the repo is the collection root
    sys.exit("run it with the collection on the path: . scripts/env.sh && python benchmarks/parse_bench.py")

_PID = re.compile(r"\b(pid|ppid|tgid):(\s*)(\d+)")


def make_fleet(hosts: int) -> dict[str, str]:
    """host name -> dump text, replicated from the real t dumps with shifted pids."""
    texts = [(DUMPS / name).read_text() for name in SOURCES]
    fleet = {}
    for number in range(hosts):
        shift = 100000 * (number + 1)
        text = _PID.sub(lambda m, s=shift: "%s:%s%d" % (m.group(1), m.group(2), int(m.group(3)) + s),
                        texts[number % len(texts)])
        fleet["host%04d.example.net" % number] = text
    return fleet


def parse_one(item: tuple[str, str]) -> tuple[str, list]:
    host, text = item
    return host, sysrq_tasks.parse_text(text)


def parse_group(fleet: dict[str, str], processes: int = 1) -> tuple[float, dict]:
    start = time.perf_counter()
    if processes > 1:
        with multiprocessing.get_context("fork").Pool(processes) as pool:
            parsed = dict(pool.map(parse_one, fleet.items(), chunksize=max(1, len(fleet) // (processes * 8))))
    else:
        parsed = dict(parse_one(item) for item in fleet.items())
    groups = stack_groups.group_stacks(parsed)
    folded = stack_groups.folded_lines(parsed)
    seconds = time.perf_counter() - start
    return seconds, {"tasks": sum(len(t) for t in parsed.values()), "groups": len(groups), "folded": len(folded),
                     "largest_group": groups[0]["count"] if groups else 0,
                     "largest_group_hosts": groups[0]["host_count"] if groups else 0}


def grep_seconds(path: str, repeat: int) -> tuple[float, int]:
    best, count = float("inf"), 0
    for _attempt in range(repeat):
        start = time.perf_counter()
        out = subprocess.run(["grep", "-c", "task:", path], capture_output=True, text=True, check=True)
        best = min(best, time.perf_counter() - start)
        count = int(out.stdout)
    return best, count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    fleet = make_fleet(args.hosts)
    data = "".join(fleet.values())
    megabytes = len(data.encode()) / 1e6
    single = [parse_group(fleet) for _attempt in range(args.repeat)]
    seconds, counts = min(single, key=lambda r: r[0])
    cores = min(2, os.cpu_count() or 1)
    parallel_seconds = min(parse_group(fleet, cores)[0] for _attempt in range(args.repeat)) if cores > 1 else seconds
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as handle:
        handle.write(data)
        path = handle.name
    try:
        grep_s, grep_count = grep_seconds(path, args.repeat)
    finally:
        os.unlink(path)
    result = {
        "hosts": args.hosts, "megabytes": round(megabytes, 1), "sources": list(SOURCES),
        "parse_group_seconds": round(seconds, 3), "parse_group_mb_s": round(megabytes / seconds, 1),
        "parse_group_seconds_%d_processes" % cores: round(parallel_seconds, 3),
        "grep_c_seconds": round(grep_s, 3), "grep_c_mb_s": round(megabytes / grep_s, 1),
        "grep_c_count": grep_count, **counts,
        "target_seconds": TARGET_SECONDS, "met": seconds < TARGET_SECONDS,
    }
    print(f"{args.hosts} hosts, {megabytes:.1f} MB of real t dumps ({result['tasks']} tasks)")
    print(f"parse + group + fold: {seconds:.2f} s single process ({result['parse_group_mb_s']} MB/s), "
          f"{parallel_seconds:.2f} s over {cores} processes; target < {TARGET_SECONDS} s: "
          f"{'met' if result['met'] else 'NOT met'}")
    print(f"grep -c 'task:': {grep_s:.3f} s ({result['grep_c_mb_s']} MB/s, {grep_count} headers); "
          f"the parser runs at {seconds / grep_s:.0f}x grep's time")
    print(f"{result['groups']} distinct stacks; the biggest holds {result['largest_group']} tasks on "
          f"{result['largest_group_hosts']} hosts; {result['folded']} folded lines")
    if grep_count != result["tasks"]:
        print(f"note: grep counts {grep_count} 'task:' lines, the parser {result['tasks']} tasks")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
