# shellcheck shell=bash
# Results come back in globals (EXIT_STATUS, READY_FDS, ...) for the scripts
# that source this file.
# shellcheck disable=SC2034
# Harness for the privileged tests: real parts, no mocks.
#
# Each test script sources this file first. It
#   - skips (TAP "1..0 # SKIP") only when not root; any other missing piece is
#     a failure, because CI runs these as root and a silent skip hides a
#     broken runner;
#   - re-executes the script once inside its own private mount namespace
#     (unshare -m --propagation private), so no test mount can leak to the
#     host, and mounts a private tmpfs on /run there (see below);
#   - provides setup/teardown of a loop-mounted ext4 image served as
#     <tmp>/boot by the autofs package's automount daemon (direct map,
#     --timeout=1), plus helpers that observe the mount without triggering it.
#
# Why a private /run: automount keeps its control fifo at a fixed path derived
# from the master map key (/run/autofs.fifo-- for the direct map "/-"), so two
# daemons on one host fight over it. A tmpfs on /run inside the test's
# namespace lets `meson test` run these scripts in parallel, and keeps
# stagehand away from the host's journal socket and any host /run/stagehand.
#
# Why setsid for the daemon: autofs lets the daemon's own process group walk
# into the mount point without triggering it (the "oz_mode" pgrp recorded in
# the mount options). Started from the test shell without setsid, the daemon
# would share the test's process group and the test could never trigger it.
#
# Why one namespace per test: autofs decides "busy" only from references in
# the mount namespace where the autofs mount lives (ostree#2543). Here that
# is the test's private namespace, which the test, the daemon and stagehand
# all share.

set -u -o pipefail
export LC_ALL=C

# ---------------------------------------------------------------- TAP output

_tap_count=0
_tap_failed=0
_tap_planned=""

plan() {
  _tap_planned=$1
  echo "1..$1"
}

diag() {
  local line
  for line in "$@"; do
    printf '%s\n' "$line" | sed 's/^/# /'
  done
}

# Print a file (a daemon or stagehand log) as diagnostics, last N lines.
diag_file() {
  local file=$1 lines=${2:-40}
  [ -e "$file" ] || { diag "($file does not exist)"; return 0; }
  diag "--- last $lines lines of $file"
  tail -n "$lines" "$file" | sed 's/^/#   /'
}

pass() {
  _tap_count=$((_tap_count + 1))
  echo "ok $_tap_count - $1"
}

fail() {
  _tap_count=$((_tap_count + 1))
  _tap_failed=$((_tap_failed + 1))
  echo "not ok $_tap_count - $1"
}

# ok DESCRIPTION COMMAND [ARGS...]: one test point from a command's status;
# returns that status, so `ok ... && diag ...` reports only on success.
ok() {
  local desc=$1 rc
  shift
  "$@"
  rc=$?
  if [ "$rc" -eq 0 ]; then pass "$desc"; else fail "$desc"; fi
  return "$rc"
}

# is ACTUAL EXPECTED DESCRIPTION
is() {
  if [ "$1" = "$2" ]; then
    pass "$3"
  else
    fail "$3"
    diag "expected: '$2'" "     got: '$1'"
  fi
}

# A precondition failed: nothing after it would mean anything.
bail() {
  echo "Bail out! $*"
  exit 1
}

_tap_finish() {
  if [ -n "$_tap_planned" ] && [ "$_tap_count" -ne "$_tap_planned" ]; then
    diag "planned $_tap_planned tests but ran $_tap_count"
    return 1
  fi
  [ "$_tap_failed" -eq 0 ]
}

# ------------------------------------------------- root and mount namespace

if [ "$(id -u)" -ne 0 ]; then
  echo "1..0 # SKIP needs root (loop devices, mounts, the automount daemon)"
  exit 0
fi

_priv_script=$(readlink -f "$0")
_priv_here=$(dirname "$_priv_script")
PRIV_REPO_ROOT=$(cd "$_priv_here/../.." && pwd)

# The marker holds the mount namespace we came from: re-execute exactly once,
# and refuse to run if unshare did not actually give us a new namespace.
if [ -z "${STAGEHAND_PRIV_PARENT_MNTNS:-}" ]; then
  command -v unshare >/dev/null || bail "unshare (util-linux) is not installed"
  STAGEHAND_PRIV_PARENT_MNTNS=$(readlink /proc/self/ns/mnt)
  export STAGEHAND_PRIV_PARENT_MNTNS
  # shellcheck disable=SC2093 # the bail below runs only if exec fails
  exec unshare --mount --propagation private -- "$BASH" "$_priv_script" "$@"
  bail "could not re-execute in a private mount namespace"
fi
if [ "$(readlink /proc/self/ns/mnt)" = "$STAGEHAND_PRIV_PARENT_MNTNS" ]; then
  bail "still in the parent mount namespace; refusing to mount anything"
fi
mount -t tmpfs -o mode=0755,size=16m stagehand-test-run /run \
  || bail "cannot mount a private tmpfs on /run"

# --------------------------------------------------------------- dependencies

