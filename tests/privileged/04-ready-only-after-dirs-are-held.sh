#!/usr/bin/env bash
# READY=1 is a promise that <boot> is pinned (Type=notify: systemd orders the
# rest of shutdown on it). When the notification arrives, the sender must
# already hold directory fds on the ext4 boot mount and on the sysroot.
#
# The plain run checks that at arrival. A listener can only look after the
# datagram is queued, so a sender that notifies first and opens right after
# could slip through; the second run therefore freezes stagehand inside the
# notifying sendmsg (strace delay injection) while the listener looks.
. "$(dirname "$0")/lib.sh"
needs_kernel autofs ext4 loop
require_commands strace

plan 11
require_stagehand
setup

make_test_image "$T/image" 1
stagehand_run init || bail "stagehand init failed"
stage_image "$T/image" || bail "stagehand stage failed"
notify_listen

start_hold
ok "finalize-staged --hold sends READY=1 to NOTIFY_SOCKET" wait_for_ready "$HOLD_PID" 30
diag "READY=1 after ${READY_AFTER:-?}s: $READY_MESSAGE"
is "$READY_SENDER" "$HOLD_PID" "READY=1 comes from the finalize-staged process itself"
ok "when READY=1 arrives, the sender has a directory fd on the ext4 boot mount" \
  fds_hold_boot "$READY_FDS" "$READY_MOUNTINFO"
ok "when READY=1 arrives, the sender has a directory fd on the sysroot" \
  fds_hold_sysroot "$READY_FDS"

kill -TERM "$HOLD_PID"
wait_exit "$HOLD_PID" 30
is "$EXIT_STATUS" 0 "stagehand exits 0 on SIGTERM"
ok "stagehand reported a STATUS= to the service manager" grep -q 'STATUS=' "$T/notify.log"

# Second run, nothing staged any more (readiness does not depend on it):
# every sendmsg/sendto returns only after 0.5s, so the listener's snapshot is
# the sender's state at the moment it notified.
start_hold_under strace -f -qq -e signal=none -o "$T/strace.log" \
  -e trace=sendmsg,sendto -e inject=sendmsg,sendto:delay_exit=500000
ok "under strace, READY=1 still arrives" wait_for_ready "$HOLD_PID" 60
ok "frozen in the READY=1 sendmsg, it already holds the ext4 boot mount" \
  fds_hold_boot "$READY_FDS" "$READY_MOUNTINFO"
ok "frozen in the READY=1 sendmsg, it already holds the sysroot" \
  fds_hold_sysroot "$READY_FDS"
ok "the traced READY=1 send was the delayed one" grep -q 'READY=1.*(DELAYED)' "$T/strace.log"

[ -n "$READY_SENDER" ] && kill -TERM "$READY_SENDER"
wait_exit "$HOLD_PID" 30
is "$EXIT_STATUS" 0 "under strace, stagehand exits 0 on SIGTERM"
