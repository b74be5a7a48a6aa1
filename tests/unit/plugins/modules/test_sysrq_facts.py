from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.magic_sysrq.fleet.plugins.modules import sysrq_facts

from ..conftest_helpers import debian_host

CONSOLES = "tty0                 -WU (E  p  )    4:1\nttyS0                -W- (EC p a)    4:64\n"


def test_debian_guest_facts(host_root, run_module, monkeypatch):
    debian_host(host_root, extra_proc={"kernel.unknown_nmi_panic": "1", "kernel.panic": "10",
                                       "kernel.kexec_load_disabled": "0"})
    (host_root / "etc/sysctl.d/90-magic-sysrq.conf").write_text("kernel.sysrq = 186\n")
    (host_root / "proc/cmdline").write_text(
        "BOOT_IMAGE=/boot/vmlinuz-6.1.0-40-amd64 root=UUID=x ro console=tty0 console=ttyS0,115200n8 "
        "crashkernel=384M-:128M\n")
    (host_root / "proc/consoles").write_text(CONSOLES)
    (host_root / "proc/sysrq-trigger").write_text("")
    (host_root / "sys/kernel").mkdir(parents=True)
    (host_root / "sys/kernel/kexec_crash_size").write_text("134217728\n")
    (host_root / "sys/kernel/kexec_crash_loaded").write_text("1\n")
    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, *a, **k: "/bin/" + name)
    calls = []

    def fake_run(self, cmd, **kwargs):
        calls.append(cmd)
        if cmd[-1] == "kdump-tools.service":
            return 0, "LoadState=loaded\nActiveState=active\nUnitFileState=enabled\n", ""
        return 0, "LoadState=not-found\n", ""
    monkeypatch.setattr(AnsibleModule, "run_command", fake_run)

    facts = run_module(sysrq_facts, {})["ansible_facts"]["magic_sysrq"]
    assert facts["available"] is True and facts["trigger"] is True
    assert facts["mask"] == 438 and facts["persistent"] == 186 and facts["in_sync"] is False
    assert facts["functions"] == ["log_level", "keyboard", "sync", "remount", "reboot", "nice"]
    assert facts["winner"]["path"] == "/etc/sysctl.d/90-magic-sysrq.conf"
    assert facts["nmi"]["unknown_nmi_panic"] == {"value": "1", "supported": True, "winner": None}
    assert facts["nmi"]["nmi_watchdog"]["supported"] is False
    assert facts["cmdline_args"][-2:] == ["console=ttyS0,115200n8", "crashkernel=384M-:128M"]
    assert facts["consoles"][1] == {"name": "ttyS0", "flags": "-W- (EC p a)", "device": "4:64"}
    assert facts["kexec_crash_size"] == 134217728 and facts["kexec_crash_loaded"] is True
    assert facts["kexec_load_disabled"] is False
    assert facts["kdump_service"] == {"unit": "kdump-tools.service", "active": "active", "enabled": "enabled"}
    assert facts["always_enabled"] is False


def test_kernel_without_sysrq(host_root, run_module, monkeypatch):
    debian_host(host_root, sysrq=None)
    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, *a, **k: None)
    result = run_module(sysrq_facts, {})
    facts = result["ansible_facts"]["magic_sysrq"]
    assert result["changed"] is False
    assert facts["available"] is False and facts["trigger"] is False and facts["mask"] is None
    assert facts["functions"] == [] and facts["kdump_service"] is None and facts["kexec_crash_loaded"] is None


def _odd_host(host_root, monkeypatch, cmdline, persistent="186"):
    debian_host(host_root)
    (host_root / "etc/sysctl.d/90-magic-sysrq.conf").write_text("kernel.sysrq = %s\n" % persistent)
    (host_root / "proc/cmdline").write_text(cmdline)
    monkeypatch.setattr(AnsibleModule, "get_bin_path", lambda self, name, *a, **k: None)


def test_cmdline_with_an_unbalanced_quote_is_read_as_the_kernel_reads_it(host_root, run_module, monkeypatch):
    # the kernel's next_arg(): a double quote runs to the end of the line; single quotes and backslashes are plain
    _odd_host(host_root, monkeypatch, "root=/dev/vda1 it's a\\b sysrq_always_enabled dyndbg=\"file x +p\" "
                                      "\"unbalanced crashkernel=1G\n")
    facts = run_module(sysrq_facts, {})["ansible_facts"]["magic_sysrq"]
    assert facts["cmdline_args"] == ["root=/dev/vda1", "it's", "a\\b", "sysrq_always_enabled", "dyndbg=file x +p",
                                     "unbalanced crashkernel=1G"]
    assert facts["always_enabled"] is True


def test_persistent_value_with_non_ascii_digits_is_not_a_mask(host_root, run_module, monkeypatch):
    _odd_host(host_root, monkeypatch, "root=/dev/vda1\n", persistent="\u00b2")
    facts = run_module(sysrq_facts, {})["ansible_facts"]["magic_sysrq"]
    assert facts["persistent"] == facts["mask"]
