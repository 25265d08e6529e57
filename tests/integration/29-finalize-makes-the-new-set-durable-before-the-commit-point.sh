#!/bin/bash
# The durability order of finalize, read from an strace of it: before the
# commit point (the rename over loader; the RENAME_EXCHANGE of
# loader/entries; in the fallback, the first entry moved into
# loader/entries), every file of the new entry set has been f(data)synced,
# every directory of the set fsynced after its last new name, and the boot
# filesystem and the sysroot syncfs'ed after all of that (docs/design.md,
# "The swap"). Issue 14: removing every fdatasync, fsync and syncfs before
# the commit rename passed every suite, since the SIGKILL and ENOSPC sweeps
# never lose the page cache. The check is shown to catch a finalize whose
# syncs are skipped (strace's retval injection: the call never happens).
. "$(dirname "$0")/lib.sh"

command -v strace >/dev/null || { plan 1; skip 1 "needs strace"; exit 0; }
plan 9

make_image "$TEST_TMP/v1" --version 1.0 --kernel-content "kernel one"
make_image "$TEST_TMP/v2" --version 2.0 --kernel-content "kernel two"

# staged NAME MODE: v1 deployed, v2 staged, another tool's files beside
# the entries (carried into the new set: written there too).
staged() {
  local sysroot="$TEST_TMP/$1"
  must "$sysroot" init --mode="$2"
  must "$sysroot" deploy "$TEST_TMP/v1"
  must "$sysroot" stage "$TEST_TMP/v2" --no-start
  mkdir -p "$sysroot/boot/loader/keys"
  printf 'key' >"$sysroot/boot/loader/keys/db.auth"
  printf 'title another tool\n' >"$sysroot/boot/loader/entries/other.conf"
  printf '%s\n' "$sysroot"
}

# traced_finalize SYSROOT [STRACE ARGS...]: finalize-staged under strace;
# prints the durability check's violations (nothing when the order holds).
traced_finalize() {
  local sysroot=$1 trace
  shift
  trace="$sysroot.trace"
  strace -f -y -qq -o "$trace" \
    -e trace=openat,mkdirat,renameat,renameat2,symlinkat,fsync,fdatasync,syncfs "$@" \
    "$STAGEHAND" --sysroot="$sysroot" finalize-staged </dev/null >/dev/null 2>"$sysroot.err" ||
    { echo "finalize failed: $(cat "$sysroot.err")"; return; }
  "$PYTHON" "$LIBPY" durable-before-commit "$trace" "$(realpath "$sysroot/boot")" "$(realpath "$sysroot")"
}

for mode in symlink exchange fallback; do
  case $mode in
    fallback) sysroot=$(staged "$mode" exchange); export STAGEHAND_DEBUG_NO_EXCHANGE=1 ;;
    *) sysroot=$(staged "$mode" "$mode") ;;
  esac
  is "$(traced_finalize "$sysroot")" "" \
    "$mode mode: the new set and its directories are synced, and both filesystems, before the commit point"
  status_json "$sysroot"
  is "$(json 'j["default"]')" "demo/2" "$mode mode: demo/2 is the default after the traced finalize"
  unset STAGEHAND_DEBUG_NO_EXCHANGE
done

# The check itself: a finalize without its syncs must fail it.
sysroot=$(staged no-fsync symlink)
like "$(traced_finalize "$sysroot" -e inject=fsync,fdatasync:retval=0)" \
  "written, never synced before the commit point: .*/loader\\.[01]/entries/\\.stagehand-2-demo-2\\.conf-tmp-" \
  "without fsync and fdatasync, the check names an entry written but never synced"
sysroot=$(staged no-dir-fsync symlink)
like "$(traced_finalize "$sysroot" -e inject=fsync:retval=0)" \
  "directory not fsynced after its last change before the commit point: .*/loader\\.[01]/entries$" \
  "without fsync, the check names the entries directory"
sysroot=$(staged no-syncfs exchange)
like "$(traced_finalize "$sysroot" -e inject=syncfs:retval=0)" \
  "no syncfs of the sysroot" "without syncfs, the check names the filesystems"
