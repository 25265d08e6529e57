#!/usr/bin/env bash
# finalize-staged --hold pins <boot>: with the holder running, the automount
# does not expire, even after ten times its timeout (ostree#2543: an expired
# /boot at shutdown is what made finalization fail).
. "$(dirname "$0")/lib.sh"
needs_kernel autofs ext4 loop

plan 5
require_stagehand
setup

make_test_image "$T/image" 1
stagehand_run init || bail "stagehand init failed"
stage_image "$T/image" || bail "stagehand stage failed"

notify_listen
start_hold
ok "finalize-staged --hold sends READY=1" wait_for_ready "$HOLD_PID" 30

ok "while stagehand holds it, the same boot mount stays for 10x the timeout" \
  boot_stays_mounted $((10 * BOOT_TIMEOUT))
ok "stagehand is still running, waiting for a signal" pid_alive "$HOLD_PID"

kill -TERM "$HOLD_PID"
wait_exit "$HOLD_PID" 30
is "$EXIT_STATUS" 0 "stagehand exits 0 on SIGTERM"
ok "once stagehand has exited, the boot mount expires within 6s" wait_until_expired 6
