# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the managed host's files are.

Every file the collection reads or writes on a host (``/proc``, ``/sys``,
``/etc``, ``/dev/kmsg``, ``/boot``) goes through :func:`host_path`, so one
seam points the whole collection at another tree. Modules always run with
``HOST_ROOT = "/"``; unit tests set it to a temporary directory.
"""

from __future__ import annotations

import os

HOST_ROOT = "/"


def host_path(path):
    """Return ``path`` (an absolute path on the host) under ``HOST_ROOT``."""
    if HOST_ROOT == "/":
        return path
    return os.path.join(HOST_ROOT, path.lstrip("/"))


def read_text(path, default=None):
    """Read a host file as text, or return ``default`` when it does not exist."""
    try:
        with open(host_path(path), encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except FileNotFoundError:
        return default


def host_realpath(path):
    """The host path that ``path`` resolves to through symlinks (``/etc/sysctl.d/99-sysctl.conf`` ->
    ``/etc/sysctl.conf``), resolved inside ``HOST_ROOT``."""
    real = os.path.realpath(host_path(path))
    if HOST_ROOT == "/":
        return real
    return "/" + os.path.relpath(real, os.path.realpath(HOST_ROOT))
