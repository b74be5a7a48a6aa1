#!/usr/bin/python
# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: oob_console
short_description: Read a host's captured console from outside, with the tasks of any SysRq dump in it
version_added: 0.2.0
description:
  - Reads what a host printed on its console, as captured by its hypervisor or console server, from a log file
    (QEMU chardev file, libvirt console log, conserver, an C(ipmitool sol) log) or a systemd unit's journal.
  - Reads from a point (a byte offset or journal cursor from an earlier call or from
    M(magic_sysrq.fleet.oob_sysrq)), from a time (journal only), or after the last line holding a marker; strips
    ANSI escapes and carriage returns; returns the lines and the tasks of any SysRq V(t), V(w) or V(l) dump in
    them, parsed as M(magic_sysrq.fleet.sysrq_trigger) parses them.
  - Runs where the console is captured (C(delegate_to) the hypervisor or console server).
  - With O(sol) instead of O(console), reads a bare-metal host's console live over its BMC's IPMI Serial-over-LAN
    for O(duration) seconds (nothing is kept by the BMC, so only what is printed while the session is open).
options:
  since_position:
    description:
      - Read from this point, a byte offset into O(console.path) or O(console.netconsole), or a journal cursor for
        O(console.journal_unit).
        RV(position) of an earlier call, or RV(magic_sysrq.fleet.oob_sysrq#module:console_position).
    type: str
  since:
    description:
      - With O(console.journal_unit), read entries since this time (any C(journalctl --since) form).
      - With O(console.netconsole), read the records the collector received since this time, an ISO 8601 time
        (UTC without a zone) or a relative one (V(-10min), V(-30s), V(-2h), V(-1d)).
    type: str
  marker:
    description:
      - "Read only what follows the last line holding this text (for example V(sysrq: Show Blocked State) or a
        line a play wrote to the console), within what O(since_position) or O(since) selected."
      - When the marker is not there, RV(marker_found) is false and every line read is returned.
    type: str
  max_lines:
    description: Return at most this many lines, the last ones (the tasks are parsed from all of them).
    type: int
    default: 5000
  duration:
    description:
      - With O(sol), how many seconds to capture the console (O(marker) then selects what followed it).
    type: float
    default: 10.0
extends_documentation_fragment:
  - magic_sysrq.fleet.attributes
  - magic_sysrq.fleet.attributes.INFO_MODULE
  - magic_sysrq.fleet.oob_console
  - magic_sysrq.fleet.oob_sol
notes:
  - O(console) or O(sol) must be given; without either the module fails and says which forms it takes.
  - In check mode an SOL session held by someone else is never taken over.
seealso:
  - module: magic_sysrq.fleet.oob_sysrq
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
"""

EXAMPLES = r"""
- name: What a guest printed since its last SysRq Show Blocked State header
  magic_sysrq.fleet.oob_console:
    console:
      path: /var/log/qemu/web1-serial.log
    marker: "sysrq: Show Blocked State"
  delegate_to: hypervisor1.example.com
  register: console

- name: A QEMU guest run as a systemd user service with its serial line on stdout (the journal)
  magic_sysrq.fleet.oob_console:
    console:
      journal_unit: qemu-system@web1.service
      journal_user: true
    since: "-10min"
  delegate_to: hypervisor1.example.com

- name: A host's kernel log at the netconsole collector, the last ten minutes, with any lost records counted
  magic_sysrq.fleet.oob_console:
    console:
      netconsole: /var/log/netconsole/192.0.2.10.log
    since: "-10min"
    marker: "sysrq: Show Blocked State"
  delegate_to: collector1.example.com
  register: netconsole

- name: A bare-metal server's console over its BMC's Serial-over-LAN, for 30 seconds
  magic_sysrq.fleet.oob_console:
    sol:
      host: web1-bmc.example.com
      username: admin
      password: "{{ vault_bmc_password }}"
    duration: 30
  delegate_to: localhost

- name: Read on from where an oob_sysrq call stopped
  magic_sysrq.fleet.oob_console:
    console:
      path: /var/log/qemu/web1-serial.log
    since_position: "{{ dump.console_position }}"
  delegate_to: hypervisor1.example.com
"""

RETURN = r"""
lines:
  description: The console's lines read, without ANSI escapes and carriage returns (the last O(max_lines)).
  returned: success
  type: list
  elements: str
  sample: ["[  812.123456] sysrq: Show Blocked State"]
lines_total:
  description: How many lines were read before O(max_lines) was applied.
  returned: success
  type: int
  sample: 42
tasks:
  description: The tasks of the SysRq dumps in the lines read (see M(magic_sysrq.fleet.sysrq_trigger)).
  returned: success
  type: list
  elements: dict
