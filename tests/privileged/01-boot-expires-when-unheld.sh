#!/usr/bin/env bash
# Control for the whole suite: the harness's /boot automount really expires
# when nothing holds it, and really stays while a directory fd is held on it.
# If this fails, no other privileged test means anything.
. "$(dirname "$0")/lib.sh"
needs_kernel autofs ext4 loop

plan 5
setup

trigger_boot
ok "accessing <boot> mounts the ext4 image on the autofs trigger" boot_is_mounted

ok "with nothing holding it, the boot mount expires within 6s (timeout ${BOOT_TIMEOUT}s)" \
  wait_until_expired 6 &&
  diag "unheld boot mount expired ${EXPIRED_AFTER}s after the trigger returned"

# A holder: a process outside the daemon's process group with a directory fd
# on <boot>. Its open triggers the mount; the fd keeps it busy.
(exec 3<"$BOOT" && exec sleep 60) </dev/null >/dev/null 2>&1 &
holder=$!
track_pid "$holder"
holder_has_fd() {
  local i
  for ((i = 0; i < 200; i++)); do
    [ "$(readlink "/proc/$holder/fd/3" 2>/dev/null)" = "$BOOT" ] &&
      [ "$(readlink "/proc/$holder/exe")" = "$(readlink -f "$(command -v sleep)")" ] && return 0
    sleep "$POLL_INTERVAL"
  done
  return 1
}
ok "a holder process has a directory fd open on <boot>" holder_has_fd

ok "while held, the same boot mount stays for 5x the timeout" \
  boot_stays_mounted $((5 * BOOT_TIMEOUT))

kill -TERM "$holder"
wait "$holder" 2>/dev/null
untrack_pid "$holder"
ok "once the holder is gone, the boot mount expires within 6s" wait_until_expired 6 &&
  diag "released boot mount expired ${EXPIRED_AFTER}s after the holder was reaped"
