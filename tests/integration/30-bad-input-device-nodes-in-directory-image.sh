#!/bin/bash
# Device nodes are refused in a directory image too, not only in a tar:
# a deployment tree is no place for a way into the hardware. Root only
# (mknod needs it); FIFOs are ordinary and allowed.
. "$(dirname "$0")/lib.sh"

if ! is_root; then
  echo "1..0 # SKIP needs root: mknod"
  exit 0
fi
plan $((2 * REFUSED_POINTS + 2))

make_image "$TEST_TMP/v1" --version 1.0
sysroot=$(new_sysroot sysroot)
must "$sysroot" deploy "$TEST_TMP/v1"

make_image "$TEST_TMP/chardev" --version 2.0 --kernel-content "kernel two"
mknod "$TEST_TMP/chardev/usr/lib/zz-null" c 1 3
refused "a character device in a directory image" "$sysroot" 1 'zz-null.*character device' -- stage "$TEST_TMP/chardev"

make_image "$TEST_TMP/blockdev" --version 2.0 --kernel-content "kernel two"
mknod "$TEST_TMP/blockdev/usr/lib/zz-disk" b 7 0
refused "a block device in a directory image" "$sysroot" 1 'zz-disk.*block device' -- stage "$TEST_TMP/blockdev"

make_image "$TEST_TMP/fifo" --version 2.0 --kernel-content "kernel two"
mkfifo "$TEST_TMP/fifo/usr/lib/zz-fifo"
sh_on "$sysroot" stage "$TEST_TMP/fifo"
is "$RC" 0 "a FIFO in a directory image is fine" || diag "$ERR"
ok "and is kept as a FIFO" test -p "$sysroot/stagehand/deploy/demo/2/usr/lib/zz-fifo"
