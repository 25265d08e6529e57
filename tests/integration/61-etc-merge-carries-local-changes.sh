#!/bin/bash
# The /etc merge on a temporary sysroot pretending a boot of demo/1
# (STAGEHAND_DEBUG_CMDLINE): what the running system changed in its /etc
# (demo/1's etc/) is carried into the staged deployment at stage, what
# changes after the stage is added at finalize, the new image's own changes
# arrive, a conflict keeps the local version and the new image's beside it
# and is named in the verdict, and the running /etc is never written.
. "$(dirname "$0")/lib.sh"

plan 38

v1="$TEST_TMP/v1"
make_image "$v1" --version 1.0 --kernel-content "kernel one"
printf 'welcome\n' >"$v1/etc/motd"
printf 'Test OS 1\n' >"$v1/etc/issue"
mkdir -p "$v1/etc/ssh"
printf 'Port 22\n' >"$v1/etc/ssh/sshd_config"
chmod 0644 "$v1/etc/ssh/sshd_config"
touch_tree "$v1"
v2="$TEST_TMP/v2"
cp -a "$v1" "$v2"
sed -i 's/VERSION_ID=1.0/VERSION_ID=2.0/' "$v2/usr/lib/os-release"
printf 'kernel two\n' >"$v2/usr/lib/modules/6.1.0/vmlinuz"
printf 'Test OS 2\n' >"$v2/etc/issue"
printf 'new\n' >"$v2/etc/new-in-v2"
touch_tree "$v2"

sysroot=$(new_sysroot sysroot)
must "$sysroot" deploy "$v1"
export STAGEHAND_DEBUG_CMDLINE="root=/dev/vda stagehand=/stagehand/deploy/demo/1"
etc="$sysroot/stagehand/deploy/demo/1/etc"
new="$sysroot/stagehand/deploy/demo/2/etc"

# The administrator's changes in the running /etc.
printf 'web1\n' >"$etc/hostname"
printf 'a=1\n' >"$etc/stagehand-test.conf"
rm "$etc/motd"
chmod 0600 "$etc/ssh/sshd_config"

sh_on "$sysroot" stage "$v2" --no-start
is "$RC" 0 "stage with local /etc changes exits 0"
is "$(cat "$new/hostname")" "web1" "stage carried the modified hostname"
is "$(cat "$new/stagehand-test.conf")" "a=1" "stage carried the added file"
ok "stage carried the removal of motd" test ! -e "$new/motd"
is "$(stat -c %a "$new/ssh/sshd_config")" "600" "stage carried the mode-only change"
is "$(cat "$new/issue")" "Test OS 2" "the new image's changed issue arrives"
is "$(cat "$new/new-in-v2")" "new" "the new image's new file arrives"
ok "stage remembered the running /etc" test -s "$sysroot/stagehand/deploy/demo/2.etc-state"
ok "the new deployment's manifest records its pristine /etc" \
  sh -c "zcat '$sysroot/stagehand/deploy/demo/2.manifest' | grep -q '^etc/ssh d 0755 '"

sh_on "$sysroot" config-diff
is "$RC" 0 "config-diff exits 0"
is "$OUT" "M    /etc/hostname
D    /etc/motd
M    /etc/ssh/sshd_config
A    /etc/stagehand-test.conf" "config-diff lists M/A/D"
sh_on "$sysroot" config-diff --json
is "$(json '" ".join(c["change"] + c["path"] for c in j["changes"])')" \
  "M/etc/hostname D/etc/motd M/etc/ssh/sshd_config A/etc/stagehand-test.conf" \
  "config-diff --json lists the changes in path order"
is "$(json 'len(j["conflicts"])')" 0 "config-diff --json: no conflicts yet"
sh_on "$sysroot" status
like "$OUT" '/etc: 4 local changes will be carried into demo/2, 0 conflicts' "status says how many changes will be carried"
status_json "$sysroot"
is "$(json '[j["etc_to_carry"]["changes"], j["etc_to_carry"]["conflicts"]]')" "[4, 0]" "status --json says so too"

# After the stage: edited again, and a conflict with the new image.
printf 'a=2\n' >>"$etc/stagehand-test.conf"
printf 'local banner\n' >"$etc/issue"
printf 'after stage\n' >"$etc/later.conf"
snapshot_running=$(cd "$etc" && find . -printf '%p %y %m %s %T@\n' | sort && cat "$etc"/* 2>/dev/null | sha256sum)

sh_on "$sysroot" config-diff
like "$OUT" 'C    /etc/issue: changed locally and by the new image; the new image.s version goes to /etc/issue.stagehand-new' "config-diff names the conflict before the reboot"

sh_on "$sysroot" finalize-staged
is "$RC" 0 "finalize with a conflict succeeds"
like "$ERR" '/etc/issue: changed locally and by the new image' "finalize logs the conflict"
is "$(live_entries "$sysroot" | head -n1)" "stagehand-2-demo-2.conf" "demo/2 is the default"
is "$(cat "$new/stagehand-test.conf")" "a=1
a=2" "finalize carried the edit made after the stage"
is "$(cat "$new/later.conf")" "after stage" "finalize carried a file added after the stage"
is "$(cat "$new/issue")" "local banner" "a conflict keeps the local version"
is "$(cat "$new/issue.stagehand-new")" "Test OS 2" "and the new image's version beside it"
is "$(cat "$new/hostname")" "web1" "what stage carried stays"
ok "motd stays removed" test ! -e "$new/motd"
is "$(cat "$new/new-in-v2")" "new" "the new image's new file stays"
is "$(cd "$etc" && find . -printf '%p %y %m %s %T@\n' | sort && cat "$etc"/* 2>/dev/null | sha256sum)" \
  "$snapshot_running" "the running /etc was never written"
result="$sysroot/stagehand/finalize-result"
like "$(cat "$result")" '\[etc-merge\]' "the verdict has an [etc-merge] group"
like "$(cat "$result")" 'conflicts=/etc/issue: changed locally and by the new image \(the new image.s version is /etc/issue.stagehand-new\)' "the verdict names the conflict"
like "$(cat "$result")" 'changes=6' "the verdict counts the changes carried"
like "$(cat "$result")" '^etc-merge=[0-9]+' "the verdict has the merge step's duration"
status_json "$sysroot"
like "$(json 'j["last_finalize"]["etc_conflicts"][0]')" '^/etc/issue: ' "status --json shows the conflict"
is "$(json 'j["last_finalize"]["etc_changes"]')" 6 "status --json shows the number of changes carried"
is "$(temp_leftovers "$sysroot")" "" "no temporary names left"
ok "the merge's state is gone once the finalize committed" test ! -e "$sysroot/stagehand/deploy/demo/2.etc-state"

# Names that are not UTF-8 are carried and shown escaped.
printf 'x\n' >"$etc/caf$(printf '\351').conf"
sh_on "$sysroot" config-diff --json
like "$(json '[c["path"] for c in j["changes"] if "caf" in c["path"]][0]')" '^/etc/caf\\xe9\.conf$' "config-diff escapes a name that is not UTF-8"

# Nothing booted from this sysroot: nothing to compare.
STAGEHAND_DEBUG_CMDLINE="" sh_on "$sysroot" config-diff
is "$RC" 1 "config-diff without a booted deployment exits 1"
like "$ERR" '^stagehand: no deployment of this sysroot is booted' "and says why in one line"
