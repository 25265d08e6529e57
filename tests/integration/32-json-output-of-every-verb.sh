#!/bin/bash
# --json makes every verb print one JSON object with a "version" key, so an
# updater never has to parse prose; without it the output is text.
. "$(dirname "$0")/lib.sh"

plan 18

make_image "$TEST_TMP/v1" --version 1.0 --kver 6.1.0 --kernel-content "kernel one"
make_image "$TEST_TMP/v2" --version 2.0 --kver 6.2.0 --kernel-content "kernel two"
sysroot="$TEST_TMP/root"

# Prints KEY of the single JSON object on stdin, failing unless stdin is
# exactly one object with "version": 1.
field() {
  python3 -c '
import json, sys
o = json.loads(sys.stdin.read())
assert isinstance(o, dict) and o.get("version") == 1, o
v = o.get(sys.argv[1])
print("null" if v is None else v)' "$1"
}

sh_on "$sysroot" --json init
is "$(field verb <<<"$OUT")" "init" "init --json names the verb"

sh_on "$sysroot" --json stage "$TEST_TMP/v1"
is "$RC" 0 "stage --json exits 0"
is "$(field deployment <<<"$OUT")" "demo/1" "stage --json names the staged deployment"
like "$(field finalize_unit <<<"$OUT")" '^not started: the sysroot is not the running system' \
  "stage --json says why the finalize unit was not started"

sh_on "$sysroot" finalize-staged --json
is "$(field verb <<<"$OUT")" "finalize-staged" "finalize-staged --json names the verb"
is "$(field deployment <<<"$OUT")" "demo/1" "finalize-staged --json names the new default"

sh_on "$sysroot" --json deploy "$TEST_TMP/v2"
is "$(field deployment <<<"$OUT")" "demo/2" "deploy --json names the new default"

sh_on "$sysroot" --json rollback
is "$(field deployment <<<"$OUT")" "demo/1" "rollback --json names the new default"

sh_on "$sysroot" --json stage "$TEST_TMP/v2"
sh_on "$sysroot" --json unstage
is "$(field unstaged <<<"$OUT")" "yes" "unstage --json says a deployment was unstaged"
sh_on "$sysroot" --json unstage
is "$(field unstaged <<<"$OUT")" "no" "a second unstage --json says nothing was staged"

sh_on "$sysroot" --json cleanup
is "$RC" 0 "cleanup --json exits 0"
like "$(field deployments_removed <<<"$OUT")" '^[0-9]+$' "cleanup --json counts removed deployments"

sh_on "$sysroot" --json finalize-staged
is "$(field result <<<"$OUT")" "nothing-staged" "finalize-staged --json with nothing staged says so"
is "$(field deployment <<<"$OUT")" "null" "and names no deployment"

sh_on "$sysroot" status --json
is "$(field default <<<"$OUT")" "demo/1" "status --json is one object with the version key"

STAGEHAND_DEBUG_CMDLINE="stagehand=/stagehand/deploy/demo/1" sh_on "$sysroot" --json config-diff
is "$(field verb <<<"$OUT")" "config-diff" "config-diff --json names the verb"
is "$(field changes <<<"$OUT")" "[]" "config-diff --json lists no changes of an untouched /etc"

sh_on "$sysroot" rollback
like "$OUT" '^Rolled back: demo/2 is the default' "without --json the output is text"
