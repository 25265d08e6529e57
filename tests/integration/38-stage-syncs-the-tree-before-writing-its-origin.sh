#!/bin/bash
# The origin makes a deployment exist, so the tree must be on disk before
# the origin is written: after a power loss, a deployment with an origin
# whose files never reached the disk looks complete but is not. The SIGKILL
# and ENOSPC sweeps never lose the page cache, so only the order of the
# system calls shows it (issue 14, "Tests that would still pass": moving
# the syncfs after the origin write passed every suite). Under strace: the
# tree gets its final name, then the sysroot is synced (syncfs), and only
# then is the origin's temp file created and renamed to <id>.origin, all by
# the main thread.
. "$(dirname "$0")/lib.sh"

plan 4

command -v strace >/dev/null || bail "strace is needed (ci/deps test installs it)"
make_image "$TEST_TMP/v1" --version 1.0
make_image "$TEST_TMP/v2" --version 2.0 --kernel-content "kernel two"
sysroot=$(new_sysroot sysroot)
must "$sysroot" deploy "$TEST_TMP/v1"

trace="$TEST_TMP/trace"
strace -f -qq -o "$trace" -e trace=syncfs,openat,renameat,renameat2 \
  "$STAGEHAND" --sysroot="$sysroot" stage --no-start "$TEST_TMP/v2" >/dev/null 2>"$ERR_FILE"
is "$?" 0 "stage under strace succeeds" || diag_file "$ERR_FILE"

# Line numbers of the first call matching each pattern.
line_of() { grep -nE "$1" "$trace" | head -n1 | cut -d: -f1; }
tree_named=$(line_of 'renameat2?\(.*"\.import-tmp-[^"]*",.*"2"')
origin_created=$(line_of 'openat\(.*"\.2\.origin-tmp-[^"]*",.*O_CREAT')
origin_renamed=$(line_of 'renameat2?\(.*"\.2\.origin-tmp-[^"]*",.*"2\.origin"')
# The syncfs that counts is the main thread's (the one that writes the
# origin), finished: the early syncfs of a thread of its own is only a head
# start, and would hide a main-thread syncfs moved after the origin.
main_tid=$(sed -n "${origin_created:-0}p" "$trace" | awk '{ print $1 }')
synced=$(awk -v from="${tree_named:-0}" -v to="${origin_created:-0}" -v tid="$main_tid" \
  'NR > from && NR < to && $1 == tid && /syncfs\(.*\) += 0/ { print NR; exit }' "$trace")
ok "the trace shows the tree renamed, the origin created and renamed" \
  test -n "$tree_named" -a -n "$origin_created" -a -n "$origin_renamed" || diag_file "$trace"
ok "the sysroot is synced after the tree has its final name and before the origin is created" \
  test -n "$synced"
ok "the origin's temp file is renamed into place after that" \
  test -n "$origin_renamed" -a "${origin_renamed:-0}" -gt "${origin_created:-0}"
