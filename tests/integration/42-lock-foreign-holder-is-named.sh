#!/bin/bash
# A holder that is not stagehand (python3 holding an OFD lock on
# <sysroot>/stagehand/lock, writing no metadata or lying metadata) is named
# by its PID and command line, found from /proc/*/fdinfo lock lines; a
# classic POSIX lock holder is named too. Once it is gone the lock is free.
# Issue 4.
# shellcheck disable=SC2016,SC2034 # check eval's its single-quoted conditions
. "$(dirname "$0")/lock-lib.sh"
write_lock_holder_py

S=$T/sysroot
LOCK=$S/stagehand/lock
check "sysroot initialised" new_sysroot "$S"
make_tar "$T/img.tar" img

# expect_named_holder LABEL PID CMDFRAGMENT: status and a timed-out stage both
# name PID and its command line, and claim no stagehand operation for it.
expect_named_holder () {
  local label=$1 pid=$2 cmd=$3 rc t0 t
  t0=$(now_ms)
  status_json "$S" >"$T/status.json" 2>"$T/status.err"
  rc=$?
  t=$(($(now_ms) - t0))
  check "$label: status --json succeeds without waiting (rc $rc, ${t} ms < 3000)" \
    eval '[ "$rc" -eq 0 ] && [ "$t" -lt 3000 ]'
  read_lock_json "$T/status.json"
  check "$label: status --json names PID $pid as the holder" \
    eval '[ "$LOCK_HELD" = true ] && [ "$LOCK_PID" = "$pid" ]'
  check "$label: status --json gives its command line" \
    eval 'case $LOCK_CMD in *"$cmd"*) true ;; *) false ;; esac'
  check "$label: status --json claims no stagehand operation for it" [ "$LOCK_OP" = unknown ]
  [ "$TAP_FAILED" -eq 0 ] || diag_file "status --json" "$T/status.json"

  t0=$(now_ms)
  "$STAGEHAND" --sysroot="$S" stage --no-start --lock-timeout=1 "$T/img.tar" \
    >"$T/stage.out" 2>"$T/stage.err"
  rc=$?
  t=$(($(now_ms) - t0))
  check "$label: stage exits 75 after its 1 s timeout (rc $rc, ${t} ms in [900, 3000])" \
    eval '[ "$rc" -eq 75 ] && [ "$t" -ge 900 ] && [ "$t" -le 3000 ]'
  check "$label: the timeout message names PID $pid and its command line" \
    eval 'grep "^stagehand: sysroot lock is held by PID $pid (" "$T/stage.err" | grep -qF -- "$cmd"'
  check "$label: the message claims no stagehand operation" \
    eval '! grep -q "operation" "$T/stage.err"'
  [ "$TAP_FAILED" -eq 0 ] || diag_file "stage stderr" "$T/stage.err"
}

# --- no metadata at all
check "python3 holds an OFD lock on the lock file" start_py_holder "$LOCK" hold
check "the foreign holder wrote no metadata" [ ! -s "$LOCK" ]
expect_named_holder "OFD holder, no metadata" "$PY_PID" "python3 $T/lock-holder.py"
stop_py_holder

# --- metadata that lies: it names a live process (this test's shell, with
# its real start time and boot id) that does not hold the lock
check "python3 holds the lock and writes metadata naming PID $$" \
  start_py_holder "$LOCK" hold --metadata-for $$
check "the lying metadata is in the lock file" grep -qx "pid=$$" "$LOCK"
expect_named_holder "OFD holder, lying metadata" "$PY_PID" "python3 $T/lock-holder.py"
check "the lying PID $$ is named nowhere" \
  eval '! grep -q "PID $$ " "$T/stage.err" && [ "$LOCK_PID" != "$$" ]'
stop_py_holder

# --- a classic per-process POSIX lock conflicts with OFD locks as well
check "python3 holds a classic POSIX lock on the lock file" start_py_holder "$LOCK" posix-hold
expect_named_holder "POSIX holder" "$PY_PID" "python3 $T/lock-holder.py"
stop_py_holder

# --- gone: nothing is reported, the lying metadata left behind is not
# believed, and the next stage takes the lock without waiting
check "python3 writes metadata naming PID $$ and exits" \
  eval 'python3 "$T/lock-holder.py" "$LOCK" run --metadata-for $$ -- true >/dev/null'
check "the stale metadata is still in the lock file" grep -qx "pid=$$" "$LOCK"
status_json "$S" >"$T/free.json"
read_lock_json "$T/free.json"
check "status --json: the lock is free, the stale metadata is not reported" \
  eval '[ "$LOCK_HELD" = false ] && [ -z "$LOCK_PID" ]'
t0=$(now_ms)
"$STAGEHAND" --sysroot="$S" stage --no-start --lock-timeout=10 "$T/img.tar" >"$T/stage.out" 2>"$T/stage.err"
rc=$?
t=$(($(now_ms) - t0))
check "stage takes the free lock at once (rc $rc, ${t} ms < 1000)" \
  eval '[ "$rc" -eq 0 ] && [ "$t" -lt 1000 ]'
check "stage printed no waiting line" eval '! grep -q "waiting for the sysroot lock" "$T/stage.err"'
check "the lock file is a 0600 regular file, empty after release" \
  eval '[ -f "$LOCK" ] && [ ! -L "$LOCK" ] && [ "$(stat -c %a "$LOCK")" = 600 ] && [ ! -s "$LOCK" ]'

lock_done
