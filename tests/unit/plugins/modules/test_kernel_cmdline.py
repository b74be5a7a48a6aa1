"""kernel_cmdline end to end on fake hosts: every backend, with commands recorded (the GRUB defaults are
sourced by the real /bin/sh, every other command is faked)."""
from __future__ import annotations

import glob
import os
import stat
import subprocess

import pytest

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.magic_sysrq.fleet.plugins.modules import kernel_cmdline

from ..conftest_helpers import warnings

DEBIAN_RELEASE = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nNAME="Debian GNU/Linux"\nVERSION_ID="12"\nID=debian\n'
RHEL_RELEASE = 'NAME="Red Hat Enterprise Linux"\nVERSION_ID="9.4"\nID="rhel"\nID_LIKE="fedora"\n'
SUSE_RELEASE = 'NAME="openSUSE Leap"\nVERSION_ID="15.6"\nID="opensuse-leap"\nID_LIKE="suse opensuse"\n'

# Debian 12's /etc/default/grub, as grub2-common installs it (comments shortened).
DEBIAN_GRUB = """# If you change this file, run 'update-grub' afterwards to update
# /boot/grub/grub.cfg.

GRUB_DEFAULT=0
GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`
GRUB_CMDLINE_LINUX_DEFAULT="quiet"
GRUB_CMDLINE_LINUX=""

# Uncomment to disable generation of recovery mode menu entries
#GRUB_DISABLE_RECOVERY="true"
"""
KDUMP_CFG = 'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT crashkernel=384M-:128M"\n'
INIT_SELECT_CFG = ('if [ x"$GRUB_FS" = xunknown ]; then\n    GRUB_FS="$(stat -f -c %T / || echo unknown)"\nfi\n')
DEBIAN_PROC = "BOOT_IMAGE=/boot/vmlinuz-6.1.0-27-amd64 root=UUID=4b0e ro quiet crashkernel=384M-:128M\n"
DROPIN = "/etc/default/grub.d/magic_sysrq.cfg"
CONSOLE = "console=ttyS0,115200n8"


def put(root, path, text, mode=None):
    full = os.path.join(str(root), path.lstrip("/"))
    os.makedirs(os.path.dirname(full), exist_ok=True)
    with open(full, "w", encoding="utf-8") as handle:
        handle.write(text)
    if mode is not None:
        os.chmod(full, mode)


def get(root, path):
    full = os.path.join(str(root), path.lstrip("/"))
    if not os.path.exists(full):
        return None
    with open(full, encoding="utf-8") as handle:
        return handle.read()


def tool(root, path):
    put(root, path, "#!/bin/sh\nexit 0\n", mode=0o755)


def snapshot(root):
    out = {}
    for path in glob.glob(str(root) + "/**", recursive=True):
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                out[path] = handle.read()
    return out


def backups(root, path):
    return glob.glob(os.path.join(str(root), path.lstrip("/")) + ".*~")


class Commands:
    """Records every command; /bin/sh runs for real, the rest go to handlers by program name."""

    def __init__(self):
        self.calls = []
        self.shell = 0
        self.handlers = {}

    def run(self, args, **kwargs):
        argv = [str(a) for a in args]
        if os.path.basename(argv[0]) in ("lsattr", "chattr"):  # AnsibleModule's own, around backups
            return 1, "", "not recorded"
        # AnsibleModule would otherwise expand $VAR and ~ inside the arguments (the sh script has "$f").
        assert kwargs.get("expand_user_and_vars") is False, argv
        if argv[0] == "/bin/sh":
            self.shell += 1
            proc = subprocess.run(argv, capture_output=True, text=True, check=False)
            return proc.returncode, proc.stdout, proc.stderr
        self.calls.append(argv)
        handler = self.handlers.get(os.path.basename(argv[0]))
        if handler is None:
            raise AssertionError("unexpected command %s" % argv)
        return handler(argv)

    def changing(self):
        """The commands that change something (reads and checks left out)."""
        return [c for c in self.calls if "--info=ALL" not in c and "script-check" not in c[0]]


@pytest.fixture
def commands(monkeypatch):
    recorder = Commands()
    monkeypatch.setattr(AnsibleModule, "run_command", lambda self, args, **kw: recorder.run(args, **kw))
    return recorder


def ok(_argv):
    return 0, "", ""


# ------------------------------------------------------------------------------------------
# grub_debian
# ------------------------------------------------------------------------------------------

def debian_host(root, main=DEBIAN_GRUB, kdump=True, proc=DEBIAN_PROC):
    put(root, "/etc/os-release", DEBIAN_RELEASE)
    put(root, "/etc/default/grub", main, mode=0o644)
    put(root, "/etc/default/grub.d/init-select.cfg", INIT_SELECT_CFG)
    if kdump:
        put(root, "/etc/default/grub.d/kdump-tools.cfg", KDUMP_CFG)
    tool(root, "/usr/sbin/update-grub")
    tool(root, "/usr/sbin/grub-mkconfig")
    if proc is not None:
        put(root, "/proc/cmdline", proc)
    return root


