#!/bin/bash
# rollback makes the previous deployment the default with the same atomic
# swap as finalize, keeps the other one as the way forward, and refuses
# while something is staged (it would silently drop it). With three in the
# menu, "the previous deployment" is the next entry after the default, not
# the last one.
. "$(dirname "$0")/lib.sh"

plan 37

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

# Three deployments in the menu (retain=3): the previous one is the second
# entry, demo/2, not the last, demo/1; the others keep their order.
three=$(new_sysroot three)
printf '[stagehand]\nretain=3\n' >"$three/stagehand/stagehand.conf"
for n in 1 2 3; do must "$three" deploy "$TEST_TMP/v$n"; done
menu3() { live_entries "$three" | sed -E 's/^stagehand-[0-9]+-demo-([0-9]+)\.conf$/\1/' | tr '\n' ' '; }
is "$(menu3)" "3 2 1 " "three deployments in the menu, newest first"
sh_on "$three" rollback
like "$OUT" '^Rolled back: demo/2 is the default' "rollback from demo/3 goes to the next entry, demo/2"
is "$(menu3)" "2 3 1 " "demo/3 stays as the way forward, demo/1 stays last"
is "$(status_json "$three" 'j["default"]')" "demo/2" "status: demo/2 is the default"
