#!/bin/bash
# Command-line flags override stagehand.conf: --lock-timeout over
# lock-timeout=, --karg over kargs= (the karg side is in 19-kargs.sh).
# A lock that cannot be taken in time is exit 75 (EX_TEMPFAIL) with one line
# naming the holder.
. "$(dirname "$0")/lib.sh"

plan 12

make_image "$TEST_TMP/v1" --version 1.0
sysroot=$(new_sysroot sysroot)
conf="$sysroot/stagehand/stagehand.conf"

hold_lock "$sysroot"

# status never waits for the lock: it says who holds it.
status_json "$sysroot"
is "$(json '[j["lock"]["held"], j["lock"]["pid"]]')" "[true, $HOLDER_PID]" "status --json: the lock is held, by the holder's PID"
like "$(json 'j["lock"]["command"]')" 'python3' "status --json: the holder's command"
sh_on "$sysroot" status
like "$OUT" "Lock: held by .*$HOLDER_PID" "status (text) names the holder"

printf '[stagehand]\nlock-timeout=1\n' >"$conf"
start=$(date +%s)
sh_on "$sysroot" cleanup
is "$RC" 75 "lock-timeout=1 from stagehand.conf: cleanup gives up with exit 75"
like "$ERR" "held by PID $HOLDER_PID" "the message names the holder's PID"
is "$(printf '%s' "$ERR" | grep -c '')" 1 "one line on stderr"
ok "it gave up within a few seconds ($(($(date +%s) - start)) s)" test $(($(date +%s) - start)) -le 10

printf '[stagehand]\nlock-timeout=3600\n' >"$conf"
start=$(date +%s)
sh_on "$sysroot" stage "$TEST_TMP/v1" --lock-timeout=1
elapsed=$(($(date +%s) - start))
is "$RC" 75 "--lock-timeout=1 overrides lock-timeout=3600: stage gives up with exit 75"
ok "it gave up after about a second, not an hour ($elapsed s)" test "$elapsed" -le 10
ok "the refused stage left no deployment" test ! -e "$sysroot/stagehand/deploy/demo"
is "$(temp_leftovers "$sysroot")" "" "and no temporary names"

release_lock
sh_on "$sysroot" stage "$TEST_TMP/v1" --lock-timeout=1
is "$RC" 0 "with the holder gone, stage takes the lock at once" || diag "$ERR"
