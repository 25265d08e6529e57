#!/bin/bash
# Two real stagehand processes contend for the sysroot lock. The holder is a
# `stage` blocked reading its tar image from a FIFO; the waiter gives up
# after --lock-timeout with exit 75 (EX_TEMPFAIL) and one message naming the
# holder's PID, command line and operation, having said at a bounded rate
# who it was waiting for. `status` never waits and names the holder. Every
# other state-changing verb takes the lock too (timeouts from stagehand.conf).
# Issue 4.
# shellcheck disable=SC2016 # check eval's its single-quoted conditions
. "$(dirname "$0")/lock-lib.sh"

S=$T/sysroot
check "sysroot initialised" new_sysroot "$S"
make_tar "$T/held.tar" held
make_tar "$T/waiter.tar" waiter

check "a stage reading its image from a FIFO holds the lock" start_fifo_holder "$S" "$T/held.tar"

# --- status during the hold: no waiting, names the holder
t0=$(now_ms)
status_json "$S" >"$T/status.json" 2>"$T/status.err"
rc=$?
t=$(($(now_ms) - t0))
check "status --json succeeds while the lock is held (rc $rc)" [ "$rc" -eq 0 ]
check "status does not wait for the lock (${t} ms < 3000 ms)" [ "$t" -lt 3000 ]
read_lock_json "$T/status.json"
check "status --json: lock.held is true" [ "$LOCK_HELD" = true ]
check "status --json: lock.pid is the holder's PID $HOLDER_PID" [ "$LOCK_PID" = "$HOLDER_PID" ]
check "status --json: lock.command is the holder's command line" \
  [ "$LOCK_CMD" = "$STAGEHAND --sysroot=$S stage --no-start $HOLDER_FIFO" ]
check "status --json: lock.operation is stage" [ "$LOCK_OP" = stage ]
"$STAGEHAND" --sysroot="$S" status >"$T/status.txt" 2>&1
check "status (text) says who holds the lock" \
  grep -q "^Lock: held by PID $HOLDER_PID (.*stage --no-start $HOLDER_FIFO), operation stage" "$T/status.txt"

# --- a second stage gives up after its timeout
t0=$(now_ms)
"$STAGEHAND" --sysroot="$S" stage --no-start --lock-timeout=2 "$T/waiter.tar" \
  >"$T/waiter.out" 2>"$T/waiter.err"
rc=$?
t=$(($(now_ms) - t0))
check "the waiter exits 75 (EX_TEMPFAIL) on lock timeout (rc $rc)" [ "$rc" -eq 75 ]
check "the waiter gives up after about 2 s (${t} ms in [1900, 4000])" \
  eval '[ "$t" -ge 1900 ] && [ "$t" -le 4000 ]'
holder_re="PID $HOLDER_PID \($STAGEHAND --sysroot=$S stage --no-start $HOLDER_FIFO\), operation stage, held for [0-9]+ s"
n=$(grep -Ec "^stagehand: sysroot lock is held by $holder_re; gave up after 2 s" "$T/waiter.err")
check "one timeout message names PID, command line and operation ($n found)" [ "$n" -eq 1 ]
check "given --lock-timeout, the message points to it alone" \
  grep -Eq "gave up after 2 s \(see --lock-timeout\)\$" "$T/waiter.err"
n=$(grep -Ec "^stagehand: waiting for the sysroot lock \([0-9]+ s so far\): held by $holder_re\$" "$T/waiter.err")
check "the wait was reported once in 2 s, not once per poll ($n lines)" [ "$n" -eq 1 ]
check "the waiter printed nothing else on stderr" [ "$(wc -l <"$T/waiter.err")" -eq 2 ]
check "the waiter printed nothing on stdout" [ ! -s "$T/waiter.out" ]
[ "$TAP_FAILED" -eq 0 ] || diag_file "waiter stderr" "$T/waiter.err"

