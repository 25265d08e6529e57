#!/bin/bash
# finalize-staged --hold blocks SIGTERM, SIGINT and SIGHUP and finalizes on
# SIGTERM, whether --hold stands after the verb or before it (issue 14: with
# "stagehand --hold finalize-staged" the signals stayed unblocked with their
# default action, so the first SIGTERM killed the process: no finalize, no
# verdict, the update lost). Options mean the same wherever they stand.
# Every other verb gets the signals back: a lock waiter dies of SIGTERM.
# A plain temporary sysroot; readiness is the READY=1 sd_notify message.
. "$(dirname "$0")/lib.sh"

plan 26

make_image "$TEST_TMP/v1" --version 1.0 --kernel-content "kernel one"
make_image "$TEST_TMP/v2" --version 2.0 --kernel-content "kernel two"

# hold_case NAME ARGS...: stage v2 over a deployed v1, run stagehand ARGS
# (which hold) in the background, SIGTERM it once it is ready.
hold_case() {
  local name=$1 sysroot pid rc
  shift
  sysroot=$(new_sysroot "$name")
  must "$sysroot" deploy "$TEST_TMP/v1"
  must "$sysroot" stage "$TEST_TMP/v2" --no-start
  notify_listen "$name"
  NOTIFY_SOCKET="$TEST_TMP/$name.sock" "$STAGEHAND" --sysroot="$sysroot" "$@" \
    </dev/null >"$TEST_TMP/$name.out" 2>"$TEST_TMP/$name.err" &
  pid=$!
  if ! ok "stagehand $*: READY=1 once it holds" wait_notified "$name" '^READY=1' "$pid"; then
    diag_file "$TEST_TMP/$name.err"
  fi
  is "$(blocked_signals_stopped "$pid")" "HUP INT TERM" "stagehand $*: HUP, INT and TERM are blocked"
  kill -HUP "$pid"
  ok "stagehand $*: SIGHUP re-opens and it keeps holding" \
    wait_notified "$name" '^STATUS=Holding' "$pid"
  kill -TERM "$pid"
  rc=0
  wait "$pid" || rc=$?
  is "$rc" 0 "stagehand $*: exits 0 after SIGTERM" || diag_file "$TEST_TMP/$name.err"
  like "$(cat "$TEST_TMP/$name.out")" 'demo/2' "stagehand $*: reports demo/2 finalized"
  status_json "$sysroot"
  is "$(json 'j["default"]')" "demo/2" "stagehand $*: demo/2 is the new default"
  is "$(json '[j["last_finalize"]["result"], j["last_finalize"]["deployment"]]')" \
    '["success", "demo/2"]' "stagehand $*: the verdict is success for demo/2"
  is "$(json 'j["staged"]')" null "stagehand $*: nothing is staged any more"
}

hold_case after finalize-staged --hold
hold_case before --hold finalize-staged
hold_case between-globals --json --hold -v finalize-staged

# Every other verb unblocks them: stage waiting for the lock dies of SIGTERM.
sysroot=$(new_sysroot waiter)
hold_lock "$sysroot"
"$STAGEHAND" --sysroot="$sysroot" stage "$TEST_TMP/v1" --no-start --lock-timeout=60 \
  </dev/null >/dev/null 2>"$TEST_TMP/waiter.err" &
pid=$!
for ((i = 0; i < 100; i++)); do
  grep -q 'waiting for the sysroot lock' "$TEST_TMP/waiter.err" && break
  sleep 0.1
done
is "$(blocked_signals "$pid")" "" "stage (waiting for the lock) blocks none of HUP, INT and TERM"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
is "$rc" 143 "stage dies of SIGTERM (exit 143)"
release_lock
