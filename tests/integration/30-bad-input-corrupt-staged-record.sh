#!/bin/bash
# A staged record that is corrupt (or names no complete deployment) stops
# every verb that acts on the state, with one line naming the file and the
# way out (`stagehand unstage`). Nothing changes meanwhile: above all,
# finalize does not switch to a guess and cleanup does not remove the
# deployment the record may have meant. `unstage` removes such a record.
. "$(dirname "$0")/lib.sh"

corruptions=(garbage empty binary no-id unknown-deployment traversal)
# Every verb for the first corruption; the others go through the same
# loading code, so the verbs that matter most do for them.
all_verbs=(finalize-staged status "stage IMAGE" "deploy IMAGE" rollback cleanup)
some_verbs=(finalize-staged status "stage IMAGE" cleanup)
plan $(((${#all_verbs[@]} + (${#corruptions[@]} - 1) * ${#some_verbs[@]}) * REFUSED_POINTS + ${#corruptions[@]} + 6))

for n in 1 2 3 4; do
  make_image "$TEST_TMP/v$n" --version "$n.0" --kernel-content "kernel $n"
done
sysroot=$(new_sysroot sysroot)
must "$sysroot" deploy "$TEST_TMP/v1"
must "$sysroot" deploy "$TEST_TMP/v2"
must "$sysroot" stage "$TEST_TMP/v3"
record="$sysroot/run/stagehand/staged"
good_record=$(cat "$record")

corrupt() {
  case "$1" in
    garbage) printf 'this is not a key file\n' ;;
    empty) : ;;
    binary) printf '\x00\xff\xfe[staged\x00' ;;
    no-id) printf '[staged]\nos=demo\n' ;;
    unknown-deployment) printf '[staged]\nos=demo\nid=42\nstaged-at=1700000000\n' ;;
    traversal) printf '[staged]\nos=../../..\nid=3\n' ;;
  esac >"$record"
}

for c in "${corruptions[@]}"; do
  corrupt "$c"
  if [ "$c" = "${corruptions[0]}" ]; then verbs=("${all_verbs[@]}"); else verbs=("${some_verbs[@]}"); fi
  for v in "${verbs[@]}"; do
    read -r -a args <<<"${v/IMAGE/$TEST_TMP/v4}"
    refused "$v with a $c staged record" "$sysroot" 1 "$record.*(corrupt|not a complete deployment).*unstage" \
      -- "${args[@]}"
  done
  ok "$c staged record: demo/3, which it may have meant, is still there" \
    test -f "$sysroot/stagehand/deploy/demo/3.origin" -a -d "$sysroot/stagehand/deploy/demo/3"
done

# The way out.
sh_on "$sysroot" unstage
is "$RC" 0 "unstage removes a corrupt staged record" || diag "$ERR"
ok "the record is gone" test ! -e "$record"
sh_on "$sysroot" status --json
is "$RC" 0 "status works again"
is "$(json 'j["staged"]')" null "nothing is staged"
# A good record again: finalize proceeds as normal.
printf '%s\n' "$good_record" >"$record"
sh_on "$sysroot" finalize-staged
is "$RC" 0 "with the record restored, finalize-staged exits 0" || diag "$ERR"
is "$(live_entries "$sysroot" | head -n1)" "stagehand-2-demo-3.conf" "and demo/3 is the default"
