"""The incident playbooks' controller side, without any reachable host: refusals happen before a host is
contacted, and unreachable hosts end up in the summaries (the real-kernel suite runs them on the lab)."""
from __future__ import annotations

import json
import os
import socket
import subprocess

import pytest

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import flamegraph

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    path = tmp_path_factory.mktemp("inv") / "hosts.ini"
    port = _closed_port()
    common = "ansible_host=127.0.0.1 ansible_port=%d ansible_user=root ansible_ssh_common_args='-o ConnectTimeout=3'" % port
    path.write_text("[fleet]\nweb1 %s\nweb2 %s\n[db]\ndb1 %s\n" % (common, common, common))
    return str(path)


def play(inventory, playbook, *args, cwd=None, allow_warnings=()):
    """ansible-playbook with deprecation warnings on: ansible-core must not warn about the playbook itself."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="False", ANSIBLE_RETRY_FILES_ENABLED="False",
               ANSIBLE_DEPRECATION_WARNINGS="True")
    cmd = ["ansible-playbook", "-i", inventory, os.path.join(REPO, "playbooks", playbook), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd or REPO, timeout=300, check=False)
    out = proc.stdout + proc.stderr
    warned = [line for line in out.splitlines() if line.startswith(("[WARNING]", "[DEPRECATION WARNING]"))
              and not any(a in line for a in allow_warnings)]
    assert not warned, "%s warned:\n%s" % (playbook, "\n".join(warned))
    return proc.returncode, out


def only_dir(root):
    entries = os.listdir(root)
    assert len(entries) == 1, entries
    return os.path.join(root, entries[0])


def test_sysrq_dump_refuses_destructive_keys_before_contacting_hosts(inventory):
    rc, out = play(inventory, "sysrq_dump.yml", "-e", "key=c")
    assert rc != 0 and "key=c is not allowed in sysrq_dump.yml: use one of w, t, l, m" in out
    assert "TASK [Trigger the key" not in out


@pytest.mark.parametrize("level", ["0", "9", "loud"])
def test_sysrq_dump_refuses_a_console_level_out_of_range(inventory, level):
    rc, out = play(inventory, "sysrq_dump.yml", "-e", "sysrq_dump_console_loglevel=" + level)
    assert rc != 0 and f"sysrq_dump_console_loglevel={level} is not allowed: use 1 to 8" in out
    assert "TASK [Trigger the key" not in out


def test_sysrq_dump_refuses_bad_time_limits(inventory):
    rc, out = play(inventory, "sysrq_dump.yml", "-e", "sysrq_dump_host_timeout=0")
    assert rc != 0 and "must be > 0 seconds" in out and "TASK [Trigger the key" not in out


def test_sysrq_dump_with_every_host_unreachable_still_writes_the_summary(inventory, tmp_path):
    rc, out = play(inventory, "sysrq_dump.yml", "-e", "sysrq_dump_root=%s" % tmp_path, "--limit", "fleet")
    assert rc == 0, out
    where = only_dir(str(tmp_path))
    summary = json.load(open(os.path.join(where, "summary.json"), encoding="utf-8"))
    assert summary["hosts_asked"] == ["web1", "web2"]            # --limit is honoured: db1 was not asked
    assert summary["unreachable"] == ["web1", "web2"] and summary["answered"] == 0
    assert "Connection refused" in summary["unreachable_reasons"]["web1"]
    text = open(os.path.join(where, "summary.md"), encoding="utf-8").read()
    assert "- Unreachable: `web1`: " in text and "No tasks in this dump (no host answered)." in text
    assert open(os.path.join(where, "stacks.folded"), encoding="utf-8").read() == ""
    assert os.path.exists(os.path.join(where, "flamegraph.html")) is not bool(flamegraph.missing())
    assert sorted(os.listdir(where)) == sorted(
        ["summary.json", "summary.md", "stacks.folded"] + ([] if flamegraph.missing() else ["flamegraph.html"]))


@pytest.mark.parametrize("args,message", [
    ([], "run it again with -e target=HOST -e confirm=yes"),
    (["-e", "confirm=YES", "-e", "target=web1"], "run it again with -e target=HOST -e confirm=yes"),
    (["-e", "confirm=yes"], "name the host(s) to reboot with -e target=HOST"),
    (["-e", "confirm=yes", "-e", "target=fleet"], "target=fleet matches 2 hosts (web1, web2), more than safe_reboot_max_hosts=1"),
    (["-e", "confirm=yes", "-e", "target=web1", "-e", "safe_reboot_keys=reisub"], "I (SIGKILL to every process) is out in-band"),
    (["-e", "confirm=yes", "-e", "target=web1", "-e", "safe_reboot_via=ipmi"], "safe_reboot_via=ipmi is not allowed"),
    (["-e", "confirm=yes", "-e", "target=web1", "-e", "safe_reboot_via=oob", "-e", "safe_reboot_keys=reisux"],
     "use letters of r, e, i, s, u, b ending with b (default reisub)"),
    (["-e", "confirm=yes", "-e", "target=web1", "-e", "safe_reboot_keys=su"], "ending with b"),
])
def test_safe_reboot_refuses_before_contacting_any_host(inventory, args, message):
    rc, out = play(inventory, "safe_reboot.yml", *args)
    assert rc != 0 and message in out and "Nothing was done" in out, out
    assert "TASK [Read the boot id" not in out


def test_safe_reboot_of_no_host_does_nothing(inventory):
    rc, out = play(inventory, "safe_reboot.yml", "-e", "confirm=yes", "-e", "target=nosuch",
                   allow_warnings=("Could not match supplied host pattern, ignoring: nosuch",))
    assert rc == 0 and "no hosts matched" in out and "boot id" not in out


def test_safe_reboot_checks_also_run_under_limit(inventory):
    rc, out = play(inventory, "safe_reboot.yml", "-e", "target=web1", "--limit", "web1")
    assert rc != 0 and "Nothing was done" in out and "Read the boot id" not in out


def test_safe_reboot_of_an_unreachable_host_fails(inventory):
    rc, out = play(inventory, "safe_reboot.yml", "-e", "confirm=yes", "-e", "target=web1")
    assert rc != 0 and "UNREACHABLE" in out


@pytest.mark.parametrize("args,message", [
    (["-e", "since=soon"], "cannot read since='soon'"),
    (["-e", "level=loud"], "unknown kernel log level 'loud'"),
    (["-e", "crash_files=-1"], "crash_files=-1 must be a whole number"),
])
def test_collect_dmesg_checks_its_request_first(inventory, args, message):
    rc, out = play(inventory, "collect_dmesg.yml", *args)
    assert rc != 0 and message in out and "TASK [Read the kernel ring buffer]" not in out


def test_collect_dmesg_with_unreachable_hosts(inventory, tmp_path):
    rc, out = play(inventory, "collect_dmesg.yml", "-e", "collect_dmesg_root=%s" % tmp_path, "-e", "target=db",
                   "-e", "since=2h", "-e", "level=err")
    assert rc == 0, out
    where = only_dir(str(tmp_path))
    summary = json.load(open(os.path.join(where, "summary.json"), encoding="utf-8"))
    assert summary["unreachable"] == ["db1"] and summary["asked"] == 1 and summary["crash_count"] == 0
    assert summary["levels"] == ["emerg", "alert", "crit", "err"]
    assert "Unreachable: `db1`:" in open(os.path.join(where, "summary.md"), encoding="utf-8").read()


def test_two_dumps_started_in_the_same_second_get_their_own_directories(inventory, tmp_path):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_HOST_KEY_CHECKING="False")
    cmd = ["ansible-playbook", "-i", inventory, os.path.join(REPO, "playbooks", "sysrq_dump.yml"),
           "-e", "sysrq_dump_root=%s" % tmp_path, "--limit", "web1"]
    procs = [subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _run in range(2)]
    assert [proc.wait(timeout=300) for proc in procs] == [0, 0]
    names = sorted(os.listdir(tmp_path))
    assert len(names) == 2, names
    assert names[0][:15] == names[1][:15] or names[0][:14] == names[1][:14]      # the same second, or next to it


@pytest.mark.parametrize("args, message", [
    (["-e", '{"crash_capture_nmi": {"panic_on_oom": 1}}'], "crash_capture_nmi has unknown setting(s) panic_on_oom"),
    (["-e", "crash_capture_log_buf_len=huge"], "log_buf_len must be auto or a size"),
    (["-e", "crash_capture_log_buf_len=3M"], "log_buf_len must be a power of two"),
])
def test_enable_crash_capture_checks_its_request_before_changing_any_host(inventory, args, message):
    rc, out = play(inventory, "enable_crash_capture.yml", *args)
    assert rc != 0 and message in out, out
    # no host was contacted: the serial console role (the first change) never started
    assert "Serial console (GRUB and kernel)" not in out and "UNREACHABLE" not in out, out
