"""kernel_cmdline module_utils: argument editing, shell assignments, parsers, GRUB defaults evaluation."""
from __future__ import annotations

import subprocess

import pytest
import yaml

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline import backend, grub_defaults, grubby, shell, systemd_boot
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline import tokens as cmdline_tokens


# ------------------------------------------------------------------------------------------
# edit_tokens: one case per line of YAML: before, args, state, position, after
# ------------------------------------------------------------------------------------------

EDIT_CASES = yaml.safe_load(r"""
# flags
- {id: add-flag, before: ro quiet, args: [sysrq_always_enabled], after: ro quiet sysrq_always_enabled}
- {id: flag-present, before: ro sysrq_always_enabled quiet, args: [sysrq_always_enabled], after: ro sysrq_always_enabled quiet}
- {id: flag-dash-underscore, before: ro sysrq-always-enabled, args: [sysrq_always_enabled], after: ro sysrq-always-enabled}
- {id: absent-flag, before: ro quiet splash, args: [quiet], state: absent, after: ro splash}
- {id: absent-name-takes-values, before: quiet=1 ro quiet, args: [quiet], state: absent, after: ro}
# single-valued: replace in place, drop the other values
- {id: replace-in-place, before: ro crashkernel=auto quiet, args: [crashkernel=256M], after: ro crashkernel=256M quiet}
- {id: replace-dups, before: a=1 x a=2, args: [a=3], after: a=3 x}
- {id: keep-wanted-drop-others, before: a=1 a=3 x, args: [a=3], after: a=3 x}
- {id: add-valued, before: ro, args: [nmi_watchdog=1, log_buf_len=4M], after: ro nmi_watchdog=1 log_buf_len=4M}
- {id: idempotent-valued, before: ro nmi_watchdog=1, args: [nmi_watchdog=1], after: ro nmi_watchdog=1}
- {id: flag-replaces-valued, before: ro nosmt=force, args: [nosmt], after: ro nosmt}
# console repeats; the last console= is /dev/console
- {id: console-add-keeps-others, before: console=tty0 quiet, args: ['console=ttyS0,115200n8'], after: 'console=tty0 quiet console=ttyS0,115200n8'}
- {id: console-keep-not-last, before: console=ttyS0 console=tty0, args: [console=ttyS0], after: console=ttyS0 console=tty0}
- {id: console-last-moves, before: console=ttyS0 console=tty0 quiet, args: [console=ttyS0], position: last, after: console=tty0 quiet console=ttyS0}
- {id: console-last-already, before: console=tty0 quiet console=ttyS0, args: [console=ttyS0], position: last, after: console=tty0 quiet console=ttyS0}
- {id: console-last-two, before: console=ttyS0 console=tty0, args: [console=tty0, console=ttyS0], position: last, after: console=tty0 console=ttyS0}
- {id: console-last-two-other-first, before: console=ttyS1 console=ttyS0 console=tty0, args: [console=tty0, console=ttyS0],
   position: last, after: console=ttyS1 console=tty0 console=ttyS0}
- {id: absent-exact, before: console=tty0 console=ttyS0, args: [console=tty0], state: absent, after: console=ttyS0}
- {id: absent-by-name, before: console=tty0 quiet console=ttyS0, args: [console], state: absent, after: quiet}
- {id: absent-missing, before: ro quiet, args: [console=ttyS0], state: absent, after: ro quiet}
# init arguments after -- are never touched
- {id: before-init-args, before: ro -- single quiet, args: [quiet], after: ro quiet -- single quiet}
- {id: absent-not-after-dashes, before: ro quiet -- quiet, args: [quiet], state: absent, after: ro -- quiet}
# quoted values survive
- {id: quoted-kept, before: 'dyndbg="file a.c +p" ro', args: [quiet], after: 'dyndbg="file a.c +p" ro quiet'}
""")


@pytest.mark.parametrize("case", EDIT_CASES, ids=[c["id"] for c in EDIT_CASES])
def test_edit_tokens(case):
    request = cmdline_tokens.Request(case["args"], case.get("state", "present"), case.get("position", "keep"))
    after = cmdline_tokens.edit_tokens(cmdline_tokens.split_cmdline(case["before"]), request)
    assert after == cmdline_tokens.split_cmdline(case["after"])
    assert cmdline_tokens.satisfied(after, request)
    # Idempotent: a second edit changes nothing.
    assert cmdline_tokens.edit_tokens(after, request) == after


