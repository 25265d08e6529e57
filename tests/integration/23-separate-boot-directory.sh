#!/bin/bash
# --boot puts the boot configuration and kernels in a directory of its own
# (an ESP or a separate /boot); nothing of it lands in <sysroot>/boot. A
# boot directory that does not exist is not created: a missing mount
# would otherwise be papered over.
. "$(dirname "$0")/lib.sh"

plan 11

make_image "$TEST_TMP/v1" --version 1.0
esp="$TEST_TMP/esp"
sysroot="$TEST_TMP/sysroot"

sh_on "$sysroot" --boot="$esp" init
is "$RC" 1 "init with a --boot directory that does not exist exits 1"
like "$ERR" "$esp.*(does not exist|No such file)" "the message names the boot directory"
ok "the boot directory is not created" test ! -e "$esp"

mkdir "$esp"
sh_on "$sysroot" --boot="$esp" init
is "$RC" 0 "init with an existing --boot directory exits 0" || diag "$ERR"
sh_on "$sysroot" --boot="$esp" deploy "$TEST_TMP/v1"
is "$RC" 0 "deploy with --boot exits 0" || diag "$ERR"
is "$(readlink "$esp/loader")" "loader.1" "the loader link is in the --boot directory"
is "$(ls "$esp/loader/entries")" "stagehand-1-demo-1.conf" "the entry is in the --boot directory"
ok "the kernel is in the --boot directory" test -f "$esp/stagehand/demo-$(bootcsum_of "$TEST_TMP/v1")/vmlinuz"
ok "nothing is written to <sysroot>/boot" test ! -e "$sysroot/boot"
sh_on "$sysroot" --boot="$esp" status --json
is "$(json '[j["boot"]["directory"], j["default"]]')" "[\"$esp\", \"demo/1\"]" "status --json names the --boot directory"
sh_on "$sysroot" status
like "$ERR" "boot directory $sysroot/boot does not exist.*--boot" "without --boot, stagehand says to pass it"
