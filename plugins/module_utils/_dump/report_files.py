# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write a report's files under one directory in one step (the controller side of the incident playbooks).

A fleet dump writes two files per host plus the summaries; one ``copy`` task per file costs a module run
each (about 0.2-1 s on a busy controller). :func:`write_tree` writes them all in-process: each file
atomically (temporary file + rename), only when its content or mode differs, and never outside the directory
(no ``..``, no symlink leading out); a file that cannot be written is refused, and the others are written.

Host names become directory names, and a host name is whatever the inventory says: with names taken from
cloud tags it can be ``../../escape``. :func:`report_name` turns any name into one safe path component,
so every controller-side write for a host (``report_files``, the playbooks' ``fetch`` destinations) stays
in its own directory of the report, and no host has to be refused.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump.untrusted import INVISIBLE

NAME_MAX = 255      # bytes in one file name (Linux NAME_MAX)
# What a path component must not hold, or must not start with: "/" and "\\" (separators here), "%" (the
# escape itself), control characters, the Unicode characters that reorder text or show nothing (two hosts
# "web1" and "web1" + U+200B must not get two directories that look the same), lone surrogates (no UTF-8
# for them); a leading "." (".", ".." and hidden files).
_NAME_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f/\\%%\ud800-\udfff%s]|^\." % INVISIBLE)
# The files the reports write at their root (sysrq_dump.yml, wedged_host_dump.yml, collect_dmesg.yml,
# check_sysrq_policy.yml), beside one directory per host: a host named like one would put its directory
# where the file goes, and every write of the report after it would fail. Compared case-insensitively, as
# the file systems of macOS and Windows controllers compare names.
ROOT_FILES = frozenset(("summary.md", "summary.json", "stacks.folded", "flamegraph.html", "oob.json",
                        "sysrq-policy.json", "sysrq-policy.junit.xml"))


def _percent(text):
    return "".join("%%%02X" % byte for byte in text.encode("utf-8", "surrogatepass"))


def report_name(name):
    """Any name (a host name) -> one path component that is safe and tells names apart.

    Unsafe characters are percent-encoded (``../x`` -> ``%2E.%2Fx``, ``%`` -> ``%25``), so two names
    never share a directory; the empty name is ``%``; a name that is one of the report's own files
    (:data:`ROOT_FILES`) has its first character encoded (``summary.md`` -> ``%73ummary.md``). A name over
    255 bytes once encoded is cut, with a digest of the whole name appended to keep it apart from others.
    """
    text = "" if name is None else str(name)
    if not text:
        return "%"
    safe = _NAME_UNSAFE.sub(lambda match: _percent(match.group()), text)
    if safe.casefold() in ROOT_FILES:
        safe = _percent(safe[0]) + safe[1:]
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


def _planned(dest, files, refused):
    if not dest:
        raise ReportFilesError("dest (the report directory) is required")
    if not isinstance(files, dict):
        raise ReportFilesError("files must be a dict of relative path -> content, got %s" % type(files).__name__)
    planned = []
    for name, content in files.items():
        try:
            planned.append((name, os.path.join(dest, _relative(name)), _text(name, content)))
        except ReportFilesError as exc:
            if refused is None:
                raise
            refused.append((name, str(exc)))
    return planned


def plan(dest, files, refused=None):
    """``{relative path: content}`` -> ``[(absolute path, text)]``, checked.

    A bad path or content raises :class:`ReportFilesError`; when ``refused`` is a list, it gets
    ``(path, reason)`` instead and the other files are still planned: one bad name loses no one else's file.
    """
    return [(path, text) for _name, path, text in _planned(dest, files, refused)]


def _inside(root, path):
    """Whether ``path``, with every symlink in it resolved, is still under ``root`` (a real path): ``..`` is
    refused by :func:`_relative`, but a symlink in the directory (``web1 -> ../outside``) leads out too."""
    real = os.path.realpath(path)
    return real == root or real.startswith(os.path.join(root, ""))


def _same(path, data, mode):
    """Whether ``path`` is a file that holds ``data`` already, with ``mode``."""
    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size != len(data) or stat.S_IMODE(info.st_mode) != mode:
            return False
        with open(path, "rb") as handle:
            return handle.read() == data
    except OSError:
        return False


def _write(path, data, mode, dir_mode):
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


def write_tree(dest, files, mode=0o644, dir_mode=0o755, check_mode=False, refused=None):
    """Write ``files`` under ``dest``; returns ``(written, unchanged)`` lists of absolute paths. A file that
    has the content but not ``mode`` is written again (in ``written``): the mode asked for is the mode it gets.

    ``refused``: see :func:`plan`; a path that leads out of ``dest`` through a symlink, and a path that cannot
    be written (a directory, or a file, where the path needs the other), are refused the same way. Without
    ``refused``, they raise :class:`ReportFilesError` or :class:`OSError`."""
    written, unchanged = [], []
    planned = _planned(dest, files, refused)
    root = os.path.realpath(dest)
    if planned and not check_mode:
        os.makedirs(dest, mode=dir_mode, exist_ok=True)     # no report directory at all fails the task: raised
    for name, path, text in planned:
        # a lone surrogate (JSON "\udc80" from a host) has no UTF-8: written as the escape, not an error
        data = text.encode("utf-8", "backslashreplace")
        try:
            if not _inside(root, path):
                raise ReportFilesError("%r leads out of the report directory through a symlink" % (name,))
            if _same(path, data, mode):
                unchanged.append(path)
                continue
            if not check_mode:
                _write(path, data, mode, dir_mode)
        except ReportFilesError as exc:
            if refused is None:
                raise
            refused.append((name, str(exc)))
            continue
        except OSError as exc:
            if refused is None:
                raise
            refused.append((name, "cannot write %r: %s" % (name, exc.strerror or exc)))
            continue
        written.append(path)
    return written, unchanged
