#!/bin/bash
# An origin file that is corrupt stops every verb that acts on the state,
# with one line naming the file and what is wrong with it, and nothing
# changes: no entry is written from a half-read origin, and cleanup does
# not remove a deployment it cannot read. A finalize that fails so leaves
# a verdict for the next boot.
. "$(dirname "$0")/lib.sh"

corruptions=(garbage empty missing-bootcsum bad-bootcsum other-id newline-in-title control-in-kargs)
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
origin="$sysroot/stagehand/deploy/demo/2.origin"
good_origin=$(cat "$origin")

corrupt() {
  case "$1" in
    garbage) printf 'not a key file at all\n' ;;
    empty) : ;;
    missing-bootcsum) printf '%s\n' "$good_origin" | grep -v '^bootcsum=' ;;
    bad-bootcsum) printf '%s\n' "$good_origin" | sed 's/^bootcsum=.*/bootcsum=..\/..\/etc/' ;;
    other-id) printf '%s\n' "$good_origin" | sed 's/^id=.*/id=1/' ;;
    newline-in-title) printf '%s\n' "$good_origin" | sed 's/^title=.*/title=Evil\\ninitrd \/evil/' ;;
    control-in-kargs) printf '%s\n' "$good_origin" | sed 's/^kargs=.*/kargs=quiet \x1b[0m/' ;;
  esac >"$origin"
}

for c in "${corruptions[@]}"; do
  corrupt "$c"
  if [ "$c" = "${corruptions[0]}" ]; then verbs=("${all_verbs[@]}"); else verbs=("${some_verbs[@]}"); fi
  for v in "${verbs[@]}"; do
    read -r -a args <<<"${v/IMAGE/$TEST_TMP/v4}"
    refused "$v with a $c origin" "$sysroot" 1 "$origin.*(corrupt|invalid|names)" -- "${args[@]}"
  done
  ok "$c origin: demo/2's tree is still there" test -d "$sysroot/stagehand/deploy/demo/2"
done

# finalize-staged failed at load: the next boot must hear about it.
printf '%s\n' "$good_origin" >"$origin"
sh_on "$sysroot" status --json
is "$RC" 0 "with the origin restored, status works" || diag "$ERR"
is "$(json '[j["last_finalize"]["result"], j["last_finalize"]["deployment"]]')" '["failed", "demo/3"]' \
  "the failed finalize left a verdict naming the staged deployment"
like "$(json 'j["last_finalize"]["error"]')" "2\.origin" "the verdict's error names the corrupt origin"
is "$(json 'j["staged"]')" "demo/3" "demo/3 is still staged"
sh_on "$sysroot" finalize-staged
is "$RC" 0 "finalize-staged now succeeds" || diag "$ERR"
is "$(live_entries "$sysroot" | head -n1)" "stagehand-2-demo-3.conf" "demo/3 is the default"
