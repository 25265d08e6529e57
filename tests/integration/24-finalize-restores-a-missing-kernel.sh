#!/bin/bash
# Kernels are copied into <boot> at stage time; if one has gone missing
# since (a /boot cleaner, a hand), finalize and rollback copy it again
# from the deployment, say so in one warning, and never write an entry
# that points at nothing. A kernel directory that is still there is not
# taken on trust: a file deleted from it, or replaced by one of another
# size, is copied again too. (Warnings go to stderr only where there is no
# journal; with one they are journal events and those points skip.)
. "$(dirname "$0")/lib.sh"

journal=""
[ -w /run/systemd/journal/socket ] && journal="warnings go to the journal on this host"

plan 16

make_image "$TEST_TMP/v1" --version 1.0 --kernel-content "kernel one"
make_image "$TEST_TMP/v2" --version 2.0 --kernel-content "kernel two"
csum1=$(bootcsum_of "$TEST_TMP/v1")
csum2=$(bootcsum_of "$TEST_TMP/v2")
sysroot=$(new_sysroot sysroot)
must "$sysroot" deploy "$TEST_TMP/v1"
must "$sysroot" stage "$TEST_TMP/v2"

rm -r "$sysroot/boot/stagehand/demo-$csum2"
sh_on "$sysroot" finalize-staged
is "$RC" 0 "finalize with the staged kernel gone from <boot> exits 0"
if [ -z "$journal" ]; then
  like "$ERR" 'warning: the kernel of demo/2 was missing .*copied it again' "it warns, naming the deployment"
  is "$(printf '%s' "$ERR" | grep -c '')" 1 "in one line"
else
  skip 2 "$journal"
fi
ok "the kernel is back, the image's" cmp "$sysroot/boot/stagehand/demo-$csum2/vmlinuz" "$TEST_TMP/v2/usr/lib/modules/6.1.0/vmlinuz"
ok "the initramfs is back, the image's" \
  cmp "$sysroot/boot/stagehand/demo-$csum2/initramfs.img" "$TEST_TMP/v2/usr/lib/modules/6.1.0/initramfs.img"
like "$(cat "$sysroot/boot/loader/entries/stagehand-2-demo-2.conf")" "linux /stagehand/demo-$csum2/vmlinuz" \
  "the new default's entry points at it"

rm -r "$sysroot/boot/stagehand/demo-$csum1"
sh_on "$sysroot" rollback
is "$RC" 0 "rollback with the previous kernel gone exits 0"
if [ -z "$journal" ]; then like "$ERR" 'warning: the kernel of demo/1 was missing' "it warns"; else skip 1 "$journal"; fi
ok "the previous kernel is back" cmp "$sysroot/boot/stagehand/demo-$csum1/vmlinuz" "$TEST_TMP/v1/usr/lib/modules/6.1.0/vmlinuz"

# Now demo/1 is the default, demo/2 second. Delete demo/2's kernel from its
# directory and cut demo/1's initramfs short; the directories stay.
rm "$sysroot/boot/stagehand/demo-$csum2/vmlinuz"
printf 'short\n' >"$sysroot/boot/stagehand/demo-$csum1/initramfs.img"
sh_on "$sysroot" rollback
is "$RC" 0 "rollback with a kernel deleted from its directory exits 0"
if [ -z "$journal" ]; then
  like "$ERR" 'warning: the kernel directory of demo/2 .*incomplete.*copied it again' "it warns, naming demo/2"
  like "$ERR" 'warning: the kernel directory of demo/1 .*incomplete.*copied it again' "and demo/1"
else
  skip 2 "$journal"
fi
ok "the deleted kernel is back" cmp "$sysroot/boot/stagehand/demo-$csum2/vmlinuz" "$TEST_TMP/v2/usr/lib/modules/6.1.0/vmlinuz"
ok "the shortened initramfs is the image's again" \
  cmp "$sysroot/boot/stagehand/demo-$csum1/initramfs.img" "$TEST_TMP/v1/usr/lib/modules/6.1.0/initramfs.img"
ok "the untouched kernel is still the image's" cmp "$sysroot/boot/stagehand/demo-$csum1/vmlinuz" "$TEST_TMP/v1/usr/lib/modules/6.1.0/vmlinuz"
is "$(temp_leftovers "$sysroot")" "" "no temporary names left"