def test_debian_dropin_adds_console(host_root, run_module, commands):
    debian_host(host_root)
    commands.handlers["update-grub"] = ok
    result = run_module(kernel_cmdline, {"args": [CONSOLE]})
    assert result["changed"] is True and result["backend"] == "grub_debian"
    assert get(host_root, DROPIN) == (
        "# Kernel arguments for every GRUB entry, managed by magic_sysrq.fleet.kernel_cmdline.\n"
        "# grub-mkconfig sources this file after /etc/default/grub; run update-grub after editing it.\n"
        'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX console=ttyS0,115200n8"\n')
    assert stat.S_IMODE(os.stat(os.path.join(str(host_root), DROPIN.lstrip("/"))).st_mode) == 0o644
    assert get(host_root, "/etc/default/grub") == DEBIAN_GRUB
    assert commands.calls == [["/usr/sbin/update-grub"]]
    assert [(e["id"], e["args"]) for e in result["entries"]] == [
        ("default", [CONSOLE, "quiet", "crashkernel=384M-:128M"]), ("recovery", [CONSOLE])]
    assert result["configured"] == [CONSOLE]
    assert result["files"] == [DROPIN] and result["commands"] == [["/usr/sbin/update-grub"]]
    assert result["reboot_required"] is True and result["active"][0].startswith("BOOT_IMAGE=")
    assert result["backup_file"] is None and result["grub_cfg"] == "/boot/grub/grub.cfg"

    again = run_module(kernel_cmdline, {"args": [CONSOLE]})
    assert again["changed"] is False and again["files"] == [] and again["commands"] == []
    assert commands.calls == [["/usr/sbin/update-grub"]]
    assert again["reboot_required"] is True


def test_debian_main_file_mode_with_backup(host_root, run_module, commands):
    debian_host(host_root)
    commands.handlers["update-grub"] = ok
    result = run_module(kernel_cmdline, {"args": [CONSOLE, "sysrq_always_enabled"], "grub_dropin": None})
    assert result["changed"] is True
    assert get(host_root, "/etc/default/grub") == DEBIAN_GRUB.replace(
        'GRUB_CMDLINE_LINUX=""', 'GRUB_CMDLINE_LINUX="console=ttyS0,115200n8 sysrq_always_enabled"')
    assert get(host_root, DROPIN) is None
    found = backups(host_root, "/etc/default/grub")
    assert len(found) == 1 and open(found[0], encoding="utf-8").read() == DEBIAN_GRUB
    assert result["backup_file"] == found[0] and result["backup_files"] == found
    assert commands.calls == [["/usr/sbin/update-grub"]]


def test_debian_no_backup_when_disabled(host_root, run_module, commands):
    debian_host(host_root)
    commands.handlers["update-grub"] = ok
    result = run_module(kernel_cmdline, {"args": ["quiet"], "state": "absent", "backup": False})
    assert result["changed"] is True and result["backup_file"] is None
    assert backups(host_root, "/etc/default/grub") == []


def test_debian_grub_mkconfig_without_update_grub(host_root, run_module, commands):
    debian_host(host_root)
    os.unlink(os.path.join(str(host_root), "usr/sbin/update-grub"))
    commands.handlers["grub-mkconfig"] = ok
    run_module(kernel_cmdline, {"args": ["nmi_watchdog=1"]})
    assert commands.calls == [["/usr/sbin/grub-mkconfig", "-o", "/boot/grub/grub.cfg"]]


def test_debian_value_in_main_replaced_through_dropin(host_root, run_module, commands):
    debian_host(host_root, main=DEBIAN_GRUB.replace('GRUB_CMDLINE_LINUX=""', 'GRUB_CMDLINE_LINUX="nmi_watchdog=0 ro"'))
    commands.handlers["update-grub"] = ok
    result = run_module(kernel_cmdline, {"args": ["nmi_watchdog=1"]}, diff=True)
    assert 'GRUB_CMDLINE_LINUX="ro"' in get(host_root, "/etc/default/grub")
    assert get(host_root, DROPIN).endswith('GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX nmi_watchdog=1"\n')
    assert result["files"] == ["/etc/default/grub", DROPIN]
    assert [d["before_header"] for d in result["diff"]] == ["/etc/default/grub", DROPIN]
    assert result["diff"][1]["before"] == ""
    assert result["entries"][1]["args"] == ["ro", "nmi_watchdog=1"]


def test_debian_absent_removes_from_main_default(host_root, run_module, commands):
    debian_host(host_root)
    commands.handlers["update-grub"] = ok
    result = run_module(kernel_cmdline, {"args": ["quiet"], "state": "absent"})
    assert result["changed"] is True
    assert 'GRUB_CMDLINE_LINUX_DEFAULT=""' in get(host_root, "/etc/default/grub")
    assert get(host_root, DROPIN) is None
    assert result["entries"][0]["args"] == ["crashkernel=384M-:128M"]
    assert result["reboot_required"] is True
    assert run_module(kernel_cmdline, {"args": ["quiet"], "state": "absent"})["changed"] is False


