#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The harness's boot loader picks entries in Boot Loader Specification order
# (sort-key ascending, entries without one last; then version newest first;
# then file name descending; entries without sort-key by file name alone).  Later scenarios trust vm_boot_default to boot
# what systemd-boot would, so pin that order down here.  No VM is booted.
. "$(dirname "$0")/lib.sh"

dir=$(mktemp -d)

entry() { # FILE SORT-KEY VERSION
  { echo "title $1"
    [ -z "$2" ] || echo "sort-key $2"
    [ -z "$3" ] || echo "version $3"
    echo "linux /k"
    echo "options a=1"
    echo "options b=2"; } >"$dir/$1.conf"
}

tap_plan 7

entry old debian 1.9
entry new debian 1.10
order=$(vm_bls_sorted "$dir" | tr '\n' ' ')
tap_is "$order" "new.conf old.conf " "version 1.10 sorts before 1.9 (version comparison, not strcmp)"

entry nosortkey "" 99
order=$(vm_bls_sorted "$dir" | tr '\n' ' ')
tap_is "$order" "new.conf old.conf nosortkey.conf " "an entry without sort-key sorts after entries with one"

entry aaa alpha 0.1
order=$(vm_bls_sorted "$dir" | head -n 1)
tap_is "$order" "aaa.conf" "a smaller sort-key wins over a newer version"

rm -f "$dir"/*.conf
entry stagehand-2 os 7
entry stagehand-10 os 7
order=$(vm_bls_sorted "$dir" | tr '\n' ' ')
tap_is "$order" "stagehand-10.conf stagehand-2.conf " "equal sort-key and version: file name descending, by version comparison"

rm -f "$dir"/*.conf
entry b-entry "" 1
entry a-entry "" 2
order=$(vm_bls_sorted "$dir" | tr '\n' ' ')
tap_is "$order" "b-entry.conf a-entry.conf " "without sort-keys the version is ignored: file name descending"

entry stagehand-2 os 7
tap_is "$(vm_bls_get "$dir/stagehand-2.conf" options)" "a=1 b=2" "several options lines are joined"
tap_is "$(vm_bls_get "$dir/stagehand-2.conf" linux)" "/k" "the linux line is read"

rm -rf "$dir"
