#!/bin/bash
# The main path on a fresh sysroot: init, stage, status, finalize-staged,
# status. Asserts the on-disk result (the entry file byte for byte, the
# loader link, the kernel under its content hash) and the JSON contract.
. "$(dirname "$0")/lib.sh"

plan 52

img="$TEST_TMP/image"
make_image "$img" --os demo --version 1.0 --kver 6.1.0
csum=$(bootcsum_of "$img")
sysroot="$TEST_TMP/sysroot"

# ---- init
sh_on "$sysroot" init
is "$RC" 0 "init exits 0"
is "$ERR" "" "init prints nothing on stderr"
is "$(readlink "$sysroot/boot/loader")" "loader.0" "init: loader -> loader.0"
is "$(find "$sysroot/boot/loader.0/entries" -mindepth 1 | wc -l)" 0 "init: the entries directory is empty"
ok "init: the state directory exists" test -d "$sysroot/stagehand"
boot_after_init=$(boot_snapshot "$sysroot/boot")

sh_on "$sysroot" init
is "$RC" 0 "init again exits 0 (idempotent)"
is "$(boot_snapshot "$sysroot/boot")" "$boot_after_init" "init again leaves <boot> as it was"

# ---- stage
sh_on "$sysroot" stage "$img"
is "$RC" 0 "stage exits 0"
like "$OUT" '^Staged demo/1;' "stage names the new deployment"
is "$ERR" "" "stage prints nothing on stderr when it is not a terminal"
ok "stage: the deployment tree exists" test -d "$sysroot/stagehand/deploy/demo/1"
ok "stage: the origin file exists" test -f "$sysroot/stagehand/deploy/demo/1.origin"
ok "stage: the staged record exists" test -f "$sysroot/run/stagehand/staged"
kdir="$sysroot/boot/stagehand/demo-$csum"
ok "stage: the kernel is in <boot>/stagehand/demo-<sha256 of kernel+initramfs>/" test -d "$kdir"
ok "stage: vmlinuz in <boot> is the image's kernel" \
  cmp "$kdir/vmlinuz" "$img/usr/lib/modules/6.1.0/vmlinuz"
ok "stage: initramfs.img in <boot> is the image's initramfs" \
  cmp "$kdir/initramfs.img" "$img/usr/lib/modules/6.1.0/initramfs.img"
is "$(readlink "$sysroot/boot/loader")" "loader.0" "stage does not touch the boot configuration"
is "$(find "$sysroot/boot/loader/entries" -mindepth 1 | wc -l)" 0 "stage writes no entry"
is "$(temp_leftovers "$sysroot")" "" "stage leaves no temporary names"

# ---- status while staged
status_json "$sysroot"
is "$(json 'j["version"]')" 1 "status --json has a schema version"
is "$(json 'j["staged"]')" "demo/1" "status: staged is demo/1"
is "$(json 'j["booted"]')" "null" "status: nothing is booted (a temp sysroot)"
is "$(json 'j["default"]')" "null" "status: no default yet"
is "$(json '[(d["id"], d["os"], d["version"], d["kernel_version"], d["is_default"], d["is_booted"], d["is_staged"]) for d in j["deployments"]]')" \
  '[["1", "demo", "1.0", "6.1.0", false, false, true]]' "status: one deployment, staged, with id, os, version and kernel version"
is "$(json 'j["deployments"][0]["bootcsum"]')" "$csum" "status: the deployment's bootcsum is the sha256 of kernel + initramfs"
is "$(json '[j["boot"]["directory"], j["boot"]["mode"], j["boot"]["loader_version"], j["boot"]["entries"]]')" \
  "[\"$sysroot/boot\", \"symlink\", 0, []]" "status: boot directory, symlink mode, loader.0, no entries"
is "$(json 'j["lock"]["held"]')" false "status: the lock is free"
is "$(json 'j["last_finalize"]')" null "status: no finalize recorded yet"

# ---- finalize-staged
sh_on "$sysroot" finalize-staged
is "$RC" 0 "finalize-staged exits 0"
like "$OUT" '^Finalized demo/1;' "finalize-staged names the deployment"
is "$ERR" "" "finalize-staged prints nothing on stderr"
is "$(readlink "$sysroot/boot/loader")" "loader.1" "finalize: loader -> loader.1 (the swap)"
ok "finalize: the old loader.0 is tidied away" test ! -e "$sysroot/boot/loader.0"
is "$(ls "$sysroot/boot/loader/entries")" "stagehand-1-demo-1.conf" "finalize: exactly one entry, named for the deployment"
expected_entry="title Test OS 1.0 (demo 1)
version 1-1.0
sort-key 00-stagehand
linux /stagehand/demo-$csum/vmlinuz
initrd /stagehand/demo-$csum/initramfs.img
options stagehand=/stagehand/deploy/demo/1"
is "$(cat "$sysroot/boot/loader/entries/stagehand-1-demo-1.conf")" "$expected_entry" \
  "finalize: the entry file's exact content"
is "$(tail -c1 "$sysroot/boot/loader/entries/stagehand-1-demo-1.conf" | od -An -c | tr -d ' ')" '\n' \
  "finalize: the entry file ends with a newline"
ok "finalize: the staged record is gone" test ! -e "$sysroot/run/stagehand/staged"
is "$(temp_leftovers "$sysroot")" "" "finalize leaves no temporary names"
like "$(cat "$sysroot/stagehand/finalize-result")" 'result=success' "finalize: the verdict file records success"

# ---- status after finalize
status_json "$sysroot"
is "$(json 'j["staged"]')" null "status: nothing staged any more"
is "$(json 'j["default"]')" "demo/1" "status: demo/1 is the default"
is "$(json '[(d["id"], d["is_default"], d["is_booted"], d["is_staged"]) for d in j["deployments"]]')" \
  '[["1", true, false, false]]' "status: the deployment is the default, not staged"
is "$(json '[j["boot"]["mode"], j["boot"]["loader_version"]]')" '["symlink", 1]' "status: live loader.1"
is "$(json '[(e["file"], e["deployment"], e["stagehand"], e["is_default"]) for e in j["boot"]["entries"]]')" \
  '[["stagehand-1-demo-1.conf", "/stagehand/deploy/demo/1", true, true]]' "status: the live entry, for demo/1, default"
is "$(json '[j["last_finalize"]["result"], j["last_finalize"]["deployment"], j["last_finalize"]["error"]]')" \
  '["success", "demo/1", null]' "status: last finalize succeeded for demo/1"
like "$(json 'sorted(j["last_finalize"]["durations_usec"])')" '"swap"' "status: the verdict has per-step durations, the swap among them"

# The text form tells a person the same.
sh_on "$sysroot" status
is "$RC" 0 "status (text) exits 0"
like "$OUT" 'demo/1 \(default\)' "status (text) marks demo/1 as the default"
like "$OUT" 'Last finalize: success for demo/1' "status (text) shows the last finalize"

# ---- nothing staged: finalize-staged is a no-op
boot_before=$(boot_snapshot "$sysroot/boot")
sh_on "$sysroot" finalize-staged
is "$RC" 0 "finalize-staged with nothing staged exits 0"
like "$OUT" 'Nothing is staged' "finalize-staged says nothing is staged"
is "$(boot_snapshot "$sysroot/boot")" "$boot_before" "finalize-staged with nothing staged leaves <boot> as it was"
