#!/bin/bash
# A staged update whose finalize never ran: the machine lost power or
# crashed before shutdown, or the finalize process was killed (SIGKILL, the
# OOM killer, a SIGTERM before it blocked its signals). No verdict is
# written, and the staged record lived in /run, so without more the update
# would be lost without a word. `stage` writes the staged-pending marker
# <sysroot>/stagehand/staged-pending; at the next boot
# `status --report-failure` (stagehand-boot-complete.service) finds it with
# no staged record and no verdict naming its deployment, reports it once
# (exit 1, one line: the deployment, when it was staged, what happened,
# what to do) and removes it. `unstage` and a finalize (successful or not)
# remove the marker, so neither is reported as lost; a marker left beside
# a verdict of its deployment's finalize (killed between the two) goes
# silently — but not beside the verdict of an earlier deployment that had
# the same name (ids are reused once the failed one is cleaned up).
#
# The next boot is faked by removing the runtime directory's staged record.

# shellcheck source=tests/lib/fault-lib.sh
. "$(dirname "$0")/../lib/fault-lib.sh"
require_commands python3
require_stagehand
make_temp never-finalized
# A host variable must never make the test pretend a boot it did not ask for.
unset STAGEHAND_DEBUG_CMDLINE

make_test_image "$T/img1" 1
make_test_image "$T/img2" 2
S=$T/sysroot
MARKER=$S/stagehand/staged-pending
RECORD=$S/run/stagehand/staged
V=$S/stagehand/finalize-result
OTHER_BOOT=0123456789abcdef0123456789abcdef

must() {
  sh_at "$S" "$@"
  [ "$SH_RC" -eq 0 ] || { diag_run; bail "stagehand $* failed"; }
}
report() {
  sh_at "$S" status --report-failure
}
never_finalized() {
  sh_at "$S" --json status
  json_get 'j["never_finalized"] and j["never_finalized"]["deployment"]' <"$SH_OUT"
}
marker_field() {
  sed -n "s/^$1=//p" "$MARKER"
}
marker_names() { # the deployment the marker names
  echo "$(marker_field os)/$(marker_field id)"
}
staged_now() { # the deployment the staged record names
  echo "$(sed -n 's/^os=//p' "$RECORD")/$(sed -n 's/^id=//p' "$RECORD")"
}
# The reboot: /run is gone, and with it the staged record.
reboot() {
  rm -f "$RECORD"
}

must init
must deploy "$T/img1"
before=$(date +%s)
must stage "$T/img2" --no-start
after=$(date +%s)

# ------------------------------------------------------------------ stage

ok "stage writes the staged-pending marker" test -f "$MARKER"
is "$(marker_names)" testos/2 "... naming the staged deployment"
staged_usec=$(marker_field staged-usec)
ok "... and when it was staged" test "$((staged_usec / 1000000))" -ge "$before" -a \
  "$((staged_usec / 1000000))" -le "$after"

report
is "$SH_RC" 0 "in the boot that staged it (the staged record is there): nothing to report"
ok "... and the marker stays" test -f "$MARKER"
is "$(never_finalized)" null "status --json: never_finalized is null while it is staged"

# The finalizer is killed outright: no verdict. Whenever the kill lands
# (before main, or while it holds), the outcome is the same.
"$STAGEHAND" --sysroot="$S" finalize-staged --hold </dev/null >/dev/null 2>&1 &
hold=$!
kill -KILL "$hold"
wait "$hold" 2>/dev/null
reboot
ok "the killed finalizer wrote no verdict for testos/2" test "$(sed -n 's/^deployment=//p' "$V")" = testos/1

# ------------------------------------------------------------------ the next boot

is "$(never_finalized)" testos/2 "the next boot: status --json never_finalized names testos/2"
sh_at "$S" --json status
is "$(json_get 'j["never_finalized"]["staged_usec"]' <"$SH_OUT")" "$staged_usec" \
  "... with the time it was staged"
