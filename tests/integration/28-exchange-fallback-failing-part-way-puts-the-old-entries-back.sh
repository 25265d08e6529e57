#!/bin/bash
# Where RENAME_EXCHANGE is refused, exchange mode moves the entries into
# loader/entries one at a time. Issue 14: when a later move failed, the ones
# already moved stayed, so the new default was live while the verdict said
# failed (and the next boot reported a failed finalize while booting the new
# default). Now a failure part-way puts every moved entry back: the
# configuration is the old one, file for file, and the verdict says failed;
# or, past the last move, the new one and success. Never between.
#
# Each entry move of a finalize in the fallback (STAGEHAND_DEBUG_NO_EXCHANGE=1,
# which behaves as a refused exchange) fails in turn with EIO (strace error
# injection), for a switch that moves new names in and old ones out and for
# one that replaces an entry of the same name; one run also fails the rename that would put a moved entry
# back, and then the error and the verdict must say the set is mixed.
. "$(dirname "$0")/lib.sh"

command -v strace >/dev/null || { plan 1; skip 1 "needs strace"; exit 0; }
export STAGEHAND_DEBUG_NO_EXCHANGE=1

make_image "$TEST_TMP/v1" --version 1.0 --kernel-content "kernel one"
make_image "$TEST_TMP/v2" --version 2.0 --kernel-content "kernel two"
make_image "$TEST_TMP/v3" --version 3.0 --kernel-content "kernel three"

# Two starting points, each with another tool's entry in loader/entries:
# - "disjoint": menu demo/2, demo/1, demo/3 staged; the new menu demo/3,
#   demo/2 shares no name with the old one: new names move in, old ones
#   out;
# - "shared": menu demo/1, demo/2 staged; the new menu demo/2, demo/1 keeps
#   the name stagehand-1-demo-1.conf: the new file replaces the old one
#   (a copy of which was put aside first).
make_template() {
  local tpl="$TEST_TMP/$1"
  must "$tpl" init --mode=exchange
  must "$tpl" deploy "$TEST_TMP/v1"
  case $1 in
    disjoint)
      must "$tpl" deploy "$TEST_TMP/v2"
      must "$tpl" stage "$TEST_TMP/v3" --no-start
      ;;
    shared) must "$tpl" stage "$TEST_TMP/v2" --no-start ;;
  esac
  printf 'title another tool\nlinux /other\n' >"$tpl/boot/loader/entries/other.conf"
}

# count_moves TEMPLATE: the renames of a finalize, numbered as strace counts
# them; sets MOVES (the entry moves among them) and MENU_AFTER.
count_moves() {
  local count="$TEST_TMP/count-$1"
  cp -a "$TEST_TMP/$1" "$count"
  strace -f -qq -o "$count.renames" -e trace=renameat "$STAGEHAND" --sysroot="$count" \
    finalize-staged </dev/null >/dev/null 2>&1 || bail "the counting run of $1 failed"
  mapfile -t MOVES < <(grep -n 'renameat([0-9]*, "stagehand-' "$count.renames" | cut -d: -f1)
  diag "$1: finalize makes $(grep -c 'renameat(' "$count.renames") renames, ${#MOVES[@]} of them entry moves (#${MOVES[*]})"
  MENU_AFTER=$(live_entries "$count" | paste -sd,)
}

# run_failing TEMPLATE WHEN: a fresh copy of TEMPLATE, finalized with the
# renameat calls WHEN (strace's when=) failing with EIO.
run_failing() {
  W="$TEST_TMP/run-$1-$2"
  rm -rf "$W"
  cp -a "$TEST_TMP/$1" "$W"
  RC=0
  strace -f -qq -o /dev/null -e trace=renameat -e inject=renameat:error=EIO:when="$2" \
    "$STAGEHAND" --sysroot="$W" finalize-staged </dev/null >"$OUT_FILE" 2>"$ERR_FILE" || RC=$?
  ERR=$(cat "$ERR_FILE")
}

verdict_field() {
  sed -n "/^\[finalize\]/,/^\[/ s/^$1=//p" "$W/stagehand/finalize-result"
}

make_template disjoint
make_template shared
count_moves disjoint
disjoint_moves=("${MOVES[@]}") disjoint_after=$MENU_AFTER
count_moves shared
shared_moves=("${MOVES[@]}") shared_after=$MENU_AFTER
[ "${#disjoint_moves[@]}" -ge 2 ] && [ "${#shared_moves[@]}" -ge 2 ] ||
  bail "expected at least 2 entry moves each, saw ${#disjoint_moves[@]} and ${#shared_moves[@]}"

plan $((2 + 6 * (${#disjoint_moves[@]} + ${#shared_moves[@]}) + 4))
is "$disjoint_after" "stagehand-2-demo-3.conf,stagehand-1-demo-2.conf,other.conf" \
  "disjoint: without a failure the fallback reaches the new menu"
is "$shared_after" "stagehand-2-demo-2.conf,stagehand-1-demo-1.conf,other.conf" \
  "shared: without a failure the fallback reaches the new menu"

for tpl in disjoint shared; do
  if [ "$tpl" = disjoint ]; then moves=("${disjoint_moves[@]}") new_default=demo/3 old_default=demo/2
  else moves=("${shared_moves[@]}") new_default=demo/2 old_default=demo/1; fi
  boot_before=$(boot_snapshot "$TEST_TMP/$tpl/boot")
  for n in "${moves[@]}"; do
    what="$tpl: rename #$n fails"
    run_failing "$tpl" "$n"
    is "$RC" 1 "$what: finalize exits 1"
    like "$ERR" "stagehand: finalizing $new_default: during swap: .*: Input/output error; the previous entries were put back$" \
      "$what: the error says the move failed and the previous entries were put back"
    is "$(boot_snapshot "$W/boot")" "$boot_before" "$what: <boot> is byte for byte as it was"
    is "$(verdict_field result):$(verdict_field step)" "failed:swap" "$what: the verdict says failed during swap"
    status_json "$W"
    is "$(json '[j["default"], j["staged"]]')" "[\"$old_default\", \"$new_default\"]" \
      "$what: $old_default is still the default and $new_default still staged"
    is "$(temp_leftovers "$W")" "" "$what: no temp names left"
  done
done

# Putting back fails too: the second move fails, and so does the rename
# that would put the first one back.
m=${disjoint_moves[1]}
run_failing disjoint "$m..$((m + 1))"
is "$RC" 1 "renames #$m and #$((m + 1)) failing: finalize exits 1"
like "$ERR" "putting the previous entries back failed too \\(putting entry .*: Input/output error\\): loader/entries holds entries of both the old and the new set$" \
  "the error says putting back failed and that loader/entries is mixed"
like "$(verdict_field error)" "holds entries of both the old and the new set$" \
  "the verdict's error says so too"
must "$W" finalize-staged
is "$(live_entries "$W" | paste -sd,)" "$disjoint_after" "finalizing again reaches the new menu"
