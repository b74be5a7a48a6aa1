"""sysrq_mask end to end on fake host trees shaped like real distributions."""
from __future__ import annotations

import glob
import os
import stat

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.modules import sysrq_mask

from ..conftest_helpers import debian_host

DROPIN = "etc/sysctl.d/90-magic-sysrq.conf"


def snapshot(root):
    """Every file under the fake host with its content: to prove that nothing was written."""
    out = {}
    for path in glob.glob(str(root) + "/**", recursive=True):
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                out[path] = handle.read()
    return out


def test_debian_default_sets_dropin_and_runtime(host_root, run_module):
    debian_host(host_root)
    result = run_module(sysrq_mask, {"functions": ["sync", "remount", "reboot"]})
    assert result["changed"] is True
    assert result["mask"] == 176 and result["previous"] == 438 and result["runtime"] == 176
    assert result["functions"] == ["sync", "remount", "reboot"]
    assert (host_root / DROPIN).read_text().splitlines()[-1] == "kernel.sysrq = 176"
    assert stat.S_IMODE(os.stat(host_root / DROPIN).st_mode) == 0o644
    assert (host_root / "proc/sys/kernel/sysrq").read_text().strip() == "176"
    assert result["winner"]["path"] == "/etc/sysctl.d/90-magic-sysrq.conf"
    assert result["in_sync"] is True
    again = run_module(sysrq_mask, {"functions": ["sync", "remount", "reboot"]})
    assert again["changed"] is False


def test_check_mode_and_diff_write_nothing(host_root, run_module):
    debian_host(host_root)
    before = snapshot(host_root)
    result = run_module(sysrq_mask, {"mask": 0}, check_mode=True, diff=True)
    assert result["changed"] is True
    assert snapshot(host_root) == before
    afters = [d["after"] for d in result["diff"]]
    assert "kernel.sysrq = 0\n" in afters[0]
    assert result["diff"][1]["before"] == "kernel.sysrq = 438\n"
    assert result["runtime"] == 0 and result["previous"] == 438


@pytest.mark.parametrize("args, fragment", [
    ({"mask": 1024}, "out of range"),
    ({"mask": -1}, "out of range"),
    ({"mask": "abc"}, "not an integer"),
    ({"functions": ["dump"]}, "'dump'"),
    ({"mask": 176, "functions": ["sync"]}, "not both"),
    ({}, "required"),
    ({"mask": 16, "dropin": "90-x"}, "must end in .conf"),
    # A path that nothing reads at boot: the setting would silently not survive a reboot.
    ({"mask": 16, "dropin": "/etc/90-x.conf"}, "not in a directory that systemd-sysctl or sysctl --system reads"),
    ({"mask": 16, "dropin": "/etc/sysctl.d/sub/90-x.conf"}, "/etc/sysctl.d, /run/sysctl.d"),
    ({"mask": 16, "dropin": "/etc/sysctl.d/../90-x.conf"}, "not in a directory"),
    ({"mask": 16, "dropin": "sub/90-x.conf"}, "not in a directory"),
])
def test_bad_input_fails_and_writes_nothing(host_root, run_module, args, fragment):
    debian_host(host_root)
    before = snapshot(host_root)
    result = run_module(sysrq_mask, args)
    assert result["failed"] is True
    assert fragment in result["msg"]
    if "dropin" not in args:
        assert "log_level (2)" in result["msg"] and "0 to 511" in result["msg"]
    assert snapshot(host_root) == before


def test_no_sysrq_kernel(host_root, run_module):
    debian_host(host_root, sysrq=None)
    before = snapshot(host_root)
    result = run_module(sysrq_mask, {"mask": 176})
    assert result["failed"] is True
    assert "CONFIG_MAGIC_SYSRQ" in result["msg"] and "/proc/sys/kernel/sysrq" in result["msg"]
    assert snapshot(host_root) == before
    prepared = run_module(sysrq_mask, {"mask": 176, "runtime": False})
    assert prepared["changed"] is True and prepared["previous"] is None
    assert (host_root / DROPIN).exists()


def test_sysctl_conf_conflict_is_detected(host_root, run_module):
    debian_host(host_root, sysctl_conf="kernel.sysrq=1\n")
    before = snapshot(host_root)
    result = run_module(sysrq_mask, {"mask": 176})
    assert result["failed"] is True
    assert "/etc/sysctl.conf:1" in result["msg"] and "conflicts=comment" in result["msg"]
    assert snapshot(host_root) == before


