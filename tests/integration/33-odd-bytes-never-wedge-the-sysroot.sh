#!/bin/bash
# Whatever ends up in a deployment's origin file must load again: the
# origin is UTF-8 text, one value per line, and one that does not load
# stops every later command on the sysroot (cleanup included). So odd
# bytes from outside are either made presentable (an image path or an
# os-release that is not UTF-8: shown with replacement characters) or
# refused at stage time with one line (a kernel version, or kernel
# arguments inherited from another tool's default entry, that could not be
# written back faithfully). And --json stays valid JSON throughout.
. "$(dirname "$0")/lib.sh"

plan $((4 * REFUSED_POINTS + 11))

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

# Another tool's entry becomes the default (it sorts first), with odd options.
other="$sysroot/boot/loader/entries/00-other.conf"
printf 'title Other\nsort-key 00-aaa\nlinux /other\noptions root=/dev/caf\xe9 quiet\n' >"$other"
make_image "$TEST_TMP/v3" --version 3.0 --kernel-content "kernel three"
refused "inheriting kernel arguments that are not UTF-8" "$sysroot" 1 \
  'inheriting the kernel arguments of the default entry 00-other\.conf.*UTF-8' -- stage "$TEST_TMP/v3"
printf 'title Other\nsort-key 00-aaa\nlinux /other\noptions root=/dev/sda1 \x01quiet\n' >"$other"
refused "inheriting a kernel argument with a control character" "$sysroot" 1 \
  'inheriting the kernel arguments of the default entry 00-other\.conf.*control character 0x01' -- stage "$TEST_TMP/v3"
rm "$other"

printf '[stagehand]\nkargs=quiet root=/dev/caf\xe9\n' >"$sysroot/stagehand/stagehand.conf"
refused "stagehand.conf kargs that are not UTF-8" "$sysroot" 1 'stagehand\.conf: kargs' -- stage "$TEST_TMP/v3"
rm "$sysroot/stagehand/stagehand.conf"

json_ok "$sysroot" "after the refusals"
