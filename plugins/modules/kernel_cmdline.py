#!/usr/bin/python
# Copyright: magic_sysrq.fleet contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: kernel_cmdline
short_description: Add or remove boot-time kernel arguments in every boot entry
version_added: 0.1.0
description:
  - Makes kernel arguments such as C(console=ttyS0,115200n8), C(sysrq_always_enabled), C(crashkernel=256M),
    C(nmi_watchdog=1) or C(log_buf_len=4M) present in, or absent from, every boot entry, through the
    boot loader setup of the host.
  - An argument counts as present only when every boot entry has it.
  - C(name=value) replaces C(name=other) for a name that takes one value, in place where it can. Names that may
    repeat (C(console), C(memmap), C(hugepagesz), C(hugepages), C(ip), C(systemd.setenv), C(rd.lvm.lv),
    C(rd.luks.uuid), C(rd.luks.name), C(rd.md.uuid)) keep their other values; order matters for C(console)
    because the last C(console=) becomes C(/dev/console), see O(position).
  - Names compare the way the kernel compares them, dashes and underscores alike. Arguments after C(--) are
    for init and never touched.
  - Returns the arguments configured for every entry, the running kernel's (C(/proc/cmdline)), and whether a
    reboot is needed for the managed arguments to take effect.
  - Every file is replaced atomically, with a backup. GRUB defaults files are shell; the module sources them
    with C(/bin/sh) the way C(grub-mkconfig) does (main file, then drop-ins), so arguments that other packages
    add (kdump-tools adds C(crashkernel=) from C(/etc/default/grub.d/kdump-tools.cfg)) are seen. The edited
    files are evaluated the same way before anything is written; a change that would not give every entry the
    requested arguments (because another file the module does not edit sets them) is refused, naming that file.
  - When regenerating the boot configuration fails, every file the task changed is restored and the task
    fails saying so.
options:
  args:
    description:
      - The arguments, each C(NAME) (a flag) or C(NAME=VALUE), without whitespace, quotes, backslashes, C($) or
        backticks.
      - With O(state=absent), C(NAME=VALUE) removes exactly that argument and a bare C(NAME) removes the flag and
        every C(NAME=...).
    type: list
    elements: str
    required: true
  state:
    description: Whether the arguments must be in every boot entry or in none.
    type: str
    choices: [present, absent]
    default: present
  position:
    description:
      - For repeatable names with O(state=present).
      - V(keep) adds a missing argument at the end and leaves an existing one where it is.
      - V(last) places the listed arguments of a repeatable name after every other argument of that name, in the
        order listed, moving them if needed. Use it for the C(console=) that must become C(/dev/console).
    type: str
    choices: [keep, last]
    default: keep
  backend:
    description:
      - How the host boots. V(auto) picks from C(/etc/os-release) and what is installed.
      - V(grub_debian) (Debian, Ubuntu) edits C(GRUB_CMDLINE_LINUX), which every entry gets including
        recovery ones, in O(grub_dropin) or C(/etc/default/grub), then runs C(update-grub) (or
        C(grub-mkconfig -o /boot/grub/grub.cfg)).
      - V(grubby) (RHEL, Fedora, CentOS Stream, AlmaLinux, Rocky, Oracle Linux) runs
        C(grubby --update-kernel=ALL) (or one entry at a time where they differ), which edits the BLS entries in
        C(/boot/loader/entries) and RHEL 8's C(kernelopts) in grubenv, and keeps C(GRUB_CMDLINE_LINUX) in
        C(/etc/default/grub) and C(/etc/kernel/cmdline) (where it exists) in step, so kernels installed later
        get the arguments too.
      - V(grub_suse) edits C(/etc/default/grub) and runs C(grub2-mkconfig -o /boot/grub2/grub.cfg), the real
        configuration on BIOS and UEFI alike (on UEFI the ESP holds only a stub that loads it).
      - V(systemd_boot) edits C(/etc/kernel/cmdline), which C(kernel-install) uses for new entries, and the
        C(options) lines of this machine's type 1 entries in C(loader/entries) on the ESP or XBOOTLDR partition.
        Unified kernel images embed their command line and are not edited (a warning names them).
    type: str
    choices: [auto, grub_debian, grubby, grub_suse, systemd_boot]
    default: auto
  grub_dropin:
    description:
      - For O(backend=grub_debian), the file under C(/etc/default/grub.d) that holds the arguments, as
        C(GRUB_CMDLINE_LINUX="$GRUB_CMDLINE_LINUX ..."). It must end in C(.cfg). It is created when needed and
        survives upgrades of the grub packages, which merge their own changes into C(/etc/default/grub).
      - An argument to be removed or replaced that C(/etc/default/grub) sets (in C(GRUB_CMDLINE_LINUX) or
        C(GRUB_CMDLINE_LINUX_DEFAULT)) is removed there, as drop-ins are sourced after it.
      - V(null) edits C(GRUB_CMDLINE_LINUX) in C(/etc/default/grub) itself.
      - Other backends ignore it; their C(grub-mkconfig) reads no drop-ins.
    type: str
    default: magic_sysrq.cfg
  backup:
    description: Keep a backup of every file replaced, next to it (named so that GRUB and systemd-boot ignore it).
    type: bool
    default: true
  regenerate:
    description:
      - Bring the boot configuration in line after a change. V(grub_debian) and V(grub_suse) run C(grub-mkconfig)
        (only when a file changed); V(systemd_boot) edits the existing loader entries. V(grubby) edits the entries
        in any case.
      - V(false) edits only the defaults and templates; RV(regeneration_pending) then says what is left to do (a role
        that regenerates once in a handler uses this).
    type: bool
    default: true
