#!/bin/bash
# unstage drops the staged deployment: finalize then finds nothing to do,
# the live menu never changes, and the tree waits for cleanup.
. "$(dirname "$0")/lib.sh"

plan 17

make_image "$TEST_TMP/v1" --version 1.0 --kernel-content "kernel one"
make_image "$TEST_TMP/v2" --version 2.0 --kernel-content "kernel two"
sysroot=$(new_sysroot sysroot)
must "$sysroot" stage "$TEST_TMP/v1"
must "$sysroot" finalize-staged
boot_live=$(boot_snapshot "$sysroot/boot/loader.1")

must "$sysroot" stage "$TEST_TMP/v2"
sh_on "$sysroot" unstage
is "$RC" 0 "unstage exits 0"
like "$OUT" '^Unstaged; the default deployment is unchanged' "unstage says what it did"
is "$ERR" "" "unstage prints nothing on stderr"
ok "unstage removes the staged record" test ! -e "$sysroot/run/stagehand/staged"

status_json "$sysroot"
is "$(json 'j["staged"]')" null "status: nothing staged"
is "$(json 'j["default"]')" "demo/1" "status: demo/1 is still the default"
is "$(json '[(d["id"], d["is_staged"]) for d in j["deployments"]]')" '[["1", false], ["2", false]]' \
  "status: demo/2 is still listed (until cleanup), not staged"

sh_on "$sysroot" finalize-staged
is "$RC" 0 "finalize-staged after unstage exits 0"
like "$OUT" 'Nothing is staged' "finalize-staged after unstage finds nothing staged"
is "$(readlink "$sysroot/boot/loader")" "loader.1" "the loader link did not move"
is "$(boot_snapshot "$sysroot/boot/loader.1")" "$boot_live" "the live entries are byte-identical"
is "$(live_entries "$sysroot")" "stagehand-1-demo-1.conf" "the menu still has only demo/1"

sh_on "$sysroot" unstage
is "$RC" 0 "unstage with nothing staged exits 0"
like "$OUT" '^Nothing was staged' "unstage with nothing staged says so"

# The unstaged tree is what cleanup is for.
sh_on "$sysroot" cleanup
is "$RC" 0 "cleanup after unstage exits 0"
ok "cleanup removes the unstaged deployment" test ! -e "$sysroot/stagehand/deploy/demo/2"
is "$(ls "$sysroot/boot/stagehand" | wc -l)" 1 "cleanup removes the unstaged deployment's kernel, keeps the live one"