@pytest.mark.parametrize("text, tokens", [
    ("", []),
    ("  ro   quiet\n", ["ro", "quiet"]),
    ('a="b c" d', ['a="b c"', "d"]),
    ('BOOT_IMAGE=/vmlinuz root=UUID=1 ro console=ttyS0,115200n8', ["BOOT_IMAGE=/vmlinuz", "root=UUID=1", "ro",
                                                                   "console=ttyS0,115200n8"]),
])
def test_split_cmdline(text, tokens):
    assert cmdline_tokens.split_cmdline(text) == tokens


@pytest.mark.parametrize("args, fragment", [
    ([""], "empty"),
    (["console=ttyS0 quiet"], "whitespace"),
    (['dyndbg="x"'], "quote"),
    (["a'b"], "quote"),
    (["x=$y"], "'$'"),
    (["=value"], "no name"),
    (["--"], "no name"),
    ([], "args is empty"),
    (["crashkernel=1G", "crashkernel=2G"], "takes one value"),
])
def test_bad_args(args, fragment):
    with pytest.raises(cmdline_tokens.CmdlineError) as err:
        cmdline_tokens.Request(args)
    assert fragment in str(err.value)
    if args and fragment != "takes one value":
        assert "NAME or NAME=VALUE" in str(err.value)


def test_bad_state_and_position():
    with pytest.raises(cmdline_tokens.CmdlineError, match="state must be one of present, absent"):
        cmdline_tokens.Request(["quiet"], "gone")
    with pytest.raises(cmdline_tokens.CmdlineError, match="position must be one of keep, last"):
        cmdline_tokens.Request(["quiet"], "present", "first")


def test_repeatable_may_repeat_in_args():
    request = cmdline_tokens.Request(["console=tty0", "console=ttyS0"])
    assert [a.text for a in request.args] == ["console=tty0", "console=ttyS0"]


def test_unsatisfied_needs_every_entry():
    request = cmdline_tokens.Request(["crashkernel=256M"])
    entries = [{"args": ["crashkernel=256M"]}, {"args": ["ro"]}]
    assert [a.text for a in cmdline_tokens.unsatisfied(entries, request)] == ["crashkernel=256M"]
    assert cmdline_tokens.unsatisfied(entries[:1], request) == []


def test_common_args_and_managed_differs():
    entries = [{"args": ["a", "console=tty0", "b"]}, {"args": ["console=tty0", "a"]}]
    assert cmdline_tokens.common_args(entries) == ["a", "console=tty0"]
    assert cmdline_tokens.managed_differs(["console=tty0", "console=ttyS0"], ["console=ttyS0", "console=tty0"], ["console"])
    assert not cmdline_tokens.managed_differs(["x", "console=tty0"], ["console=tty0", "y"], ["console"])


# ------------------------------------------------------------------------------------------
# Shell assignments
# ------------------------------------------------------------------------------------------

ASSIGNMENT_CASES = yaml.safe_load(r"""
- id: empty
  text: 'GRUB_CMDLINE_LINUX=""'
  tokens: []
  add: console=ttyS0
  after: 'GRUB_CMDLINE_LINUX="console=ttyS0"'
- id: single-quoted
  text: "GRUB_CMDLINE_LINUX='quiet splash'"
  tokens: [quiet, splash]
  remove: quiet
  after: 'GRUB_CMDLINE_LINUX="splash"'
- id: unquoted
  text: GRUB_CMDLINE_LINUX=quiet
  tokens: [quiet]
  add: console=ttyS0
  after: 'GRUB_CMDLINE_LINUX="quiet console=ttyS0"'
- id: append-style-with-comment
  text: 'export GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX crashkernel=1G"  # kdump'
  tokens: [crashkernel=1G]
  remove: crashkernel=1G
  after: 'export GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX"  # kdump'
- id: escaped-inner-quotes
  text: 'GRUB_CMDLINE_LINUX="dyndbg=\"file a.c +p\" ro"'
  tokens: ['dyndbg="file a.c +p"', ro]
  add: quiet
  after: 'GRUB_CMDLINE_LINUX="dyndbg=\"file a.c +p\" ro quiet"'
- id: multi-line
  text: "GRUB_CMDLINE_LINUX=\"a\n  b\"\nGRUB_TIMEOUT=5"
  tokens: [a, b]
  remove: a
  after: "GRUB_CMDLINE_LINUX=\"b\"\nGRUB_TIMEOUT=5"
- id: braces
  text: 'GRUB_CMDLINE_LINUX="${GRUB_CMDLINE_LINUX} ro"'
  tokens: [ro]
  add: quiet
  after: 'GRUB_CMDLINE_LINUX="${GRUB_CMDLINE_LINUX} ro quiet"'
""")


