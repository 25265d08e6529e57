#!/bin/bash
# Entries that stagehand did not write and finds in the live entries
# directory are carried into every new entry set byte for byte, whatever
# they contain, and stagehand's new default still sorts first under the
# order boot loaders apply (computed here independently).
. "$(dirname "$0")/lib.sh"

plan 20

make_image "$TEST_TMP/v1" --version 1.0 --kernel-content "kernel one"
make_image "$TEST_TMP/v2" --version 2.0 --kernel-content "kernel two"
sysroot=$(new_sysroot sysroot)
entries="$sysroot/boot/loader/entries"

# What other tools write: kernel-install's entry with a machine-id and
# keys stagehand does not know, no final newline; an entry without a
# sort-key; one that does not even parse; two of one vendor whose versions
# exercise the separator rules ('.' against a letter).
foreign="$TEST_TMP/foreign"
mkdir -p "$foreign"
printf '%s\n' '# Boot Loader Specification type#1 entry' \
  'title      Debian GNU/Linux 12 (bookworm)' \
  'version    6.1.0-13-amd64' \
  'machine-id 0123456789abcdef0123456789abcdef' \
  'sort-key   debian' \
  'options    root=UUID=1b2c ro quiet' \
  'architecture x64' \
  'linux      /0123456789abcdef0123456789abcdef/6.1.0-13-amd64/linux' \
  'initrd     /0123456789abcdef0123456789abcdef/6.1.0-13-amd64/initrd.img-6.1.0-13-amd64' |
  head -c -1 >"$foreign/0123456789abcdef0123456789abcdef-6.1.0-13-amd64.conf"
printf 'title Memory test\nefi /memtest86+/memtest.efi\n' >"$foreign/memtest.conf"
printf 'title broken\nthis-line-has-no-value\n\tlinux\n' >"$foreign/zz-broken.conf"
printf 'title Vendor A\nsort-key vendor\nversion 6.1a\nlinux /a\n' >"$foreign/vendor-a.conf"
printf 'title Vendor B\nsort-key vendor\nversion 6.1.1\nlinux /b\n' >"$foreign/vendor-b.conf"
cp -p "$foreign"/*.conf "$entries/"

# check_carried WHEN: every foreign file is in the live set, byte for byte.
check_carried() {
  local f missing=""
  for f in "$foreign"/*.conf; do
    cmp -s "$f" "$entries/$(basename "$f")" || missing="$missing $(basename "$f")"
  done
  is "$missing" "" "$1: every foreign entry is in the live set, byte for byte"
}

sh_on "$sysroot" status --json
is "$RC" 0 "status reads a menu of foreign entries (one does not parse) without failing"
is "$(json '[e["file"] for e in j["boot"]["entries"]]')" \
  "$(live_entries "$sysroot" | "$PYTHON" -c 'import json,sys; print(json.dumps(sys.stdin.read().split()))')" \
  "status lists foreign entries in the boot loader's order"
is "$(json '[e["stagehand"] for e in j["boot"]["entries"]]')" '[false, false, false, false, false]' \
  "status marks them as not stagehand's"

must "$sysroot" stage "$TEST_TMP/v1"
sh_on "$sysroot" finalize-staged
is "$RC" 0 "finalize with foreign entries present exits 0" || diag "$ERR"
is "$(readlink "$sysroot/boot/loader")" "loader.1" "the swap happened"
check_carried "after the first finalize"
is "$(ls "$entries" | wc -l)" 6 "the live set is the five foreign entries and stagehand's"
is "$(live_entries "$sysroot" | head -n1)" "stagehand-1-demo-1.conf" \
  "stagehand's new default sorts first among foreign entries"
sh_on "$sysroot" status --json
is "$(json '[e["file"] for e in j["boot"]["entries"]]')" \
  "$(live_entries "$sysroot" | "$PYTHON" -c 'import json,sys; print(json.dumps(sys.stdin.read().split()))')" \
  "status lists stagehand's and foreign entries in the boot loader's order"
is "$(json 'j["default"]')" "demo/1" "status: demo/1 is the default"

must "$sysroot" stage "$TEST_TMP/v2"
must "$sysroot" finalize-staged
check_carried "after the second finalize"
is "$(live_entries "$sysroot" | head -n2 | tr '\n' ' ')" "stagehand-2-demo-2.conf stagehand-1-demo-1.conf " \
  "after the second finalize: stagehand's default first, its rollback second"

must "$sysroot" rollback
check_carried "after rollback"
is "$(live_entries "$sysroot" | head -n1)" "stagehand-2-demo-1.conf" "after rollback demo/1 sorts first"

# An entry another tool adds while a deployment is staged: the finalizer
# re-reads the live set at finalize time, so it is not lost either.
make_image "$TEST_TMP/v3" --version 3.0 --kernel-content "kernel three"
must "$sysroot" stage "$TEST_TMP/v3"
printf 'title Late arrival\nsort-key zz\nversion 1\nlinux /late\n' >"$foreign/late.conf"
cp "$foreign/late.conf" "$entries/"
must "$sysroot" finalize-staged
check_carried "an entry added between stage and finalize"
is "$(live_entries "$sysroot" | head -n1)" "stagehand-2-demo-3.conf" "the staged deployment is the default"

# Removing one of them is that tool's business: stagehand does not bring
# it back from an older set.
rm "$entries/memtest.conf" "$foreign/memtest.conf"
make_image "$TEST_TMP/v4" --version 4.0 --kernel-content "kernel four"
must "$sysroot" deploy "$TEST_TMP/v4"
check_carried "after another tool removed its entry"
ok "a removed foreign entry does not come back" test ! -e "$entries/memtest.conf"
is "$(temp_leftovers "$sysroot")" "" "no temporary names left"
is "$(ls "$sysroot/boot" | grep -c '^loader\.')" 1 "one loader.N directory: the old sets are tidied"
