# shellcheck shell=bash
# Helpers for the crash-safety and hostile-input tests
# (tests/privileged/2x-*.sh, tests/integration/5x-*.sh), sourced by them.
# Not a test itself: meson runs only [0-9]*.sh.
#
# Speaks TAP: every check prints one "ok"/"not ok" line; the plan comes last
# (done_testing), so a script that dies half-way has no plan and fails.
#
# The invariant itself is checked by tests/lib/check-invariant, an
# independent reading of the on-disk format (see its header).

set -u -o pipefail
export LC_ALL=C

FAULT_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FAULT_REPO_ROOT=$(cd "$FAULT_LIB_DIR/../.." && pwd)
CHECK_INVARIANT=$FAULT_LIB_DIR/check-invariant
SYSROOT_SUMMARY=$FAULT_LIB_DIR/sysroot-summary

STAGEHAND=${STAGEHAND:-$FAULT_REPO_ROOT/build/src/cli/stagehand}
case $STAGEHAND in
  /*) ;;
  *) STAGEHAND=$FAULT_REPO_ROOT/$STAGEHAND ;;
esac
# The interpreter itself, not a version-manager shim that costs a second
# per call; and -S (no site module) when calling it: the sweep calls python
# a few thousand times and the helpers need nothing from site-packages.
PYTHON=${PYTHON:-$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null)}
PYTHON=${PYTHON:-python3}
export STAGEHAND CHECK_INVARIANT SYSROOT_SUMMARY PYTHON

# ---------------------------------------------------------------- TAP

. "$FAULT_LIB_DIR/tap.sh"

# like ACTUAL GLOB DESCRIPTION: ACTUAL matches the shell pattern GLOB.
like() {
  # shellcheck disable=SC2053 # the pattern is meant to match
  if [[ $1 == $2 ]]; then
    pass "$3"
  else
    fail "$3"
    diag "expected to match: '$2'" "                got: '$1'"
  fi
}

# ---------------------------------------------------------------- setup

require_commands() {
  local cmd missing=()
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  [ ${#missing[@]} -eq 0 ] || bail "missing required commands: ${missing[*]}"
}

require_stagehand() {
  [ -x "$STAGEHAND" ] || bail "stagehand binary not found at $STAGEHAND (build it, or set STAGEHAND)"
}

# For the privileged suite: enter_private_namespace (tests/lib/private-ns.sh).
. "$FAULT_LIB_DIR/private-ns.sh"

# make_temp NAME: T, a temp dir removed on exit (unless STAGEHAND_KEEP is
# set), with a private copy of the binaries as STAGEHAND: a rebuild while the
# test runs must not change (or, mid-link, remove) the program under test.
# stagehand hands every verb but finalize-staged to the stagehand-tool
# beside it, so both are copied.
make_temp() {
  T=$(mktemp -d "${TMPDIR:-/tmp}/stagehand-$1.XXXXXX") || bail "mktemp failed"
  trap 'fault_lib_exit' EXIT
  mkdir -p "$T/bin"
  cp "$STAGEHAND" "$T/bin/stagehand" || bail "cannot copy $STAGEHAND"
  cp "$(dirname "$STAGEHAND")/stagehand-tool" "$T/bin/stagehand-tool" ||
    bail "cannot copy stagehand-tool from beside $STAGEHAND"
  STAGEHAND=$T/bin/stagehand
}

# Commands to run at exit before $T goes (unmounts, loop devices).
AT_EXIT=()

fault_lib_exit() {
  local status=$? cmd
  for cmd in "${AT_EXIT[@]}"; do
    eval "$cmd" || true
  done
  if [ -n "${T:-}" ] && [ -d "$T" ]; then
    if [ -n "${STAGEHAND_KEEP:-}" ]; then
      diag "kept $T"
    else
      # Undo what a test made immutable or unreadable before removing.
      chattr -R -i "$T" 2>/dev/null
      chmod -R u+rwX "$T" 2>/dev/null
      rm -rf --one-file-system "$T"
    fi
  fi
  exit "$status"
}

# freeze_dir DIR: nothing can be created, renamed or removed in DIR (chattr
# +i as root, mode a-w otherwise): a finalize then fails writing its new
# entry set, before the commit point. thaw_dir DIR undoes it (and so does
# the exit handler).
freeze_dir() {
  if [ "$(id -u)" -eq 0 ]; then chattr +i "$1"; else chmod a-w "$1"; fi ||
    bail "cannot make $1 unwritable"
}
thaw_dir() {
  if [ "$(id -u)" -eq 0 ]; then chattr -i "$1"; else chmod u+w "$1"; fi
}

# ---------------------------------------------------------------- fixtures

. "$FAULT_LIB_DIR/test-image.sh"

# The fault-injection tests need an import on one thread: strace counts
# calls per thread, so only a single-threaded run has a deterministic Nth
# call. A stage has two import workers, a flusher and an early syncfs; this
# turns them off (the stage then runs the same code on the calling thread,
# as it would with no second core). Worker failures have tests of their own
# (tests/unit/test-image-import-refuses.c, "a worker's failure").
export STAGEHAND_DEBUG_ONE_THREAD=1

# make_tar_image TAR VERSION: make_test_image as a tar archive.
make_tar_image() {
  local tar=$1 version=$2
  make_test_image "$tar.d" "$version"
  tar -C "$tar.d" -cf "$tar" . || bail "cannot create $tar"
  rm -rf "$tar.d"
}

# make_etc_tar_image TAR VERSION: make_tar_image's tree with an /etc the
# merge has work with: issue changes with each version, the rest does not.
make_etc_tar_image() {
  local tar=$1 version=$2
  make_test_image "$tar.d" "$version"
  mkdir -p "$tar.d/etc/ssh"
  printf 'Test OS %s\n' "$version" >"$tar.d/etc/issue"
  printf 'welcome\n' >"$tar.d/etc/motd"
  printf 'Port 22\n' >"$tar.d/etc/ssh/sshd_config"
  tar -C "$tar.d" -cf "$tar" . || bail "cannot create $tar"
  rm -rf "$tar.d"
}

# sh_at SYSROOT ARGS...: stagehand on SYSROOT (boot: SYSROOT/boot), output
# in SH_OUT (stdout) and SH_ERR (stderr), status in SH_RC. Never fails.
sh_at() {
  local sysroot=$1
  shift
  _sh_n=$((${_sh_n:-0} + 1))
  SH_OUT=$T/out.$_sh_n
  SH_ERR=$T/err.$_sh_n
  "$STAGEHAND" --sysroot="$sysroot" "$@" </dev/null >"$SH_OUT" 2>"$SH_ERR"
  SH_RC=$?
  return 0
}

# tpl_run NAME ARGS...: stagehand ARGS on the template sysroot $T/tpl/NAME
# (the sweeps copy templates for each injection point); bails if it fails.
tpl_run() {
  sh_at "$T/tpl/$1" "${@:2}"
  [ "$SH_RC" -eq 0 ] || { diag_run; bail "preparing template $1: stagehand ${*:2} failed"; }
}

# diag_run: the last sh_at's status and output, as diagnostics.
diag_run() {
  diag "exit status $SH_RC"
  diag_file "$SH_OUT" 10
  diag_file "$SH_ERR" 10
}

# invariant SYSROOT [ARGS...]: check-invariant, violations as diagnostics.
invariant() {
  local sysroot=$1 out rc
  shift
  out=$("$PYTHON" -S "$CHECK_INVARIANT" --sysroot "$sysroot" "$@" 2>&1)
  rc=$?
  [ "$rc" -eq 0 ] || diag "$out"
  return "$rc"
}

# summary SYSROOT [BOOT]: one line describing the sysroot as the tests see
# it (tests/lib/sysroot-summary).
summary() {
  local boot=${2:-$1/boot}
  "$STAGEHAND" --sysroot="$1" --boot="$boot" --json status 2>/dev/null |
    "$PYTHON" -S "$SYSROOT_SUMMARY" "$1" "$boot"
}

# temp_names DIR...: every name under DIR that looks like an interrupted
# write (".<name>-tmp-<random>").
temp_names() {
  find "$@" -name '.*-tmp-*' 2>/dev/null | sort
}

# tree_snapshot DIR...: type, mode, owner, size, link target and content
# hash of everything under each DIR (not times: a read may update atime,
# and a test that wants "untouched" wants content and metadata, which this
# covers), sorted. A DIR that does not exist shows as such.
tree_snapshot() {
  local d
  for d in "$@"; do
    if [ -d "$d" ]; then
      find "$d" -printf '%p\t%y\t%m\t%U:%G\t%s\t%l\n' -type f -exec sha256sum {} +
    else
      echo "$d: absent"
    fi
  done | sed "s|$1||" | sort
}

# json_get EXPR < JSON: prints the Python expression EXPR over `j`.
json_get() {
  "$PYTHON" -S -c 'import json, sys
j = json.load(sys.stdin)
v = eval(sys.argv[1])
print("null" if v is None else (str(v).lower() if isinstance(v, bool) else v))' "$1"
}
