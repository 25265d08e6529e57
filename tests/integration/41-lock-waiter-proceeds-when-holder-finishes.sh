#!/bin/bash
# A waiter with a long --lock-timeout keeps polling (with backoff) while a
# real stagehand holds the lock, says who it waits for at a bounded rate
# (not a line per poll), and proceeds as soon as the holder finishes - not
# at its timeout. Both stages then exist and the later one is staged.
# Issue 4.
# shellcheck disable=SC2016 # check eval's its single-quoted conditions
. "$(dirname "$0")/lock-lib.sh"

S=$T/sysroot
check "sysroot initialised" new_sysroot "$S"
make_tar "$T/first.tar" first
make_tar "$T/second.tar" second

check "a stage reading its image from a FIFO holds the lock" start_fifo_holder "$S" "$T/first.tar"

t_start=$(now_ms)
"$STAGEHAND" --sysroot="$S" stage --no-start --lock-timeout=30 "$T/second.tar" \
  >"$T/waiter.out" 2>"$T/waiter.err" &
WAITER_PID=$!
bg_track "$WAITER_PID"

check "the waiter reports who it waits for" \
  wait_for_line "$T/waiter.err" "^stagehand: waiting for the sysroot lock \([0-9]+ s so far\): held by PID $HOLDER_PID \(.*stage --no-start $HOLDER_FIFO\), operation stage" 5
check "the waiter is still waiting" kill -0 "$WAITER_PID"
# Let it wait a few more seconds: that is the span over which the number of
# report lines is counted (polls happen every 10..500 ms).
sleep 3

finish_fifo_holder
t_release=$(now_ms)
check "the holder completes its stage (rc $HOLDER_RC)" [ "$HOLDER_RC" -eq 0 ]
wait "$WAITER_PID"
rc=$?
t_end=$(now_ms)
waited=$((t_end - t_start))
after=$((t_end - t_release))
check "the waiter succeeds once the holder is done (rc $rc)" [ "$rc" -eq 0 ]
check "the waiter proceeds promptly after the release (${after} ms < 1500 ms)" [ "$after" -lt 1500 ]
check "the waiter did not run into its 30 s timeout (${waited} ms < 10000 ms)" [ "$waited" -lt 10000 ]
n=$(grep -c "^stagehand: waiting for the sysroot lock" "$T/waiter.err")
check "one waiting line in ${waited} ms of polling, not one per poll ($n lines)" [ "$n" -eq 1 ]
check "the waiter printed nothing else on stderr" [ "$(wc -l <"$T/waiter.err")" -eq 1 ]
[ "$TAP_FAILED" -eq 0 ] || diag_file "waiter stderr" "$T/waiter.err"

check "the holder staged locktest/1" grep -q "^Staged locktest/1;" "$T/holder.out"
check "the waiter staged locktest/2" grep -q "^Staged locktest/2;" "$T/waiter.out"
check "the staged record names the later stage" \
  eval 'grep -qx "os=locktest" "$S/run/stagehand/staged" && grep -qx "id=2" "$S/run/stagehand/staged"'
check "both deployments are complete" \
  eval '[ -d "$S/stagehand/deploy/locktest/1" ] && [ -f "$S/stagehand/deploy/locktest/1.origin" ] && [ -d "$S/stagehand/deploy/locktest/2" ] && [ -f "$S/stagehand/deploy/locktest/2.origin" ]'
check "no temporary files or directories remain" [ -z "$(temp_leftovers "$S")" ]

lock_done
