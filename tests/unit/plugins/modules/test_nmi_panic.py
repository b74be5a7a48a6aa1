from __future__ import annotations

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.modules import nmi_panic

from ..conftest_helpers import debian_host

DROPIN = "etc/sysctl.d/90-magic-sysrq-nmi.conf"
X86 = {"kernel.unknown_nmi_panic": "0", "kernel.panic_on_unrecovered_nmi": "0", "kernel.panic": "0",
       "kernel.hung_task_timeout_secs": "120", "kernel.panic_on_oops": "0"}


def test_sets_values_live_and_persistent(host_root, run_module):
    debian_host(host_root, extra_proc=X86)
    result = run_module(nmi_panic, {"unknown_nmi_panic": 1, "panic": 10})
    assert result["changed"] is True
    assert result["settings"] == {"unknown_nmi_panic": 1, "panic": 10}
    assert result["previous"] == {"unknown_nmi_panic": "0", "panic": "0"}
    assert (host_root / "proc/sys/kernel/panic").read_text().strip() == "10"
    text = (host_root / DROPIN).read_text()
    assert "kernel.unknown_nmi_panic = 1\n" in text and "kernel.panic = 10\n" in text
    assert result["in_sync"] == {"unknown_nmi_panic": True, "panic": True}
    assert run_module(nmi_panic, {"unknown_nmi_panic": 1, "panic": 10})["changed"] is False


def test_other_settings_in_dropin_are_kept(host_root, run_module):
    debian_host(host_root, extra_proc=X86)
    run_module(nmi_panic, {"unknown_nmi_panic": 1})
    run_module(nmi_panic, {"panic_on_oops": 1})
    text = (host_root / DROPIN).read_text()
    assert "kernel.unknown_nmi_panic = 1" in text and "kernel.panic_on_oops = 1" in text


def test_unsupported_setting_is_reported_not_written(host_root, run_module):
    debian_host(host_root, extra_proc=X86)  # no nmi_watchdog, no panic_on_io_nmi
    result = run_module(nmi_panic, {"nmi_watchdog": 0, "panic": 5})
    assert "nmi_watchdog" in result["unsupported"]
    assert "/proc/sys/kernel/nmi_watchdog does not exist" in result["unsupported"]["nmi_watchdog"]
    assert "nmi_watchdog" not in (host_root / DROPIN).read_text()
    assert "nmi_watchdog is not supported here" in str(result["warnings"])
    only = run_module(nmi_panic, {"panic_on_io_nmi": 1})
    assert only["changed"] is False and only["unsupported"] and only["dropin"] is None


@pytest.mark.parametrize("args, fragment", [
    ({"unknown_nmi_panic": 2}, "unknown_nmi_panic"),
    ({"hung_task_timeout_secs": -5}, "hung_task_timeout_secs=-5 is not valid: expected an integer from 0 to"),
    ({}, "expected at least one of panic_on_unrecovered_nmi"),
])
def test_bad_values(host_root, run_module, args, fragment):
    debian_host(host_root, extra_proc=X86)
    result = run_module(nmi_panic, args)
    assert result["failed"] is True and fragment in result["msg"]
    assert not (host_root / DROPIN).exists()


def test_check_mode(host_root, run_module):
    debian_host(host_root, extra_proc=X86)
    result = run_module(nmi_panic, {"panic": 30}, check_mode=True, diff=True)
    assert result["changed"] is True and result["runtime"] == {"panic": "30"}
    assert not (host_root / DROPIN).exists()
    assert (host_root / "proc/sys/kernel/panic").read_text().strip() == "0"


def test_read_only_entry_is_unsupported_read_only_mount_is_not(host_root, run_module):
    import os
    debian_host(host_root, extra_proc=dict(X86, **{"kernel.nmi_watchdog": "0"}))
    os.chmod(host_root / "proc/sys/kernel/nmi_watchdog", 0o444)   # the kernel's own 0444 entry
    result = run_module(nmi_panic, {"nmi_watchdog": 1, "panic": 5, "runtime": False})
    assert result["unsupported"] == {"nmi_watchdog": "/proc/sys/kernel/nmi_watchdog is read-only on this kernel"}
    assert result["settings"] == {"panic": 5}


def test_container_read_only_proc_sys_with_runtime_false_writes_dropin(host_root, run_module, monkeypatch):
    import os
    debian_host(host_root, extra_proc=X86)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if "/proc/sys/" in str(p) else real_access(p, mode))
    prepared = run_module(nmi_panic, {"unknown_nmi_panic": 1, "runtime": False})
    assert prepared["changed"] is True and prepared["unsupported"] == {}
    assert "kernel.unknown_nmi_panic = 1" in (host_root / DROPIN).read_text()
    live = run_module(nmi_panic, {"panic": 7})
    assert "read-only /proc/sys" in live["unsupported"]["panic"]


def test_dropin_outside_the_sysctl_directories_is_refused(host_root, run_module):
    """Shared with sysrq_mask (the sysctl engine's dropin_error): a path nothing applies at boot is an error."""
    debian_host(host_root, extra_proc=X86)
    result = run_module(nmi_panic, {"unknown_nmi_panic": 1, "dropin": "/tmp/90-x.conf"})
    assert result["failed"] is True and "not in a directory that systemd-sysctl" in result["msg"]


def test_dropin_in_run_sysctl_d_is_accepted(host_root, run_module):
    debian_host(host_root, extra_proc=X86)
    result = run_module(nmi_panic, {"unknown_nmi_panic": 1, "dropin": "/run/sysctl.d/90-x.conf"}, check_mode=True)
    assert result.get("failed") is not True and result["dropin"] == "/run/sysctl.d/90-x.conf"


@pytest.mark.parametrize("args,message", [
    ({"panic": 1099511627776}, "panic=1099511627776 is not valid: expected an integer from -2147483648 to 2147483647"),
    ({"panic": -2147483649}, "panic=-2147483649 is not valid"),
    ({"hung_task_timeout_secs": 2 ** 63}, "hung_task_timeout_secs=9223372036854775808 is not valid: expected an integer "
                                          "from 0 to 9223372036854775"),
    ({"hung_task_timeout_secs": -1}, "hung_task_timeout_secs=-1 is not valid"),
])
def test_kernel_ranges_enforced_before_anything_is_written(host_root, run_module, args, message):
    debian_host(host_root, extra_proc=X86)
    result = run_module(nmi_panic, args)
    assert result["failed"] and message in result["msg"], result["msg"]
    assert not (host_root / DROPIN).exists()


def test_a_value_the_kernel_refuses_is_not_kept(host_root, run_module, monkeypatch):
    from ansible_collections.magic_sysrq.fleet.plugins.module_utils._sysctl import engine
    debian_host(host_root, extra_proc=X86)
    (host_root / DROPIN).write_text("# mine\nkernel.panic_on_oops = 1\n")
    real = engine.write_runtime

    def refuse_hung_task(key, value):
        if key.endswith("hung_task_timeout_secs") and str(value) == "300":     # the probe's write-back passes
            raise engine.SysctlError("cannot set kernel.hung_task_timeout_secs = %s at runtime: Invalid argument" % value)
        real(key, value)
    monkeypatch.setattr(engine, "write_runtime", refuse_hung_task)
    result = run_module(nmi_panic, {"panic": 10, "hung_task_timeout_secs": 300})
    assert result["failed"] and "Invalid argument" in result["msg"] and "nothing was kept" in result["msg"]
    assert (host_root / DROPIN).read_text() == "# mine\nkernel.panic_on_oops = 1\n"
    assert (host_root / "proc/sys/kernel/panic").read_text().strip() == "0"       # put back as it was
