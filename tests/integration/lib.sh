# shellcheck shell=bash
# Results come back in globals (RC, OUT, ERR, ...) for the scripts that
# source this file.
# shellcheck disable=SC2034
#
# Harness for the integration tests: the built binary, driven on sysroots in
# a temporary directory, no root needed (tests that need root say so and
# skip those points otherwise). Each script sources this file first; it
#   - speaks TAP: plan, ok, not_ok, is, like, unlike, diag, skip, bail;
#   - makes $TEST_TMP, removed when the script exits (kept when
#     STAGEHAND_TEST_KEEP=1, for a post-mortem);
#   - finds the binary: $STAGEHAND, else build/src/cli/stagehand in the repo;
#   - generates deterministic fixture images (make_image) and tar archives
#     of them (make_tar);
#   - runs the binary capturing status, stdout and stderr (run_stagehand);
#   - checks that a refused command changed nothing (refused).

set -u -o pipefail
export LC_ALL=C
# A host variable must never make a test pretend a boot it did not ask for.
unset STAGEHAND_DEBUG_CMDLINE STAGEHAND_DEBUG_EFIVARS_DIR STAGEHAND_DEBUG_ROOT

TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=${SOURCE_ROOT:-$(cd "$TESTS_DIR/../.." && pwd)}
STAGEHAND=${STAGEHAND:-$REPO_ROOT/build/src/cli/stagehand}
LIBPY="$TESTS_DIR/lib.py"
# The system's python3 when there is one: a version manager's shim can cost
# a second per call, and the tests call it hundreds of times.
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}

# ---------------------------------------------------------------- TAP output

. "$TESTS_DIR/../lib/tap.sh"

# like GOT EXTENDED-REGEX DESCRIPTION
# (A here-string, not printf | grep -q: under pipefail, grep -q exiting at
# its first match makes printf die of SIGPIPE and the pipeline fail.)
like() {
  if grep -Eq -- "$2" <<<"$1"; then
    pass "$3"
  else
    not_ok "$3" "expected to match: $2" "got: $1"
    return 1
  fi
}

