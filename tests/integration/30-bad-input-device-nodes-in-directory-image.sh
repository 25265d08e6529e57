#!/bin/bash
# Device nodes are refused in a directory image too, not only in a tar:
# a deployment tree is no place for a way into the hardware. Except under
# the image's top-level /dev, where root trees made by mmdebstrap,
# debootstrap or `docker export` have them: /dev is a devtmpfs at boot, so
# they are skipped, never created, and stage says how many. Root only
# (mknod needs it); FIFOs are ordinary and allowed.
. "$(dirname "$0")/lib.sh"

if ! is_root; then
  echo "1..0 # SKIP needs root: mknod"
  exit 0
fi
plan $((2 * REFUSED_POINTS + 7))

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

make_image "$TEST_TMP/rootfs" --version 3.0 --kernel-content "kernel three"
mkdir -p "$TEST_TMP/rootfs/dev/pts"
mknod "$TEST_TMP/rootfs/dev/null" c 1 3
mknod "$TEST_TMP/rootfs/dev/console" c 5 1
mknod "$TEST_TMP/rootfs/dev/pts/loop0" b 7 0
ln -s /proc/self/fd "$TEST_TMP/rootfs/dev/fd"
sh_on "$sysroot" stage "$TEST_TMP/rootfs"
is "$RC" 0 "an image with device nodes under /dev stages" || diag "$ERR"
like "$OUT" "Skipped 3 device nodes under the image's /dev" "and says how many device nodes it skipped"
tree=$(deployment_dir "$sysroot" demo/3)
is "$(cd "$tree/dev" && find . | sort | tr '\n' ' ')" ". ./fd ./pts " \
  "the nodes were never created; the rest of /dev is kept"
sh_on "$sysroot" deploy "$TEST_TMP/rootfs"
is "$RC" 0 "deploy of the same image works too" || diag "$ERR"
like "$OUT" "Skipped 3 device nodes under the image's /dev" "and says so too"
