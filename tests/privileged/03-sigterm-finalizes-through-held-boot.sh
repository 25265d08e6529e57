#!/usr/bin/env bash
# SIGTERM makes the holder finalize: the staged deployment becomes the boot
# default on the loop filesystem behind the held automount, the process exits
# 0 promptly, and afterwards nothing pins <boot> any more.
. "$(dirname "$0")/lib.sh"
needs_kernel autofs ext4 loop

plan 11
require_stagehand
setup

make_test_image "$T/image" 1
stagehand_run init || bail "stagehand init failed"
stage_image "$T/image" || bail "stagehand stage failed"
is "$(loader_target)" loader.0 "before finalizing, <boot>/loader -> loader.0"

notify_listen
start_hold
wait_for_ready "$HOLD_PID" 30 || bail "no READY=1 from finalize-staged --hold"
held_mount=$(boot_mount_id) || held_mount=none
ok "stagehand holds <boot> on the ext4 mount and the sysroot" \
  pid_holds_boot_and_sysroot "$HOLD_PID"

kill -TERM "$HOLD_PID"
wait_exit "$HOLD_PID" 10
is "$EXIT_HUNG" 0 "stagehand exits within 10s of SIGTERM"
diag "exited ${EXIT_AFTER}s after SIGTERM"
is "$EXIT_STATUS" 0 "stagehand exits 0 after finalizing"

# Just after exit the mount is either the one held since READY or already
# expired; a different mount id would mean <boot> was dropped and
# re-triggered while finalizing, i.e. the hold did not hold.
after_mount=$(boot_mount_id) || after_mount=expired
ok "the boot mount was not replaced while stagehand held it" \
  test "$after_mount" = "$held_mount" -o "$after_mount" = expired

ok "after exit, the boot mount expires within 6s" wait_until_expired 6
is "$(boot_fs_readlink /loader)" loader.1 \
  "on the loop filesystem itself, /loader now -> loader.1"

is "$(loader_target)" loader.1 "through the automount, <boot>/loader -> loader.1"
entry=$(entry_for_deployment "$STAGED_ID") || entry=""
ok "loader.1 has a stagehand-*.conf entry with stagehand=/stagehand/deploy/testos/$STAGED_ID" \
  test -n "$entry"

entry_boots_image() {
  local linux initrd
  [ -n "$entry" ] || return 1
  linux=$(awk '$1 == "linux" { print $2 }' "$entry")
  initrd=$(awk '$1 == "initrd" { print $2 }' "$entry")
  if cmp -s "$BOOT/${linux#/}" "$T/image/usr/lib/modules/6.1.0-test/vmlinuz" &&
    cmp -s "$BOOT/${initrd#/}" "$T/image/usr/lib/modules/6.1.0-test/initramfs.img"; then
    return 0
  fi
  diag "entry $entry:" "$(cat "$entry")"
  return 1
}
ok "the entry's linux and initrd are the staged image's kernel and initramfs" entry_boots_image
ok "the whole boot configuration is complete" check_boot_config
