#!/bin/bash
# IMAGE is a directory, a regular file or a FIFO; anything else is refused
# before it is opened (issue 14, "Also look at"): opening a device can
# have effects of its own (a tape rewinds, a serial line hangs up), so the
# type is checked with stat() first, and again on the opened fd.
. "$(dirname "$0")/lib.sh"

plan $((REFUSED_POINTS + 1))

command -v strace >/dev/null || bail "strace is needed (ci/deps test installs it)"
make_image "$TEST_TMP/v1" --version 1.0
sysroot=$(new_sysroot sysroot)
must "$sysroot" deploy "$TEST_TMP/v1"

ln -s /dev/null "$TEST_TMP/device-image"
refused "a character device as IMAGE" "$sysroot" 1 \
  'device-image.*not a directory, a regular file or a FIFO' -- stage "$TEST_TMP/device-image"

strace -f -qq -o "$TEST_TMP/trace" -e trace=open,openat,openat2 \
  "$STAGEHAND" --sysroot="$sysroot" stage "$TEST_TMP/device-image" >/dev/null 2>&1
unlike "$(grep -E 'device-image|/dev/null' "$TEST_TMP/trace" | grep -v ENOENT)" '.' \
  "the device is never opened"
