#!/bin/bash
# A kernel argument that would break the entry file is refused before
# anything happens: a newline or any other control character would inject
# lines into the entry. Invalid option values are usage errors (exit 2),
# like an unknown option; the same in stagehand.conf is a configuration
# error (exit 1) naming the file. Exactly one line on stderr even when the
# bad value itself holds a newline.
. "$(dirname "$0")/lib.sh"

plan $((13 * REFUSED_POINTS + 1))

make_image "$TEST_TMP/v1" --version 1.0
make_image "$TEST_TMP/v2" --version 2.0 --kernel-content "kernel two"
sysroot=$(new_sysroot sysroot)
must "$sysroot" deploy "$TEST_TMP/v1" --karg=quiet

refused "--karg with a newline" "$sysroot" 2 'karg.*control character 0x0a' \
  -- stage "$TEST_TMP/v2" --karg=$'quiet\ninit=/bin/sh'
refused "--karg with a newline (deploy)" "$sysroot" 2 'karg.*control character 0x0a' \
  -- deploy "$TEST_TMP/v2" --karg=$'quiet\ninit=/bin/sh'
refused "--karg with a carriage return" "$sysroot" 2 'karg.*control character 0x0d' \
  -- stage "$TEST_TMP/v2" --karg=$'console=tty0\r'
refused "--karg with a tab" "$sysroot" 2 'karg.*control character 0x09' \
  -- stage "$TEST_TMP/v2" --karg=$'a\tb'
refused "--karg with an escape character" "$sysroot" 2 'karg.*control character 0x1b' \
  -- stage "$TEST_TMP/v2" --karg=$'\e[31mred'
refused "--karg with DEL" "$sysroot" 2 'karg.*control character 0x7f' \
  -- stage "$TEST_TMP/v2" --karg=$'x\x7f'
refused "a good --karg next to one with a newline" "$sysroot" 2 'karg.*control character 0x0a' \
  -- stage "$TEST_TMP/v2" --karg=ro --karg=$'a\n'
# A space before the newline: the message must still be one line.
refused "--karg with a space and a newline" "$sysroot" 2 'karg' \
  -- stage "$TEST_TMP/v2" --karg=$'quiet splash\ninit=/bin/sh'
refused "--karg setting stagehand= itself" "$sysroot" 2 'karg.*stagehand=.*reserved' \
  -- stage "$TEST_TMP/v2" --karg=stagehand=/stagehand/deploy/demo/1
refused "an empty --karg" "$sysroot" 2 'karg.*empty' -- stage "$TEST_TMP/v2" --karg=
refused "--os with a newline" "$sysroot" 2 'invalid --os' -- stage "$TEST_TMP/v2" --os=$'demo\nx'
refused "--os with a path" "$sysroot" 2 'invalid --os' -- stage "$TEST_TMP/v2" --os=../../etc

conf="$sysroot/stagehand/stagehand.conf"
# (A "\n" escape there is only whitespace between arguments: no injection.)
printf '[stagehand]\nkargs=quiet \033[31m\n' >"$conf"
refused "stagehand.conf kargs with an escape character" "$sysroot" 1 "stagehand\.conf.*kargs.*control character 0x1b" \
  -- stage "$TEST_TMP/v2"
rm "$conf"

is "$(sed -n 's/^options //p' "$sysroot"/boot/loader/entries/*.conf)" "stagehand=/stagehand/deploy/demo/1 quiet" \
  "the live entry still has exactly its own options"
