#!/bin/bash
# stagehand-boot-complete.service runs `status --report-failure` at every
# boot. Opening the boot directory would trigger an automounted /boot (and
# its fsck) for nothing: the verdict lives in the sysroot. Prove it never
# opens, stats or lists anything under <boot> — neither for a failed
# finalize nor after an update that applied (the deployment the last
# finalize made the default is the one running). Only when another one
# runs does it read the entry names, to see whether the boot loader fell
# back (57-*).
. "$(dirname "$0")/lib.sh"

plan 7

command -v strace >/dev/null || bail "strace is needed (ci/deps test installs it)"
make_image "$TEST_TMP/v1" --version 1.0 --kver 6.1.0 --kernel-content "kernel one"
sysroot="$TEST_TMP/root"
must "$sysroot" init
must "$sysroot" deploy "$TEST_TMP/v1"
# A failure recorded in another boot, not yet reported.
cat >"$sysroot/stagehand/finalize-result" <<VERDICT
[finalize]
result=failed
deployment=demo/1
step=swap
error=Read-only file system
boot-id=00000000-0000-0000-0000-000000000000
reported=false
VERDICT

trace="$TEST_TMP/trace"
strace -f -qq -o "$trace" -e trace=%file,%desc "$STAGEHAND" --sysroot="$sysroot" status \
  --report-failure >/dev/null 2>"$TEST_TMP/err"
is "$?" 1 "the unreported failure fails the check"
like "$(cat "$TEST_TMP/err")" 'finalize of demo/1 failed during swap' "and says what failed"
unlike "$(grep -F "$sysroot/boot" "$trace")" '.' "nothing under <boot> is touched"
ok "the verdict is now marked reported" grep -q '^reported=true' "$sysroot/stagehand/finalize-result"

# An update that applied: the verdict's deployment is the booted one.
must "$sysroot" deploy "$TEST_TMP/v1"
export STAGEHAND_DEBUG_CMDLINE="stagehand=/stagehand/deploy/demo/2"
sed -i 's/^boot-id=.*/boot-id=00000000-0000-0000-0000-000000000000/' "$sysroot/stagehand/finalize-result"
strace -f -qq -o "$trace" -e trace=%file,%desc "$STAGEHAND" --sysroot="$sysroot" status \
  --report-failure >/dev/null 2>"$TEST_TMP/err"
is "$?" 0 "an update that applied: nothing to report"
like "$(grep -F "finalize-result" "$trace")" '.' "(the check read the verdict)"
unlike "$(grep -F "$sysroot/boot" "$trace")" '.' "nothing under <boot> is touched"
