#!/bin/bash
# A stage that fails after the import (installing the kernel, writing the
# staged record) removes what it made: no tree, no origin, no kernel in
# <boot>. A finalize or rollback that cannot write the new entry set leaves
# the live one as it was, keeps the staged record for a retry, and records
# the failed step for the next boot. The failures are made real: the
# directory written to is made immutable (chattr +i as root, read-only
# otherwise).
. "$(dirname "$0")/lib.sh"

plan $((5 * REFUSED_POINTS + 9))

make_image "$TEST_TMP/v1" --version 1.0 --kernel-content "kernel one"
make_image "$TEST_TMP/v2" --version 2.0 --kernel-content "kernel two"
make_image "$TEST_TMP/v3" --version 3.0 --kernel-content "kernel three"
sysroot=$(new_sysroot sysroot)
must "$sysroot" deploy "$TEST_TMP/v1"
must "$sysroot" deploy "$TEST_TMP/v2"
freeze "$sysroot/boot/stagehand" || bail "cannot make a directory immutable here (chattr +i on this filesystem?)"
thaw "$sysroot/boot/stagehand"

# The kernel cannot be installed.
freeze "$sysroot/boot/stagehand"
refused "stage when the kernel cannot be installed" "$sysroot" 1 'installing the kernel' -- stage "$TEST_TMP/v3"
# The first deployment of an os: its deploy/<os>/ goes too (issue 14,
# item 12: a stage out of space left an empty one).
refused "stage of a new os when the kernel cannot be installed" "$sysroot" 1 'installing the kernel' \
  -- stage "$TEST_TMP/v3" --os other
thaw "$sysroot/boot/stagehand"

# The staged record cannot be written: the kernel was installed by then.
freeze "$sysroot/run/stagehand"
refused "stage when the staged record cannot be written" "$sysroot" 1 'staged record' -- stage "$TEST_TMP/v3"
thaw "$sysroot/run/stagehand"

# The new entry set cannot be written.
must "$sysroot" stage "$TEST_TMP/v3"
freeze "$sysroot/boot"
refused "finalize-staged when the entry set cannot be written" "$sysroot" 1 'finalizing demo/3.*write-entries' \
  -- finalize-staged
ok "the staged record is kept for a retry" test -f "$sysroot/run/stagehand/staged"
thaw "$sysroot/boot"

status_json "$sysroot"
is "$(json '[j["last_finalize"]["result"], j["last_finalize"]["deployment"], j["last_finalize"]["step"]]')" \
  '["failed", "demo/3", "write-entries"]' "the verdict records the failed step for the next boot"
like "$(json 'j["last_finalize"]["error"]')" '[Oo]peration not permitted|[Pp]ermission denied' "and the system error"
is "$(json 'j["default"]')" "demo/2" "demo/2 is still the default"
is "$(json 'j["staged"]')" "demo/3" "demo/3 is still staged"

sh_on "$sysroot" finalize-staged
is "$RC" 0 "once <boot> is writable again, finalize-staged succeeds" || diag "$ERR"
is "$(live_entries "$sysroot" | head -n1)" "stagehand-2-demo-3.conf" "demo/3 is the default"

freeze "$sysroot/boot"
refused "rollback when the entry set cannot be written" "$sysroot" 1 'rolling back to demo/2' -- rollback
thaw "$sysroot/boot"
is "$(live_entries "$sysroot" | head -n1)" "stagehand-2-demo-3.conf" "demo/3 is still the default"
is "$(temp_leftovers "$sysroot")" "" "no temporary names anywhere"
