#!/bin/bash
# Whatever ends up in a deployment's origin file must load again: the
# origin is UTF-8 text, one value per line, and one that does not load
# stops every later command on the sysroot (cleanup included). So odd
# bytes from outside are either made presentable (an image path or an
# os-release that is not UTF-8: shown with replacement characters), left
# out (kernel arguments of another tool's entry that sorts first: they are
# not inherited once stagehand has an entry of its own; see 19-kargs for a
# first install) or refused at stage time with one line (a kernel version
# or stagehand.conf kargs that could not be written back faithfully). And
# --json stays valid JSON throughout.
. "$(dirname "$0")/lib.sh"

plan $((2 * REFUSED_POINTS + 15))

make_image "$TEST_TMP/v1" --version 1.0

# json_ok: status --json works and is valid UTF-8 JSON.
json_ok() {
  sh_on "$1" status --json
  is "$RC" 0 "$2: status --json still works" || diag "$ERR"
  ok "$2: its output is valid UTF-8 JSON" "$PYTHON" -c \
    'import json, sys; json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))' "$OUT_FILE"
}

# An image at a path that is not UTF-8.
odd_path="$TEST_TMP/image-"$'\xe9\xff'
cp -a "$TEST_TMP/v1" "$odd_path"
sysroot=$(new_sysroot path)
sh_on "$sysroot" stage "$odd_path"
is "$RC" 0 "an image at a path that is not UTF-8 stages" || diag "$ERR"
json_ok "$sysroot" "after an image path that is not UTF-8"
sh_on "$sysroot" finalize-staged
is "$RC" 0 "and finalizes" || diag "$ERR"

# An os-release that is not UTF-8.
make_image "$TEST_TMP/latin1" --version 1.0
printf 'ID=demo\nPRETTY_NAME="Caf\xe9 OS"\nVERSION_ID=1\xe9\n' >"$TEST_TMP/latin1/usr/lib/os-release"
sysroot=$(new_sysroot os-release)
sh_on "$sysroot" deploy "$TEST_TMP/latin1"
is "$RC" 0 "an image whose os-release is not UTF-8 deploys" || diag "$ERR"
json_ok "$sysroot" "after an os-release that is not UTF-8"
like "$(json 'j["deployments"][0]["title"]')" '^Caf.+ OS$' "the title is shown, the odd byte replaced"
ok "the entry file is valid UTF-8" iconv -f UTF-8 -t UTF-8 -o /dev/null "$sysroot/boot/loader/entries/stagehand-1-demo-1.conf"

# Refused at stage time, leaving the sysroot usable.
sysroot=$(new_sysroot refusals)
must "$sysroot" deploy "$TEST_TMP/v1"
make_image "$TEST_TMP/kver" --version 2.0 --kver $'6.1.0-caf\xe9' --kernel-content "kernel two"
refused "a kernel version that is not UTF-8" "$sysroot" 1 'kernel version.*not valid UTF-8' -- stage "$TEST_TMP/kver"

# Another tool's entry becomes the default (it sorts first), with odd
# options: stagehand's own entry is where arguments come from, so the odd
# ones never reach an origin.
other="$sysroot/boot/loader/entries/00-other.conf"
make_image "$TEST_TMP/v3" --version 3.0 --kernel-content "kernel three"
for odd in $'root=/dev/caf\xe9 quiet' $'root=/dev/sda1 \x01quiet'; do
  printf 'title Other\nsort-key 00-aaa\nlinux /other\noptions %s\n' "$odd" >"$other"
  sh_on "$sysroot" stage "$TEST_TMP/v3" --no-start
  is "$RC" 0 "another tool's first entry with odd options ($(printf '%q' "$odd")): stage exits 0" || diag "$ERR"
  staged=$(sed -n 's/^id=//p' "$sysroot/run/stagehand/staged")
  is "$(sed -n 's/^kargs=//p' "$sysroot/stagehand/deploy/demo/${staged:-none}.origin" 2>&1)" "" \
    "... the new deployment inherits stagehand's entry's arguments (none), not the other tool's"
  must "$sysroot" unstage
done
rm "$other"

printf '[stagehand]\nkargs=quiet root=/dev/caf\xe9\n' >"$sysroot/stagehand/stagehand.conf"
refused "stagehand.conf kargs that are not UTF-8" "$sysroot" 1 'stagehand\.conf: kargs' -- stage "$TEST_TMP/v3"
rm "$sysroot/stagehand/stagehand.conf"

json_ok "$sysroot" "after the refusals"
