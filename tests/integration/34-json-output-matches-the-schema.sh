#!/bin/bash
# Every JSON document stagehand prints matches docs/json-schema.json, the
# contract updaters rely on: status --json in each state it can show, each
# verb's --json report, and the stage --progress-fd lines. The schema
# itself describes every key and lists every key of every object, so a key
# a program prints that is not documented fails here.
#
# A new key goes into docs/json-schema.json (and a state that shows it into
# this script); a key that changes meaning or type, or goes away, also
# bumps that output's "version".
. "$(dirname "$0")/lib.sh"

plan 29

SCHEMA="$REPO_ROOT/docs/json-schema.json"
CHECK="$REPO_ROOT/tests/lib/check-json-schema"

# conforms DEF DESCRIPTION [--lines]: $OUT against $defs/DEF.
conforms() {
  local errors
  if errors=$(printf '%s\n' "$OUT" | "$PYTHON" "$CHECK" "$SCHEMA" "$1" ${3:+"$3"}); then
    pass "$2"
  else
    not_ok "$2" "$errors" "output: $OUT"
  fi
}

errors=$("$PYTHON" "$CHECK" "$SCHEMA" --lint)
is "$?:$errors" "0:" "the schema describes every key and closes every object"

# The checker catches what it is there for: an undocumented key, a wrong type.
OUT='{"version": 1, "verb": "deploy", "deployment": "demo/1", "extra": 1}'
! errors=$(printf '%s' "$OUT" | "$PYTHON" "$CHECK" "$SCHEMA" report-deploy)
like "$errors" "key 'extra' is not in the schema" "the checker refuses an undocumented key"
OUT='{"version": 1, "verb": "deploy", "deployment": 1}'
! errors=$(printf '%s' "$OUT" | "$PYTHON" "$CHECK" "$SCHEMA" report-deploy)
like "$errors" 'deployment: 1 is not of type string' "the checker refuses a wrong type"

make_image "$TEST_TMP/v1" --version 1.0 --kver 6.1.0 --kernel-content "kernel one"
make_image "$TEST_TMP/v2" --version 2.0 --kver 6.2.0 --kernel-content "kernel two"
root="$TEST_TMP/root"

sh_on "$root" --json init
conforms report-init "init --json"
sh_on "$root" status --json
conforms status "status --json of an empty sysroot"

sh_on "$root" --json deploy "$TEST_TMP/v1"
conforms report-deploy "deploy --json"
sh_on "$root" --json stage "$TEST_TMP/v2" --progress-fd=3 3>"$TEST_TMP/progress"
conforms report-stage "stage --json"
OUT=$(sed '$d' "$TEST_TMP/progress")
conforms progress "every --progress-fd line but the last" --lines
OUT=$(tail -n1 "$TEST_TMP/progress")
conforms progress-done "the last --progress-fd line (success)"

# A foreign entry beside ours, and the lock held by another process.
printf 'title Other\nlinux /other/vmlinuz\n' >"$(entries_dir "$root")/other.conf"
hold_lock "$root"
sh_on "$root" status --json
release_lock
conforms status "status --json with a staged deployment, a foreign entry and a held lock"
is "$(json '[j["staged"], j["lock"]["held"], [e["deployment"] for e in j["boot"]["entries"]].count(None)]')" \
  '["demo/2", true, 1]' "... which it shows"

sh_on "$root" --json stage "$TEST_TMP/no-such-image" --progress-fd=3 3>"$TEST_TMP/progress"
OUT=$(tail -n1 "$TEST_TMP/progress")
conforms progress-done "the last --progress-fd line (failure)"

sh_on "$root" --json finalize-staged
conforms report-finalize-staged "finalize-staged --json"
sh_on "$root" --json finalize-staged
conforms report-finalize-staged "finalize-staged --json with nothing staged"
sh_on "$root" status --json
conforms status "status --json after a finalize (last_finalize)"
is "$(json 'j["last_finalize"]["result"]')" success "... which it shows"

sh_on "$root" --json rollback
conforms report-rollback "rollback --json"
sh_on "$root" --json stage "$TEST_TMP/v2"
sh_on "$root" --json unstage
conforms report-unstage "unstage --json"
sh_on "$root" --json unstage
conforms report-unstage "unstage --json with nothing staged"
sh_on "$root" --json cleanup
conforms report-cleanup "cleanup --json"

# /etc carried: demo/1 booted (as its command line would say), a local
# change in its /etc, v2 staged: config-diff and status show what will be
# carried, and the verdict what was.
export STAGEHAND_DEBUG_CMDLINE="stagehand=/stagehand/deploy/demo/1"
echo local >"$root/stagehand/deploy/demo/1/etc/stagehand-schema-test.conf"
must "$root" --json stage "$TEST_TMP/v2"
sh_on "$root" --json config-diff
conforms report-config-diff "config-diff --json"
sh_on "$root" status --json
conforms status "status --json with /etc changes to carry"
is "$(json 'j["etc_to_carry"]["changes"]')" 1 "... which it shows"
must "$root" finalize-staged
sh_on "$root" status --json
conforms status "status --json after a finalize that merged /etc"
is "$(json 'j["last_finalize"]["etc_changes"]')" 1 "... which it shows"
unset STAGEHAND_DEBUG_CMDLINE

# A staging an earlier boot lost: staged, then the reboot (/run is gone).
must "$root" --json stage "$TEST_TMP/v2"
rm -f "$root/run/stagehand/staged"
sh_on "$root" status --json
conforms status "status --json with a staging that was never finalized"
is "$(json 'j["never_finalized"] is not None')" true "... which it shows"

# A failed finalize: a boot directory where nothing can be created stops it
# before the commit (chattr +i as root, mode a-w otherwise; another tool's
# files no longer stop a finalize).
must "$root" stage "$TEST_TMP/v1"
if [ "$(id -u)" -eq 0 ]; then chattr +i "$root/boot"; else chmod a-w "$root/boot"; fi ||
  bail "cannot make $root/boot unwritable"
sh_on "$root" --json finalize-staged
if [ "$(id -u)" -eq 0 ]; then chattr -i "$root/boot"; else chmod u+w "$root/boot"; fi
sh_on "$root" status --json
conforms status "status --json after a failed finalize"
is "$(json '[j["last_finalize"]["result"], j["last_finalize"]["step"]]')" '["failed", "write-entries"]' \
  "... which it shows"