extends_documentation_fragment:
  - magic_sysrq.fleet.attributes
attributes:
  check_mode:
    support: full
    details: Runs only commands that read (C(/bin/sh) sourcing the GRUB defaults, C(grubby --info=ALL), C(grub-script-check) on temporary copies).
  diff_mode:
    support: full
    details: Shows every file changed and, for grubby, every entry's arguments.
  idempotent:
    support: full
notes:
  - C(grub-script-check) checks GRUB script, not shell; Debian's own C(/etc/default/grub) fails it (a backtick
    command substitution). Where it is installed the module checks a new defaults file with it only when the
    current one passes, and always checks the C(linux) lines the new arguments produce.
  - The Magic SysRq argument C(sysrq_always_enabled) enables every SysRq function whatever C(kernel.sysrq) says.
  - Transactional (read-only root) systems and boot loaders other than these four are not handled.
seealso:
  - module: magic_sysrq.fleet.sysrq_mask
  - module: magic_sysrq.fleet.sysrq_facts
  - name: The kernel's command-line parameters
    description: Every argument the kernel knows, and how it parses them.
    link: https://docs.kernel.org/admin-guide/kernel-parameters.html
author:
  - magic_sysrq.fleet maintainers (@magic-sysrq)
"""

EXAMPLES = r"""
- name: Serial console for out-of-band SysRq, ttyS0 as /dev/console
  magic_sysrq.fleet.kernel_cmdline:
    args:
      - console=tty0
      - console=ttyS0,115200n8
    position: last
  register: console

- name: Reboot when the running kernel does not have it yet
  ansible.builtin.reboot:
  when: console.reboot_required

- name: Enable every SysRq function from early boot, and reserve crash kernel memory
  magic_sysrq.fleet.kernel_cmdline:
    args: [sysrq_always_enabled, crashkernel=256M]

- name: Show boot messages (remove quiet, wherever it is set)
  magic_sysrq.fleet.kernel_cmdline:
    args: [quiet]
    state: absent

- name: On Debian, edit /etc/default/grub itself rather than a drop-in
  magic_sysrq.fleet.kernel_cmdline:
    args: [nmi_watchdog=1]
    grub_dropin: null
"""

RETURN = r"""
backend:
  description: The backend used.
  returned: always
  type: str
  sample: grub_debian
backend_reason:
  description: Why that backend.
  returned: always
  type: str
  sample: Debian GNU/Linux 12 (bookworm) with /etc/default/grub
