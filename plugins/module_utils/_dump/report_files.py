# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write a report's files under one directory in one step (the controller side of the incident playbooks).

A fleet dump writes two files per host plus the summaries; one ``copy`` task per file costs a module run
each (about 0.2-1 s on a busy controller). :func:`write_tree` writes them all in-process: each file
atomically (temporary file + rename), only when its content differs, and never outside the directory.
"""

from __future__ import annotations

import os
import tempfile


class ReportFilesError(ValueError):
    """A path that is not a relative path inside the directory, or content that is not text."""


def _relative(name):
    path = str(name).replace("\\", "/")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts or path.startswith("/") or ".." in parts:
        raise ReportFilesError("%r is not a relative path inside the report directory (no '..', not absolute)"
                               % (name,))
    return os.path.join(*parts)


def _text(name, content):
    if content is None:
        return ""
    if isinstance(content, (list, tuple)):
        return "".join("%s\n" % line for line in content)
    if isinstance(content, bytes):
        return content.decode("utf-8", "replace")
    if not isinstance(content, str):
        raise ReportFilesError("the content of %r is %s: give text, or a list of lines"
                               % (name, type(content).__name__))
    return content


def plan(dest, files):
    """``{relative path: content}`` -> ``[(absolute path, text)]``, checked."""
    if not dest:
        raise ReportFilesError("dest (the report directory) is required")
    if not isinstance(files, dict):
        raise ReportFilesError("files must be a dict of relative path -> content, got %s" % type(files).__name__)
    return [(os.path.join(dest, _relative(name)), _text(name, content)) for name, content in files.items()]


def _same(path, data):
    try:
        if os.path.getsize(path) != len(data):
            return False
        with open(path, "rb") as handle:
            return handle.read() == data
    except OSError:
        return False


def write_tree(dest, files, mode=0o644, dir_mode=0o755, check_mode=False):
    """Write ``files`` under ``dest``; returns ``(written, unchanged)`` lists of absolute paths."""
    written, unchanged = [], []
    for path, text in plan(dest, files):
        data = text.encode("utf-8")
        if _same(path, data):
            unchanged.append(path)
            continue
        written.append(path)
        if check_mode:
            continue
        directory = os.path.dirname(path)
        os.makedirs(directory, mode=dir_mode, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".%s." % os.path.basename(path))
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return written, unchanged
