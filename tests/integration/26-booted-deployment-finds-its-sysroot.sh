#!/bin/bash
# Booted into a deployment, the physical root is at /sysroot and
# stagehand-root-setup has left /run/stagehand/booted. With no flags,
# every command then works on /sysroot, with the running system's /boot
# and /run/stagehand; status names the booted deployment; boot-complete
# logs the root setup's duration. Without the marker nothing changes; a
# corrupt marker fails with one line.
#
# STAGEHAND_DEBUG_ROOT stands in for the running system's / (tests only):
# $R/sysroot, $R/boot and $R/run/stagehand/booted as a booted system has
# them at /sysroot, /boot and /run/stagehand/booted.
. "$(dirname "$0")/lib.sh"

plan 17

R=$TEST_TMP/root
mkdir -p "$R/run/stagehand" "$R/boot"
make_image "$TEST_TMP/v1" --version 1.0
make_image "$TEST_TMP/v2" --version 2.0 --kernel-content "kernel two"
run_stagehand --sysroot="$R/sysroot" --boot="$R/boot" init
[ "$RC" -eq 0 ] || bail "init failed: $ERR"
run_stagehand --sysroot="$R/sysroot" --boot="$R/boot" deploy "$TEST_TMP/v1"
[ "$RC" -eq 0 ] || bail "deploy failed: $ERR"

# What the root setup writes (src/root-setup/main.c, write_marker()).
cat >"$R/run/stagehand/booted" <<EOM
# Written by stagehand-root-setup in the initramfs.
[booted]
deployment=demo/1
sysroot=/sysroot
setup-usec=4321
EOM
export STAGEHAND_DEBUG_ROOT=$R
export STAGEHAND_DEBUG_CMDLINE="root=/dev/vda2 stagehand=/stagehand/deploy/demo/1"

run_stagehand --json status
is "$RC" 0 "status with no flags exits 0" || diag "$ERR"
is "$(json 'j["sysroot"]')" "$R/sysroot" "its sysroot is /sysroot"
is "$(json 'j["boot"]["directory"]')" "$R/boot" "its boot directory is the running system's /boot"
is "$(json 'j["booted"]')" "demo/1" "it names the booted deployment"
run_stagehand status
like "$OUT" "demo/1.*booted" "so does the text output"

run_stagehand stage --no-start "$TEST_TMP/v2"
is "$RC" 0 "stage with no flags exits 0" || diag "$ERR"
ok "the staged record is in the running system's /run/stagehand" test -f "$R/run/stagehand/staged"
ok "not below the sysroot" test ! -e "$R/sysroot/run/stagehand/staged"
ok "the new deployment is under /sysroot" test -d "$R/sysroot/stagehand/deploy/demo/2"
run_stagehand finalize-staged
is "$RC" 0 "finalize-staged with no flags exits 0" || diag "$ERR"
like "$(cat "$R"/boot/loader/entries/*.conf)" "stagehand=/stagehand/deploy/demo/2" \
  "and writes the entry into the running system's /boot"

run_stagehand -v status --report-failure
is "$RC" 0 "boot-complete's check exits 0" || diag "$ERR"
if [ -S /run/systemd/journal/socket ]; then
  skip 1 "the journal takes the root setup's duration here"
else
  like "$ERR" "booted deployment demo/1, physical root at /sysroot; the initramfs root setup took 4321 us" \
    "and logs the root setup's duration"
fi

# An explicit --sysroot still wins.
run_stagehand --sysroot="$TEST_TMP/elsewhere" status
like "$ERR" "opening sysroot $TEST_TMP/elsewhere" "an explicit --sysroot still wins"

printf '[booted]\ndeployment=demo/../1\nsysroot=/sysroot\n' >"$R/run/stagehand/booted"
run_stagehand status
is "$RC" 1 "a corrupt marker: status exits 1"
like "$ERR" "^stagehand: the booted-deployment marker $R/run/stagehand/booted is corrupt: deployment=demo/\.\./1: contains \"\.\.\"" \
  "with one line naming the marker and the reason"

rm "$R/run/stagehand/booted"
run_stagehand --json status
like "$ERR" "sysroot $R is not initialised" "without the marker the default sysroot is / again"
