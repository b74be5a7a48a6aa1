"""pytest for every stage of the suite (tests/unit, tests/oob, tests/realkernel): in CI, a skip is a failure.

With ``CI=true`` in the environment (``.ci/run`` and ``scripts/test-all`` export it; most CI services set it), a
test that skips, or a test module that skips at collection, is reported as FAILED with the skip's reason:
a test that cannot run in CI is not a passed test, it is a missing part of the machine that CI must provide.

The only exception is ALLOWED_SKIPS below: node ids (or a prefix of one, such as a file) mapped to the reason
the skip is acceptable in CI. It is empty, and it is meant to stay empty: every test in this repository starts
what it needs itself. Adding an entry needs the reason in the entry and in the review.

Outside CI (``CI`` unset or not true) skips stay skips, so a developer's machine without, say, libvirtd can run
the rest; ``pytest -rs`` lists them with their reasons.
"""
from __future__ import annotations

import os

import pytest

# node id or node id prefix -> why this skip is acceptable in CI. Empty for CI: see the module docstring.
ALLOWED_SKIPS: dict[str, str] = {}


def in_ci() -> bool:
    """CI=true (also 1 or yes, any case): what CI services and .ci/run set."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def allowed(nodeid: str) -> bool:
    return any(nodeid == allowed_id or nodeid.startswith(allowed_id + "::") or nodeid.startswith(allowed_id + "[")
               for allowed_id in ALLOWED_SKIPS)


def _reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:  # (path, line, "Skipped: why")
        path, line, why = longrepr
        return "%s (%s:%s)" % (why, path, line)
    return str(longrepr)


def _fail(report, what: str) -> None:
    report.outcome = "failed"
    report.longrepr = ("%s skipped, and CI=true turns every skip into a failure (conftest.py at the repository "
                       "root; ALLOWED_SKIPS is empty): %s" % (what, _reason(report)))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    # an xfail is reported as skipped with `wasxfail`: it is an expected failure, not a test that could not run
    if report.skipped and not hasattr(report, "wasxfail") and in_ci() and not allowed(item.nodeid):
        _fail(report, "test")
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    if report.skipped and in_ci() and not allowed(report.nodeid):  # pytest.skip(allow_module_level=True), importorskip
        _fail(report, "collection of %s" % report.nodeid)
    return report
