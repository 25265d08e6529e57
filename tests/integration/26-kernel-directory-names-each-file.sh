#!/bin/bash
# The kernel directory <boot>/stagehand/<os>-<bootcsum>/ is named by the
# hash of each file (what `sha256sum vmlinuz initramfs.img` prints there),
# not by one hash over the bytes of both: two images whose kernel and
# initramfs differ but concatenate to the same bytes get two directories,
# and each entry boots its own kernel. A deployment staged before that
# framing keeps the bootcsum its origin records: it is read, never
# computed again, so its entry and its kernel directory stay as they are.
. "$(dirname "$0")/lib.sh"

plan 9

# A: kernel "kernel X\n", initramfs "initramfs kernel X\n" (make_image).
# B: kernel "kernel X\ninitramfs", initramfs " kernel X\n": the same bytes
# end to end, split at another place.
make_image "$TEST_TMP/a" --version 1.0 --kernel-content "kernel X"
make_image "$TEST_TMP/b" --version 2.0 --kernel-content "kernel X"
kb="$TEST_TMP/b/usr/lib/modules/6.1.0"
printf 'kernel X\ninitramfs' >"$kb/vmlinuz"
printf ' kernel X\n' >"$kb/initramfs.img"
touch_tree "$TEST_TMP/b"
ka="$TEST_TMP/a/usr/lib/modules/6.1.0"
cmp -s <(cat "$ka/vmlinuz" "$ka/initramfs.img") <(cat "$kb/vmlinuz" "$kb/initramfs.img") \
  || bail "the fixtures do not concatenate to the same bytes"

sysroot=$(new_sysroot sysroot)
must "$sysroot" deploy "$TEST_TMP/a"
must "$sysroot" deploy "$TEST_TMP/b"
csum_a=$(sed -n 's/^bootcsum=//p' "$sysroot/stagehand/deploy/demo/1.origin")
csum_b=$(sed -n 's/^bootcsum=//p' "$sysroot/stagehand/deploy/demo/2.origin")
ok "the two pairs get two bootcsums" test "$csum_a" != "$csum_b"
is "$csum_b" "$(bootcsum_of "$TEST_TMP/b")" "the bootcsum is the hash of the per-file sha256sum listing"
linux_b=$(sed -n 's/^linux //p' "$sysroot/boot/loader/entries/stagehand-2-demo-2.conf")
ok "B's entry boots B's kernel" cmp "$sysroot/boot$linux_b" "$kb/vmlinuz"
ok "A's kernel directory still holds A's kernel" cmp "$sysroot/boot/stagehand/demo-$csum_a/vmlinuz" "$ka/vmlinuz"

# An origin written before the framing: its bootcsum is the SHA-256 of the
# concatenation, and its kernel directory is named by that.
old=$(cat "$ka/vmlinuz" "$ka/initramfs.img" | sha256sum | cut -d' ' -f1)
old_root=$(new_sysroot old)
must "$old_root" deploy "$TEST_TMP/a"
mv "$old_root/boot/stagehand/demo-$csum_a" "$old_root/boot/stagehand/demo-$old"
sed -i "s/^bootcsum=.*/bootcsum=$old/" "$old_root/stagehand/deploy/demo/1.origin"
sed -i "s/$csum_a/$old/" "$old_root/boot/loader/entries/stagehand-1-demo-1.conf"
sh_on "$old_root" deploy "$TEST_TMP/b"
is "$RC" 0 "a deploy next to a deployment with an old bootcsum exits 0" || diag "$ERR"
is "$(sed -n 's/^linux //p' "$old_root/boot/loader/entries/stagehand-1-demo-1.conf")" \
  "/stagehand/demo-$old/vmlinuz" "the old deployment's entry still names its old kernel directory"
ok "no second directory was made for its kernel" test ! -e "$old_root/boot/stagehand/demo-$csum_a"
must "$old_root" cleanup
ok "cleanup keeps the old kernel directory" cmp "$old_root/boot/stagehand/demo-$old/vmlinuz" "$ka/vmlinuz"
status_json "$old_root"
is "$(json 'j["boot"]["warnings"]')" "[]" "status has no warning about it"