@pytest.mark.parametrize("args, state", [(["crashkernel"], "absent"), (["crashkernel=256M"], "present")])
def test_debian_argument_from_kdump_dropin_is_refused(host_root, run_module, commands, args, state):
    debian_host(host_root)
    before = snapshot(host_root)
    result = run_module(kernel_cmdline, {"args": args, "state": state})
    assert result["failed"] is True
    assert "crashkernel=384M-:128M from GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub.d/kdump-tools.cfg, " \
           "which this module does not edit" in result["msg"]
    assert "Nothing was changed" in result["msg"]
    assert snapshot(host_root) == before and commands.calls == []


def test_debian_command_substitution_is_not_rewritten(host_root, run_module, commands):
    debian_host(host_root, main=DEBIAN_GRUB.replace('GRUB_CMDLINE_LINUX=""', 'GRUB_CMDLINE_LINUX="$(echo nmi_watchdog=0)"'))
    before = snapshot(host_root)
    result = run_module(kernel_cmdline, {"args": ["nmi_watchdog"], "state": "absent"})
    assert result["failed"] is True
    assert "nmi_watchdog=0 from GRUB_CMDLINE_LINUX in /etc/default/grub, set there with command substitution" \
           in result["msg"]
    assert snapshot(host_root) == before and commands.calls == []
    # Adding works: the module appends to the drop-in and leaves that line alone.
    commands.handlers["update-grub"] = ok
    result = run_module(kernel_cmdline, {"args": [CONSOLE]})
    assert result["entries"][1]["args"] == ["nmi_watchdog=0", CONSOLE]


def test_debian_position_last(host_root, run_module, commands):
    main = DEBIAN_GRUB.replace('GRUB_CMDLINE_LINUX=""', 'GRUB_CMDLINE_LINUX="%s console=tty0"' % CONSOLE)
    main = main.replace('GRUB_CMDLINE_LINUX_DEFAULT="quiet"', 'GRUB_CMDLINE_LINUX_DEFAULT="quiet console=tty1"')
    debian_host(host_root, main=main, kdump=False)
    commands.handlers["update-grub"] = ok
    keep = run_module(kernel_cmdline, {"args": [CONSOLE]})
    assert keep["changed"] is False
    last = run_module(kernel_cmdline, {"args": [CONSOLE], "position": "last"})
    assert last["changed"] is True
    text = get(host_root, "/etc/default/grub")
    assert 'GRUB_CMDLINE_LINUX="console=tty0"' in text and 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"' in text
    assert get(host_root, DROPIN).endswith('GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX console=tty1 %s"\n' % CONSOLE)
    for entry in last["entries"]:
        assert [t for t in entry["args"] if t.startswith("console=")][-1] == CONSOLE
    assert run_module(kernel_cmdline, {"args": [CONSOLE], "position": "last"})["changed"] is False


def test_debian_check_mode_and_diff_write_nothing(host_root, run_module, commands):
    debian_host(host_root)
    before = snapshot(host_root)
    result = run_module(kernel_cmdline, {"args": [CONSOLE], "grub_dropin": None}, check_mode=True, diff=True)
    assert result["changed"] is True
    assert snapshot(host_root) == before
    assert commands.calls == [] and commands.shell > 0
    assert result["diff"][0]["before"] == DEBIAN_GRUB
    assert 'GRUB_CMDLINE_LINUX="console=ttyS0,115200n8"' in result["diff"][0]["after"]
    assert result["commands"] == [["/usr/sbin/update-grub"]]
    assert result["configured"] == [CONSOLE]


def test_debian_regeneration_failure_restores(host_root, run_module, commands):
    debian_host(host_root)
    commands.handlers["update-grub"] = lambda argv: (1, "", "/usr/sbin/grub-probe: error: failed to get canonical path")
    before = snapshot(host_root)
    result = run_module(kernel_cmdline, {"args": [CONSOLE, "quiet"], "grub_dropin": None})
    assert result["failed"] is True
    assert "update-grub exited 1: /usr/sbin/grub-probe: error" in result["msg"]
    assert "every change was undone (restored /etc/default/grub to its previous content)" in result["msg"]
    assert "keeps the previous grub.cfg" in result["msg"]
    after = snapshot(host_root)
    made = [p for p in after if p not in before]
    assert [os.path.basename(p).startswith("grub.") and p.endswith("~") for p in made] == [True]
    assert {p: v for p, v in after.items() if p in before} == before


def test_debian_failed_check_after_regeneration_regenerates_from_restored_files(host_root, run_module, commands):
    """The post-apply check fails after a successful update-grub: the files are restored and grub.cfg is made again
    from them, and the message says so (it used to say the boot configuration was not regenerated)."""
    debian_host(host_root)
    calls = []

    def update_grub(argv):
        calls.append(get(host_root, DROPIN))
        if len(calls) == 1:  # a package hook that drops the argument again behind our back
            put(host_root, "/etc/default/grub.d/zz-hook.cfg", 'GRUB_CMDLINE_LINUX="${GRUB_CMDLINE_LINUX% *}"\n')
        return 0, "", ""

    commands.handlers["update-grub"] = update_grub
    result = run_module(kernel_cmdline, {"args": [CONSOLE]})
    assert result["failed"] is True
    assert "after the change, entry" in result["msg"]
    assert "removed %s, which did not exist before" % DROPIN in result["msg"]
    assert "the boot configuration was regenerated from the restored files" in result["msg"]
    assert "not regenerated" not in result["msg"]
    assert commands.calls == [["/usr/sbin/update-grub"], ["/usr/sbin/update-grub"]]
    assert calls[0] is not None and CONSOLE in calls[0] and calls[1] is None  # the second run saw the restored files


