#!/bin/bash
# The boot-complete path: stagehand-boot-complete.service runs
# `stagehand status --report-failure` at boot. A finalize of an earlier boot
# that failed (or was not attempted) makes it exit 1, once, with the step
# and the error in one line, and marks the verdict reported
# (`status --json` .last_finalize.reported); the next run exits 0. A failure
# of this very boot is not news (the command that failed said so), a
# success is nothing to report, and neither is no verdict at all.
#
# The earlier boot is faked by rewriting the verdict's boot-id.

# shellcheck source=tests/lib/fault-lib.sh
. "$(dirname "$0")/../lib/fault-lib.sh"
require_commands python3
require_stagehand
make_temp boot-complete

make_test_image "$T/img1" 1
make_test_image "$T/img2" 2
S=$T/sysroot
for args in init "deploy $T/img1" "stage $T/img2 --no-start"; do
  # shellcheck disable=SC2086 # words
  sh_at "$S" $args
  [ "$SH_RC" -eq 0 ] || { diag_run; bail "preparing: stagehand $args failed"; }
done
V=$S/stagehand/finalize-result
OTHER_BOOT=0123456789abcdef0123456789abcdef

set_field() { # KEY VALUE: in the verdict file
  sed -i "s|^$1=.*|$1=$2|" "$V"
}
report() {
  sh_at "$S" status --report-failure
}
reported() {
  sh_at "$S" --json status
  json_get 'j["last_finalize"]["reported"]' <"$SH_OUT"
}

report
is "$SH_RC" 0 "a successful last finalize: nothing to report, exit 0"

# A real failed finalize: a boot directory that cannot take the new entry
# set stops it before the commit point.
freeze_dir "$S/boot"
sh_at "$S" finalize-staged
is "$SH_RC" 1 "finalize fails (the boot directory cannot be written)"
thaw_dir "$S/boot"
is "$(sed -n 's/^result=//p' "$V"):$(sed -n 's/^step=//p' "$V")" "failed:write-entries" \
  "the verdict says failed during write-entries"

report
is "$SH_RC" 0 "a failure of this very boot is not reported at boot (the command said so already)"
is "$(reported)" false "... and stays unreported"

set_field boot-id "$OTHER_BOOT"
report
is "$SH_RC" 1 "a failed finalize of an earlier boot: status --report-failure exits 1"
is "$(wc -l <"$SH_ERR")" 1 "... with one line"
like "$(cat "$SH_ERR")" \
  "stagehand: the previous boot's finalize of testos/2 failed during write-entries: *creating loader.?: *; the previous default was booted instead" \
  "... naming the deployment, the step and the error"
is "$(reported)" true "status --json shows last_finalize.reported = true"
is "$(sed -n 's/^reported=//p' "$V")" true "finalize-result says reported=true"
is "$(sed -n 's/^boot-id=//p' "$V")" "$OTHER_BOOT" "... and still names the boot it happened in"

report
is "$SH_RC" 0 "the second run exits 0: reported once"
like "$(cat "$SH_OUT")" "*No unreported finalize failure*" "... and says there is nothing to report"
is "$(wc -c <"$SH_ERR")" 0 "... with nothing on stderr"

# Not attempted (the lock could not be taken at shutdown).
set_field result not-attempted
set_field step lock
set_field error "timed out after 20 s waiting for the sysroot lock"
set_field reported false
report
is "$SH_RC" 1 "a finalize of an earlier boot that was not attempted: exit 1"
like "$(cat "$SH_ERR")" "stagehand: the previous boot's finalize of testos/2 was not attempted during lock: timed out*" \
  "... saying it was not attempted, and why"
report
is "$SH_RC" 0 "... once"

# A success of an earlier boot is nothing to report.
set_field result success
set_field reported false
report
is "$SH_RC" 0 "a successful finalize of an earlier boot: exit 0"
is "$(reported)" false "... and it is not marked reported (there was nothing to report)"

# No verdict at all (a system that never finalized).
rm "$V"
report
is "$SH_RC" 0 "no verdict at all: exit 0"
ok "... and none is created" test ! -e "$V"

# The unit runs exactly this, fails (and stays failed) when it does.
unit=$FAULT_REPO_ROOT/data/systemd/stagehand-boot-complete.service.in
like "$(grep '^ExecStart=' "$unit")" "ExecStart=*/stagehand status --report-failure" \
  "stagehand-boot-complete.service runs status --report-failure"
is "$(grep -c '^Type=oneshot$\|^RemainAfterExit=yes$' "$unit")" 2 \
  "... as a oneshot that remains (failed) after exit, so systemctl --failed lists it"

done_testing
