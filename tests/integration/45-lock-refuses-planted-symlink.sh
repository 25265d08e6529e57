#!/bin/bash
# Something planted at <sysroot>/stagehand/lock - a symlink (to a file or to
# nowhere), a FIFO, a directory - is refused by every verb, including status,
# and never followed: the symlink's target is neither created, written,
# truncated nor chmod'ed. A state directory others can write is refused too.
# Issue 4.
# shellcheck disable=SC2016,SC2317 # check eval's its single-quoted conditions
. "$(dirname "$0")/lock-lib.sh"

S=$T/sysroot
LOCK=$S/stagehand/lock
check "sysroot initialised" new_sysroot "$S"
make_tar "$T/img.tar" img

VERBS=(init "stage --no-start $T/img.tar" "deploy $T/img.tar" unstage rollback cleanup
  finalize-staged status "--json status")

# refused_by_all LABEL REGEX: every verb exits 1, within 10 s, printing
# exactly one line: the refusal matching REGEX.
refused_by_all () {
  local label=$1 re=$2 verb rc
  for verb in "${VERBS[@]}"; do
    # shellcheck disable=SC2086 # verb carries its arguments
    timeout 10 "$STAGEHAND" --sysroot="$S" $verb >"$T/verb.out" 2>"$T/verb.err"
    rc=$?
    if [ "$rc" -eq 1 ] && [ "$(grep -Ec -- "$re" "$T/verb.err")" -eq 1 ] \
      && [ "$(wc -l <"$T/verb.err")" -eq 1 ]; then
      ok "$label: '${verb%% /*}' refuses it (exit 1, one message)"
    else
      not_ok "$label: '${verb%% /*}' refuses it (exit 1, one message; rc $rc)"
      diag "expected: $re"
      diag_file "stderr" "$T/verb.err"
    fi
  done
}

nothing_staged () {
  [ ! -e "$S/run/stagehand/staged" ] \
    && [ -z "$(find "$S/stagehand/deploy" -mindepth 1 -maxdepth 2)" ]
}

# --- a symlink to an existing file outside the sysroot
printf 'precious\n' >"$T/target"
chmod 0644 "$T/target"
touch -d @1000000000 "$T/target"
before=$(stat -c '%i %a %s %Y %h' "$T/target")
rm -f "$LOCK"
ln -s "$T/target" "$LOCK"
refused_by_all "symlink to a file" \
  "^stagehand: refusing lock file $LOCK: it is a symbolic link \(to $T/target\), which would move the lock to another file; remove it and retry\$"
check "the target's inode, mode, size, mtime and link count are untouched" \
  [ "$(stat -c '%i %a %s %Y %h' "$T/target")" = "$before" ]
check "the target's content is untouched" [ "$(cat "$T/target")" = precious ]
check "the symlink is left in place" [ "$(readlink "$LOCK")" = "$T/target" ]
check "nothing was staged" nothing_staged

# --- a dangling symlink: its target must not be created
rm -f "$LOCK"
ln -s "$T/not-there" "$LOCK"
refused_by_all "dangling symlink" \
  "^stagehand: refusing lock file $LOCK: it is a symbolic link \(to $T/not-there\)"
check "the dangling symlink's target was not created" [ ! -e "$T/not-there" ]
check "nothing was staged" nothing_staged

# --- a FIFO: refused without opening it (an open would block)
rm -f "$LOCK"
mkfifo -m 0600 "$LOCK"
refused_by_all "FIFO" "^stagehand: refusing lock file $LOCK: it is a FIFO, not a regular file"
check "the FIFO is left in place" [ -p "$LOCK" ]

# --- a directory
rm -f "$LOCK"
mkdir -m 0700 "$LOCK"
refused_by_all "directory" "^stagehand: refusing lock file $LOCK: it is a directory, not a regular file"
rmdir "$LOCK"
check "nothing was staged" nothing_staged

# --- a state directory others can write: anyone could plant the above
chmod 0777 "$S/stagehand"
"$STAGEHAND" --sysroot="$S" stage --no-start "$T/img.tar" >"$T/w.out" 2>"$T/w.err"
rc=$?
check "a world-writable state directory is refused (rc $rc)" \
  eval '[ "$rc" -eq 1 ] && grep -q "^stagehand: refusing state directory $S/stagehand: it is writable by group or others (mode 0777)" "$T/w.err"'
check "... before the lock file is created" [ ! -e "$LOCK" ]
chmod 0755 "$S/stagehand"

# --- the control: with the plant removed, the same commands work, and a
# lock file someone loosened is restricted to 0600 again
touch "$LOCK"
chmod 0644 "$LOCK"
"$STAGEHAND" --sysroot="$S" stage --no-start "$T/img.tar" >"$T/ok.out" 2>"$T/ok.err"
rc=$?
check "with a regular lock file stage succeeds (rc $rc)" [ "$rc" -eq 0 ]
[ "$rc" -eq 0 ] || diag_file "stage stderr" "$T/ok.err"
check "the lock file is a regular file of mode 0600 again" \
  eval '[ -f "$LOCK" ] && [ ! -L "$LOCK" ] && [ "$(stat -c %a "$LOCK")" = 600 ]'
check "the old symlink target is still untouched" \
  eval '[ "$(stat -c "%i %a %s %Y %h" "$T/target")" = "$before" ] && [ "$(cat "$T/target")" = precious ]'

lock_done
