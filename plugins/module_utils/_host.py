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
import tempfile

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


def read_bytes(path):
    """A host file's content as bytes, or None when it does not exist (what :func:`restore_files` puts back)."""
    try:
        with open(host_path(path), "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def error_text(exc):
    """``exc`` as text with its cause: ansible-core's atomic_move and backup_local raise a plain Exception that
    names the files, from the OSError that says why."""
    cause = exc.__cause__
    if isinstance(cause, OSError) and cause.strerror:
        return "%s: %s" % (str(exc).rstrip("."), cause.strerror)
    return str(exc)


def write_bytes(module, path, data, mode=0o644):
    """Atomically replace (or create) host file ``path`` with ``data`` (bytes or text, written as UTF-8).

    An existing file keeps its mode; a new one gets ``mode``. ansible-core's atomic_move gives a file it creates
    0666 & ~umask after the rename (0664 under umask 002, for a file that root sources or applies at boot): the
    umask is narrowed meanwhile, so that the file is never, even for a moment, more open than ``mode``.
    """
    full = host_path(path)
    directory = os.path.dirname(full)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    if os.path.exists(full):
        mode = os.stat(full).st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(full), dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data.encode("utf-8") if isinstance(data, str) else data)
        try:
            os.chmod(tmp, mode)
        except OSError:  # FAT (an EFI system partition) has no Unix modes to set
            pass
        umask = os.umask(0o777 & ~mode)
        try:
            module.atomic_move(tmp, full)
        finally:
            os.umask(umask)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def restore_files(module, originals):
    """Put back ``{host path: bytes, or None when it did not exist}`` where a file no longer has that content.

    Returns ``(restored, removed, failed)``: the paths put back, the new files removed, and ``"path (why)"`` for
    the files that could not be restored.
    """
    restored, removed, failed = [], [], []
    for path, content in originals.items():
        try:
            if read_bytes(path) == content:
                continue  # never written (the write that failed), or written back already
            if content is None:
                os.unlink(host_path(path))
                removed.append(path)
            else:
                write_bytes(module, path, content)
                restored.append(path)
        except Exception as exc:  # pylint: disable=broad-except  # atomic_move raises a plain Exception
            failed.append("%s (%s)" % (path, error_text(exc)))
    return restored, removed, failed
