#!/bin/bash
# The health-check hook: stagehand-health-check.service runs every
# executable in /etc/stagehand/health-check.d before boot-complete.target,
# which requires it, so a failing check keeps systemd-bless-boot from
# marking the boot good (the boot loader keeps counting, then falls back).
# Here: the runner on a temporary directory, and the unit's wiring.
. "$(dirname "$0")/lib.sh"

plan 14

runner=$REPO_ROOT/data/stagehand-health-check
unit=$REPO_ROOT/data/systemd/stagehand-health-check.service.in
d=$TEST_TMP/health-check.d
mkdir -p "$d"
log=$TEST_TMP/ran

check() { # NAME EXIT: a check that logs its name and exits EXIT
  printf '#!/bin/sh\necho %s >>"%s"\nexit %s\n' "$1" "$log" "$2" >"$d/$1"
  chmod +x "$d/$1"
}
run() {
  RC=0
  : >"$log"
  "$runner" "$d" >"$OUT_FILE" 2>"$ERR_FILE" || RC=$?
  OUT=$(cat "$OUT_FILE")
  ERR=$(cat "$ERR_FILE")
}

run
is "$RC:$ERR" "0:" "no checks: healthy"

check 10-network 0
check 20-app 0
printf 'echo not executable >>"%s"; exit 1\n' "$log" >"$d/30-notes"
cp "$d/20-app" "$d/20-app~"
printf '#!/bin/sh\nexit 1\n' >"$d/20-app.dpkg-old"
chmod +x "$d/20-app.dpkg-old"
run
is "$RC" 0 "passing checks: exit 0"
is "$(cat "$log")" "10-network
20-app" "... each ran once, in name order; not the non-executable file nor the leftovers"
like "$OUT" '2 health checks .* passed' "... and it says so"

check 15-disk 3
run
is "$RC" 1 "a failing check: exit 1"
is "$(cat "$log")" "10-network
15-disk
20-app" "... and the checks after it still ran"
like "$ERR" "stagehand: health check $d/15-disk failed \\(exit 3\\): this boot is not marked good" \
  "... naming the check and its exit status"
like "$ERR" '1 of 3 health checks' "... and counting the failures"

# The wiring: before boot-complete.target, required by it, after the
# system is up; runs the runner on the shipped directory.
is "$(grep -c '^Before=boot-complete.target$' "$unit")" 1 "the unit is ordered before boot-complete.target"
is "$(grep -c '^RequiredBy=boot-complete.target$' "$unit")" 1 "... and boot-complete.target requires it once enabled"
like "$(grep '^After=' "$unit")" 'multi-user.target' "... after the system is up"
is "$(grep '^ExecStart=' "$unit")" "ExecStart=@LIBEXECDIR@/stagehand-health-check /etc/stagehand/health-check.d" \
  "... and runs the runner on /etc/stagehand/health-check.d"
is "$(grep -c '^Type=oneshot$\|^RemainAfterExit=yes$' "$unit")" 2 "... as a oneshot that stays failed"
like "$(grep 'stagehand-health-check' "$REPO_ROOT/data/meson.build")" "install_dir : libexecdir" \
  "the runner is installed to libexecdir"
