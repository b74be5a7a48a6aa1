"""Fake host trees shaped like real distributions."""
from __future__ import annotations

import os


def debian_host(root, sysrq="438", sysctl_conf="#kernel.sysrq=438\n", symlink=True, systemd=True, extra_proc=None):
    """A Debian 12 host: kernel default mask 438, /etc/sysctl.conf through the 99-sysctl.conf symlink."""
    for d in ("etc/sysctl.d", "proc/sys/kernel", "usr/lib/systemd"):
        os.makedirs(os.path.join(str(root), d), exist_ok=True)
    if sysrq is not None:
        (root / "proc/sys/kernel/sysrq").write_text(sysrq + "\n")
    for key, value in (extra_proc or {}).items():
        (root / ("proc/sys/" + key.replace(".", "/"))).write_text(value + "\n")
    if sysctl_conf is not None:
        (root / "etc/sysctl.conf").write_text(sysctl_conf)
        if symlink:
            os.symlink("../sysctl.conf", str(root / "etc/sysctl.d/99-sysctl.conf"))
    if systemd:
        (root / "usr/lib/systemd/systemd-sysctl").write_text("")
    return root
