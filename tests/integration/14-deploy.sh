#!/bin/bash
# deploy = stage + finalize now, under one lock hold: for image builds and
# first installs, on a sysroot that is not the running system.
. "$(dirname "$0")/lib.sh"

plan 20

make_image "$TEST_TMP/v1" --version 1.0 --kver 6.1.0 --layout boot --kernel-content "kernel one"
make_image "$TEST_TMP/v2" --version 2.0 --kver 6.2.0 --kernel-content "kernel two"
csum1=$(bootcsum_of "$TEST_TMP/v1")

sysroot="$TEST_TMP/image-build/root"
sh_on "$sysroot" init
is "$RC" 0 "init creates a sysroot directory that does not exist yet"

sh_on "$sysroot" deploy "$TEST_TMP/v1" --karg=quiet
is "$RC" 0 "deploy exits 0"
like "$OUT" '^Deployed demo/1; it is the default from the next boot' "deploy says what it did"
is "$ERR" "" "deploy prints nothing on stderr"
ok "deploy leaves no staged record" test ! -e "$sysroot/run/stagehand/staged"
is "$(readlink "$sysroot/boot/loader")" "loader.1" "deploy swapped the loader link"
expected="title Test OS 1.0 (demo 1)
version 1-1.0
sort-key 00-stagehand
linux /stagehand/demo-$csum1/vmlinuz
initrd /stagehand/demo-$csum1/initramfs.img
options stagehand=/stagehand/deploy/demo/1 quiet"
is "$(cat "$sysroot/boot/loader/entries/stagehand-1-demo-1.conf")" "$expected" \
  "deploy of a boot/vmlinuz-<kver> image writes the exact entry"
ok "the kernel from boot/vmlinuz-6.1.0 is in <boot>" cmp "$sysroot/boot/stagehand/demo-$csum1/vmlinuz" "$TEST_TMP/v1/boot/vmlinuz-6.1.0"
ok "the initramfs from boot/initrd.img-6.1.0 is in <boot>" \
  cmp "$sysroot/boot/stagehand/demo-$csum1/initramfs.img" "$TEST_TMP/v1/boot/initrd.img-6.1.0"

status_json "$sysroot"
is "$(json '[j["default"], j["staged"], j["last_finalize"]["result"], j["last_finalize"]["deployment"]]')" \
  '["demo/1", null, "success", "demo/1"]' "status: demo/1 default, nothing staged, finalize recorded"
is "$(json 'j["deployments"][0]["kernel_version"]')" "6.1.0" "status: the kernel version from the file name"

sh_on "$sysroot" deploy "$TEST_TMP/v2"
is "$RC" 0 "a second deploy exits 0"
is "$(live_entries "$sysroot")" "stagehand-2-demo-2.conf
stagehand-1-demo-1.conf" "a second deploy: new default first, the first as rollback"
like "$(cat "$sysroot/boot/loader/entries/stagehand-2-demo-2.conf")" 'options stagehand=/stagehand/deploy/demo/2 quiet' \
  "the second deploy inherits the kernel arguments"

# deploy replaces whatever was staged: the explicit request wins.
make_image "$TEST_TMP/v3" --version 3.0 --kernel-content "kernel three"
make_image "$TEST_TMP/v4" --version 4.0 --kernel-content "kernel four"
must "$sysroot" stage "$TEST_TMP/v3"
sh_on "$sysroot" deploy "$TEST_TMP/v4"
is "$RC" 0 "deploy while another deployment is staged exits 0"
is "$(live_entries "$sysroot" | head -n1)" "stagehand-2-demo-4.conf" "the deployed image is the default"
ok "the staged record is gone" test ! -e "$sysroot/run/stagehand/staged"

# --os names the os directory instead of the os-release ID.
sh_on "$sysroot" deploy "$TEST_TMP/v1" --os=other
is "$RC" 0 "deploy --os=other exits 0"
ok "deploy --os=other puts the tree under deploy/other/" test -d "$sysroot/stagehand/deploy/other"
like "$(live_entries "$sysroot" | head -n1)" '^stagehand-2-other-[0-9]+\.conf$' "the --os deployment is the default"
