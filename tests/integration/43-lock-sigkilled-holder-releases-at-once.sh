#!/bin/bash
# A holder that dies, even by SIGKILL mid-import, never blocks anyone: the
# kernel drops its OFD lock, a waiter proceeds at once (not at its timeout),
# and the metadata the dead holder left in the lock file is never reported
# as a live holder. Issue 4.
# shellcheck disable=SC2016 # check eval's its single-quoted conditions
. "$(dirname "$0")/lock-lib.sh"

S=$T/sysroot
LOCK=$S/stagehand/lock
check "sysroot initialised" new_sysroot "$S"
make_tar "$T/killed.tar" killed
make_tar "$T/waiter.tar" waiter
make_tar "$T/later.tar" later

# --- a waiter is blocked behind a holder; the holder is SIGKILLed
check "a stage reading its image from a FIFO holds the lock" start_fifo_holder "$S" "$T/killed.tar"
killed_pid=$HOLDER_PID
"$STAGEHAND" --sysroot="$S" stage --no-start --lock-timeout=20 "$T/waiter.tar" \
  >"$T/waiter.out" 2>"$T/waiter.err" &
WAITER_PID=$!
bg_track "$WAITER_PID"
check "the waiter is waiting for the holder" \
  wait_for_line "$T/waiter.err" "^stagehand: waiting for the sysroot lock .*held by PID $killed_pid " 5

t_kill=$(now_ms)
kill_fifo_holder
wait "$WAITER_PID"
rc=$?
t=$(($(now_ms) - t_kill))
check "the waiter succeeds after the holder is SIGKILLed (rc $rc)" [ "$rc" -eq 0 ]
check "... at once, not at its 20 s timeout (${t} ms < 2000 ms after the kill)" [ "$t" -lt 2000 ]
check "the waiter staged its image" grep -q "^Staged locktest/[0-9]*;" "$T/waiter.out"
[ "$TAP_FAILED" -eq 0 ] || diag_file "waiter stderr" "$T/waiter.err"

# --- a holder SIGKILLed with nobody waiting leaves its metadata behind
check "a second stage from a FIFO holds the lock" start_fifo_holder "$S" "$T/killed.tar"
killed_pid=$HOLDER_PID
check "its metadata names it in the lock file" grep -qx "pid=$killed_pid" "$LOCK"
kill_fifo_holder
check "the SIGKILLed holder's metadata is still in the lock file" grep -qx "pid=$killed_pid" "$LOCK"

status_json "$S" >"$T/status.json"
rc=$?
read_lock_json "$T/status.json"
check "status --json: the lock is free; the dead holder is not reported (rc $rc)" \
  eval '[ "$rc" -eq 0 ] && [ "$LOCK_HELD" = false ] && [ -z "$LOCK_PID" ]'
"$STAGEHAND" --sysroot="$S" status >"$T/status.txt" 2>&1
check "status (text): Lock: free" grep -qx "Lock: free" "$T/status.txt"

t0=$(now_ms)
"$STAGEHAND" --sysroot="$S" stage --no-start --lock-timeout=20 "$T/later.tar" \
  >"$T/later.out" 2>"$T/later.err"
rc=$?
t=$(($(now_ms) - t0))
check "the next stage takes the lock without waiting (rc $rc, ${t} ms < 1500)" \
  eval '[ "$rc" -eq 0 ] && [ "$t" -lt 1500 ]'
check "... and does not report a wait" eval '! grep -q "waiting for the sysroot lock" "$T/later.err"'
check "... and replaced the dead holder's metadata (the file is empty after release)" [ ! -s "$LOCK" ]

# The killed imports could not clean up after themselves; cleanup removes
# what they left.
"$STAGEHAND" --sysroot="$S" cleanup >"$T/cleanup.out" 2>"$T/cleanup.err"
rc=$?
check "cleanup succeeds (rc $rc)" [ "$rc" -eq 0 ]
check "no temporary files or directories remain after cleanup" [ -z "$(temp_leftovers "$S")" ]
[ -z "$(temp_leftovers "$S")" ] || diag "$(temp_leftovers "$S")"

lock_done
