#!/usr/bin/env bash
# Tasks stuck in D state on purpose, and their release: writers into a frozen (fsfreeze) loop-mounted ext4.
# The one copy of this recipe: the lab's dump capture (tests/lab/dumps.py), tests/lab/playbooks/stuck.yml, the
# real-kernel suite (50-trigger.yml, test_playbooks.py) all run it.
#   stuck.sh make [NAME] [WRITER...]   freeze /mnt/NAME and start writers (dd touch mkdir by default); prints their
#                                      pids once all are in D state
#   stuck.sh release [NAME]            thaw, wait for the writers to finish, unmount, remove the image
set -euo pipefail
action=${1:?usage: stuck.sh make|release [NAME] [WRITER...]}
name=${2:-lab-frz}
mnt=/mnt/$name img=/root/$name.img
shift $(( $# >= 2 ? 2 : $# ))
writers=("$@")
[ ${#writers[@]} -gt 0 ] || writers=(dd touch mkdir)

case $action in
make)
  mkdir -p "$mnt"
  umount "$mnt" 2>/dev/null || true
  truncate -s 64M "$img"
  mkfs.ext4 -q -F "$img"
  mount -o loop "$img" "$mnt"
  sync
  fsfreeze -f "$mnt"
  pids=()
  i=0
  for w in "${writers[@]}"; do
    i=$((i + 1))
    case $w in
      dd) nohup dd if=/dev/zero of="$mnt/dd$i.out" bs=4k count=16 conv=fsync </dev/null >/dev/null 2>&1 & ;;
      touch) nohup touch "$mnt/touched$i" </dev/null >/dev/null 2>&1 & ;;
      mkdir) nohup mkdir "$mnt/newdir$i" </dev/null >/dev/null 2>&1 & ;;
      *) echo "stuck.sh: unknown writer $w (dd, touch, mkdir)" >&2; exit 2 ;;
    esac
    pids+=($!)
  done
  list=$(IFS=,; echo "${pids[*]}")
  for _ in $(seq 1 150); do
    [ "$(ps -o stat= -p "$list" | grep -c '^D')" -ge ${#pids[@]} ] && break
    sleep 0.2
  done
  echo "${pids[*]}"
  ;;
release)
  fsfreeze -u "$mnt" 2>/dev/null || true
  for _ in $(seq 1 50); do pgrep -f "$mnt" >/dev/null || break; sleep 0.2; done
  umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
  rm -f "$img"
  ;;
*)
  echo "stuck.sh: unknown action $action (make, release)" >&2; exit 2 ;;
esac