@pytest.mark.parametrize("case", ASSIGNMENT_CASES, ids=[c["id"] for c in ASSIGNMENT_CASES])
def test_assignment_edit_and_render(case, tmp_path):
    found = shell.find_assignments(case["text"], "GRUB_CMDLINE_LINUX")
    assert len(found) == 1 and found[0].editable
    asg = found[0]
    assert asg.tokens() == case["tokens"]
    if "add" in case:
        asg.words.append(shell.Word.of(case["add"]))
    if "remove" in case:
        asg.remove(lambda t: t == case["remove"])
    after = shell.render_assignments(case["text"], found)
    assert after == case["after"]
    # The rendering means to the shell what the words say.
    script = tmp_path / "f"
    script.write_text(after + "\n")
    out = subprocess.run(["/bin/sh", "-c", '. "$1"; printf %s "$GRUB_CMDLINE_LINUX"', "sh", str(script)],
                         check=True, capture_output=True, text=True).stdout
    assert cmdline_tokens.split_cmdline(out) == [w.text for w in asg.words if w.literal]


def test_assignments_unchanged_are_not_rewritten():
    text = "GRUB_CMDLINE_LINUX='a'   # odd but kept\n"
    found = shell.find_assignments(text, "GRUB_CMDLINE_LINUX")
    assert shell.render_assignments(text, found) == text


@pytest.mark.parametrize("text", [
    'GRUB_CMDLINE_LINUX="$(cat /etc/cmdline)"',
    "GRUB_CMDLINE_LINUX=`cat /etc/cmdline`",
    'GRUB_CMDLINE_LINUX="unterminated',
])
def test_unsupported_assignments_are_not_editable(text):
    found = shell.find_assignments(text, "GRUB_CMDLINE_LINUX")
    assert len(found) == 1 and not found[0].editable and found[0].error


def test_other_variables_and_comments_not_matched():
    text = '#GRUB_CMDLINE_LINUX="x"\nGRUB_CMDLINE_LINUX_DEFAULT="quiet"\nMY_GRUB_CMDLINE_LINUX="y"\n'
    assert shell.find_assignments(text, "GRUB_CMDLINE_LINUX") == []
    assert shell.find_assignments(text, "GRUB_CMDLINE_LINUX_DEFAULT")[0].tokens() == ["quiet"]


# ------------------------------------------------------------------------------------------
# Parsers
# ------------------------------------------------------------------------------------------

RHEL8_INFO = """index=0
kernel="/boot/vmlinuz-4.18.0-372.9.1.el8.x86_64"
args="ro crashkernel=auto resume=/dev/mapper/rhel-swap rhgb quiet $tuned_params"
root="/dev/mapper/rhel-root"
initrd="/boot/initramfs-4.18.0-372.9.1.el8.x86_64.img $tuned_initrd"
title="Red Hat Enterprise Linux (4.18.0-372.9.1.el8.x86_64) 8.6 (Ootpa)"
id="67db13ba8cdb420794ef3ee0a8313205-4.18.0-372.9.1.el8.x86_64"
index=1
non linux entry
index=2
kernel=/boot/vmlinuz-0-rescue-67db13ba8cdb420794ef3ee0a8313205
args="ro crashkernel=auto"
root=/dev/mapper/rhel-root
title=Red Hat Enterprise Linux (0-rescue) 8.6 (Ootpa)
"""


