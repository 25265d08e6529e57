#!/usr/bin/env bash
# With nothing staged, SIGTERM ends the holder with exit 0 and <boot> is not
# written at all: same files, contents, modes, mtimes and ctimes.
. "$(dirname "$0")/lib.sh"
needs_kernel autofs ext4 loop

plan 6
require_stagehand
setup

stagehand_run init || bail "stagehand init failed"
snapshot_boot >"$T/boot.before" || bail "cannot list <boot>"

notify_listen
start_hold
ok "finalize-staged --hold sends READY=1 with nothing staged" wait_for_ready "$HOLD_PID" 30
kill -TERM "$HOLD_PID"
wait_exit "$HOLD_PID" 10
is "$EXIT_HUNG" 0 "stagehand exits within 10s of SIGTERM"
is "$EXIT_STATUS" 0 "with nothing staged, SIGTERM ends it with exit 0"
[ -e "$SYSROOT/stagehand/finalize-result" ] &&
  diag "finalize-result:" "$(cat "$SYSROOT/stagehand/finalize-result")"

snapshot_boot >"$T/boot.after"
boot_unchanged() {
  diff -u "$T/boot.before" "$T/boot.after" >"$T/boot.diff" && return 0
  diag "$(cat "$T/boot.diff")"
  return 1
}
ok "<boot> is unchanged: listing, modes, sizes, mtimes, ctimes and contents" boot_unchanged
is "$(loader_target)" loader.0 "<boot>/loader still -> loader.0"
ok "afterwards the boot mount expires within 6s" wait_until_expired 6