task_states:
  description: How many parsed tasks are in each state.
  returned: success
  type: dict
  sample: {D: 3}
lines_cut:
  description:
    - How many lines were longer than 1024 characters and were cut there. Kernel lines are shorter; a longer one was
      not printed by the kernel (or holds a console's noise), and is cut so that no line can slow the parser down.
  returned: success
  type: int
  sample: 0
refused:
  description: How many times the console shows C(This sysrq operation is disabled) (the mask refused a key).
  returned: success
  type: int
  sample: 0
marker_found:
  description: Whether O(marker) was found (null without O(marker)).
  returned: success
  type: bool
  sample: true
netconsole:
  description:
    - With O(console.netconsole), what the records read hold. C(lost) counts the sequence numbers that never
      arrived (C(lost_ranges) lists them); C(incomplete) lists the records some of whose fragments are missing;
      C(restarts) counts the times the sequence started again (the host rebooted); C(foreign) counts the records
      whose sequence number and kernel time do not fit the host's sequence (forged, or from another sender), which
      are shown with a warning line and change nothing else.
  returned: success and O(console.netconsole) given
  type: dict
  sample: {records: 5120, lost: 3, lost_ranges: [[101, 103]], incomplete: [], duplicates: 0, restarts: 0,
           foreign: 0, plain_lines: 0, first_seq: 98, last_seq: 5220}
position:
  description: Where reading ended (a byte offset or a journal cursor); pass it as O(since_position) to read on.
  returned: success with O(console)
  type: raw
  sample: 1048576
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import common as oob

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import console as oob_console
from ansible_collections.magic_sysrq.fleet.plugins.module_utils._oob import sol as oob_sol

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._dump import parser as sysrq_tasks


def main():
    spec = dict(oob_console.ARGUMENT_SPEC)
    spec.update(since_position=dict(type="str"), since=dict(type="str"), marker=dict(type="str"),
                max_lines=dict(type="int", default=5000), duration=dict(type="float", default=10.0))
    spec.update(oob_sol.ARGUMENT_SPEC)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                           mutually_exclusive=[["since_position", "since"], ["console", "sol"],
                                               ["sol", "since_position"], ["sol", "since"]])
    params = module.params
    if params["sol"]:
        _live_sol(module, params)
    try:
        if params["max_lines"] <= 0:
            raise oob.OobError("max_lines must be > 0 (got %s)" % params["max_lines"])
        console = oob_console.source(module, params["console"])
        position = params["since_position"]
        if console.kind in ("file", "netconsole") and position is not None:
            if not (position.isascii() and position.isdigit()):
                raise oob.OobError("since_position for console.path is a byte offset, a whole number >= 0 "
                                   "(got %r)" % position)
            position = int(position)
        text, end = console.read(position, params["since"])
    except oob.OobError as exc:
        module.fail_json(msg=str(exc))
    found = None
    if params["marker"]:
        text, found = oob_console.after_marker(text, params["marker"])
    extra = {"netconsole": console.summary()} if console.kind == "netconsole" else {}
    _exit(module, params, text, changed=False, marker_found=found, position=end, **extra)


def _exit(module, params, text, **result):
    """Return the console text as lines (long ones cut, as every source does) and the tasks of any dump in it."""
    lines, cut = sysrq_tasks.cut_lines(oob_console.lines_of(text))
    if cut:
        module.warn("%d console line(s) longer than %d characters were cut there" % (cut, sysrq_tasks.MAX_LINE))
    tasks = oob_console.parse(lines)
    module.exit_json(lines=lines[-params["max_lines"]:], lines_total=len(lines), lines_cut=cut, tasks=tasks,
                     task_states=sysrq_tasks.state_counts(tasks), refused=oob_console.refusals(lines), **result)


def _live_sol(module, params):
    """Capture the console over IPMI SOL for ``duration`` seconds (or until ``marker``), then exit."""
    target = dict(params["sol"])
    if module.check_mode:
        target["takeover"] = False
    marker = params["marker"]
    try:
        if params["max_lines"] <= 0 or params["duration"] <= 0:
            raise oob.OobError("max_lines and duration must be > 0 (got %s, %s)" % (params["max_lines"],
                                                                                    params["duration"]))
        with oob_sol.SolConsole(module, target) as session:
            text = session.capture(params["duration"])
            took_over = session.took_over
    except oob.OobError as exc:
        module.fail_json(msg=str(exc))
    if took_over:
        module.warn("took over the SOL session someone else held on the BMC (sol.takeover=true)")
    found = None
    if marker:
        text, found = oob_console.after_marker(text, marker)
    # Taking over ended someone else's session on the BMC: that is a change.
    _exit(module, params, text, changed=took_over, marker_found=found)


if __name__ == "__main__":
    main()