sh_at "$S" status
like "$(cat "$SH_OUT")" "*Never finalized: testos/2, staged * in an earlier boot; *not applied (stage it again)*" \
  "status says testos/2 was never finalized"

report
is "$SH_RC" 1 "status --report-failure exits 1"
is "$(wc -l <"$SH_ERR")" 1 "... with one line"
like "$(cat "$SH_ERR")" \
  "stagehand: deployment testos/2 was staged at * but never finalized: the finalize did not run before the machine went down (power loss, crash, or the finalize process was killed); the previous default was booted. Stage it again." \
  "... naming the deployment, what happened and what to do"
ok "the marker is removed" test ! -e "$MARKER"
is "$(never_finalized)" null "status --json: never_finalized is null once reported"
like "$(summary "$S")" "default=testos/1 menu=testos/1 staged=- verdict=success:testos/1 *" \
  "the previous default is still the default, nothing staged"

report
is "$SH_RC" 0 "the second run exits 0: reported once"
like "$(cat "$SH_OUT")" "*No unreported finalize failure*" "... and says there is nothing to report"
is "$(wc -c <"$SH_ERR")" 0 "... with nothing on stderr"

# ------------------------------------------------------------------ unstage

must stage "$T/img2" --no-start
is "$(marker_names)" "$(staged_now)" "stage again: the marker names the new staged deployment"
must unstage
ok "unstage removes the marker" test ! -e "$MARKER"
reboot
report
is "$SH_RC" 0 "an unstaged deployment is not reported at the next boot"

# ------------------------------------------------------------------ finalize

must stage "$T/img2" --no-start
cp "$MARKER" "$T/marker.finalized"
must finalize-staged
ok "a successful finalize removes the marker" test ! -e "$MARKER"
reboot
report
is "$SH_RC" 0 "a finalized deployment is not reported at the next boot"

# A finalize killed between its verdict and the marker's removal: the
# verdict names the marker's deployment, which it accounts for.
cp "$T/marker.finalized" "$MARKER"
is "$(never_finalized)" null "a marker whose deployment the verdict names: status shows nothing lost"
report
is "$SH_RC" 0 "... and the boot-time check exits 0"
is "$(wc -c <"$SH_ERR")" 0 "... silently"
ok "... removing the marker" test ! -e "$MARKER"

# A finalize that committed but could write neither its verdict nor the
# marker's removal (a read-only state directory): the next boot runs the
# marker's deployment, which says it was applied.
must stage "$T/img2" --no-start
applied=$(staged_now)
cp "$MARKER" "$T/marker.applied"
cp "$V" "$T/verdict.before"
must finalize-staged
cp "$T/marker.applied" "$MARKER"
cp "$T/verdict.before" "$V"
reboot
STAGEHAND_DEBUG_CMDLINE="root=/dev/vda stagehand=/stagehand/deploy/$applied" report
is "$SH_RC:$(wc -c <"$SH_ERR")" 0:0 "a marker of the booted deployment, no verdict of it: exit 0, silently"
ok "... removing the marker" test ! -e "$MARKER"

# A failed finalize: a boot directory that cannot take the new entry set
# stops it before the commit point. Its verdict says so; the marker goes.
must stage "$T/img2" --no-start
failed=$(staged_now)
freeze_dir "$S/boot"
sh_at "$S" finalize-staged
is "$SH_RC" 1 "finalize fails (the boot directory cannot be written)"
thaw_dir "$S/boot"
is "$(sed -n 's/^result=//p' "$V"):$(sed -n 's/^deployment=//p' "$V")" "failed:$failed" \
  "the verdict says failed for $failed"
ok "a failed finalize removes the marker once its verdict is written" test ! -e "$MARKER"
reboot
sed -i "s|^boot-id=.*|boot-id=$OTHER_BOOT|" "$V"
report
is "$SH_RC" 1 "the next boot reports the failed finalize"
is "$(wc -l <"$SH_ERR")" 1 "... once, in one line: not as a lost staging too"
like "$(cat "$SH_ERR")" "stagehand: the previous boot's finalize of $failed failed during write-entries: *" \
  "... from the verdict"

