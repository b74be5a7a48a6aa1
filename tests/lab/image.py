"""Base images: debootstrap a Debian release, boot it once to install GRUB, cache it as qcow2.

The cache key is a hash of the recipe below (packages, files, units, disk layout) plus the
lab's public SSH key, so a change to any of them builds a new image and a second run reuses it.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Callable

from .config import DISK_GB, GUESTS, Guest, cache_dir
from .qemu import qemu_cmd

RECIPE_VERSION = 1

PACKAGES = [
    "linux-image-amd64", "initramfs-tools", "grub-pc", "systemd-sysv", "udev", "dbus",
    "openssh-server", "python3", "kdump-tools", "makedumpfile", "procps", "util-linux",
    "e2fsprogs", "kmod", "iproute2", "fdisk",
]

FIRSTBOOT_MARK = "LAB-FIRSTBOOT-OK"
FIRSTBOOT_FAIL = "LAB-FIRSTBOOT-FAILED"

FIRSTBOOT_SCRIPT = f"""#!/bin/sh
# Runs once on the image's first boot (kernel given by qemu -kernel): install GRUB on the
# disk from inside the guest, where the device names and root UUID are the real ones.
if grub-install /dev/vda && update-grub; then
    rm -f /etc/lab-firstboot
    sync
    echo {FIRSTBOOT_MARK} > /dev/ttyS0
else
    echo {FIRSTBOOT_FAIL} > /dev/ttyS0
