"""The dump parser on the hostile inputs of issue #13, side by side with the parser before the fix.

    . scripts/env.sh && python benchmarks/parser_hostile.py [--baseline 1db6e37] [--scale 1 2 4 8]

The baseline is plugins/module_utils/_dump/parser.py at the given commit (default: the commit before the fix),
loaded from git. For each input and size, the best of three CPU times of ``parse_text``; a linear parser takes
about twice as long when the input doubles, a quadratic one four times.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / ".venv" / "collections"))

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import parser as current  # noqa: E402

INPUTS = {
    "long header line (task:x state:D + N letters)": lambda n: "task:x state:D " + "a" * (4000 * n) + "\n",
    "Sched Debug Version\\ntask:\\n x N": lambda n: "Sched Debug Version\ntask:\n" * (2500 * n),
    "fields: stack: + N x 'pid:'": lambda n: "task:x state:D stack:" + "pid:" * (1000 * n) + "\n",
}


def baseline(commit):
    source = subprocess.run(["git", "-C", str(REPO), "show", "%s:plugins/module_utils/_dump/parser.py" % commit],
                            capture_output=True, text=True, check=True).stdout
    module = types.ModuleType("parser_baseline")
    exec(compile(source, "parser@%s" % commit, "exec"), module.__dict__)  # pylint: disable=exec-used
    return module


def seconds(parse, text):
    best = None
    for _round in range(3):
        start = time.process_time()
        parse(text)
        spent = time.process_time() - start
        best = spent if best is None else min(best, spent)
    return best


def main():
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--baseline", default="1db6e37")
    args.add_argument("--scale", type=int, nargs="+", default=[1, 2, 4])
    opts = args.parse_args()
    old = baseline(opts.baseline)
    print("%-48s %8s %12s %12s" % ("input", "KB", "before (s)", "after (s)"))
    for name, make in INPUTS.items():
        for scale in opts.scale:
            text = make(scale)
            before, after = seconds(old.parse_text, text), seconds(current.parse_text, text)
            print("%-48s %8.0f %12.3f %12.4f" % (name, len(text) / 1024, before, after))


if __name__ == "__main__":
    main()
