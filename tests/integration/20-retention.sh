#!/bin/bash
# How many deployments the boot menu keeps: retain= in stagehand.conf
# (default 2), never dropping the booted deployment (the way back to what
# runs now). There is no command-line flag for it (only stage's and
# deploy's --karg and --lock-timeout override stagehand.conf; see
# 21-flags-override-conf.sh).
. "$(dirname "$0")/lib.sh"

plan 12

for n in $(seq 1 9); do
  make_image "$TEST_TMP/v$n" --version "$n.0" --kernel-content "kernel $n"
done
sysroot=$(new_sysroot sysroot)
conf="$sysroot/stagehand/stagehand.conf"
menu() { live_entries "$sysroot" | sed -E 's/^stagehand-[0-9]+-demo-([0-9]+)\.conf$/\1/' | tr '\n' ' '; }

for n in 1 2 3; do must "$sysroot" deploy "$TEST_TMP/v$n"; done
is "$(menu)" "3 2 " "default retention: two deployments in the menu, newest first"

printf '# fleet policy\n[stagehand]\nretain=3\n' >"$conf"
must "$sysroot" deploy "$TEST_TMP/v4"
is "$(menu)" "4 3 2 " "retain=3 from stagehand.conf: three in the menu"
must "$sysroot" deploy "$TEST_TMP/v5"
is "$(menu)" "5 4 3 " "retain=3: the oldest leaves the menu"
ok "the deployment that left the menu keeps its tree until cleanup" test -d "$sysroot/stagehand/deploy/demo/2"

printf '[stagehand]\nretain=1\n' >"$conf"
must "$sysroot" deploy "$TEST_TMP/v6"
is "$(menu)" "6 " "retain=1: only the new default"
is "$(ls "$sysroot/boot/loader/entries")" "stagehand-1-demo-6.conf" "retain=1: one entry file"

# The booted deployment always stays: with retain=1 there are two entries.
STAGEHAND_DEBUG_CMDLINE="BOOT_IMAGE=x stagehand=/stagehand/deploy/demo/6 ro" \
  must "$sysroot" deploy "$TEST_TMP/v7"
is "$(menu)" "7 6 " "retain=1 while demo/6 is booted: the new default and the booted one"

# retain=2 while an older deployment is booted: it is kept in place of
# the previous default.
printf '[stagehand]\nretain=2\n' >"$conf"
STAGEHAND_DEBUG_CMDLINE="stagehand=/stagehand/deploy/demo/6" must "$sysroot" deploy "$TEST_TMP/v8"
is "$(menu)" "8 6 " "retain=2 while demo/6 is booted: the new default and the booted one"

# A config without retain keeps the default.
printf '[stagehand]\nkargs=quiet\n' >"$conf"
must "$sysroot" deploy "$TEST_TMP/v9"
is "$(menu)" "9 8 " "a stagehand.conf without retain= keeps two"

# The booted deployment is marked and survives cleanup even out of the menu.
STAGEHAND_DEBUG_CMDLINE="stagehand=/stagehand/deploy/demo/6" status_json "$sysroot"
is "$(json '[j["booted"], [d["id"] for d in j["deployments"] if d["is_booted"]]]')" '["demo/6", ["6"]]' \
  "status: demo/6 is the booted deployment"
STAGEHAND_DEBUG_CMDLINE="stagehand=/stagehand/deploy/demo/6" must "$sysroot" cleanup
is "$(ls "$sysroot/stagehand/deploy/demo" | grep -v -e origin -e manifest | sort -n | tr '\n' ' ')" "6 8 9 " \
  "cleanup keeps the menu's deployments and the booted one"
is "$(ls "$sysroot/boot/stagehand" | wc -l)" 3 "cleanup keeps their three kernels"
