# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Helpers for guest-side test scripts:  . /usr/local/lib/stagehand-vm/lib.sh
#
#   VM_BOOT, VM_RESULTS       set by the runner (see run)
#   record NAME               save stdin as $VM_RESULTS/NAME (host reads it)
#   record_cmd NAME CMD...    run CMD, save its stdout+stderr as NAME and its
#                             exit status as NAME.status; returns that status
#   wait_until SECS CMD...    poll CMD every 0.2 s until it succeeds; 1 on timeout
#   note MSG                  a line on the console and in the journal
#   die MSG                   note MSG and exit 1 (the host sees exit-status 1)
#   boot_mounts               "FSTYPE SOURCE" of each mount on /boot, from the
#                             mount table only: a path walk through /boot
#                             (stat, ls, findmnt /boot) counts as a use and
#                             restarts the automount's idle timer
#   boot_expired              /boot is only the autofs trigger
#   boot_held                 a filesystem is mounted over the trigger

record() {
  cat >"$VM_RESULTS/$1.tmp" && mv "$VM_RESULTS/$1.tmp" "$VM_RESULTS/$1"
}

record_cmd() {
  local name=$1 rc
  shift
  "$@" >"$VM_RESULTS/$name" 2>&1
  rc=$?
  echo "$rc" >"$VM_RESULTS/$name.status"
  return "$rc"
}

wait_until() {
  local deadline=$(( $(date +%s%N) / 1000000 + $1 * 1000 ))
  shift
  until "$@"; do
    [ $(( $(date +%s%N) / 1000000 )) -lt "$deadline" ] || return 1
    sleep 0.2
  done
}

note() {
  echo "stagehand-vm: $*"
  echo "stagehand-vm: $*" | systemd-cat -t stagehand-vm 2>/dev/null || true
}

die() {
  note "FAILED: $*"
  exit 1
}

boot_mounts() {
  findmnt -rn -o FSTYPE,SOURCE,TARGET | awk '$3 == "/boot" { print $1, $2 }'
}

boot_expired() {
  [ "$(boot_mounts)" = "autofs systemd-1" ]
}

boot_held() {
  boot_mounts | grep -vq '^autofs '
}