# --- every state-changing verb takes the lock; stagehand.conf sets the wait,
# and the message points to where: for the verbs with --lock-timeout, to it
# and to the stagehand.conf key it overrides; else to the key.
printf '[stagehand]\nlock-timeout=0\nfinalize-lock-timeout=0\n' >"$S/stagehand/stagehand.conf"
for verb in init unstage rollback cleanup finalize-staged "status --report-failure" \
  "deploy $T/waiter.tar" "stage --no-start $T/waiter.tar"; do
  # shellcheck disable=SC2086 # verb carries its arguments
  "$STAGEHAND" --sysroot="$S" $verb >"$T/verb.out" 2>"$T/verb.err"
  rc=$?
  if [ "$rc" -eq 75 ] && grep -q "^stagehand: sysroot lock is held by PID $HOLDER_PID (.*), operation stage.*gave up after 0 s" "$T/verb.err"; then
    ok "'${verb%% *}' waits for the lock (lock-timeout=0 from stagehand.conf): exit 75 naming the holder"
  else
    not_ok "'${verb%% *}' waits for the lock (lock-timeout=0 from stagehand.conf): exit 75 naming the holder (rc $rc)"
    diag_file "${verb%% *} stderr" "$T/verb.err"
  fi
  case $verb in
    stage* | deploy*) hint="(see --lock-timeout, or lock-timeout= in $S/stagehand/stagehand.conf)" ;;
    finalize-staged) hint="(see finalize-lock-timeout= in $S/stagehand/stagehand.conf)" ;;
    *) hint="(see lock-timeout= in $S/stagehand/stagehand.conf)" ;;
  esac
  if grep -qF -- "gave up after 0 s $hint" "$T/verb.err" \
    && [ "$(grep -c 'lock-timeout' "$T/verb.err")" -eq 1 ]; then
    ok "'${verb%% *}': the message ends $hint"
  else
    not_ok "'${verb%% *}': the message ends $hint"
    diag_file "${verb%% *} stderr" "$T/verb.err"
  fi
done
check "finalize-staged recorded that it could not take the lock" \
  grep -Eq '^result=not-attempted' "$S/stagehand/finalize-result"
check "... at the lock step" grep -Eq '^step=lock' "$S/stagehand/finalize-result"
check "... with the message that names finalize-lock-timeout=" \
  grep -qF "gave up after 0 s (see finalize-lock-timeout= in $S/stagehand/stagehand.conf)" \
  "$S/stagehand/finalize-result"

printf '[stagehand]\nlock-timeout=1\n' >"$S/stagehand/stagehand.conf"
t0=$(now_ms)
"$STAGEHAND" --sysroot="$S" stage --no-start "$T/waiter.tar" >"$T/conf.out" 2>"$T/conf.err"
rc=$?
t=$(($(now_ms) - t0))
check "stagehand.conf lock-timeout=1 bounds stage's wait (rc $rc, ${t} ms in [900, 3000])" \
  eval '[ "$rc" -eq 75 ] && [ "$t" -ge 900 ] && [ "$t" -le 3000 ]'
t0=$(now_ms)
"$STAGEHAND" --sysroot="$S" stage --no-start --lock-timeout=0 "$T/waiter.tar" >"$T/flag.out" 2>"$T/flag.err"
rc=$?
t=$(($(now_ms) - t0))
check "--lock-timeout=0 overrides stagehand.conf: one try (rc $rc, ${t} ms < 900)" \
  eval '[ "$rc" -eq 75 ] && [ "$t" -lt 900 ]'
rm -f "$S/stagehand/stagehand.conf"

# --- the holder was not disturbed and the waiters left nothing behind
finish_fifo_holder
check "the holder completes its stage after all that (rc $HOLDER_RC)" [ "$HOLDER_RC" -eq 0 ]
[ "$HOLDER_RC" -eq 0 ] || diag_file "holder stderr" "$T/holder.err"
check "only the holder's deployment exists" \
  [ "$(find "$S/stagehand/deploy" -mindepth 2 -maxdepth 2 -name '*.origin' | wc -l)" -eq 1 ]
check "no temporary files or directories remain" [ -z "$(temp_leftovers "$S")" ]
status_json "$S" >"$T/after.json"
read_lock_json "$T/after.json"
check "status --json: the lock is free afterwards" [ "$LOCK_HELD" = false ]
check "the released lock file keeps mode 0600 and no stale metadata" \
  eval '[ "$(stat -c %a "$S/stagehand/lock")" = 600 ] && [ ! -s "$S/stagehand/lock" ]'

lock_done
