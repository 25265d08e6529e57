#!/bin/bash
# An image must have exactly one kernel: none, two in one layout, or one in
# each layout is refused with one line saying so, and nothing is left.
. "$(dirname "$0")/lib.sh"

plan $((7 * REFUSED_POINTS + 1))

make_image "$TEST_TMP/v1" --version 1.0
sysroot=$(new_sysroot sysroot)
must "$sysroot" deploy "$TEST_TMP/v1"

make_image "$TEST_TMP/no-kernel" --version 2.0
rm -r "$TEST_TMP/no-kernel/usr/lib/modules"
refused "an image without a kernel" "$sysroot" 1 'no kernel' -- stage "$TEST_TMP/no-kernel"

# A modules directory without vmlinuz (modules only) is no kernel either.
make_image "$TEST_TMP/modules-only" --version 2.0
rm "$TEST_TMP/modules-only/usr/lib/modules/6.1.0/vmlinuz"
refused "an image with modules but no vmlinuz" "$sysroot" 1 'no kernel' -- stage "$TEST_TMP/modules-only"

# A vmlinuz that is a symlink (it could point anywhere) does not count.
make_image "$TEST_TMP/link-kernel" --version 2.0
ln -sf /boot/vmlinuz "$TEST_TMP/link-kernel/usr/lib/modules/6.1.0/vmlinuz"
refused "an image whose vmlinuz is a symlink" "$sysroot" 1 'no kernel' -- stage "$TEST_TMP/link-kernel"

make_image "$TEST_TMP/two-kernels" --version 2.0 --kver 6.1.0
mkdir -p "$TEST_TMP/two-kernels/usr/lib/modules/6.2.0"
echo "second kernel" >"$TEST_TMP/two-kernels/usr/lib/modules/6.2.0/vmlinuz"
refused "an image with two kernels in usr/lib/modules" "$sysroot" 1 '2 kernels.*6\.[12]\.0.*6\.[12]\.0.*exactly one' \
  -- stage "$TEST_TMP/two-kernels"

make_image "$TEST_TMP/both-layouts" --version 2.0 --kver 6.1.0
mkdir -p "$TEST_TMP/both-layouts/boot"
echo "other kernel" >"$TEST_TMP/both-layouts/boot/vmlinuz-5.10.0"
refused "an image with a kernel in each layout" "$sysroot" 1 '2 kernels.*exactly one' \
  -- stage "$TEST_TMP/both-layouts"

# A kernel version with a control character would end up in the origin
# file, which would then not load: every later command would fail.
make_image "$TEST_TMP/newline-kver" --version 2.0 --kver $'6.1.0\ninitrd evil'
refused "an image whose kernel version has a newline" "$sysroot" 1 'kernel version.*control character 0x0a' \
  -- stage "$TEST_TMP/newline-kver"
make_image "$TEST_TMP/esc-kver" --version 2.0 --kver $'6.1.0\e[2J' --layout boot
refused "an image whose boot/vmlinuz-<kver> has an escape character" "$sysroot" 1 'kernel version.*control character 0x1b' \
  -- stage "$TEST_TMP/esc-kver"
sh_on "$sysroot" status
is "$RC" 0 "status still works: no unreadable origin was left" || diag "$ERR"
