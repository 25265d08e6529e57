#!/bin/bash
# cleanup removes deployments and boot kernels that nothing refers to, and
# the leftovers of interrupted runs, and nothing else: not what the live
# menu, the staged record or the booted deployment (the kernel command
# line) refers to, not a kernel another kept deployment shares, not other
# tools' files in <boot>.
. "$(dirname "$0")/lib.sh"

plan 30

for n in 1 2 3 4; do
  make_image "$TEST_TMP/v$n" --version "$n.0" --kernel-content "kernel $n"
done
# v5 ships the same kernel and initramfs as v1: one boot directory for both.
make_image "$TEST_TMP/v5" --version 5.0 --kernel-content "kernel 1"
for n in 1 2 3 4 5; do csum[$n]=$(bootcsum_of "$TEST_TMP/v$n"); done
kdir() { printf '%s/boot/stagehand/demo-%s\n' "$sysroot" "${csum[$1]}"; }
booted="quiet stagehand=/stagehand/deploy/demo/1"

sysroot=$(new_sysroot sysroot)
must "$sysroot" deploy "$TEST_TMP/v1"
must "$sysroot" deploy "$TEST_TMP/v2"
must "$sysroot" deploy "$TEST_TMP/v3"
# Now: menu demo/3, demo/2; demo/1 out of the menu. Pretend demo/1 is
# booted while staging (stage cleans up first and must keep it), and stage
# twice: demo/4 is replaced by demo/5 and so referenced by nothing.
STAGEHAND_DEBUG_CMDLINE=$booted must "$sysroot" stage "$TEST_TMP/v4"
STAGEHAND_DEBUG_CMDLINE=$booted must "$sysroot" stage "$TEST_TMP/v5"
[ -d "$sysroot/stagehand/deploy/demo/1" ] && [ -d "$sysroot/stagehand/deploy/demo/4" ] \
  || bail "set-up: expected demo/1 and demo/4 to exist before cleanup"

# Leftovers of interrupted runs, and other tools' files in <boot>.
mkdir -p "$sysroot/stagehand/deploy/.import-tmp-AbC123/usr"
mkdir -p "$sysroot/stagehand/deploy/demo/99/usr" # a tree whose origin was never written
mkdir -p "$sysroot/boot/stagehand/.demo-0123-tmp-XyZ789"
echo partial >"$sysroot/boot/stagehand/.demo-0123-tmp-XyZ789/vmlinuz"
ln -s loader.0 "$sysroot/boot/.loader-tmp-QwE456"
mkdir -p "$sysroot/boot/efi/EFI/other"
echo "other bootloader" >"$sysroot/boot/efi/EFI/other/grubx64.efi"
echo "another kernel" >"$sysroot/boot/vmlinuz-6.1.0-other"
printf 'title Other\nlinux /vmlinuz-6.1.0-other\noptions root=/dev/sda1\n' >"$sysroot/boot/loader/entries/other.conf"

live_before=$(boot_snapshot "$sysroot/boot/loader/")
foreign_before=$(boot_snapshot "$sysroot/boot/efi"; sha256sum "$sysroot/boot/vmlinuz-6.1.0-other")
staged_before=$(cat "$sysroot/run/stagehand/staged")

STAGEHAND_DEBUG_CMDLINE=$booted sh_on "$sysroot" cleanup
is "$RC" 0 "cleanup exits 0"
is "$ERR" "" "cleanup prints nothing on stderr"
is "$OUT" "Removed 1 deployment(s), 1 kernel(s), 4 leftover(s) of interrupted runs" "cleanup reports what it removed"
ok "demo/4 (replaced as staged, in no menu, not booted) is removed" test ! -e "$sysroot/stagehand/deploy/demo/4"
ok "demo/4's origin is removed" test ! -e "$sysroot/stagehand/deploy/demo/4.origin"
ok "demo/4's kernel is removed from <boot>" test ! -e "$(kdir 4)"
ok "demo/1 (booted, out of the menu) is kept" test -f "$sysroot/stagehand/deploy/demo/1.origin"
ok "demo/2 (in the live menu) is kept" test -f "$sysroot/stagehand/deploy/demo/2.origin"
ok "demo/3 (the default) is kept" test -f "$sysroot/stagehand/deploy/demo/3.origin"
ok "demo/5 (staged) is kept" test -f "$sysroot/stagehand/deploy/demo/5.origin"
ok "the kernels of demo/1 (= demo/5), demo/2 and demo/3 are kept" \
  test -f "$(kdir 1)/vmlinuz" -a -f "$(kdir 2)/vmlinuz" -a -f "$(kdir 3)/vmlinuz"
ok "the import temp directory is removed" test ! -e "$sysroot/stagehand/deploy/.import-tmp-AbC123"
ok "the tree without an origin is removed" test ! -e "$sysroot/stagehand/deploy/demo/99"
ok "the interrupted kernel copy is removed" test ! -e "$sysroot/boot/stagehand/.demo-0123-tmp-XyZ789"
ok "the interrupted loader link is removed" test ! -L "$sysroot/boot/.loader-tmp-QwE456"
is "$(boot_snapshot "$sysroot/boot/loader/")" "$live_before" "the live entries (other.conf too) are byte-identical"
is "$(boot_snapshot "$sysroot/boot/efi"; sha256sum "$sysroot/boot/vmlinuz-6.1.0-other")" "$foreign_before" \
  "other tools' files in <boot> are untouched"
is "$(cat "$sysroot/run/stagehand/staged")" "$staged_before" "the staged record is untouched"
is "$(temp_leftovers "$sysroot")" "" "no temporary names left anywhere"

# Booted no more (another boot): demo/1 is referenced by nothing, but its
# kernel is also demo/5's.
sh_on "$sysroot" cleanup
is "$RC" 0 "cleanup without demo/1 booted exits 0"
is "$OUT" "Removed 1 deployment(s), 0 kernel(s), 0 leftover(s) of interrupted runs" "cleanup removes demo/1 only"
ok "demo/1 is removed" test ! -e "$sysroot/stagehand/deploy/demo/1"
ok "the kernel demo/1 shared with the staged demo/5 is kept" test -f "$(kdir 5)/vmlinuz"

# Nothing more to do: cleanup again changes nothing.
before=$(boot_snapshot "$sysroot/boot"; deploy_listing "$sysroot")
sh_on "$sysroot" cleanup
is "$OUT" "Removed 0 deployment(s), 0 kernel(s), 0 leftover(s) of interrupted runs" "a second cleanup finds nothing"
is "$(boot_snapshot "$sysroot/boot"; deploy_listing "$sysroot")" "$before" "a second cleanup changes nothing"

# Unstaged, demo/5 and the kernel it shared go too.
must "$sysroot" unstage
sh_on "$sysroot" cleanup
is "$OUT" "Removed 1 deployment(s), 1 kernel(s), 0 leftover(s) of interrupted runs" "after unstage, cleanup removes demo/5 and its kernel"
ok "demo/5 is removed" test ! -e "$sysroot/stagehand/deploy/demo/5"
ok "its kernel is removed" test ! -e "$(kdir 5)"
is "$(ls "$sysroot/stagehand/deploy/demo" | sort | tr '\n' ' ')" "2 2.manifest 2.origin 3 3.manifest 3.origin " "only the menu's deployments remain"
is "$(ls "$sysroot/boot/stagehand" | sort)" "$(printf 'demo-%s\n' "${csum[2]}" "${csum[3]}" | sort)" "only the menu's kernels remain"