require_commands() {
  local cmd missing=()
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  [ ${#missing[@]} -eq 0 ] || bail "missing required commands: ${missing[*]}"
}

require_commands automount mkfs.ext4 losetup mount umount setsid awk python3 sha256sum find

STAGEHAND=${STAGEHAND:-$PRIV_REPO_ROOT/build/src/cli/stagehand}
case $STAGEHAND in
  /*) ;;
  *) STAGEHAND=$PRIV_REPO_ROOT/$STAGEHAND ;;
esac

# For tests that drive the product: a missing binary is a failure, not a skip.
require_stagehand() {
  [ -x "$STAGEHAND" ] || bail "stagehand binary not found at $STAGEHAND (build it, or set STAGEHAND)"
}

# ---------------------------------------------------------------- time

# Microseconds since the epoch, without forking.
now_us() {
  local t=$EPOCHREALTIME
  echo "${t/./}"
}

# seconds_since START_US -> "1.234"
seconds_since() {
  local d=$(($(now_us) - $1))
  printf '%d.%03d' $((d / 1000000)) $((d % 1000000 / 1000))
}

# Polling interval for conditions that have no event to wait on (mountinfo).
POLL_INTERVAL=0.05

# ------------------------------------------------------------ background jobs

_priv_bg_pids=()

track_pid() {
  _priv_bg_pids+=("$1")
}

# Forget a reaped child, so teardown never signals a recycled pid.
untrack_pid() {
  local pid kept=()
  for pid in "${_priv_bg_pids[@]}"; do
    [ "$pid" = "$1" ] || kept+=("$pid")
  done
  _priv_bg_pids=("${kept[@]}")
}

pid_alive() {
  local state
  state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

# wait_exit PID TIMEOUT: reap a child of this shell, waiting at most TIMEOUT
# seconds; a child still running then is killed and reported as hung.
# Sets EXIT_STATUS, EXIT_AFTER (seconds) and EXIT_HUNG (0/1).
wait_exit() {
  local pid=$1 timeout=$2 start marker watchdog
  marker=$T/.watchdog-fired-$pid
  rm -f "$marker"
  start=$(now_us)
  (
    trap 'kill "$s" 2>/dev/null; exit 0' TERM
    sleep "$timeout" &
    s=$!
    wait "$s"
    : >"$marker"
    kill -KILL "$pid" 2>/dev/null
  ) </dev/null >/dev/null 2>&1 &
  watchdog=$!
  wait "$pid"
  EXIT_STATUS=$?
  EXIT_AFTER=$(seconds_since "$start")
  untrack_pid "$pid"
  kill -TERM "$watchdog" 2>/dev/null
  wait "$watchdog" 2>/dev/null
  if [ -e "$marker" ]; then EXIT_HUNG=1; else EXIT_HUNG=0; fi
  rm -f "$marker"
  return 0
}

# ------------------------------------------------------- the boot automount

BOOT_TIMEOUT=1

# Print "<mount id> <parent id> <fstype> <options>" for each mount at PATH.
_mounts_at() {
  awk -v mp="$1" '
    $5 == mp {
      for (i = 7; i <= NF; i++) if ($i == "-") break
      print $1, $2, $(i + 1), $(i + 3)
    }' /proc/self/mountinfo
}

# The mount id of the ext4 mount stacked on the autofs trigger at <tmp>/boot.
# Reads /proc/self/mountinfo only: never stats the path, so never triggers.
boot_mount_id() {
  _mounts_at "$BOOT" | awk '
    $3 == "autofs" { trigger[$1] = 1 }
    $3 == "ext4" { parent[$1] = $2 }
    END {
      for (m in parent) if (parent[m] in trigger) { print m; found = 1 }
      exit !found
    }'
}

boot_is_mounted() {
  boot_mount_id >/dev/null
}

autofs_trigger_options() {
  _mounts_at "$BOOT" | awk '$3 == "autofs" { print $4; exit }'
}

# The automount daemon waits for us: trigger from this shell, whose process
# group is not the daemon's. Returns once the mount is there (the kernel
# holds the lookup until the daemon has mounted).
trigger_boot() {
  ls -a "$BOOT" >/dev/null
}

# wait_until_expired TIMEOUT: poll mountinfo until the boot mount is gone.
# Sets EXPIRED_AFTER (seconds since the call).
wait_until_expired() {
  local timeout=$1 start deadline
  start=$(now_us)
  deadline=$((start + ${timeout%.*} * 1000000))
  while boot_is_mounted; do
    if [ "$(now_us)" -ge "$deadline" ]; then
      EXPIRED_AFTER=$(seconds_since "$start")
      diag "boot still mounted after ${EXPIRED_AFTER}s"
      return 1
    fi
    sleep "$POLL_INTERVAL"
  done
  EXPIRED_AFTER=$(seconds_since "$start")
  return 0
}

# boot_stays_mounted SECONDS: the same boot mount (same mount id, so not
# expired and re-mounted in between) is present for the whole window.
# Observing an absence over time needs a window; this is not synchronisation.
boot_stays_mounted() {
  local window=$1 start deadline id now_id
  id=$(boot_mount_id) || { diag "boot is not mounted at the start of the window"; return 1; }
  start=$(now_us)
  deadline=$((start + ${window%.*} * 1000000))
  while [ "$(now_us)" -lt "$deadline" ]; do
    now_id=$(boot_mount_id) || now_id=none
    if [ "$now_id" != "$id" ]; then
      diag "boot mount $id replaced by '$now_id' after $(seconds_since "$start")s"
      return 1
    fi
    sleep "$POLL_INTERVAL"
  done
  return 0
}

# ------------------------------------------------------------- setup/teardown

# T: the test's temp dir; BOOT: the automount; SYSROOT: a plain directory.
setup() {
  local i opts our_pgrp
  case ${TMPDIR:-/tmp} in
    *[[:space:]]*) bail "TMPDIR contains whitespace; mountinfo paths would be escaped" ;;
  esac
  T=$(mktemp -d "${TMPDIR:-/tmp}/stagehand-priv.XXXXXX") || bail "mktemp failed"
  BOOT=$T/boot
  SYSROOT=$T/sysroot
  trap teardown EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM

  mkdir -p "$BOOT" "$SYSROOT"
  truncate -s 64M "$T/boot.img" || bail "cannot create $T/boot.img"
  mkfs.ext4 -q -F -L stagehand-boot "$T/boot.img" || bail "mkfs.ext4 failed"
  LOOP=$(losetup --find --show "$T/boot.img") || bail "losetup failed"

  # Direct map, so the trigger sits exactly at <tmp>/boot as /boot does.
  printf '%s -fstype=ext4 :%s\n' "$BOOT" "$LOOP" >"$T/auto.direct"
  printf '/- %s --timeout=%s\n' "$T/auto.direct" "$BOOT_TIMEOUT" >"$T/auto.master"

  # -C: other tests' daemons may be running in other namespaces.
  setsid automount -f -d -C -p "$T/automount.pid" "$T/auto.master" \
    </dev/null >"$T/automount.log" 2>&1 &
  AUTOMOUNT_PID=$!

  for ((i = 0; i < 200; i++)); do
    [ -n "$(autofs_trigger_options)" ] && break
    pid_alive "$AUTOMOUNT_PID" || bail "automount exited during start"
    sleep "$POLL_INTERVAL"
  done
  opts=$(autofs_trigger_options)
  [ -n "$opts" ] || bail "no autofs trigger at $BOOT after 10s"
  case ",$opts," in
    *",timeout=$BOOT_TIMEOUT,"*) ;;
    *) bail "autofs trigger at $BOOT has options '$opts', expected timeout=$BOOT_TIMEOUT" ;;
  esac
  our_pgrp=$(awk '{ print $5 }' /proc/$$/stat)
  case ",$opts," in
    *",pgrp=$our_pgrp,"*) bail "automount shares the test's process group; it would never be triggered" ;;
  esac
  ! boot_is_mounted || bail "boot is mounted before anything touched it"
}

teardown() {
  local status=$? pid i mp
  trap - EXIT HUP INT TERM
  set +e

  for pid in "${_priv_bg_pids[@]}"; do
    kill -KILL "$pid" 2>/dev/null
  done
  for pid in "${_priv_bg_pids[@]}"; do
    wait "$pid" 2>/dev/null
  done

  if [ -n "${AUTOMOUNT_PID:-}" ]; then
    # SIGTERM: the daemon unmounts what it can and removes its trigger.
    kill -TERM "$AUTOMOUNT_PID" 2>/dev/null
    for ((i = 0; i < 100; i++)); do
      pid_alive "$AUTOMOUNT_PID" || break
      sleep "$POLL_INTERVAL"
    done
    if pid_alive "$AUTOMOUNT_PID"; then
      diag "automount did not exit on SIGTERM within 5s; killing it"
      kill -KILL -- "-$AUTOMOUNT_PID" 2>/dev/null
    fi
    wait "$AUTOMOUNT_PID" 2>/dev/null
  fi

  if [ -n "${T:-}" ]; then
    # Anything still mounted below T, deepest first (lazily: a leftover
    # holder must not make teardown fail; the namespace dies with us anyway).
    awk -v t="$T/" 'index($5, t) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
      while read -r mp; do umount -l "$mp" 2>/dev/null || diag "could not unmount $mp"; done
  fi
  [ -n "${LOOP:-}" ] && { losetup -d "$LOOP" 2>/dev/null || diag "could not detach $LOOP"; }

  _tap_finish || [ "$status" -ne 0 ] || status=1
  if [ "$status" -ne 0 ] && [ -n "${T:-}" ]; then
    diag_file "$T/automount.log" 30
  fi

  if [ -n "${T:-}" ] && [ -d "$T" ]; then
    if [ -n "${STAGEHAND_PRIV_KEEP:-}" ]; then
      diag "kept $T"
    elif awk -v t="$T/" 'index($5, t) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
      diag "mounts remain below $T; not removing it"
    else
      rm -rf --one-file-system "$T"
    fi
  fi
  exit "$status"
}