def test_debian_regeneration_failure_removes_new_dropin(host_root, run_module, commands):
    debian_host(host_root)
    commands.handlers["update-grub"] = lambda argv: (1, "", "boom")
    before = snapshot(host_root)
    result = run_module(kernel_cmdline, {"args": [CONSOLE]})
    assert result["failed"] is True
    assert "every change was undone (removed %s, which did not exist before)" % DROPIN in result["msg"]
    assert snapshot(host_root) == before


def test_debian_grub_script_check(host_root, run_module, commands):
    debian_host(host_root)
    tool(host_root, "/usr/bin/grub-script-check")
    seen = []

    def check(argv):
        with open(argv[1], encoding="utf-8") as handle:
            text = handle.read()
        seen.append(text)
        if "`" in text:  # like the real one: Debian's defaults file (backticks) is no GRUB script
            return 1, "", "error: syntax error.\nSyntax error at line 6\n"
        return (1, "", "error: syntax error.") if "nmi_watchdog=bad" in text else (0, "", "")

    commands.handlers["grub-script-check"] = check
    commands.handlers["update-grub"] = ok
    result = run_module(kernel_cmdline, {"args": [CONSOLE]})
    assert result["changed"] is True
    # The new drop-in and the new linux lines were checked (the drop-in is new, so judged directly).
    assert any('GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX console=ttyS0,115200n8"' in t for t in seen)
    assert any("linux /vmlinuz console=ttyS0,115200n8 quiet crashkernel=384M-:128M\n" in t for t in seen)
    assert commands.changing() == [["/usr/sbin/update-grub"]]

    # Main file mode: the stock file fails grub-script-check, so only the linux lines are judged.
    seen.clear()
    run_module(kernel_cmdline, {"args": ["nmi_watchdog=1"], "grub_dropin": None})
    assert not any("GRUB_TIMEOUT" in t for t in seen if "nmi_watchdog" in t)

    before = snapshot(host_root)
    calls = len(commands.changing())
    result = run_module(kernel_cmdline, {"args": ["nmi_watchdog=bad"]})
    assert result["failed"] is True and "grub-script-check rejects" in result["msg"]
    assert snapshot(host_root) == before and len(commands.changing()) == calls


def test_debian_regenerate_false(host_root, run_module, commands):
    debian_host(host_root)
    result = run_module(kernel_cmdline, {"args": [CONSOLE], "regenerate": False})
    assert result["changed"] is True and commands.calls == []
    assert "update-grub" in result["regeneration_pending"] and not warnings(result)  # asked for: not a warning


def test_debian_broken_dropin_is_reported(host_root, run_module, commands):
    debian_host(host_root)
    put(host_root, "/etc/default/grub.d/50-broken.cfg", "if then fi\n")
    result = run_module(kernel_cmdline, {"args": [CONSOLE]})
    assert result["failed"] is True and "/etc/default/grub.d/50-broken.cfg" in result["msg"]


def test_reboot_required_follows_proc_cmdline(host_root, run_module, commands):
    debian_host(host_root, proc=DEBIAN_PROC.replace("ro quiet", "ro %s quiet" % CONSOLE))
    commands.handlers["update-grub"] = ok
    result = run_module(kernel_cmdline, {"args": [CONSOLE]})
    assert result["changed"] is True and result["reboot_required"] is False
    os.unlink(os.path.join(str(host_root), "proc/cmdline"))
    result = run_module(kernel_cmdline, {"args": [CONSOLE]})
    assert result["active"] is None and result["reboot_required"] is None


@pytest.mark.parametrize("params, fragment", [
    ({"args": [""]}, "an argument is empty"),
    ({"args": ["console=ttyS0 quiet"]}, "contains whitespace"),
    ({"args": ['dyndbg="+p"']}, "contains '\"'"),
    # GRUB script syntax: grub-mkconfig copies the arguments unquoted onto the linux line, where ; and && are
    # command separators (quiet;reboot would reboot at every boot), | < > redirect, { } ( ) group, # comments.
    ({"args": ["quiet;reboot"]}, "contains ';'"),
    ({"args": ["x&&halt"]}, "contains '&'"),
    ({"args": ["a{b}"]}, "contains '{', '}'"),
    ({"args": ["x|y"]}, "contains '|'"),
    ({"args": ["a>b"]}, "contains '>'"),
    ({"args": ["a<b"]}, "contains '<'"),
    ({"args": ["a#b"]}, "contains '#'"),
    ({"args": ["mtdparts=x:1M(boot)"]}, "contains '(', ')'"),
    ({"args": ["a*"]}, "contains '*'"),
    ({"args": ["[x"]}, "contains '['"),
    ({"args": ["x=$(reboot)"]}, "contains '$', '(', ')'"),
    ({"args": ["x=\x1b[31m"]}, "contains '\\x1b', '['"),
    ({"args": ["caf\u00e9"]}, "contains '\u00e9'"),
    ({"args": ["crashkernel=1G", "crashkernel=2G"]}, "takes one value"),
    ({"args": [CONSOLE], "state": "gone"}, "value of state must be one of: present, absent"),
    ({"args": [CONSOLE], "position": "first"}, "value of position must be one of: keep, last"),
    ({"args": [CONSOLE], "backend": "lilo"}, "value of backend must be one of: auto, grub_debian"),
    ({"args": [CONSOLE], "grub_dropin": "magic.conf"}, "must be a file name ending in .cfg"),
    ({"args": [CONSOLE], "grub_dropin": "../x.cfg"}, "must be a file name ending in .cfg"),
])
def test_bad_input_fails_and_writes_nothing(host_root, run_module, commands, params, fragment):
    debian_host(host_root)
    before = snapshot(host_root)
    result = run_module(kernel_cmdline, params)
    assert result["failed"] is True and fragment in result["msg"]
    if "args" in fragment or "argument" in fragment or "contains" in fragment:
        assert "NAME or NAME=VALUE" in result["msg"]
    assert snapshot(host_root) == before and commands.calls == []