def test_conflict_comment_edits_target_with_backup(host_root, run_module):
    debian_host(host_root, sysctl_conf="vm.swappiness = 5\nkernel.sysrq=1\n")
    result = run_module(sysrq_mask, {"mask": 176, "conflicts": "comment"}, diff=True)
    assert result["changed"] is True
    assert result["commented"] == ["/etc/sysctl.conf"]
    conf = (host_root / "etc/sysctl.conf").read_text()
    assert conf == "vm.swappiness = 5\n# disabled by magic_sysrq.fleet: kernel.sysrq=1\n"
    assert os.path.islink(host_root / "etc/sysctl.d/99-sysctl.conf")
    assert len(result["backups"]) == 1 and open(result["backups"][0]).read().endswith("kernel.sysrq=1\n")
    assert result["winner"]["path"] == "/etc/sysctl.d/90-magic-sysrq.conf"
    assert run_module(sysrq_mask, {"mask": 176, "conflicts": "comment"})["changed"] is False


def test_conflict_ignore_reports_losing_dropin(host_root, run_module):
    debian_host(host_root, sysctl_conf="kernel.sysrq=1\n")
    result = run_module(sysrq_mask, {"mask": 176, "conflicts": "ignore"})
    assert result["changed"] is True
    assert result["winner"]["path"] == "/etc/sysctl.d/99-sysctl.conf"
    assert result["in_sync"] is False
    assert [s["path"] for s in result["sources"]] == ["/etc/sysctl.d/90-magic-sysrq.conf",
                                                      "/etc/sysctl.d/99-sysctl.conf", "/etc/sysctl.conf"]


def test_systemd_50_default_and_ubuntu_10_magic_sysrq_lose_to_dropin(host_root, run_module):
    debian_host(host_root)
    os.makedirs(host_root / "usr/lib/sysctl.d")
    (host_root / "usr/lib/sysctl.d/50-default.conf").write_text("# systemd\nkernel.sysrq = 16\n")
    (host_root / "etc/sysctl.d/10-magic-sysrq.conf").write_text("kernel.sysrq = 176\n")
    result = run_module(sysrq_mask, {"functions": ["log_level", "dumps", "sync", "remount", "reboot"]})
    assert result["changed"] is True and result["mask"] == 186
    assert [(s["path"], s["value"]) for s in result["sources"]] == [
        ("/etc/sysctl.d/10-magic-sysrq.conf", "176"),
        ("/usr/lib/sysctl.d/50-default.conf", "16"),
        ("/etc/sysctl.d/90-magic-sysrq.conf", "186"),
    ]
    assert result["winner"]["value"] == "186"


def test_vendor_file_after_dropin_is_masked_not_edited(host_root, run_module):
    debian_host(host_root)
    os.makedirs(host_root / "usr/lib/sysctl.d")
    vendor = "net.core.somaxconn = 1024\nkernel.sysrq = 16\n"
    (host_root / "usr/lib/sysctl.d/99-vendor.conf").write_text(vendor)
    failed = run_module(sysrq_mask, {"mask": 0})
    assert failed["failed"] is True and "/usr/lib/sysctl.d/99-vendor.conf:2" in failed["msg"]
    result = run_module(sysrq_mask, {"mask": 0, "conflicts": "comment"})
    assert (host_root / "usr/lib/sysctl.d/99-vendor.conf").read_text() == vendor
    mask = (host_root / "etc/sysctl.d/99-vendor.conf").read_text()
    assert "net.core.somaxconn = 1024" in mask and "# disabled by magic_sysrq.fleet: kernel.sysrq = 16" in mask
    assert result["winner"]["path"] == "/etc/sysctl.d/90-magic-sysrq.conf"
    assert [s["path"] for s in result["sources"]] == ["/etc/sysctl.d/90-magic-sysrq.conf"]


def test_procps_only_host_reads_sysctl_conf_last(host_root, run_module):
    debian_host(host_root, sysctl_conf="kernel.sysrq = 1\n", symlink=False, systemd=False)
    result = run_module(sysrq_mask, {"mask": 176})
    assert result["failed"] is True and "applied by procps" in result["msg"]


def test_same_value_elsewhere_is_no_conflict(host_root, run_module):
    debian_host(host_root, sysctl_conf="kernel.sysrq = 176\n")
    result = run_module(sysrq_mask, {"mask": 176})
    assert result["changed"] is True and result["in_sync"] is True
