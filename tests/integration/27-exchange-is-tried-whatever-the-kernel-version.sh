#!/bin/bash
# Exchange mode tries renameat2(RENAME_EXCHANGE) on every kernel and falls
# back to moving entries one at a time only when the filesystem refuses it
# (EINVAL, ENOSYS, EOPNOTSUPP); the warning, the verdict's swap= and status
# say which happened and why. Issue 14: the exchange was never tried below
# Linux 6.0, though ext4, xfs and btrfs have supported it for years, so the
# Fedora/RHEL /boot/loader/entries layout on 4.18 or 5.x kernels always took
# the non-atomic path, and the message blamed the filesystem.
#
# An old kernel is played by `setarch --uname-2.6` (uname says 2.6.x); a
# refusing filesystem by strace's error injection into renameat2.
. "$(dirname "$0")/lib.sh"

plan 20

command -v strace >/dev/null && command -v setarch >/dev/null ||
  { skip 20 "needs strace and setarch"; exit 0; }

make_image "$TEST_TMP/v1" --version 1.0 --kernel-content "kernel one"
make_image "$TEST_TMP/v2" --version 2.0 --kernel-content "kernel two"

# staged NAME: an exchange-mode sysroot with v1 deployed and v2 staged.
staged() {
  local sysroot="$TEST_TMP/$1"
  must "$sysroot" init --mode=exchange
  must "$sysroot" deploy "$TEST_TMP/v1"
  must "$sysroot" stage "$TEST_TMP/v2" --no-start
  printf '%s\n' "$sysroot"
}

entries_inode() {
  stat -c %i "$1/boot/loader/entries"
}

verdict_switch() {
  sed -n 's/^switch=//p' "$1/stagehand/finalize-result"
}

old_kernel=(setarch "$(uname -m)" --uname-2.6)
# on_old_kernel ARGS...: run_stagehand ARGS, with uname saying Linux 2.6.
on_old_kernel() {
  RC=0
  "${old_kernel[@]}" "$STAGEHAND" "$@" >"$OUT_FILE" 2>"$ERR_FILE" </dev/null || RC=$?
  OUT=$(cat "$OUT_FILE")
  ERR=$(cat "$ERR_FILE")
}
"${old_kernel[@]}" uname -r | grep -q '^2\.6\.' || { skip 20 "setarch --uname-2.6 does not work here"; exit 0; }

# ---- an old kernel on a filesystem that supports the exchange
sysroot=$(staged old-kernel)
status_json "$sysroot"
if [ "$(json 'j["boot"]["atomic"]')" != true ]; then
  skip 20 "the test directory's filesystem does not support RENAME_EXCHANGE: $(json 'j["boot"]["atomic_reason"]')"
  exit 0
fi
on_old_kernel --sysroot="$sysroot" status --json
is "$(json '[j["boot"]["mode"], j["boot"]["atomic"]]')" '["exchange", true]' \
  "status under Linux 2.6: exchange mode, atomic"
like "$(json 'j["boot"]["atomic_reason"]')" 'supports RENAME_EXCHANGE$' \
  "status says why: the filesystem supports RENAME_EXCHANGE"
before=$(entries_inode "$sysroot")
on_old_kernel --sysroot="$sysroot" finalize-staged
is "$RC" 0 "finalize under Linux 2.6 exits 0"
is "$ERR" "" "finalize under Linux 2.6 warns of no fallback"
isnt_inode() { [ "$(entries_inode "$sysroot")" != "$before" ]; }
ok "loader/entries is the new directory: it was exchanged, not filled one entry at a time" isnt_inode
is "$(verdict_switch "$sysroot")" "atomic: renameat2(RENAME_EXCHANGE) of loader/entries" \
  "the verdict records the atomic exchange"
status_json "$sysroot"
is "$(json '[j["default"], j["last_finalize"]["result"]]')" '["demo/2", "success"]' \
  "demo/2 is the default, the verdict success"
is "$(json 'j["last_finalize"]["switch"]')" "atomic: renameat2(RENAME_EXCHANGE) of loader/entries" \
  "status --json .last_finalize.switch says it was atomic"
is "$(ls -A "$sysroot/boot/loader")" "entries" "nothing but entries/ is left in loader/"

# ---- a filesystem that refuses the exchange: the fallback, said so
# (ENOSYS, no renameat2 at all, is handled too, but glibc reports it as
# EINVAL when flags are given.)
for errno_name in EINVAL EOPNOTSUPP; do
  case $errno_name in
    EINVAL) why="Invalid argument" ;;
    EOPNOTSUPP) why="Operation not supported" ;;
  esac
  sysroot=$(staged "refused-$errno_name")
  echo 'title another tool' >"$sysroot/boot/loader/entries/other.conf"
  before=$(entries_inode "$sysroot")
  RC=0
  strace -f -qq -o /dev/null -e trace=renameat2 -e inject=renameat2:error="$errno_name" \
    "$STAGEHAND" --sysroot="$sysroot" finalize-staged </dev/null >"$OUT_FILE" 2>"$ERR_FILE" || RC=$?
  ERR=$(cat "$ERR_FILE")
  is "$RC" 0 "renameat2 refused with $errno_name: finalize still succeeds"
  like "$ERR" "^stagehand: warning: the boot filesystem \\(ext4\\) refused renameat2\\(RENAME_EXCHANGE\\): $why: switching the entries one at a time, without an atomic swap" \
    "$errno_name: the warning says the filesystem refused the exchange, and why"
  is "$(verdict_switch "$sysroot")" \
    "not atomic: the boot filesystem (ext4) refused renameat2(RENAME_EXCHANGE): $why; the entries were moved one at a time" \
    "$errno_name: the verdict records a non-atomic switch and why"
  is "$(entries_inode "$sysroot"):$(live_entries "$sysroot" | paste -sd,)" \
    "$before:stagehand-2-demo-2.conf,stagehand-1-demo-1.conf,other.conf" \
    "$errno_name: the entries were moved into the same loader/entries; the other tool's entry stays"
done

# ---- any other error of the exchange is a failure, before the commit point
sysroot=$(staged exchange-fails)
boot_before=$(boot_snapshot "$sysroot/boot")
RC=0
strace -f -qq -o /dev/null -e trace=renameat2 -e inject=renameat2:error=EIO \
  "$STAGEHAND" --sysroot="$sysroot" finalize-staged </dev/null >"$OUT_FILE" 2>"$ERR_FILE" || RC=$?
is "$RC" 1 "renameat2 failing with EIO fails the finalize"
like "$(cat "$ERR_FILE")" "exchanging loader/entries with the new set: Input/output error" \
  "the error names the exchange and EIO"
is "$(boot_snapshot "$sysroot/boot")" "$boot_before" "<boot> is as it was"
