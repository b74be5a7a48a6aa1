"""Shared fixtures for unit tests: run a module in-process, point it at a fake host tree."""

from __future__ import annotations

import json
import os

import pytest

from ansible.module_utils.testing import patch_module_args
from ansible_collections.magic_sysrq.fleet.plugins.module_utils import _host as host


@pytest.fixture
def host_root(tmp_path, monkeypatch):
    """A temporary directory standing in for the host's ``/``."""
    root = tmp_path / "host"
    root.mkdir()
    monkeypatch.setattr(host, "HOST_ROOT", str(root))
    return root


def write(root, path, text, mode=None):
    """Create ``path`` (absolute host path) under ``root`` with ``text``."""
    full = os.path.join(str(root), path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w", encoding="utf-8") as handle:
        handle.write(text)
    if mode is not None:
        os.chmod(full, mode)
    return full


def read(root, path):
    with open(os.path.join(str(root), path.lstrip("/")), encoding="utf-8") as handle:
        return handle.read()


@pytest.fixture
def run_module(capsys, monkeypatch):
    """Run ``module.main()`` with ``args``; return the result dict (``failed`` set on fail_json)."""
    # Importing controller code (filters, in other tests) flips module_utils into controller mode, where
    # module warnings go to the display instead of the result. A module runs on the target: undo that.
    from ansible.module_utils import _internal
    monkeypatch.setattr(_internal, "is_controller", False)

    def runner(module, args, check_mode=False, diff=False):
        full = dict(args)
        full["_ansible_check_mode"] = check_mode
        full["_ansible_diff"] = diff
        with patch_module_args(full):
            with pytest.raises(SystemExit):
                module.main()
        out = capsys.readouterr().out
        return json.loads(out)

    return runner


@pytest.fixture
def speaker(tmp_path):
    """``speaker(**kwargs)`` -> a QMP speaker (conftest_helpers.QmpSpeaker) on a unix socket under tmp_path."""
    from .plugins.conftest_helpers import QmpSpeaker
    made = []

    def make(**kwargs):
        s = QmpSpeaker(tmp_path / ("qmp%d.sock" % len(made)), **kwargs)
        made.append(s)
        return s
    yield make
    for s in made:
        s.close()
