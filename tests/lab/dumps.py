"""Capture real SysRq dumps from the lab guests as parser fixtures.

For each guest and key it saves, under tests/unit/fixtures/dumps/:
  <guest>-<key>.dmesg.txt   `dmesg` of the dump (the ring buffer cleared just before), timestamps on
  <guest>-<key>.kmsg.txt    the raw /dev/kmsg records the trigger produced (prio,seq,usec,flags;msg
                            and continuation lines), read from the end of the buffer as the module does
  <guest>-<key>.serial.txt  the same dump as it came out on the serial console (CR and escapes kept)
  <guest>-w.ps.txt          `ps -eo pid,ppid,stat,comm` taken just before the `w`
For `w` it first makes D-state tasks on purpose: writers into a frozen (fsfreeze) loop-mounted ext4.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from .config import REPO
from .lab import Lab

OUT = REPO / "tests" / "unit" / "fixtures" / "dumps"

GUEST_CAPTURE = r'''
import json, os, subprocess, sys, time
key = sys.argv[1]
subprocess.run(["dmesg", "-C"], check=True)
fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
os.lseek(fd, 0, os.SEEK_END)
ps = subprocess.run(["ps", "-eo", "pid,ppid,stat,comm"], capture_output=True, text=True).stdout
with open("/proc/sysrq-trigger", "w") as f:
    f.write(key)
records, lost = [], 0
last = time.monotonic()
deadline = last + 120
while time.monotonic() < deadline:
    try:
        records.append(os.read(fd, 16384).decode("utf-8", "replace"))
        last = time.monotonic()
    except BlockingIOError:
        if time.monotonic() - last > 2.0:
            break
        time.sleep(0.05)
    except BrokenPipeError:
        lost += 1
dmesg = subprocess.run(["dmesg"], capture_output=True, text=True).stdout
print(json.dumps({"kmsg": "".join(records), "lost": lost, "dmesg": dmesg, "ps": ps,
                  "uname": os.uname().release}))
'''

STUCK = (Path(__file__).resolve().parent / "stuck.sh").read_text()


def stuck(lab: Lab, name: str, action: str, *args: str, check: bool = True) -> str:
    """Run tests/lab/stuck.sh on a guest (make|release [NAME] [WRITER...]); its output."""
    cmd = "bash -s -- " + " ".join([action, *args])
    return lab.ssh(name, cmd, input_data=STUCK, check=check, timeout=120).stdout


def _wait_serial_quiet(lab: Lab, name: str, quiet: float = 3.0, limit: float = 300.0) -> None:
    size, since, end = lab.serial_size(name), time.monotonic(), time.monotonic() + limit
    while time.monotonic() < end:
        time.sleep(0.5)
        now = lab.serial_size(name)
        if now != size:
            size, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def capture(lab: Lab, name: str, key: str, out: Path = OUT) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    if key == "w":
        stuck(lab, name, "make", "frz")
    try:
        _wait_serial_quiet(lab, name, quiet=2.0, limit=60)
        offset = lab.serial_size(name)
        r = lab.ssh(name, "python3 - " + key, input_data=GUEST_CAPTURE, timeout=600)
        data = json.loads(r.stdout)
        _wait_serial_quiet(lab, name)
        serial = lab.serial_since(name, offset)
    finally:
        if key == "w":
            stuck(lab, name, "release", "frz", check=False)
    base = out / f"{name}-{key}"
    Path(f"{base}.dmesg.txt").write_text(data["dmesg"])
    Path(f"{base}.kmsg.txt").write_text(data["kmsg"])
    with open(f"{base}.serial.txt", "w", newline="") as f:
        f.write(serial)
    if key == "w":
        Path(f"{base}.ps.txt").write_text(data["ps"])
    return {"guest": name, "key": key, "kernel": data["uname"], "lost": data["lost"],
            "kmsg_records": data["kmsg"].count("\n") - data["kmsg"].count("\n "),
            "dmesg_lines": len(data["dmesg"].splitlines()), "serial_bytes": len(serial)}


def capture_all(lab: Lab, keys: str = "wtl", out: Path = OUT) -> list[dict]:
    import concurrent.futures

    def one(name: str) -> list[dict]:
        return [capture(lab, name, k, out) for k in keys]

    with concurrent.futures.ThreadPoolExecutor(len(lab.names)) as pool:
        results = list(pool.map(one, lab.names))
    return [r for rs in results for r in rs]
