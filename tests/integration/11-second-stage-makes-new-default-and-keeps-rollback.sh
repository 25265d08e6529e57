#!/bin/bash
# A second update: the new deployment becomes the default at finalize and
# the one before it stays in the menu as the way back. The order is the
# one boot loaders apply (Boot Loader Specification: sort-key, version,
# file name), computed here independently of stagehand.
. "$(dirname "$0")/lib.sh"

plan 25

make_image "$TEST_TMP/v1" --version 1.0 --kver 6.1.0 --kernel-content "kernel one"
make_image "$TEST_TMP/v2" --version 2.0 --kver 6.2.0 --kernel-content "kernel two"
csum1=$(bootcsum_of "$TEST_TMP/v1")
csum2=$(bootcsum_of "$TEST_TMP/v2")
sysroot=$(new_sysroot sysroot)

must "$sysroot" stage "$TEST_TMP/v1"
must "$sysroot" finalize-staged
entry1_before=$(cat "$sysroot/boot/loader/entries/stagehand-1-demo-1.conf")

sh_on "$sysroot" stage "$TEST_TMP/v2"
is "$RC" 0 "second stage exits 0"
like "$OUT" '^Staged demo/2;' "second stage makes demo/2"
is "$(ls "$sysroot/boot/loader/entries")" "stagehand-1-demo-1.conf" "second stage leaves the live menu alone"
ok "second stage: its kernel is in <boot> under its own hash" test -f "$sysroot/boot/stagehand/demo-$csum2/vmlinuz"
ok "second stage: the first kernel stays" test -f "$sysroot/boot/stagehand/demo-$csum1/vmlinuz"

status_json "$sysroot"
is "$(json '[(d["id"], d["is_default"], d["is_staged"]) for d in j["deployments"]]')" \
  '[["2", false, true], ["1", true, false]]' "status: demo/2 staged, demo/1 still the default"

loader_before=$(readlink "$sysroot/boot/loader")
sh_on "$sysroot" finalize-staged
is "$RC" 0 "finalize of the second stage exits 0"
isnt_loader=$(readlink "$sysroot/boot/loader")
ok "finalize flips the loader link ($loader_before -> $isnt_loader)" test "$isnt_loader" != "$loader_before"
is "$(ls "$sysroot/boot/loader/entries" | sort)" "stagehand-1-demo-1.conf
stagehand-2-demo-2.conf" "two entries: the new default and the rollback"
is "$(live_entries "$sysroot" | head -n1)" "stagehand-2-demo-2.conf" \
  "demo/2 sorts first under the Boot Loader Specification order (it is the default)"
is "$(live_entries "$sysroot" | sed -n 2p)" "stagehand-1-demo-1.conf" "demo/1 sorts second (the rollback entry)"

expected2="title Test OS 2.0 (demo 2)
version 2-2.0
sort-key 00-stagehand
linux /stagehand/demo-$csum2/vmlinuz
initrd /stagehand/demo-$csum2/initramfs.img
options stagehand=/stagehand/deploy/demo/2"
is "$(cat "$sysroot/boot/loader/entries/stagehand-2-demo-2.conf")" "$expected2" "the new default entry's exact content"
is "$(cat "$sysroot/boot/loader/entries/stagehand-1-demo-1.conf")" "$entry1_before" \
  "the rollback entry is the same as when it was the default"

status_json "$sysroot"
is "$(json 'j["default"]')" "demo/2" "status: demo/2 is the default"
is "$(json '[(d["id"], d["is_default"], d["is_staged"]) for d in j["deployments"]]')" \
  '[["2", true, false], ["1", false, false]]' "status: deployments in menu order, demo/2 default"
is "$(json '[e["file"] for e in j["boot"]["entries"]]')" \
  '["stagehand-2-demo-2.conf", "stagehand-1-demo-1.conf"]' "status lists the entries in boot order"

# The same again with a version that sorts lower as a string: the new
# default must still come first (its version is not the OS version alone).
make_image "$TEST_TMP/v3" --version 0.9 --kver 5.10.0 --kernel-content "kernel three, an older OS version"
must "$sysroot" stage "$TEST_TMP/v3"
must "$sysroot" finalize-staged
is "$(live_entries "$sysroot")" "stagehand-2-demo-3.conf
stagehand-1-demo-2.conf" "an older OS version staged last is still the default; the previous one is the rollback"
is "$(readlink "$sysroot/boot/loader")" "$loader_before" "the third finalize flips the link back"
ok "the other loader.N is tidied away" test ! -e "$sysroot/boot/$isnt_loader"
ok "demo/1, out of the menu (retain 2), keeps its tree until cleanup" test -d "$sysroot/stagehand/deploy/demo/1"
status_json "$sysroot"
is "$(json '[(d["id"], d["is_default"]) for d in j["deployments"] if d["id"] != "1"]')" '[["3", true], ["2", false]]' \
  "status: demo/3 default, demo/2 next"
is "$(temp_leftovers "$sysroot")" "" "no temporary names anywhere"

# The same kernel again (same bootcsum): nothing is copied into <boot>.
kernel_before=$(stat -c '%i %Y' "$sysroot/boot/stagehand/demo-$(bootcsum_of "$TEST_TMP/v3")/vmlinuz")
make_image "$TEST_TMP/v3b" --version 3.1 --kver 5.10.0 --kernel-content "kernel three, an older OS version"
sh_on "$sysroot" stage "$TEST_TMP/v3b"
is "$RC" 0 "staging a new image with an unchanged kernel exits 0"
is "$(stat -c '%i %Y' "$sysroot/boot/stagehand/demo-$(bootcsum_of "$TEST_TMP/v3b")/vmlinuz")" "$kernel_before" \
  "an unchanged kernel is not copied again (same file in <boot>)"
is "$(sed -n 's/^bootcsum=//p' "$sysroot/stagehand/deploy/demo/4.origin")" "$(bootcsum_of "$TEST_TMP/v3")" \
  "both deployments name the same boot directory"