configured:
  description: The arguments every boot entry has after the task (what it would be, in check mode), in order.
  returned: success
  type: list
  elements: str
  sample: [console=tty0, "console=ttyS0,115200n8"]
entries:
  description:
    - Every boot entry with its arguments. V(grubby) and V(systemd_boot) list the real entries; the GRUB backends
      list the C(default) and C(recovery) entries that C(grub-mkconfig) builds from the defaults.
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: The entry's identifier (BLS id, loader entry name, or C(default)/C(recovery)).
      type: str
    title:
      description: The entry's title.
      type: str
    args:
      description: Its arguments, in order.
      type: list
      elements: str
    kernel:
      description: The kernel image (V(grubby), V(systemd_boot)).
      type: str
  sample:
    - {id: default, title: "normal entries (GRUB_CMDLINE_LINUX GRUB_CMDLINE_LINUX_DEFAULT)",
       args: [console=ttyS0,115200n8, quiet, crashkernel=384M-:128M]}
    - {id: recovery, title: "recovery entries (GRUB_CMDLINE_LINUX)", args: [console=ttyS0,115200n8]}
active:
  description: The running kernel's arguments, from C(/proc/cmdline); null when it cannot be read.
  returned: success
  type: list
  elements: str
  sample: [BOOT_IMAGE=/boot/vmlinuz-6.1.0-27-amd64, root=UUID=0a3407de, ro, quiet]
regeneration_pending:
  description:
    - With O(regenerate=false) and a change made, what is left to do before a reboot uses it (for example the
      command that regenerates the GRUB configuration); null otherwise. Not a warning, since it was asked for.
  returned: success
  type: str
  sample: "regenerate=false: the GRUB configuration still has the old arguments; run /usr/sbin/update-grub before rebooting"
reboot_required:
  description:
    - Whether the running kernel's arguments differ, for the names managed by this task, from the configured entry it
      booted from (the default entry where that cannot be told). Null when C(/proc/cmdline) cannot be read.
  returned: success
  type: bool
  sample: true
files:
  description: Files the task changed (would change, in check mode).
  returned: success
  type: list
  elements: str
  sample: [/etc/default/grub.d/magic_sysrq.cfg]
commands:
  description: Commands that change the boot configuration which the task ran (would run, in check mode).
  returned: success
  type: list
  elements: list
  sample: [[/usr/sbin/update-grub]]
backup_file:
  description: The backup of the first file replaced, or null.
  returned: success
  type: str
  sample: /etc/default/grub.12345.2026-11-22@10:00:00~
backup_files:
  description: Every backup made.
  returned: success
  type: list
  elements: str
grub_cfg:
  description: The GRUB configuration file regenerated (GRUB backends).
  returned: when backend is grub_debian or grub_suse
  type: str
  sample: /boot/grub2/grub.cfg
firmware:
  description: V(uefi) or V(bios), from C(/sys/firmware/efi) (V(grub_suse)).
  returned: when backend is grub_suse
  type: str
  sample: uefi
kernelopts:
  description: RHEL 8's C(kernelopts) GRUB environment variable, which BLS entries reference; null where unset.
  returned: when backend is grubby
  type: str
  sample: root=/dev/mapper/rhel-root ro crashkernel=auto resume=/dev/mapper/rhel-swap rhgb quiet
grubenv:
  description: The GRUB environment block read for RV(kernelopts), or null.
  returned: when backend is grubby
  type: str
  sample: /boot/grub2/grubenv
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.magic_sysrq.fleet.plugins.module_utils._cmdline.apply import run


def main():
    module = AnsibleModule(
        argument_spec=dict(
            args=dict(type="list", elements="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            position=dict(type="str", choices=["keep", "last"], default="keep"),
            backend=dict(type="str", choices=["auto", "grub_debian", "grubby", "grub_suse", "systemd_boot"],
                         default="auto"),
            grub_dropin=dict(type="str", default="magic_sysrq.cfg"),
            backup=dict(type="bool", default=True),
            regenerate=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    module.exit_json(**run(module))


if __name__ == "__main__":
    main()
