#!/bin/bash
# A /boot too small for the new kernel: stage checks the free space before
# copying anything, fails with a message that states the bytes needed and
# available, and leaves nothing behind — no deployment, no temp files, and
# <boot> byte for byte as it was. A kernel that fits still stages.
#
# Root: a loop-mounted 8 MiB ext4 /boot, in a private mount namespace.

# shellcheck source=tests/lib/fault-lib.sh
. "$(dirname "$0")/../lib/fault-lib.sh"
enter_private_namespace "needs root" "$@"
. "$FAULT_LIB_DIR/kernel-features.sh"
needs_kernel ext4 loop
require_commands mkfs.ext4 mount umount truncate python3 find sha256sum
require_stagehand
make_temp enospc-boot

S=$T/sysroot
B=$T/boot
mkdir -p "$S" "$B"
truncate -s 8M "$T/boot.img" || bail "cannot create $T/boot.img"
mkfs.ext4 -q -F -L stagehand-boot "$T/boot.img" || bail "mkfs.ext4 failed"
mount -o loop "$T/boot.img" "$B" || bail "cannot loop-mount $T/boot.img on $B"
AT_EXIT+=("umount '$B'")

make_test_image "$T/img1" 1
# A kernel and an initramfs that together cannot fit in 8 MiB.
make_test_image "$T/big" 2
head -c $((5 * 1024 * 1024)) /dev/zero | tr '\0' k >"$T/big/usr/lib/modules/6.1.0-test/vmlinuz"
head -c $((4 * 1024 * 1024)) /dev/zero | tr '\0' i >"$T/big/usr/lib/modules/6.1.0-test/initramfs.img"
# One that fits.
make_test_image "$T/fits" 3
head -c $((1024 * 1024)) /dev/zero | tr '\0' f >"$T/fits/usr/lib/modules/6.1.0-test/vmlinuz"

run() { sh_at "$S" --boot="$B" "$@"; }

run init
[ "$SH_RC" -eq 0 ] || { diag_run; bail "init failed"; }
run deploy "$T/img1"
[ "$SH_RC" -eq 0 ] || { diag_run; bail "deploy of the first image failed"; }

boot_before=$(tree_snapshot "$B")
summary_before=$(summary "$S" "$B")
free_before=$("$PYTHON" -S -c 'import os, sys
st = os.statvfs(sys.argv[1])
print(st.f_bavail * st.f_frsize)' "$B")
diag "free in $B before: $free_before bytes"

run stage "$T/big" --no-start
is "$SH_RC" 1 "stage of an image whose kernel does not fit exits 1"
msg=$(cat "$SH_ERR")
is "$(wc -l <"$SH_ERR")" 1 "the error is one line"
like "$msg" "stagehand: *not enough space*" "the error says there is not enough space"
needed=$(sed -n 's/.*need \([0-9]*\) bytes, \([0-9]*\) available.*/\1/p' <<<"$msg")
available=$(sed -n 's/.*need \([0-9]*\) bytes, \([0-9]*\) available.*/\2/p' <<<"$msg")
if [ -n "$needed" ] && [ -n "$available" ]; then
  pass "the error states the bytes needed and available"
  ok "the bytes needed cover the kernel and initramfs ($needed >= 9 MiB)" \
    test "$needed" -ge $((9 * 1024 * 1024))
  is "$available" "$free_before" "the bytes available are the free space of $B"
else
  fail "the error states the bytes needed and available"
  diag "got: $msg"
  fail "the bytes needed cover the kernel and initramfs"
  fail "the bytes available are the free space of $B"
fi
like "$msg" "*cleanup*" "the error says what to do about it"

is "$(tree_snapshot "$B")" "$boot_before" "<boot> is byte for byte as it was"
is "$(summary "$S" "$B")" "$summary_before" "no deployment was added and nothing is staged"
is "$(temp_names "$S" "$B")" "" "no temp files are left in the sysroot or <boot>"
ok "no imported tree is left behind" test -z "$(find "$S/stagehand/deploy" -mindepth 1 -maxdepth 1 ! -name testos)"
ok "the invariant holds" invariant "$S" --boot "$B"

run stage "$T/fits" --no-start
is "$SH_RC" 0 "an image whose kernel fits still stages on the same /boot"
[ "$SH_RC" -eq 0 ] || diag_run
ok "the invariant holds with it staged" invariant "$S" --boot "$B"

done_testing