# unlike GOT EXTENDED-REGEX DESCRIPTION
unlike() {
  if grep -Eq -- "$2" <<<"$1"; then
    not_ok "$3" "expected not to match: $2" "got: $1"
    return 1
  else
    pass "$3"
  fi
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# ------------------------------------------------------------- temp directory

TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/stagehand-it.XXXXXX") || bail "cannot create a temp directory"

# at_exit COMMAND [ARGS...]: run when the script exits, before the temp
# directory goes (e.g. to undo a chattr +i that would block its removal).
_at_exit=()
at_exit() {
  _at_exit+=("$(printf '%q ' "$@")")
}

_on_exit() {
  local rc=$? cmd
  release_lock
  for cmd in "${_at_exit[@]}"; do eval "$cmd" >/dev/null 2>&1; done
  [ "$rc" -ne 0 ] || tap_finish || rc=1
  if [ "${STAGEHAND_TEST_KEEP:-0}" = 1 ]; then
    diag "kept $TEST_TMP"
  else
    # Deployment trees may hold read-only directories: make them removable.
    chmod -R u+rwX "$TEST_TMP" 2>/dev/null
    rm -rf "$TEST_TMP"
  fi
  exit "$rc"
}
trap _on_exit EXIT


# ---------------------------------------------------------- running stagehand

# run_stagehand ARGS...: runs the binary; sets RC, OUT, ERR (stdout and
# stderr, also in $OUT_FILE and $ERR_FILE). Never fails the script.
OUT_FILE="$TEST_TMP/stdout"
ERR_FILE="$TEST_TMP/stderr"
run_stagehand() {
  RC=0
  "$STAGEHAND" "$@" >"$OUT_FILE" 2>"$ERR_FILE" </dev/null || RC=$?
  OUT=$(cat "$OUT_FILE")
  ERR=$(cat "$ERR_FILE")
}

# sh_on SYSROOT ARGS...: run_stagehand --sysroot=SYSROOT ARGS...
sh_on() {
  local sysroot=$1
  shift
  run_stagehand --sysroot="$sysroot" "$@"
}

# must SYSROOT ARGS...: a step of a test's set-up; bails out if it fails.
must() {
  sh_on "$@"
  if [ "$RC" -ne 0 ]; then
    diag "stagehand --sysroot=$*: exit $RC" "stdout: $OUT" "stderr: $ERR"
    bail "set-up step failed: stagehand $*"
  fi
}

# new_sysroot NAME: an initialised sysroot at $TEST_TMP/NAME (printed).
new_sysroot() {
  local dir="$TEST_TMP/$1"
  "$STAGEHAND" --sysroot="$dir" init >/dev/null 2>"$TEST_TMP/init.err" \
    || { diag_file "$TEST_TMP/init.err"; bail "init of $dir failed"; }
  printf '%s\n' "$dir"
}

# json EXPR: evaluates the Python expression EXPR over `j`, the JSON
# document in $OUT. Strings print bare, everything else as JSON.
json() {
  printf '%s' "$OUT" | "$PYTHON" "$LIBPY" json "$1"
}

# status_json SYSROOT [EXPR]: runs `status --json`, bails if it fails;
# with EXPR, prints json EXPR.
status_json() {
  sh_on "$1" status --json
  [ "$RC" -eq 0 ] || { diag "status --json: exit $RC: $ERR"; bail "status --json failed on $1"; }
  [ $# -lt 2 ] || json "$2"
}

# entries_dir SYSROOT: the live entries directory, through the link.
entries_dir() {
  printf '%s/boot/loader/entries\n' "$1"
}

# live_entries SYSROOT: the entry file names in Boot Loader Spec order.
live_entries() {
  "$PYTHON" "$LIBPY" bls-order "$(entries_dir "$1")"
}

# ---------------------------------------------------------------- fixtures

FIXTURE_EPOCH=1700000000

# make_image DIR [--os ID] [--version V] [--kver KVER] [--kernel-content X]
#            [--layout modules|boot] [--no-initramfs]
# A small deterministic OS tree: os-release in usr/lib, one kernel (and
# initramfs) in the chosen layout, a few ordinary files, fixed mtimes.
make_image() {
  local dir=$1 os=demo version=1.0 kver=6.1.0 content="" layout=modules initramfs=1
  shift
  while [ $# -gt 0 ]; do
    case "$1" in
      --os) os=$2; shift 2 ;;
      --version) version=$2; shift 2 ;;
      --kver) kver=$2; shift 2 ;;
      --kernel-content) content=$2; shift 2 ;;
      --layout) layout=$2; shift 2 ;;
      --no-initramfs) initramfs=0; shift ;;
      *) bail "make_image: unknown option $1" ;;
    esac
  done
  [ -n "$content" ] || content="vmlinuz $os $kver"
  mkdir -p "$dir/usr/lib" "$dir/usr/bin" "$dir/etc" "$dir/var/empty"
  cat >"$dir/usr/lib/os-release" <<EOF
NAME="Test OS"
ID=$os
VERSION_ID=$version
PRETTY_NAME="Test OS $version"
EOF
  printf '%s\n' "$os" >"$dir/etc/hostname"
  printf '#!/bin/sh\necho %s %s\n' "$os" "$version" >"$dir/usr/bin/hello"
  chmod 0755 "$dir/usr/bin/hello"
  ln -sfn hello "$dir/usr/bin/hi"
  ln -sfn ../usr/lib/os-release "$dir/etc/os-release"
  case "$layout" in
    modules)
      mkdir -p "$dir/usr/lib/modules/$kver"
      printf '%s\n' "$content" >"$dir/usr/lib/modules/$kver/vmlinuz"
      [ "$initramfs" = 0 ] || printf 'initramfs %s\n' "$content" >"$dir/usr/lib/modules/$kver/initramfs.img"
      ;;
    boot)
      mkdir -p "$dir/boot"
      printf '%s\n' "$content" >"$dir/boot/vmlinuz-$kver"
      [ "$initramfs" = 0 ] || printf 'initramfs %s\n' "$content" >"$dir/boot/initrd.img-$kver"
      ;;
    *) bail "make_image: unknown layout $layout" ;;
  esac
  touch_tree "$dir"
}

# touch_tree DIR: every entry's mtime (links too) to the fixture epoch,
# directories last, so the images are identical from run to run.
touch_tree() {
  find "$1" -depth -exec touch -h -d "@$FIXTURE_EPOCH" {} +
}

# image_kernel DIR: the kernel file of an image made by make_image.
image_kernel() {
  local k
  for k in "$1"/usr/lib/modules/*/vmlinuz "$1"/boot/vmlinuz-*; do
    [ -f "$k" ] && { printf '%s\n' "$k"; return 0; }
  done
  return 1
}

# bootcsum_of DIR: the image's bootcsum, the SHA-256 of what
# `sha256sum vmlinuz initramfs.img` prints in its kernel directory.
bootcsum_of() {
  local k i
  k=$(image_kernel "$1") || return 1
  case "$k" in
    */vmlinuz) i="$(dirname "$k")/initramfs.img" ;;
    *) i="$(dirname "$k")/initrd.img-${k##*/vmlinuz-}" ;;
  esac
  bootcsum_files "$k" "$i"
}

