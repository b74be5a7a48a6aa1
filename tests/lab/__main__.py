"""python -m tests.lab up|down|status|inventory|ssh NAME [CMD...]|serial NAME|build|images|capture-dumps"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from .config import GUESTS
from .image import build_all, image_path
from .lab import Lab, LabError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.lab", description="The magic_sysrq.fleet QEMU lab.")
    sub = p.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="build images if needed, boot the guests, wait for SSH, write the inventory")
    up.add_argument("names", nargs="*", help=f"guests (default: {' '.join(GUESTS)})")
    up.add_argument("--timeout", type=float, help="seconds to wait for SSH")
    sub.add_parser("down", help="stop every guest the lab started")
    sub.add_parser("status", help="show the guests and whether they run")
    sub.add_parser("inventory", help="print the path of the Ansible inventory")
    ssh = sub.add_parser("ssh", help="SSH to a guest (a shell, or run CMD)")
    ssh.add_argument("name", choices=list(GUESTS))
    ssh.add_argument("command", nargs=argparse.REMAINDER)
    ser = sub.add_parser("serial", help="print a guest's serial log path (or its tail with -n)")
    ser.add_argument("name", choices=list(GUESTS))
    ser.add_argument("-n", type=int, default=0)
    build = sub.add_parser("build", help="build (or find cached) base images")
    build.add_argument("names", nargs="*")
    sub.add_parser("images", help="print the cached base image paths")
    cap = sub.add_parser("capture-dumps", help="capture w/t/l dumps from running guests into tests/unit/fixtures/dumps")
    cap.add_argument("--keys", default="wtl")
    args = p.parse_args(argv)

    try:
        if args.cmd == "up":
            lab = Lab(args.names or None)
            t0 = time.monotonic()
            lab.up(detach=True, timeout=args.timeout)
            print(f"lab up in {time.monotonic() - t0:.0f}s; inventory: {lab.inventory_file}")
        elif args.cmd == "down":
            stopped = Lab().down(all_guests=True)
            print("stopped: " + (", ".join(stopped) or "nothing was running"))
        elif args.cmd == "status":
            st = Lab().status()
            if not st:
                print("no guests")
            for name, g in st.items():
                print(f"{name}: {'running' if g['running'] else 'DEAD'} pid={g['pid']} ssh=127.0.0.1:{g['port']} "
                      f"serial={g['serial']} qmp={g['qmp']}")
            return 0 if st and all(g["running"] for g in st.values()) else 1
        elif args.cmd == "inventory":
            lab = Lab()
            if not lab.inventory_file.exists():
                print(f"no inventory yet: run `python -m tests.lab up` ({lab.inventory_file})", file=sys.stderr)
                return 1
            print(lab.inventory_file)
        elif args.cmd == "ssh":
            argv_ssh = Lab().ssh_argv(args.name)
            if args.command:
                argv_ssh += ["--", " ".join(args.command)]
            else:
                argv_ssh.insert(1, "-t")
            os.execvp(argv_ssh[0], argv_ssh)
        elif args.cmd == "serial":
            path = Lab().guest(args.name)["serial"]
            if args.n:
                from .lab import tail
                print(tail(path, args.n))
            else:
                print(path)
        elif args.cmd == "build":
            t0 = time.monotonic()
            for name, path in build_all(args.names or None).items():
                print(f"{name}: {path}")
            print(f"images ready in {time.monotonic() - t0:.0f}s")
        elif args.cmd == "capture-dumps":
            from .dumps import capture_all
            for r in capture_all(Lab(list(Lab().state()) or None), keys=args.keys):
                print(json.dumps(r))
        elif args.cmd == "images":
            print(json.dumps({n: str(image_path(g)) for n, g in GUESTS.items()}, indent=2))
    except LabError as exc:
        print(f"lab: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