def test_parse_grubby_info():
    entries = grubby.parse_grubby_info(RHEL8_INFO)
    assert [e["index"] for e in entries] == [0, 2]
    assert entries[0]["args"] == ["ro", "crashkernel=auto", "resume=/dev/mapper/rhel-swap", "rhgb", "quiet",
                                  "$tuned_params"]
    assert entries[0]["root"] == "/dev/mapper/rhel-root"
    assert entries[0]["id"].endswith("el8.x86_64")
    assert entries[1]["kernel"] == "/boot/vmlinuz-0-rescue-67db13ba8cdb420794ef3ee0a8313205"
    assert entries[1]["id"] == "2"


DELTA_CASES = yaml.safe_load(r"""
- {id: add, cur: ro quiet, args: [console=ttyS0], remove: [], add: [console=ttyS0]}
- {id: repeat-keeps-others, cur: ro console=tty0, args: [console=ttyS0], remove: [console=tty0], add: [console=tty0, console=ttyS0]}
- {id: replace, cur: ro crashkernel=auto, args: [crashkernel=256M], remove: [crashkernel=auto], add: [crashkernel=256M]}
- {id: absent-only-removes, cur: console=tty0 ro console=ttyS0, args: [console=tty0], state: absent, remove: [console=tty0], add: []}
- {id: satisfied, cur: ro quiet, args: [quiet], remove: [], add: []}
""")


@pytest.mark.parametrize("case", DELTA_CASES, ids=[c["id"] for c in DELTA_CASES])
def test_grubby_delta_and_simulation(case):
    request = cmdline_tokens.Request(case["args"], case.get("state", "present"), case.get("position", "keep"))
    cur = cmdline_tokens.split_cmdline(case["cur"])
    remove, add = grubby.grubby_delta(cur, cmdline_tokens.edit_tokens(cur, request), request)
    assert (remove, add) == (case["remove"], case["add"])
    assert cmdline_tokens.satisfied(grubby.simulate_grubby(cur, remove, add), request)


@pytest.mark.parametrize("release, family", [
    ('ID=debian\nVERSION_ID="12"\n', "debian"),
    ('ID=ubuntu\nID_LIKE=debian\n', "debian"),
    ('ID="rhel"\nID_LIKE="fedora"\n', "redhat"),
    ('ID="almalinux"\nID_LIKE="rhel centos fedora"\n', "redhat"),
    ("ID=rocky\nID_LIKE=\"rhel centos fedora\"\n", "redhat"),
    ('ID="opensuse-leap"\nID_LIKE="suse opensuse"\n', "suse"),
    ('ID="sles"\nID_LIKE="suse"\n', "suse"),
    ("ID=arch\n", None),
])
def test_os_family(host_root, release, family):
    (host_root / "etc").mkdir()
    (host_root / "etc/os-release").write_text(release)
    assert backend.os_family(backend.os_release()) == family


def test_replace_options():
    text = "title Debian\nlinux /vmlinuz\noptions root=UUID=1 ro\noptions quiet\ninitrd /initrd\n"
    assert systemd_boot.replace_options(text, ["root=UUID=1", "ro", "console=ttyS0"]) == (
        "title Debian\nlinux /vmlinuz\noptions root=UUID=1 ro console=ttyS0\ninitrd /initrd\n")
    assert systemd_boot.replace_options("title x\nlinux /v", ["ro"]) == "title x\nlinux /v\noptions ro\n"


# ------------------------------------------------------------------------------------------
# GRUB defaults evaluated with the real /bin/sh
# ------------------------------------------------------------------------------------------

class ShellModule:
    """Just enough of AnsibleModule for GrubDefaults: run_command through the real shell."""

    def __init__(self):
        self.calls = []

    def run_command(self, argv, environ_update=None, **_kwargs):
        self.calls.append(argv)
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
        return proc.returncode, proc.stdout, proc.stderr


