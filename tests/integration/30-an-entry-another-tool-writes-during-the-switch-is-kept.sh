#!/bin/bash
# The new entry set is a copy of the live directory as finalize read it, so
# an entry another tool (kernel-install, say) writes into the live
# directory while the new set is being written would be gone after the
# swap. finalize looks at the live directory again right before the commit
# point and, when it changed, reads it again and writes the new set again.
#
# The window is held open by strace: the first syncfs (after the new set is
# written, before the swap) is delayed by 3 s; the test writes the other
# tool's entry once the new set's entries exist.
. "$(dirname "$0")/lib.sh"

command -v strace >/dev/null || { plan 1; skip 1 "needs strace"; exit 0; }
plan 10

make_image "$TEST_TMP/v1" --version 1.0 --kernel-content "kernel one"
make_image "$TEST_TMP/v2" --version 2.0 --kernel-content "kernel two"

for mode in symlink exchange; do
  sysroot="$TEST_TMP/$mode"
  must "$sysroot" init --mode="$mode"
  must "$sysroot" deploy "$TEST_TMP/v1"
  must "$sysroot" stage "$TEST_TMP/v2" --no-start
  case $mode in
    symlink) new_set="$sysroot/boot/loader.$((1 - $(readlink "$sysroot/boot/loader" | tr -dc 0-9)))/entries" ;;
    exchange) new_set="$sysroot/boot/loader/entries.new" ;;
  esac
  live="$sysroot/boot/loader/entries"
  strace -f -qq -o /dev/null -e trace=syncfs -e inject=syncfs:delay_enter=3000000:when=1 \
    "$STAGEHAND" --sysroot="$sysroot" finalize-staged </dev/null >"$OUT_FILE" 2>"$ERR_FILE" &
  pid=$!
  for ((i = 0; i < 300; i++)); do
    [ -e "$new_set/stagehand-2-demo-2.conf" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.01
  done
  printf 'title written by another tool during the switch\nlinux /other\n' >"$live/other.conf"
  rc=0
  wait "$pid" || rc=$?
  is "$rc" 0 "$mode mode: finalize exits 0"
  like "$(cat "$ERR_FILE")" "another tool changed .* while the new entry set was written; reading it again" \
    "$mode mode: it says the live directory changed and that it reads it again"
  is "$(live_entries "$sysroot" | paste -sd,)" "stagehand-2-demo-2.conf,stagehand-1-demo-1.conf,other.conf" \
    "$mode mode: the new menu has the other tool's entry"
  is "$(cat "$sysroot/boot/loader/entries/other.conf")" \
    "$(printf 'title written by another tool during the switch\nlinux /other')" \
    "$mode mode: byte for byte"
  is "$(temp_leftovers "$sysroot")" "" "$mode mode: no temp names left"
done