def test_no_grub_defaults(host_root, run_module, commands):
    put(host_root, "/etc/os-release", DEBIAN_RELEASE)
    result = run_module(kernel_cmdline, {"args": [CONSOLE], "backend": "grub_debian"})
    assert result["failed"] is True and "/etc/default/grub does not exist" in result["msg"]


# ------------------------------------------------------------------------------------------
# grub_suse
# ------------------------------------------------------------------------------------------

SUSE_GRUB = """GRUB_DISTRIBUTOR="openSUSE Leap"
GRUB_DEFAULT=saved
GRUB_TIMEOUT=8
GRUB_CMDLINE_LINUX_DEFAULT="splash=silent resume=/dev/vda3 quiet mitigations=auto"
GRUB_CMDLINE_LINUX=""
GRUB_CMDLINE_LINUX_RECOVERY="showopts apm=off noresume nosmp maxcpus=0 edd=off"
GRUB_TERMINAL="gfxterm"
"""


@pytest.mark.parametrize("uefi", [False, True])
def test_suse(host_root, run_module, commands, uefi):
    put(host_root, "/etc/os-release", SUSE_RELEASE)
    put(host_root, "/etc/default/grub", SUSE_GRUB)
    tool(host_root, "/usr/sbin/grub2-mkconfig")
    if uefi:
        os.makedirs(os.path.join(str(host_root), "sys/firmware/efi"))
    commands.handlers["grub2-mkconfig"] = ok
    result = run_module(kernel_cmdline, {"args": [CONSOLE, "quiet"], "position": "last"})
    assert result["backend"] == "grub_suse" and result["changed"] is True
    assert result["firmware"] == ("uefi" if uefi else "bios") and result["grub_cfg"] == "/boot/grub2/grub.cfg"
    assert commands.calls == [["/usr/sbin/grub2-mkconfig", "-o", "/boot/grub2/grub.cfg"]]
    text = get(host_root, "/etc/default/grub")
    assert 'GRUB_CMDLINE_LINUX="quiet console=ttyS0,115200n8"' in text
    assert 'GRUB_CMDLINE_LINUX_DEFAULT="splash=silent resume=/dev/vda3 mitigations=auto"' in text
    assert [e["id"] for e in result["entries"]] == ["default", "recovery"]
    assert result["entries"][1]["args"][0] == "showopts" and result["entries"][1]["args"][-2:] == ["quiet", CONSOLE]
    assert run_module(kernel_cmdline, {"args": [CONSOLE, "quiet"]})["changed"] is False


# ------------------------------------------------------------------------------------------
# grubby
# ------------------------------------------------------------------------------------------