# bootcsum_files KERNEL [INITRAMFS]: the bootcsum of a kernel and, if the
# file exists, an initramfs.
bootcsum_files() {
  { printf '%s  vmlinuz\n' "$(sha256sum <"$1" | cut -d' ' -f1)"
    if [ $# -gt 1 ] && [ -f "$2" ]; then
      printf '%s  initramfs.img\n' "$(sha256sum <"$2" | cut -d' ' -f1)"
    fi
  } | sha256sum | cut -d' ' -f1
}

# make_tar IMAGE_DIR OUT [gz|xz|zst]: the image as GNU tar would ship it.
make_tar() {
  local dir=$1 out=$2 comp=${3:-}
  local -a tarcmd=(tar -C "$dir" --xattrs --xattrs-include='*' --sparse --numeric-owner -cf - .)
  case "$comp" in
    "") "${tarcmd[@]}" >"$out" ;;
    gz) "${tarcmd[@]}" | gzip -n >"$out" ;;
    xz) "${tarcmd[@]}" | xz >"$out" ;;
    zst) "${tarcmd[@]}" | zstd -q >"$out" ;;
    *) bail "make_tar: unknown compression $comp" ;;
  esac || bail "make_tar: could not write $out"
}

# manifest [--links-within-tree] DIR: what an import must keep, one line
# per entry (see lib.py).
manifest() {
  "$PYTHON" "$LIBPY" manifest "$@"
}

# boot_snapshot DIR: every path with its type, mode and sha256 or link target.
boot_snapshot() {
  "$PYTHON" "$LIBPY" boot-snapshot "$1"
}

# temp_leftovers SYSROOT: paths of temporary names (".*-tmp-*") anywhere below.
temp_leftovers() {
  find "$1" -name '.*-tmp-*' 2>/dev/null | sort
}

# deploy_listing SYSROOT: every deployment tree and origin file, and the
# runtime directory's files (the staged record).
deploy_listing() {
  local d="$1/stagehand/deploy"
  { [ -d "$d" ] && find "$d" -mindepth 1 -maxdepth 2 -printf '%P\n'
    [ -d "$1/run/stagehand" ] && find "$1/run/stagehand" -mindepth 1 -printf 'run/%P %s\n'; } | sort
}

# deployment_dir SYSROOT OS/ID
deployment_dir() {
  printf '%s/stagehand/deploy/%s\n' "$1" "$2"
}

# --------------------------------------------------- sd_notify readiness

# notify_listen NAME: a listener for sd_notify messages at
# $TEST_TMP/NAME.sock, logging each message as a line of $TEST_TMP/NAME.log;
# returns once it is bound. Stopped when the script exits. Pass
# NOTIFY_SOCKET=$TEST_TMP/NAME.sock to the process that notifies.
notify_listen() {
  local sock="$TEST_TMP/$1.sock" log="$TEST_TMP/$1.log" pid i
  rm -f "$sock" "$log"
  "$PYTHON" "$LIBPY" notify-listen "$sock" "$log" </dev/null >/dev/null 2>&1 &
  pid=$!
  at_exit kill "$pid"
  for ((i = 0; i < 100; i++)); do
    grep -qx LISTENING "$log" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  bail "the sd_notify listener $1 did not start"
}

