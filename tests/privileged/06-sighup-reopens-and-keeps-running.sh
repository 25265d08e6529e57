#!/usr/bin/env bash
# SIGHUP re-opens the held directories; it neither ends the holder nor
# finalizes, and <boot> stays pinned across it. SIGTERM still finalizes after.
. "$(dirname "$0")/lib.sh"
needs_kernel autofs ext4 loop

plan 9
require_stagehand
setup

make_test_image "$T/image" 1
stagehand_run init || bail "stagehand init failed"
stage_image "$T/image" || bail "stagehand stage failed"
notify_listen
start_hold
ok "finalize-staged --hold sends READY=1" wait_for_ready "$HOLD_PID" 30

kill -HUP "$HOLD_PID"
ok "across SIGHUP the same boot mount stays for 3x the timeout" \
  boot_stays_mounted $((3 * BOOT_TIMEOUT))
ok "SIGHUP does not end the process" pid_alive "$HOLD_PID"
ok "after SIGHUP it holds the ext4 boot mount and the sysroot" \
  pid_holds_boot_and_sysroot "$HOLD_PID"
is "$(loader_target)" loader.0 "SIGHUP does not finalize: <boot>/loader -> loader.0"

kill -TERM "$HOLD_PID"
wait_exit "$HOLD_PID" 10
is "$EXIT_HUNG" 0 "after SIGHUP, SIGTERM still ends the process within 10s"
is "$EXIT_STATUS" 0 "and it exits 0"
is "$(loader_target)" loader.1 "SIGTERM after SIGHUP finalizes: <boot>/loader -> loader.1"
entry=$(entry_for_deployment "$STAGED_ID") || entry=""
ok "loader.1 has the entry for the staged deployment $STAGED_ID" test -n "$entry"