class FakeGrubby:
    """grubby on BLS files under the fake root: Fedora's grubby-bls argument rules, or the old ones."""

    def __init__(self, root, legacy=False, fail=False):
        self.root = str(root)
        self.legacy = legacy
        self.fail = fail

    def _files(self):
        return sorted(glob.glob(os.path.join(self.root, "boot/loader/entries/*.conf")), reverse=True)

    def _env(self):
        path = os.path.join(self.root, "boot/grub2/grubenv")
        if not os.path.exists(path):
            return path, {}
        with open(path, encoding="utf-8") as handle:
            return path, dict(l.split("=", 1) for l in handle.read().splitlines() if "=" in l and not l.startswith("#"))

    @staticmethod
    def _fields(path):
        with open(path, encoding="utf-8") as handle:
            return dict(l.split(" ", 1) for l in handle.read().splitlines() if " " in l)

    def _options(self, fields):
        options = fields.get("options", "")
        return options.replace("$kernelopts", self._env()[1].get("kernelopts", ""))

    def _update(self, args, remove, add):
        toks = args.split()
        for arg in remove.split():
            for i, tok in enumerate(toks):
                hit = tok.startswith(arg) if self.legacy else (
                    tok == arg if "=" in arg else tok == arg or tok.startswith(arg + "="))
                if hit:
                    del toks[i]
                    break
        if self.legacy:
            for arg in add.split():
                key = arg.split("=", 1)[0]
                same = [i for i, t in enumerate(toks) if t.split("=", 1)[0] == key]
                if same and "=" in arg:
                    toks[same[0]] = arg
                elif not same:
                    toks.append(arg)
            return " ".join(toks)
        for arg in add.split():
            key = arg.split("=", 1)[0]
            for i, tok in enumerate(toks):
                if tok == key or tok.startswith(key + "="):
                    del toks[i]
                    break
        return " ".join(toks + add.split())

    def __call__(self, argv):
        if argv[1] == "--info=ALL":
            out = []
            for index, path in enumerate(self._files()):
                fields = self._fields(path)
                toks = self._options(fields).split()
                root = [t[5:] for t in toks if t.startswith("root=")]
                out.append("index=%d\nkernel=\"/boot%s\"\nargs=\"%s\"\n" % (
                    index, fields["linux"], " ".join(t for t in toks if not t.startswith("root="))))
                if root:
                    out.append('root="%s"\n' % root[0])
                out.append('title="%s"\nid="%s"\n' % (fields.get("title", ""), os.path.basename(path)[:-5]))
            return 0, "".join(out), ""
        if self.fail:
            return 1, "", "grubby fatal error: unable to find a suitable template"
        opts = dict(a.split("=", 1) for a in argv[1:])
        which = opts["--update-kernel"]
        for path in self._files():
            fields = self._fields(path)
            if which != "ALL" and "/boot" + fields["linux"] != which:
                continue
            if fields.get("options") == "$kernelopts" and which == "ALL":
                env_path, env = self._env()
                env["kernelopts"] = self._update(env["kernelopts"], opts.get("--remove-args", ""),
                                                 opts.get("--args", ""))
                with open(env_path, "w", encoding="utf-8") as handle:
                    handle.write("# GRUB Environment Block\n" + "".join("%s=%s\n" % kv for kv in env.items()))
                continue
            new = self._update(self._options(fields), opts.get("--remove-args", ""), opts.get("--args", ""))
            with open(path, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
            with open(path, "w", encoding="utf-8") as handle:
                handle.write("".join(("options %s" % new if l.startswith("options ") else l) + "\n" for l in lines))
        return 0, "", ""


MID = "2c5e3a4b0f5d4e9c8a7b6c5d4e3f2a1b"
RHEL_GRUB = """GRUB_TIMEOUT=5
GRUB_DISTRIBUTOR="$(echo Red Hat Enterprise Linux)"
GRUB_DEFAULT=saved
GRUB_DISABLE_SUBMENU=true
GRUB_TERMINAL_OUTPUT="console"
GRUB_CMDLINE_LINUX="crashkernel=1G-4G:192M,4G-64G:256M resume=/dev/mapper/rhel-swap rd.lvm.lv=rhel/root rhgb quiet"
GRUB_DISABLE_RECOVERY="true"
GRUB_ENABLE_BLSCFG=true
"""
RHEL_ARGS = "root=/dev/mapper/rhel-root ro crashkernel=1G-4G:192M,4G-64G:256M rd.lvm.lv=rhel/root rhgb quiet"


def bls(root, version, options, title=None):
    put(root, "/boot/loader/entries/%s-%s.conf" % (MID, version),
        "title %s\nversion %s\nlinux /vmlinuz-%s\ninitrd /initramfs-%s.img\noptions %s\ngrub_users $grub_users\n"
        "grub_arg --unrestricted\ngrub_class rhel\n"
        % (title or "Red Hat Enterprise Linux (%s) 9.4" % version, version, version, version, options))


def rhel_host(root, rescue_options=RHEL_ARGS, kernel_cmdline_file=True):
    put(root, "/etc/os-release", RHEL_RELEASE)
    put(root, "/etc/default/grub", RHEL_GRUB)
    tool(root, "/usr/sbin/grubby")
    bls(root, "5.14.0-427.13.1.el9_4.x86_64", RHEL_ARGS)
    bls(root, "0-rescue-" + MID, rescue_options)
    if kernel_cmdline_file:
        put(root, "/etc/kernel/cmdline", RHEL_ARGS + "\n")
    put(root, "/proc/cmdline", "BOOT_IMAGE=(hd0,gpt2)/vmlinuz-5.14.0-427.13.1.el9_4.x86_64 " + RHEL_ARGS + "\n")
    return root


def test_grubby_adds_to_all_entries_and_templates(host_root, run_module, commands):
    rhel_host(host_root)
    commands.handlers["grubby"] = FakeGrubby(host_root)
    result = run_module(kernel_cmdline, {"args": [CONSOLE]}, diff=True)
    assert result["backend"] == "grubby" and result["changed"] is True
    assert commands.changing() == [["/usr/sbin/grubby", "--update-kernel=ALL", "--args=console=ttyS0,115200n8"]]
    assert all(e["args"][-1] == CONSOLE for e in result["entries"]) and len(result["entries"]) == 2
    assert result["entries"][0]["args"][0] == "root=/dev/mapper/rhel-root"
    assert 'rhgb quiet console=ttyS0,115200n8"' in get(host_root, "/etc/default/grub")
    assert get(host_root, "/etc/kernel/cmdline") == RHEL_ARGS + " " + CONSOLE + "\n"
    assert result["files"] == ["/etc/default/grub", "/etc/kernel/cmdline"]
    assert [d["before_header"] for d in result["diff"]] == ["/etc/default/grub", "/etc/kernel/cmdline",
                                                            "grubby --info=ALL"]
    assert result["reboot_required"] is True and result["kernelopts"] is None

    calls = len(commands.calls)
    again = run_module(kernel_cmdline, {"args": [CONSOLE]})
    assert again["changed"] is False and commands.calls[calls:] == [["/usr/sbin/grubby", "--info=ALL"]]


def test_grubby_repeatable_console_keeps_the_others(host_root, run_module, commands):
    rhel_host(host_root)
    for path in glob.glob(os.path.join(str(host_root), "boot/loader/entries/*.conf")):
        with open(path, encoding="utf-8") as handle:
            text = handle.read().replace(" quiet\n", " quiet console=tty0\n")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    commands.handlers["grubby"] = FakeGrubby(host_root)
    result = run_module(kernel_cmdline, {"args": [CONSOLE]})
    assert commands.changing() == [["/usr/sbin/grubby", "--update-kernel=ALL", "--remove-args=console=tty0",
                                    "--args=console=tty0 console=ttyS0,115200n8"]]
    for entry in result["entries"]:
        assert [t for t in entry["args"] if t.startswith("console=")] == ["console=tty0", CONSOLE]


def test_grubby_entries_that_differ_are_updated_one_by_one(host_root, run_module, commands):
    rhel_host(host_root, rescue_options=RHEL_ARGS.replace(" quiet", ""))
    commands.handlers["grubby"] = FakeGrubby(host_root)
    result = run_module(kernel_cmdline, {"args": ["quiet"], "state": "absent"})
    assert commands.changing() == [["/usr/sbin/grubby", "--update-kernel=/boot/vmlinuz-5.14.0-427.13.1.el9_4.x86_64",
                                    "--remove-args=quiet"]]
    assert all("quiet" not in e["args"] for e in result["entries"])
    assert "quiet" not in get(host_root, "/etc/default/grub")


def test_grubby_rhel8_kernelopts(host_root, run_module, commands):
    rhel_host(host_root, rescue_options="$kernelopts", kernel_cmdline_file=False)
    bls(host_root, "5.14.0-427.13.1.el9_4.x86_64", "$kernelopts")
    put(host_root, "/boot/grub2/grubenv", "# GRUB Environment Block\nsaved_entry=x\nkernelopts=%s\n" % RHEL_ARGS)
    commands.handlers["grubby"] = FakeGrubby(host_root)
    result = run_module(kernel_cmdline, {"args": ["sysrq_always_enabled"]})
    assert commands.changing() == [["/usr/sbin/grubby", "--update-kernel=ALL", "--args=sysrq_always_enabled"]]
    assert result["kernelopts"] == RHEL_ARGS + " sysrq_always_enabled"
    assert result["grubenv"] == "/boot/grub2/grubenv"
    assert all(e["args"][-1] == "sysrq_always_enabled" for e in result["entries"])
    assert get(host_root, "/etc/kernel/cmdline") is None


def test_grubby_failure_restores(host_root, run_module, commands):
    rhel_host(host_root)
    commands.handlers["grubby"] = FakeGrubby(host_root, fail=True)
    before = snapshot(host_root)
    result = run_module(kernel_cmdline, {"args": [CONSOLE], "backup": False})
    assert result["failed"] is True and "grubby fatal error" in result["msg"]
    # grubby failed before touching the entries: only the files written are named
    assert ("every change was undone (restored /etc/default/grub, /etc/kernel/cmdline to their previous content)"
            in result["msg"])
    assert snapshot(host_root) == before


def test_grubby_unexpected_result_is_undone(host_root, run_module, commands):
    rhel_host(host_root)
    for path in glob.glob(os.path.join(str(host_root), "boot/loader/entries/*.conf")):
        with open(path, encoding="utf-8") as handle:
            text = handle.read().replace(" quiet\n", " quiet console=tty0\n")
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    commands.handlers["grubby"] = FakeGrubby(host_root, legacy=True)
    before = snapshot(host_root)
    result = run_module(kernel_cmdline, {"args": [CONSOLE], "backup": False})
    assert result["failed"] is True and "where console=tty0 console=ttyS0,115200n8 was expected" in result["msg"]
    assert "every change was undone" in result["msg"]
    assert snapshot(host_root) == before


def test_grubby_check_mode_runs_only_info(host_root, run_module, commands):
    rhel_host(host_root)
    commands.handlers["grubby"] = FakeGrubby(host_root)
    before = snapshot(host_root)
    result = run_module(kernel_cmdline, {"args": [CONSOLE]}, check_mode=True)
    assert result["changed"] is True and snapshot(host_root) == before
    assert commands.calls == [["/usr/sbin/grubby", "--info=ALL"]]
    assert result["commands"] == [["/usr/sbin/grubby", "--update-kernel=ALL", "--args=console=ttyS0,115200n8"]]
    assert all(e["args"][-1] == CONSOLE for e in result["entries"])


# ------------------------------------------------------------------------------------------
# systemd_boot
# ------------------------------------------------------------------------------------------

SD_ARGS = "root=UUID=7a1c rw quiet"


def sdboot_host(root, cmdline=True):
    put(root, "/etc/os-release", DEBIAN_RELEASE)
    put(root, "/etc/machine-id", MID + "\n")
    put(root, "/boot/efi/loader/loader.conf", "timeout 3\n")
    if cmdline:
        put(root, "/etc/kernel/cmdline", SD_ARGS + "\n")
    for version in ("6.1.0-27-amd64", "6.1.0-28-amd64"):
        put(root, "/boot/efi/loader/entries/%s-%s.conf" % (MID, version),
            "title Debian GNU/Linux 12 (bookworm)\nversion %s\nmachine-id %s\nsort-key debian\noptions %s\n"
            "linux /%s/%s/linux\ninitrd /%s/%s/initrd.img-%s\n" % (version, MID, SD_ARGS, MID, version, MID, version,
                                                                   version))
    put(root, "/boot/efi/loader/entries/0123other-6.5.conf", "title Other\nlinux /other/linux\noptions ro\n")
    put(root, "/proc/cmdline", "initrd=\\%s\\6.1.0-28-amd64\\initrd.img-6.1.0-28-amd64 %s\n" % (MID, SD_ARGS))
    put(root, "/proc/sys/kernel/osrelease", "6.1.0-28-amd64\n")


def test_systemd_boot(host_root, run_module, commands):
    sdboot_host(host_root)
    other = get(host_root, "/boot/efi/loader/entries/0123other-6.5.conf")
    result = run_module(kernel_cmdline, {"args": ["sysrq_always_enabled", CONSOLE], "backend": "auto"})
    assert result["backend"] == "systemd_boot" and result["changed"] is True and commands.calls == []
    assert get(host_root, "/etc/kernel/cmdline") == SD_ARGS + " sysrq_always_enabled " + CONSOLE + "\n"
    for version in ("6.1.0-27-amd64", "6.1.0-28-amd64"):
        text = get(host_root, "/boot/efi/loader/entries/%s-%s.conf" % (MID, version))
        assert "\noptions %s sysrq_always_enabled %s\n" % (SD_ARGS, CONSOLE) in text
    assert get(host_root, "/boot/efi/loader/entries/0123other-6.5.conf") == other
    assert [e["id"] for e in result["entries"]] == ["%s-6.1.0-27-amd64" % MID, "%s-6.1.0-28-amd64" % MID]
    assert result["reboot_required"] is True
    assert len(result["backup_files"]) == 3
    # FAT (the ESP) refuses ':' in names, so entry backups carry none.
    assert [":" in os.path.basename(b) for b in result["backup_files"]] == [True, False, False]
    assert run_module(kernel_cmdline, {"args": ["sysrq_always_enabled", CONSOLE]})["changed"] is False


def test_systemd_boot_regenerate_false_and_missing_cmdline(host_root, run_module, commands):
    sdboot_host(host_root, cmdline=False)
    entry = get(host_root, "/boot/efi/loader/entries/%s-6.1.0-28-amd64.conf" % MID)
    result = run_module(kernel_cmdline, {"args": ["quiet"], "state": "absent", "regenerate": False,
                                         "backend": "systemd_boot"})
    assert result.get("msg") is None and result["changed"] is True
    # Created from what kernel-install would otherwise use: /proc/cmdline without initrd=.
    assert get(host_root, "/etc/kernel/cmdline") == "root=UUID=7a1c rw\n"
    assert get(host_root, "/boot/efi/loader/entries/%s-6.1.0-28-amd64.conf" % MID) == entry
    assert result["regeneration_pending"].startswith("regenerate=false: only /etc/kernel/cmdline was edited")
    # The entries were left alone, so the next boot is the same as this one.
    assert result["reboot_required"] is False


# ------------------------------------------------------------------------------------------
# Backend detection
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("setup, backend", [
    (debian_host, "grub_debian"),
    (rhel_host, "grubby"),
    (lambda r: (put(r, "/etc/os-release", SUSE_RELEASE), put(r, "/etc/default/grub", SUSE_GRUB)), "grub_suse"),
    (sdboot_host, "systemd_boot"),
])
def test_auto_detection(host_root, run_module, commands, setup, backend):
    setup(host_root)
    commands.handlers["grubby"] = FakeGrubby(host_root)
    result = run_module(kernel_cmdline, {"args": ["no_such_flag"], "state": "absent"}, check_mode=True)
    assert result["backend"] == backend and result["changed"] is False


def test_auto_detection_fails_clearly(host_root, run_module, commands):
    put(host_root, "/etc/os-release", 'PRETTY_NAME="Alpine Linux v3.20"\nID=alpine\n')
    result = run_module(kernel_cmdline, {"args": [CONSOLE]})
    assert result["failed"] is True and "cannot tell how Alpine Linux v3.20 boots" in result["msg"]
    assert "grub_debian, grubby, grub_suse, systemd_boot" in result["msg"]