# wait_notified NAME REGEX PID: waits (at most 30 s) until the listener NAME
# has logged a message matching REGEX (extended); fails at once when PID
# exits first.
wait_notified() {
  local log="$TEST_TMP/$1.log" i
  for ((i = 0; i < 300; i++)); do
    grep -Eq -- "$2" "$log" 2>/dev/null && return 0
    kill -0 "$3" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# blocked_signals PID: which of HUP, INT and TERM PID blocks, by name,
# space-separated, from /proc/PID/status (SigBlk).
blocked_signals() {
  local mask sig names=()
  mask=$(awk '$1 == "SigBlk:" { print $2 }' "/proc/$1/status") || return 1
  for sig in HUP INT TERM; do
    (((0x$mask >> ($(kill -l "$sig") - 1)) & 1)) && names+=("$sig")
  done
  echo "${names[*]}"
}

# blocked_signals_stopped PID: blocked_signals of PID while it is stopped.
# A process in sigwait() shows the signals it waits for as unblocked (the
# kernel unblocks them for the sleep and keeps the real mask aside): a
# stopped one has left the call and shows its own mask.
blocked_signals_stopped() {
  local i state
  kill -STOP "$1" || return 1
  for ((i = 0; i < 100; i++)); do
    state=$(awk '$1 == "State:" { print $2 }' "/proc/$1/status")
    [ "$state" = T ] && break
    sleep 0.05
  done
  blocked_signals "$1"
  kill -CONT "$1"
}

# ------------------------------------------------------- refused commands

# refused DESCRIPTION SYSROOT EXPECTED_RC STDERR_REGEX -- ARGS...
# Runs `stagehand --sysroot=SYSROOT ARGS...` and checks the contract for bad
# input (7 test points):
#   the exit status; exactly one line on stderr; that it says what and why
#   (STDERR_REGEX, extended, case-insensitive); no deployment added or
#   removed and the staged record untouched; no temporary name anywhere
#   under the sysroot; <boot> identical (every file's sha256, every link
#   target); nothing on stdout claims success.
REFUSED_POINTS=7
refused() {
  local desc=$1 sysroot=$2 want_rc=$3 regex=$4
  shift 4
  [ "$1" = "--" ] && shift
  local boot_before deploy_before boot_after deploy_after leftovers lines
  boot_before=$(boot_snapshot "$sysroot/boot")
  deploy_before=$(deploy_listing "$sysroot")
  sh_on "$sysroot" "$@"
  boot_after=$(boot_snapshot "$sysroot/boot")
  deploy_after=$(deploy_listing "$sysroot")
  leftovers=$(temp_leftovers "$sysroot")

  is "$RC" "$want_rc" "$desc: exit status $want_rc"
  lines=$(printf '%s' "$ERR" | grep -c '')
  is "$lines" 1 "$desc: exactly one line on stderr" || diag_file "$ERR_FILE"
  if grep -Eqi -- "$regex" <<<"$ERR"; then
    pass "$desc: the message says what and why"
  else
    not_ok "$desc: the message says what and why" "expected to match (ignoring case): $regex" \
      "stderr: $ERR"
  fi
  is "$deploy_after" "$deploy_before" "$desc: no deployment added or removed, staged record untouched"
  is "$leftovers" "" "$desc: no temporary directory left under the sysroot"
  is "$boot_after" "$boot_before" "$desc: <boot> is byte-identical"
  unlike "$OUT" '^(Staged|Deployed|Finalized|Rolled back|Unstaged|Removed)' \
    "$desc: stdout does not claim success"
}

# ------------------------------------------------------------ a lock holder

# hold_lock SYSROOT: another process takes a write lock on the sysroot
# lock file (a POSIX record lock: it conflicts with stagehand's OFD lock)
# and keeps it until release_lock. Waits for its readiness line.
HOLDER_PID=""
hold_lock() {
  local ready="$TEST_TMP/holder.ready" i
  rm -f "$ready"
  "$PYTHON" -c '
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR)
fcntl.lockf(fd, fcntl.LOCK_EX)
open(sys.argv[2], "w").close()
time.sleep(600)
' "$1/stagehand/lock" "$ready" &
  HOLDER_PID=$!
  for ((i = 0; i < 100; i++)); do
    [ -e "$ready" ] && return 0
    kill -0 "$HOLDER_PID" 2>/dev/null || break
    sleep 0.1
  done
  bail "the lock holder did not get ready"
}

release_lock() {
  if [ -n "$HOLDER_PID" ]; then
    kill "$HOLDER_PID" 2>/dev/null
    wait "$HOLDER_PID" 2>/dev/null
    HOLDER_PID=""
  fi
  return 0
}

# ------------------------------------------------- making a write fail

# freeze DIR: nothing can be created, renamed or removed in DIR any more,
# not even by root (chattr +i as root, mode a-w otherwise). Fails when the
# filesystem cannot do it (chattr on overlayfs, for one). thaw DIR undoes it.
freeze() {
  if is_root; then
    chattr +i "$1" 2>/dev/null || return 1
    at_exit chattr -i "$1"
  else
    chmod a-w "$1"
  fi
  # Check that it holds: a write must now fail.
  if touch "$1/.freeze-probe" 2>/dev/null; then
    rm -f "$1/.freeze-probe"
    thaw "$1"
    return 1
  fi
}

thaw() {
  if is_root; then chattr -i "$1"; else chmod u+w "$1"; fi
}

[ -x "$STAGEHAND" ] || bail "no stagehand binary at $STAGEHAND (build first, or set STAGEHAND)"
