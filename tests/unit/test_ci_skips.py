"""The repository's conftest.py: with CI=true every skip fails with its reason; without it a skip stays a skip.

Each case runs a real pytest in a scratch directory that holds a copy of the root conftest.py.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT_CONFTEST = Path(__file__).resolve().parents[2] / "conftest.py"

TESTS = '''
import pytest

def test_runs():
    pass

@pytest.mark.skipif(True, reason="needs the frobnicator")
def test_marker():
    pass

def test_in_body():
    pytest.skip("no /dev/frob here")

@pytest.fixture
def frob():
    pytest.skip("frob daemon did not start")

def test_fixture(frob):
    pass

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_expected_failure():
    assert False
'''


def run(tmp_path, ci, files=None, allowed=None):
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n")
    conftest = ROOT_CONFTEST.read_text()
    if allowed is not None:
        conftest = conftest.replace("ALLOWED_SKIPS: dict[str, str] = {}", "ALLOWED_SKIPS: dict[str, str] = %r" % allowed)
    (tmp_path / "conftest.py").write_text(conftest)
    for name, text in (files or {"test_x.py": TESTS}).items():
        (tmp_path / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    proc = subprocess.run([sys.executable, "-m", "pytest", "-rA", "-q", str(tmp_path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def test_root_conftest_exists_and_allows_no_skip():
    assert ROOT_CONFTEST.is_file()
    assert "ALLOWED_SKIPS: dict[str, str] = {}\n" in ROOT_CONFTEST.read_text()


@pytest.mark.parametrize("ci", [None, "false", ""])
def test_without_ci_a_skip_stays_a_skip(tmp_path, ci):
    rc, out = run(tmp_path, ci)
    assert rc == 0, out
    assert "1 passed, 3 skipped, 1 xfailed" in out, out


@pytest.mark.parametrize("ci", ["true", "TRUE", "1", "yes"])
def test_in_ci_every_skip_fails_with_its_reason(tmp_path, ci):
    rc, out = run(tmp_path, ci)
    assert rc == 1, out
    # the marker and the fixture skip happen in setup (an error), the one in the body in the call (a failure)
    assert "1 failed, 1 passed, 1 xfailed, 2 errors" in out, out
    for reason in ("needs the frobnicator", "no /dev/frob here", "frob daemon did not start"):
        assert "CI=true turns every skip into a failure" in out and reason in out, (reason, out)
    assert "skipped" not in out.splitlines()[-1]


def test_in_ci_a_module_skipped_at_collection_fails(tmp_path):
    rc, out = run(tmp_path, "true", {"test_y.py": "import pytest\npytest.importorskip('no_such_module_here')\n"
                                                  "def test_y():\n    pass\n"})
    assert rc != 0, out
    assert "collection of test_y.py skipped" in out and "no_such_module_here" in out, out


def test_an_allowed_skip_stays_a_skip_in_ci(tmp_path):
    rc, out = run(tmp_path, "true", allowed={"test_x.py::test_in_body": "example"})
    assert rc == 1, out
    assert "1 failed" not in out and "SKIPPED" in out and "no /dev/frob here" in out, out
    assert "2 errors" in out, out


def test_the_ci_entry_points_export_ci_true():
    top = ROOT_CONFTEST.parent
    for script in (top / ".ci" / "run", top / "scripts" / "test-all"):
        assert "export CI=true" in script.read_text(), script
    assert shutil.which("bash")