def debian_defaults(root):
    (root / "etc/default/grub.d").mkdir(parents=True)
    (root / "etc/default/grub").write_text(
        'GRUB_DEFAULT=0\nGRUB_DISTRIBUTOR=`lsb_release -i -s 2> /dev/null || echo Debian`\n'
        'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX=""\n')
    (root / "etc/default/grub.d/kdump-tools.cfg").write_text(
        'GRUB_CMDLINE_LINUX_DEFAULT="$GRUB_CMDLINE_LINUX_DEFAULT crashkernel=384M-:128M"\n')
    (root / "etc/default/grub.d/init-select.cfg").write_text(
        'if [ x"$GRUB_FS" = xunknown ]; then\n    GRUB_FS="$(stat -f -c %T / || echo unknown)"\nfi\n')


def test_evaluate_records_every_file_and_sources(host_root):
    debian_defaults(host_root)
    defaults = grub_defaults.GrubDefaults(ShellModule(), "debian", dropin_dir=backend.GRUB_DEFAULTS_D, dropin="magic_sysrq.cfg")
    records = defaults.evaluate()
    assert [r["path"] for r in records] == ["/etc/default/grub", "/etc/default/grub.d/init-select.cfg",
                                            "/etc/default/grub.d/kdump-tools.cfg"]
    entries = defaults.entries(records)
    assert entries == [
        {"id": "default", "title": "normal entries (GRUB_CMDLINE_LINUX GRUB_CMDLINE_LINUX_DEFAULT)",
         "args": ["quiet", "crashkernel=384M-:128M"]},
        {"id": "recovery", "title": "recovery entries (GRUB_CMDLINE_LINUX)", "args": []}]
    assert defaults.sources(records, "crashkernel=384M-:128M") == [
        ("/etc/default/grub.d/kdump-tools.cfg", "GRUB_CMDLINE_LINUX_DEFAULT")]
    # A planned drop-in takes part in its sorted place, without being written.
    records = defaults.evaluate({"/etc/default/grub.d/magic_sysrq.cfg": 'GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX x"\n'})
    assert [r["path"] for r in records][-1] == "/etc/default/grub.d/magic_sysrq.cfg"
    assert not (host_root / "etc/default/grub.d/magic_sysrq.cfg").exists()
    assert defaults.entries(records)[1]["args"] == ["x"]


def test_evaluate_disable_recovery_and_errors(host_root):
    debian_defaults(host_root)
    (host_root / "etc/default/grub.d/zz.cfg").write_text('GRUB_DISABLE_RECOVERY="true"\n')
    defaults = grub_defaults.GrubDefaults(ShellModule(), "debian", dropin_dir=backend.GRUB_DEFAULTS_D)
    assert [e["id"] for e in defaults.entries(defaults.evaluate())] == ["default"]
    (host_root / "etc/default/grub.d/zz.cfg").write_text('if then fi\n')
    with pytest.raises(cmdline_tokens.CmdlineError, match="fails at /etc/default/grub.d/zz.cfg"):
        defaults.evaluate()


def test_plan_dropin_removes_from_main_and_refuses_foreign(host_root):
    debian_defaults(host_root)
    (host_root / "etc/default/grub").write_text('GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX="nmi_watchdog=0 ro"\n')
    defaults = grub_defaults.GrubDefaults(ShellModule(), "debian", dropin_dir=backend.GRUB_DEFAULTS_D, dropin="magic_sysrq.cfg")
    texts = {"/etc/default/grub": (host_root / "etc/default/grub").read_text(), "/etc/default/grub.d/magic_sysrq.cfg": None}
    new, _before, after = defaults.plan(cmdline_tokens.Request(["nmi_watchdog=1"]), texts)
    assert new["/etc/default/grub"] == 'GRUB_CMDLINE_LINUX_DEFAULT="quiet"\nGRUB_CMDLINE_LINUX="ro"\n'
    assert new["/etc/default/grub.d/magic_sysrq.cfg"].endswith('GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX nmi_watchdog=1"\n')
    assert defaults.entries(after)[1]["args"] == ["ro", "nmi_watchdog=1"]
    with pytest.raises(cmdline_tokens.CmdlineError) as err:
        defaults.plan(cmdline_tokens.Request(["crashkernel"], "absent"), texts)
    assert "crashkernel=384M-:128M from GRUB_CMDLINE_LINUX_DEFAULT in /etc/default/grub.d/kdump-tools.cfg" in str(err.value)
    assert "which this module does not edit" in str(err.value) and "Nothing was changed" in str(err.value)