# The updater tries again: stage's cleanup removes the failed deployment,
# and the new one gets its name. That staging is lost too (the machine goes
# down before its finalize): the old verdict of the same name must not hide
# it.
must stage "$T/img2" --no-start
is "$(staged_now)" "$failed" "staging again reuses the name $failed (cleanup removed the failed one)"
reboot
report
is "$SH_RC" 1 "a lost staging is reported though the last verdict (an earlier attempt) has its name"
like "$(cat "$SH_ERR")" "stagehand: deployment $failed was staged at * but never finalized: *" \
  "... as never finalized"

# ------------------------------------------------------------------ no verdict at all

# A system that never finalized: only the marker is there (the boot-complete
# unit's condition allows for that).
S=$T/fresh
MARKER=$S/stagehand/staged-pending
RECORD=$S/run/stagehand/staged
must init
must stage "$T/img1" --no-start
reboot
ok "a fresh system: no verdict, only the marker" test ! -e "$S/stagehand/finalize-result" -a -f "$MARKER"
report
is "$SH_RC" 1 "... is reported at the next boot"
like "$(cat "$SH_ERR")" "stagehand: deployment testos/1 was staged at * but never finalized: *" \
  "... naming testos/1"
report
is "$SH_RC" 0 "... once"

# ------------------------------------------------------------------ staged again before the check

# An updater that stages early at boot, before stagehand-boot-complete ran,
# replaces the lost staging's marker: the stage itself must say what was
# lost, or nothing ever will.
must stage "$T/img2" --no-start
lost=$(marker_names)
reboot
sh_at "$S" stage "$T/img1" --no-start
is "$SH_RC" 0 "staging again before the boot-time check succeeds"
like "$(cat "$SH_ERR")" \
  "*stagehand: warning: deployment $lost was staged at * but never finalized: the finalize did not run before the machine went down *; staging testos/* replaces its staged-pending marker, so the boot-time check will not report it*" \
  "... and warns that $lost was lost, as the check would have"
is "$(marker_names)" "$(staged_now)" "... the marker now names the new staging"
report
is "$SH_RC" 0 "the boot-time check then has nothing to report (the new staging is of this boot)"
sh_at "$S" stage "$T/img2" --no-start
is "$(grep -c 'never finalized' "$SH_ERR")" 0 "staging once more in the same boot warns of nothing"
must unstage

# ------------------------------------------------------------------ corrupt

printf 'garbage\n' >"$MARKER"
report
is "$SH_RC" 1 "a marker that does not parse is reported"
is "$(wc -l <"$SH_ERR")" 1 "... in one line"
like "$(cat "$SH_ERR")" "stagehand: staged-pending marker $MARKER is corrupt: *; removed it. *" \
  "... naming the file, saying it was removed"
ok "... and removed" test ! -e "$MARKER"
report
is "$SH_RC" 0 "... once"

# ------------------------------------------------------------------ the unit

unit=$FAULT_REPO_ROOT/data/systemd/stagehand-boot-complete.service.in
# Booted into a deployment the sysroot is /sysroot, and the root setup's
# marker alone is reason enough (its duration is logged).
is "$(grep '^ConditionPathExists=' "$unit" | sort | paste -sd' ')" \
  "ConditionPathExists=|/run/stagehand/booted ConditionPathExists=|/stagehand/finalize-result ConditionPathExists=|/stagehand/staged-pending ConditionPathExists=|/sysroot/stagehand/finalize-result ConditionPathExists=|/sysroot/stagehand/staged-pending" \
  "stagehand-boot-complete.service runs when the verdict or the marker exists, under / or /sysroot, or when booted into a deployment"

done_testing
