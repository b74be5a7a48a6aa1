"""Precedence of sysctl files, built from real distribution layouts."""
from __future__ import annotations

import os

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysctl import engine as sysctl

from ..conftest_helpers import debian_host


def test_systemd_order_hides_same_name_and_sorts_by_name(host_root):
    debian_host(host_root)
    os.makedirs(host_root / "usr/lib/sysctl.d", exist_ok=True)
    (host_root / "usr/lib/sysctl.d/50-default.conf").write_text("kernel.sysrq = 16\n")
    (host_root / "usr/lib/sysctl.d/10-magic-sysrq.conf").write_text("kernel.sysrq = 176\n")
    (host_root / "etc/sysctl.d/10-magic-sysrq.conf").write_text("# local override, empty\n")
    files = sysctl.config_files("systemd")
    assert files == ["/etc/sysctl.d/10-magic-sysrq.conf", "/usr/lib/sysctl.d/50-default.conf",
                     "/etc/sysctl.d/99-sysctl.conf"]
    assert sysctl.config_files("procps") == files + ["/etc/sysctl.conf"]


def test_winner_differs_between_orders(host_root):
    debian_host(host_root, sysctl_conf="kernel.sysrq=1\n", symlink=False)
    (host_root / "etc/sysctl.d/90-x.conf").write_text("kernel/sysrq = 0\n")
    srcs = sysctl.sources(["kernel.sysrq"])["kernel.sysrq"]
    assert [s["path"] for s in srcs] == ["/etc/sysctl.d/90-x.conf", "/etc/sysctl.conf"]
    assert sysctl.winner(srcs, "systemd")["value"] == "0"      # systemd does not read sysctl.conf itself
    assert sysctl.winner(srcs, "procps")["value"] == "1"       # sysctl --system reads it last


def test_later_line_in_same_file_wins_and_dash_prefix(host_root):
    debian_host(host_root)
    (host_root / "etc/sysctl.d/50-a.conf").write_text("kernel.sysrq = 2\n-kernel.sysrq = 8\n; kernel.sysrq = 9\n")
    srcs = sysctl.sources(["kernel.sysrq"])["kernel.sysrq"]
    assert [s["value"] for s in srcs] == ["2", "8"]
    assert sysctl.winner(srcs, "systemd")["line"] == 2


def test_render_dropin_keeps_foreign_lines_and_replaces_in_place():
    before = "# mine\nkernel.panic = 5\nvm.swappiness = 10\n"
    after = sysctl.render_dropin({"kernel.panic": 10, "kernel.unknown_nmi_panic": 1}, before)
    assert after == "# mine\nkernel.panic = 10\nvm.swappiness = 10\nkernel.unknown_nmi_panic = 1\n"
    assert sysctl.render_dropin({"kernel.panic": 10}, after) == after.replace(
        "kernel.unknown_nmi_panic = 1\n", "kernel.unknown_nmi_panic = 1\n")


def test_comment_out():
    text = "a = 1\nkernel.sysrq=1\n  kernel/sysrq = 5\n"
    assert sysctl.comment_out(text, ["kernel.sysrq"], "off") == "a = 1\n# off: kernel.sysrq=1\n# off:   kernel/sysrq = 5\n"


@pytest.mark.parametrize("key, path", [("kernel.sysrq", "/proc/sys/kernel/sysrq"),
                                       ("kernel/sysrq", "/proc/sys/kernel/sysrq"),
                                       ("net/ipv4/conf/eth0.100/rp_filter", "/proc/sys/net/ipv4/conf/eth0.100/rp_filter")])
def test_proc_path(key, path):
    assert sysctl.proc_path(key) == path
