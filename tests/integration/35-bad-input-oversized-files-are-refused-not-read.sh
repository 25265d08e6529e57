#!/bin/bash
# Every file stagehand reads whole is bounded (issue 14, item 7): a sparse
# 5 GiB usr/lib/os-release in an image made `stage` abort inside GLib after
# using 4 GB, leaving its import behind. Above the bound (1 MiB for
# os-release, stagehand.conf, origins, entries and the state files) the
# file is refused with one line naming it, before any of it is read.
. "$(dirname "$0")/lib.sh"

plan $((REFUSED_POINTS + 4))

make_image "$TEST_TMP/v1" --version 1.0
sysroot=$(new_sysroot sysroot)
must "$sysroot" deploy "$TEST_TMP/v1"

make_image "$TEST_TMP/huge-os-release" --version 2.0
truncate -s 5G "$TEST_TMP/huge-os-release/usr/lib/os-release"
# The bound, not the machine, must stop it: at most 1 GiB of address space.
ulimit -v 1048576
refused "an image whose os-release claims 5 GiB" "$sysroot" 1 \
  'os-release.*too large.*5368709120 bytes.*1048576' -- stage "$TEST_TMP/huge-os-release"

# State files: one line naming the file, whatever verb reads them.
cp "$sysroot/stagehand/deploy/demo/1.origin" "$TEST_TMP/origin.saved"
truncate -s 3G "$sysroot/stagehand/deploy/demo/1.origin"
sh_on "$sysroot" status
is "$RC" 1 "status refuses a 3 GiB origin"
like "$ERR" '^stagehand: .*1\.origin.*too large' "the error names the origin and says why"
cp "$TEST_TMP/origin.saved" "$sysroot/stagehand/deploy/demo/1.origin"

truncate -s 2G "$sysroot/stagehand/stagehand.conf"
sh_on "$sysroot" status
is "$RC" 1 "status refuses a 2 GiB stagehand.conf"
like "$ERR" '^stagehand: .*stagehand\.conf.*too large' "the error names stagehand.conf and says why"
