# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every role's defaults pass its own argument spec.

Ansible validates a role's variables, defaults included, against meta/argument_specs.yml before the first task.
A default the spec refuses (a null default beside ``choices``) breaks every run that leaves the variable alone.
"""

from __future__ import annotations

import glob
import os

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
ROLES = sorted(os.path.basename(os.path.dirname(os.path.dirname(p)))
               for p in glob.glob(os.path.join(REPO, "roles", "*", "meta", "argument_specs.yml")))


def _load(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def _spec(options):
    """The argument spec as the validator takes it: doc-only keys dropped, suboptions as ``options``."""
    out = {}
    for name, option in options.items():
        entry = {k: v for k, v in option.items() if k not in ("description", "version_added", "suboptions")}
        if "suboptions" in option:
            entry["options"] = _spec(option["suboptions"])
        out[name] = entry
    return out


def test_every_role_has_a_spec():
    assert set(ROLES) == {os.path.basename(p) for p in glob.glob(os.path.join(REPO, "roles", "*"))}


@pytest.mark.parametrize("role", ROLES)
def test_defaults_pass_the_spec(role):
    spec = _load(os.path.join(REPO, "roles", role, "meta", "argument_specs.yml"))["argument_specs"]["main"]
    defaults = _load(os.path.join(REPO, "roles", role, "defaults", "main.yml"))
    result = ArgumentSpecValidator(_spec(spec["options"])).validate(
        {k: v for k, v in defaults.items() if k in spec["options"]})
    assert not result.error_messages, f"{role}: {result.error_messages}"