fi
systemctl poweroff
"""

FIRSTBOOT_UNIT = """[Unit]
Description=Lab first boot: install GRUB on /dev/vda
ConditionPathExists=/etc/lab-firstboot
After=local-fs.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/lab-firstboot
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
"""

GRUB_DEFAULTS = """# Lab image: boot at once, menu and kernel on the serial console, no "quiet".
GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=`( . /etc/os-release; echo ${NAME:-Debian} ) 2>/dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=ttyS0,115200"
GRUB_TERMINAL="serial console"
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB_DISABLE_OS_PROBER=true
"""

NETWORK = """[Match]
Name=en* eth*

[Network]
DHCP=ipv4
"""

SSHD = """PermitRootLogin prohibit-password
UseDNS no
GSSAPIAuthentication no
"""

ENABLE_UNITS = ["systemd-networkd.service", "lab-firstboot.service"]
MASK_UNITS = [
    "systemd-networkd-wait-online.service", "apt-daily.timer", "apt-daily-upgrade.timer",
    "man-db.timer", "e2scrub_all.timer", "fstrim.timer", "systemd-timesyncd.service",
]


def recipe(guest: Guest, pubkey: str) -> dict:
    return {
        "version": RECIPE_VERSION,
        "release": guest.release,
        "hostname": guest.name,
        "packages": PACKAGES,
        "disk_gb": DISK_GB,
        "firstboot_script": FIRSTBOOT_SCRIPT,
        "firstboot_unit": FIRSTBOOT_UNIT,
        "grub": GRUB_DEFAULTS,
        "network": NETWORK,
        "sshd": SSHD,
        "enable": ENABLE_UNITS,
        "mask": MASK_UNITS,
        "kdump": "USE_KDUMP=0",
        "pubkey": pubkey.strip(),
    }


def recipe_hash(guest: Guest, pubkey: str) -> str:
    blob = json.dumps(recipe(guest, pubkey), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def ssh_key() -> Path:
    """The lab's SSH key, generated once in the cache."""
    key = cache_dir() / "id_ed25519"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        tmp = key.with_name(f"id_ed25519.tmp{os.getpid()}")
        for p in (tmp, Path(f"{tmp}.pub")):
            p.unlink(missing_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "magic-sysrq-fleet-lab",
                        "-f", str(tmp)], check=True)
        os.replace(f"{tmp}.pub", f"{key}.pub")
        os.replace(tmp, key)
    key.chmod(0o600)
    return key


def image_path(guest: Guest) -> Path:
    key = ssh_key()
    pub = Path(f"{key}.pub").read_text()
    return cache_dir() / f"{guest.release}-{recipe_hash(guest, pub)}.qcow2"


class BuildError(RuntimeError):
    pass


def _run(cmd: list[str], log: Path, what: str, timeout: float | None = None,
         input_data: bytes | None = None, **kw) -> None:
    with open(log, "ab") as out:
        out.write(f"\n$ {' '.join(cmd)}\n".encode())
        out.flush()
        stdin = {} if input_data is not None else {"stdin": subprocess.DEVNULL}
        try:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, input=input_data,
                                timeout=timeout, check=False, **stdin, **kw).returncode
        except subprocess.TimeoutExpired as exc:
            raise BuildError(f"{what}: timed out after {timeout}s; log {log}:\n{_tail(log)}") from exc
    if rc != 0:
        raise BuildError(f"{what} failed (exit {rc}); log {log}:\n{_tail(log)}")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        data = path.read_bytes().decode(errors="replace").replace("\r", "")
    except OSError:
        return "(no log)"
    return "\n".join(data.splitlines()[-lines:])


def _write(root: Path, rel: str, text: str, mode: int = 0o644) -> None:
    path = root / rel.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def _configure(root: Path, guest: Guest, pubkey: str, root_uuid: str, log: Path) -> None:
    _write(root, "/etc/hostname", f"{guest.name}\n")
    _write(root, "/etc/hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{guest.name}\n"
                               "::1\tlocalhost ip6-localhost ip6-loopback\n")
    _write(root, "/etc/fstab", f"UUID={root_uuid}\t/\text4\terrors=remount-ro\t0\t1\n")
    _write(root, "/etc/default/grub", GRUB_DEFAULTS)
    _write(root, "/etc/systemd/network/80-lab.network", NETWORK)
    _write(root, "/etc/ssh/sshd_config.d/lab.conf", SSHD)
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    _write(root, "/root/.ssh/authorized_keys", pubkey.strip() + "\n", 0o600)
    _write(root, "/usr/local/sbin/lab-firstboot", FIRSTBOOT_SCRIPT, 0o755)
    _write(root, "/etc/systemd/system/lab-firstboot.service", FIRSTBOOT_UNIT)
    _write(root, "/etc/lab-firstboot", "")
    kdump = root / "etc/default/kdump-tools"
    lines = kdump.read_text().splitlines() if kdump.exists() else []
    lines = [ln for ln in lines if not ln.startswith("USE_KDUMP=")] + ["USE_KDUMP=0"]
    kdump.write_text("\n".join(lines) + "\n")
    _run(["chroot", str(root), "systemctl", "enable", *ENABLE_UNITS], log, "systemctl enable")
    _run(["chroot", str(root), "systemctl", "mask", *MASK_UNITS], log, "systemctl mask")
    _run(["chroot", str(root), "apt-get", "clean"], log, "apt-get clean")
    shutil.rmtree(root / "var/lib/apt/lists", ignore_errors=True)
    (root / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)


def _umount_under(path: Path) -> None:
    """Unmount anything an interrupted debootstrap left mounted inside the build tree (deepest first)."""
    prefix = str(path.resolve()) + "/"
    try:
        with open("/proc/mounts") as f:
            points = [ln.split()[1].replace("\\040", " ") for ln in f]
    except OSError:
        return
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


def _clean(work: Path) -> None:
    if work.exists():
        _umount_under(work)
        shutil.rmtree(work, ignore_errors=True)


def _newest(root: Path, pattern: str) -> Path:
    found = sorted((root / "boot").glob(pattern))
    if not found:
        raise BuildError(f"no /boot/{pattern} in the debootstrapped tree")
    return found[-1]


def build(guest: Guest, say: Callable[[str], None] = print) -> Path:
    """Build (or find in the cache) the base image of one guest; returns the qcow2 path."""
    target = image_path(guest)
    if target.exists():
        return target
    if os.geteuid() != 0:
        raise BuildError("building lab images needs root (debootstrap, chroot)")
    for tool in ("debootstrap", "sfdisk", "mkfs.ext4", "qemu-img"):
        if not shutil.which(tool) and not shutil.which(tool, path="/usr/sbin:/sbin"):
            raise BuildError(f"{tool} not found: install debootstrap, fdisk, e2fsprogs, qemu-utils")
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f"{guest.release}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return target
        started = time.monotonic()
        pub = Path(f"{ssh_key()}.pub").read_text()
        tag = target.stem
        work = cache / f"build-{tag}"
        _clean(work)
        work.mkdir(parents=True)
        log = work / "build.log"
        root = work / "root"
        debs = cache / f"debs-{guest.release}"
        debs.mkdir(exist_ok=True)
        say(f"[{guest.name}] building base image {target.name} (log {log})")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive",
                   PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        _run(["debootstrap", "--variant=minbase", f"--cache-dir={debs}",
              "--include=" + ",".join(PACKAGES), guest.release, str(root)],
             log, f"debootstrap {guest.release}", timeout=3600, env=env)
        say(f"[{guest.name}] debootstrap done ({time.monotonic() - started:.0f}s)")
        root_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"magic-sysrq-fleet-lab:{tag}"))
        _configure(root, guest, pub, root_uuid, log)
        kernel = work / "vmlinuz"
        initrd = work / "initrd.img"
        shutil.copy(_newest(root, "vmlinuz-*"), kernel)
        shutil.copy(_newest(root, "initrd.img-*"), initrd)

        # A dos-labelled raw disk with one partition at 1 MiB; the ext4 is made from the
        # tree with mkfs.ext4 -d and placed with dd (no loop partitions on these machines).
        size = DISK_GB * 1024 ** 3
        raw = work / "disk.raw"
        part = work / "part.ext4"
        with open(raw, "wb") as f:
            f.truncate(size)
        _run(["sfdisk", "--quiet", str(raw)], log, "sfdisk", env=env,
             input_data=b"label: dos\nstart=2048, type=83, bootable\n")
        with open(part, "wb") as f:
            f.truncate(size - 1024 ** 2)
        _run(["mkfs.ext4", "-q", "-F", "-L", "labroot", "-U", root_uuid, "-d", str(root), str(part)],
             log, "mkfs.ext4 -d", env=env)
        _run(["dd", f"if={part}", f"of={raw}", "bs=1M", "seek=1", "conv=notrunc,sparse", "status=none"],
             log, "dd partition into disk")
        part.unlink()
        _clean(root)
        say(f"[{guest.name}] disk ready, first boot installs GRUB ({time.monotonic() - started:.0f}s)")

        serial = work / "firstboot-serial.log"
        cmd = qemu_cmd(f"lab-build-{guest.name}", raw, serial, disk_format="raw", cache="writeback",
                       extra=["-no-reboot", "-kernel", str(kernel), "-initrd", str(initrd),
                              "-append", "root=/dev/vda1 rw console=ttyS0,115200"])
        _run(cmd, log, f"first boot of {guest.name}", timeout=1500)
        text = serial.read_bytes().decode(errors="replace")
        if FIRSTBOOT_MARK not in text:
            raise BuildError(f"first boot of {guest.name} did not install GRUB; serial log {serial}:\n"
                             f"{_tail(serial)}")
        tmp = target.with_suffix(".qcow2.tmp")
        _run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(tmp)], log, "qemu-img convert")
        os.replace(tmp, target)
        _clean(work)
        say(f"[{guest.name}] base image {target} built in {time.monotonic() - started:.0f}s")
        return target


def build_all(names: list[str] | None = None, say: Callable[[str], None] = print) -> dict[str, Path]:
    """Build the base images of the named guests in parallel."""
    import concurrent.futures

    guests = [GUESTS[n] for n in (names or list(GUESTS))]
    ssh_key()
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(guests)) as pool:
        futures = {g.name: pool.submit(build, g, say) for g in guests}
        errors = []
        result = {}
        for name, fut in futures.items():
            try:
                result[name] = fut.result()
            except Exception as exc:  # report every guest's failure, not only the first
                errors.append(f"{name}: {exc}")
        if errors:
            raise BuildError("\n".join(errors))
    return result
