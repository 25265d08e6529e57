#!/bin/bash
# A stagehand.conf that does not parse, or has a value out of range, stops
# every verb with one line naming the file and the key: a fleet's policy
# must never be silently replaced by defaults.
. "$(dirname "$0")/lib.sh"

confs=(garbage retain-zero retain-word lock-timeout-negative finalize-lock-timeout-huge)
verbs=(status "stage IMAGE" finalize-staged cleanup)
plan $((${#confs[@]} * ${#verbs[@]} * REFUSED_POINTS + 2))

make_image "$TEST_TMP/v1" --version 1.0
make_image "$TEST_TMP/v2" --version 2.0 --kernel-content "kernel two"
sysroot=$(new_sysroot sysroot)
must "$sysroot" deploy "$TEST_TMP/v1"
conf="$sysroot/stagehand/stagehand.conf"

for c in "${confs[@]}"; do
  case "$c" in
    garbage) printf 'retain = 3 but this is no key file\n' ;;
    retain-zero) printf '[stagehand]\nretain=0\n' ;;
    retain-word) printf '[stagehand]\nretain=three\n' ;;
    lock-timeout-negative) printf '[stagehand]\nlock-timeout=-5\n' ;;
    finalize-lock-timeout-huge) printf '[stagehand]\nfinalize-lock-timeout=99999999\n' ;;
  esac >"$conf"
  # The key the message must name (none for a file that does not parse).
  case "$c" in
    garbage) key='' ;;
    retain-*) key=retain ;;
    lock-*) key=lock-timeout ;;
    finalize-*) key=finalize-lock-timeout ;;
  esac
  for v in "${verbs[@]}"; do
    read -r -a args <<<"${v/IMAGE/$TEST_TMP/v2}"
    refused "$v with a stagehand.conf that is $c" "$sysroot" 1 "$conf.*$key" -- "${args[@]}"
  done
done

rm "$conf"
sh_on "$sysroot" stage "$TEST_TMP/v2"
is "$RC" 0 "without the bad stagehand.conf, stage works" || diag "$ERR"
like "$OUT" '^Staged demo/2' "and stages demo/2"
