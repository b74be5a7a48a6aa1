# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write a report's files under one directory in one step (the controller side of the incident playbooks).

A fleet dump writes two files per host plus the summaries; one ``copy`` task per file costs a module run
each (about 0.2-1 s on a busy controller). :func:`write_tree` writes them all in-process: each file
atomically (temporary file + rename), only when its content differs, and never outside the directory.

Host names become directory names, and a host name is whatever the inventory says: with names taken from
cloud tags it can be ``../../escape``. :func:`report_name` turns any name into one safe path component,
so every controller-side write for a host (``report_files``, the playbooks' ``fetch`` destinations) stays
in its own directory of the report, and no host has to be refused.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile

NAME_MAX = 255      # bytes in one file name (Linux NAME_MAX)
# What a path component must not hold, or must not start with: "/" and "\\" (separators here), "%" (the
# escape itself), control characters and the Unicode controls that reorder text; a leading "." (".", ".."
# and hidden files).
_NAME_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\%\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]|^\.")


def _percent(match):
    return "".join("%%%02X" % byte for byte in match.group().encode("utf-8"))


def report_name(name):
    """Any name (a host name) -> one path component that is safe and tells names apart.

    Unsafe characters are percent-encoded (``../x`` -> ``%2E.%2Fx``, ``%`` -> ``%25``), so two names
    never share a directory; the empty name is ``%``. A name over 255 bytes once encoded is cut, with a
    digest of the whole name appended to keep it apart from others.
    """
    text = "" if name is None else str(name)
    if not text:
        return "%"
    safe = _NAME_UNSAFE.sub(_percent, text)
    if len(safe.encode("utf-8")) > NAME_MAX:
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        safe = safe.encode("utf-8")[:NAME_MAX - 18].decode("utf-8", "ignore") + "%~" + digest
    return safe


class ReportFilesError(ValueError):
    """A path that is not a relative path inside the directory, or content that is not text."""


def file_mode(value, option="mode"):
    """A file mode as Ansible's file modules take it: an integer is the mode itself (YAML reads an unquoted
    ``0644`` as 420, which is 0o644); a string is octal (``'0644'``, ``'644'``, ``'0o644'``)."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, int):
        mode = value
    else:
        text = str(value).strip().lower()
        if text.startswith("0o"):
            text = text[2:]
        mode = int(text, 8) if text and all(c in "01234567" for c in text) else -1
    if not 0 <= mode <= 0o7777:
        raise ReportFilesError("%s=%r is not a file mode: give an octal string such as '0644' (quoted), or the "
                               "integer Ansible's file modules take (0o644, written unquoted 0644 in YAML)"
                               % (option, value))
    return mode


def _relative(name):
    if "\x00" in str(name):
        raise ReportFilesError("%r holds a NUL byte, which no file name can hold" % (name,))
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


def plan(dest, files, refused=None):
    """``{relative path: content}`` -> ``[(absolute path, text)]``, checked.

    A bad path or content raises :class:`ReportFilesError`; when ``refused`` is a list, it gets
    ``(path, reason)`` instead and the other files are still planned: one bad name loses no one else's file.
    """
    if not dest:
        raise ReportFilesError("dest (the report directory) is required")
    if not isinstance(files, dict):
        raise ReportFilesError("files must be a dict of relative path -> content, got %s" % type(files).__name__)
    planned = []
    for name, content in files.items():
        try:
            planned.append((os.path.join(dest, _relative(name)), _text(name, content)))
        except ReportFilesError as exc:
            if refused is None:
                raise
            refused.append((name, str(exc)))
    return planned


def _same(path, data):
    try:
        if os.path.getsize(path) != len(data):
            return False
        with open(path, "rb") as handle:
            return handle.read() == data
    except OSError:
        return False


def write_tree(dest, files, mode=0o644, dir_mode=0o755, check_mode=False, refused=None):
    """Write ``files`` under ``dest``; returns ``(written, unchanged)`` lists of absolute paths.

    ``refused``: see :func:`plan`."""
    written, unchanged = [], []
    for path, text in plan(dest, files, refused=refused):
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
