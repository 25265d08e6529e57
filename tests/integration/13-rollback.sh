#!/bin/bash
# rollback makes the previous deployment the default with the same atomic
# swap as finalize, keeps the other one as the way forward, and refuses
# while something is staged (it would silently drop it).
. "$(dirname "$0")/lib.sh"

plan 33

make_image "$TEST_TMP/v1" --version 1.0 --kernel-content "kernel one"
make_image "$TEST_TMP/v2" --version 2.0 --kernel-content "kernel two"
make_image "$TEST_TMP/v3" --version 3.0 --kernel-content "kernel three"
sysroot=$(new_sysroot sysroot)

# Nothing to roll back to with one deployment (or none).
refused "rollback with an empty menu" "$sysroot" 1 'no previous deployment' -- rollback
must "$sysroot" deploy "$TEST_TMP/v1"
refused "rollback with one deployment" "$sysroot" 1 'no previous deployment' -- rollback

must "$sysroot" deploy "$TEST_TMP/v2"
entry2=$(cat "$sysroot/boot/loader/entries/stagehand-2-demo-2.conf")
loader=$(readlink "$sysroot/boot/loader")

sh_on "$sysroot" rollback
is "$RC" 0 "rollback exits 0"
like "$OUT" '^Rolled back: demo/1 is the default' "rollback names the new default"
is "$ERR" "" "rollback prints nothing on stderr"
ok "rollback swaps the loader link" test "$(readlink "$sysroot/boot/loader")" != "$loader"
is "$(live_entries "$sysroot")" "stagehand-2-demo-1.conf
stagehand-1-demo-2.conf" "after rollback demo/1 sorts first, demo/2 stays as the way forward"
status_json "$sysroot"
is "$(json 'j["default"]')" "demo/1" "status: demo/1 is the default"
is "$(json 'j["staged"]')" null "status: nothing staged"
is "$(sed 's/^version .*//; s/^title .*//' "$sysroot/boot/loader/entries/stagehand-1-demo-2.conf")" \
  "$(printf '%s\n' "$entry2" | sed 's/^version .*//; s/^title .*//')" \
  "demo/2's entry keeps its kernel and options"
is "$(temp_leftovers "$sysroot")" "" "rollback leaves no temporary names"

# Rolling back again returns to demo/2.
sh_on "$sysroot" rollback
is "$RC" 0 "a second rollback exits 0"
is "$(live_entries "$sysroot" | head -n1)" "stagehand-2-demo-2.conf" "a second rollback makes demo/2 the default again"

# Refused while staged: the staged deployment would silently never boot.
must "$sysroot" stage "$TEST_TMP/v3" --no-start
refused "rollback while demo/3 is staged" "$sysroot" 1 'demo/3 is staged.*unstage' -- rollback
ok "the staged record survives the refused rollback" test -f "$sysroot/run/stagehand/staged"
