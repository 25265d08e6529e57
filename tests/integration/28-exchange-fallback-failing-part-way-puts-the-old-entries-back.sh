#!/bin/bash
# Where RENAME_EXCHANGE is refused, exchange mode moves the entries into
# loader/entries one at a time. Issue 14: when a later move failed, the ones
# already moved stayed, so the new default was live while the verdict said
# failed (and the next boot reported a failed finalize while booting the new
# default). Now a failure part-way puts every moved entry back: the
# configuration is the old one, file for file, and the verdict says failed;
# or, past the last move, the new one and success. Never between.
#
# Each rename of a finalize in the fallback (STAGEHAND_DEBUG_NO_EXCHANGE=1,
# which behaves as a refused exchange) fails in turn with EIO (strace error
# injection); one run also fails the rename that would put a moved entry
# back, and then the error and the verdict must say the set is mixed.
. "$(dirname "$0")/lib.sh"

command -v strace >/dev/null || { plan 1; skip 1 "needs strace"; exit 0; }
export STAGEHAND_DEBUG_NO_EXCHANGE=1

make_image "$TEST_TMP/v1" --version 1.0 --kernel-content "kernel one"
make_image "$TEST_TMP/v2" --version 2.0 --kernel-content "kernel two"
make_image "$TEST_TMP/v3" --version 3.0 --kernel-content "kernel three"

# Menu demo/2, demo/1 and another tool's entry; demo/3 staged: the new
# menu demo/3, demo/2 shares no name with the old one, so the switch has
# moves of all three kinds (in; out then in; out).
tpl="$TEST_TMP/tpl"
must "$tpl" init --mode=exchange
must "$tpl" deploy "$TEST_TMP/v1"
must "$tpl" deploy "$TEST_TMP/v2"
printf 'title another tool\nlinux /other\n' >"$tpl/boot/loader/entries/other.conf"
must "$tpl" stage "$TEST_TMP/v3" --no-start
boot_before=$(boot_snapshot "$tpl/boot")
menu_before=$(live_entries "$tpl" | paste -sd,)

# The renames of a finalize, numbered as strace counts them.
count="$TEST_TMP/count"
cp -a "$tpl" "$count"
strace -f -qq -o "$TEST_TMP/renames" -e trace=renameat "$STAGEHAND" --sysroot="$count" \
  finalize-staged </dev/null >/dev/null 2>&1 || bail "the counting run failed"
mapfile -t moves < <(grep -n 'renameat([0-9]*, "stagehand-' "$TEST_TMP/renames" | cut -d: -f1)
total=$(grep -c 'renameat(' "$TEST_TMP/renames")
diag "finalize makes $total renames, ${#moves[@]} of them entry moves (#${moves[*]})"
[ "${#moves[@]}" -ge 4 ] || bail "expected at least 4 entry moves, saw ${#moves[@]}"
menu_after=$(live_entries "$count" | paste -sd,)
is "$menu_after" "stagehand-2-demo-3.conf,stagehand-1-demo-2.conf,other.conf" \
  "without a failure the fallback reaches the new menu"

plan $((1 + 6 * ${#moves[@]} + 4))

# run_failing WHEN: a fresh copy of the template, finalized with the
# renameat calls WHEN (strace's when=) failing with EIO.
run_failing() {
  W="$TEST_TMP/run-$1"
  rm -rf "$W"
  cp -a "$tpl" "$W"
  RC=0
  strace -f -qq -o /dev/null -e trace=renameat -e inject=renameat:error=EIO:when="$1" \
    "$STAGEHAND" --sysroot="$W" finalize-staged </dev/null >"$OUT_FILE" 2>"$ERR_FILE" || RC=$?
  ERR=$(cat "$ERR_FILE")
}

verdict_field() {
  sed -n "/^\[finalize\]/,/^\[/ s/^$1=//p" "$W/stagehand/finalize-result"
}

for n in "${moves[@]}"; do
  what="rename #$n fails"
  run_failing "$n"
  is "$RC" 1 "$what: finalize exits 1"
  like "$ERR" "stagehand: finalizing demo/3: during swap: .*: Input/output error; the previous entries were put back$" \
    "$what: the error says the move failed and the previous entries were put back"
  is "$(boot_snapshot "$W/boot")" "$boot_before" "$what: <boot> is byte for byte as it was"
  is "$(verdict_field result):$(verdict_field step)" "failed:swap" "$what: the verdict says failed during swap"
  status_json "$W"
  is "$(json '[j["default"], j["staged"]]')" '["demo/2", "demo/3"]' \
    "$what: demo/2 is still the default and demo/3 still staged"
  is "$(temp_leftovers "$W")" "" "$what: no temp names left"
done

# Putting back fails too: the second move fails, and so does the rename
# that would put the first one back.
run_failing "${moves[1]}..$((moves[1] + 1))"
is "$RC" 1 "renames #${moves[1]} and #$((moves[1] + 1)) failing: finalize exits 1"
like "$ERR" "putting the previous entries back failed too \\(putting entry .*: Input/output error\\): loader/entries holds entries of both the old and the new set$" \
  "the error says putting back failed and that loader/entries is mixed"
like "$(verdict_field error)" "holds entries of both the old and the new set$" \
  "the verdict's error says so too"
must "$W" finalize-staged
is "$(live_entries "$W" | paste -sd,)" "$menu_after" "finalizing again reaches the new menu"
