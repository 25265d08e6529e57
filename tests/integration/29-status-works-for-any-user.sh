#!/bin/bash
# `status` reads: any user who can read the state sees it, on a sysroot
# that root made. The lock file is root's alone (0600: whoever can open it
# can take a lock and block every update), so another user cannot ask the
# kernel who holds it: the lock shows as unknown, saying why, and
# everything else is there (issue 14). Needs root to make the sysroot and
# to run as nobody (setpriv).
. "$(dirname "$0")/lib.sh"

plan 12

if ! is_root; then
  skip 12 "needs root: the sysroot is root's and status runs as nobody"
  exit 0
fi
command -v setpriv >/dev/null || bail "setpriv (util-linux) is not installed"

# as_nobody ARGS...: run_stagehand as uid/gid 65534, no groups.
as_nobody() {
  RC=0
  setpriv --reuid=65534 --regid=65534 --clear-groups -- "$STAGEHAND" "$@" \
    >"$OUT_FILE" 2>"$ERR_FILE" </dev/null || RC=$?
  OUT=$(cat "$OUT_FILE")
  ERR=$(cat "$ERR_FILE")
}

chmod 0755 "$TEST_TMP" # mktemp's 0700 would hide the sysroot itself
chmod 0666 "$OUT_FILE" "$ERR_FILE" 2>/dev/null
make_image "$TEST_TMP/v1" --version 1.0 --kernel-content "kernel one"
make_image "$TEST_TMP/v2" --version 2.0 --kernel-content "kernel two"
sysroot=$(new_sysroot sysroot)
must "$sysroot" deploy "$TEST_TMP/v1"
must "$sysroot" stage "$TEST_TMP/v2" --no-start
ok "set-up: the lock file is root's, mode 0600" test "$(stat -c '%U %a' "$sysroot/stagehand/lock")" = "root 600"

as_nobody --sysroot="$sysroot" status
is "$RC" 0 "status as nobody exits 0" || diag "$ERR"
is "$ERR" "" "and prints nothing on stderr"
like "$OUT" 'demo/2 \(staged\)' "it shows the staged deployment"
like "$OUT" 'demo/1 \(default\)' "and the default"
like "$OUT" "Lock: unknown \(opening sysroot lock $sysroot/stagehand/lock: Permission denied\)" \
  "the lock is unknown, and why"

as_nobody --sysroot="$sysroot" --json status
is "$RC" 0 "status --json as nobody exits 0" || diag "$ERR"
is "$(json '[j["staged"], j["default"], j["lock"]["state"], j["lock"]["held"]]')" \
  '["demo/2", "demo/1", "unknown", null]' "--json: staged, default, lock state unknown, held null"
like "$(json 'j["lock"]["unknown_reason"]')" 'Permission denied' "--json: the reason"

# root sees the lock as it is.
status_json "$sysroot"
is "$(json '[j["lock"]["state"], j["lock"]["held"], j["lock"]["unknown_reason"]]')" '["free", false, null]' \
  "root: the lock is free"
hold_lock "$sysroot"
status_json "$sysroot"
is "$(json '[j["lock"]["state"], j["lock"]["held"]]')" '["held", true]' "root: the lock is held"
as_nobody --sysroot="$sysroot" --json status
is "$RC:$(json 'j["lock"]["state"]')" "0:unknown" "nobody, while root holds it: unknown, exit 0"
release_lock
