# shellcheck shell=bash
# Harness for the privileged tests: real parts, no mocks.
#
# Each test script sources this file first. It
#   - skips (TAP "1..0 # SKIP") only when not root; any other missing piece is
#     a failure, because CI runs these as root and a silent skip hides a
#     broken runner;
#   - runs the script in the VM guest instead when the host kernel lacks a
#     feature the script declares with needs_kernel (tests/lib/kernel-features.sh);
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

# Results come back in globals (EXIT_STATUS, READY_FDS, ...) for the scripts
# that source this file.
# shellcheck disable=SC2034
set -u -o pipefail
export LC_ALL=C

# ---------------------------------------------------------------- TAP output

. "$(dirname "${BASH_SOURCE[0]}")/../lib/tap.sh"

# ------------------------------------------------- root and mount namespace

. "$(dirname "${BASH_SOURCE[0]}")/../lib/private-ns.sh"
enter_private_namespace "needs root (loop devices, mounts, the automount daemon)" "$@"

_priv_script=$(readlink -f "$0")
_priv_here=$(dirname "$_priv_script")
PRIV_REPO_ROOT=$(cd "$_priv_here/../.." && pwd)

# --------------------------------------------------------------- dependencies

require_commands() {
  local cmd missing=()
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  [ ${#missing[@]} -eq 0 ] || bail "missing required commands: ${missing[*]}"
}

require_commands mkfs.ext4 losetup mount umount awk python3 sha256sum find

# ------------------------------------------------------------ kernel features

. "$(dirname "${BASH_SOURCE[0]}")/../lib/kernel-features.sh"

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

# spawn COMMAND...: run COMMAND in the background and return once it has
# been exec'd; sets SPAWNED_PID. Until its exec, a child forked by bash still
# has the shell's signal handlers: a SIGTERM landing there is swallowed, and
# the command, once running, would wait forever for a signal already gone.
# (Seen here: about one in ten immediate SIGTERMs.) Waiting for the exec
# makes "a signal right after start" land in the product, not in bash.
# (So COMMAND must not itself be bash.)
spawn() {
  local i
  "$@" &
  SPAWNED_PID=$!
  track_pid "$SPAWNED_PID"
  for ((i = 0; i < 5000; i++)); do
    [ /proc/"$SPAWNED_PID"/exe -ef "$BASH" ] || return 0
    [ "$i" -lt 1000 ] || sleep 0.001
  done
  diag "pid $SPAWNED_PID did not exec within 5s"
  return 1
}

# pid_alive PID: running, i.e. neither gone nor an unreaped zombie.
pid_alive() {
  local stat state
  { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
  state=${stat##*) }
  state=${state%% *}
  [ -n "$state" ] && [ "$state" != Z ]
}

# wait_exit PID TIMEOUT: reap a child of this shell, waiting at most TIMEOUT
# seconds; a child still running then is killed and reported as hung. Polls
# rather than arming a watchdog process: a child's pid cannot be recycled
# before we reap it, so the kill can never hit a stranger.
# Sets EXIT_STATUS, EXIT_AFTER (seconds) and EXIT_HUNG (0/1).
wait_exit() {
  local pid=$1 timeout=$2 start deadline
  start=$(now_us)
  deadline=$((start + timeout * 1000000))
  EXIT_HUNG=0
  while pid_alive "$pid"; do
    if [ "$(now_us)" -ge "$deadline" ]; then
      EXIT_HUNG=1
      kill -KILL "$pid" 2>/dev/null
      break
    fi
    sleep 0.01
  done
  wait "$pid"
  EXIT_STATUS=$?
  EXIT_AFTER=$(seconds_since "$start")
  untrack_pid "$pid"
  return 0
}

# ------------------------------------------------------- the boot automount

BOOT_TIMEOUT=1

# _mounts_at PATH [MOUNTINFO]: "<mount id> <parent id> <fstype> <options>"
# for each mount at PATH (default: this process's /proc/self/mountinfo).
_mounts_at() {
  awk -v mp="$1" '
    $5 == mp {
      for (i = 7; i <= NF; i++) if ($i == "-") break
      print $1, $2, $(i + 1), $(i + 3)
    }' "${2:-/proc/self/mountinfo}"
}

# boot_mount_id [MOUNTINFO]: the mount id of the ext4 mount stacked on the
# autofs trigger at <tmp>/boot. Reads mountinfo only: never stats the path,
# so never triggers the automount.
boot_mount_id() {
  _mounts_at "$BOOT" "${1:-}" | awk '
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
  case " ${KERNEL_NEEDS[*]} " in
    *" autofs "*) ;;
    *) bail "setup mounts a kernel automount: the test must call 'needs_kernel autofs ext4 loop' first" ;;
  esac
  require_commands automount debugfs setsid
  case ${TMPDIR:-/tmp} in
    *[[:space:]]*) bail "TMPDIR contains whitespace; mountinfo paths would be escaped" ;;
  esac
  T=$(mktemp -d "${TMPDIR:-/tmp}/stagehand-priv.XXXXXX") || bail "mktemp failed"
  BOOT=$T/boot
  SYSROOT=$T/sysroot
  # A child forked by `cmd &` runs this shell's traps until it execs (see
  # spawn): only the test's own shell tears down.
  trap '[ "$BASHPID" = "$$" ] && teardown' EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM

  mkdir -p "$BOOT" "$SYSROOT"
  truncate -s 64M "$T/boot.img" || bail "cannot create $T/boot.img"
  mkfs.ext4 -q -F -I 256 -L stagehand-boot "$T/boot.img" || bail "mkfs.ext4 failed"
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

# Every process in this mount namespace is the test's: kill any still there
# but this shell and the automount daemon (stopped gracefully below). The
# tracked pids are not enough: a tracee outlives a killed strace, and a
# holder left running would keep the namespace, its mounts and the loop
# device alive after the test. Builtins only, so the scan never sees (and
# kills) a helper process of its own.
_priv_kill_namespace_strays() {
  local round proc pid found
  for round in 1 2 3; do
    found=0
    for proc in /proc/[0-9]*; do
      pid=${proc#/proc/}
      case $pid in "$$" | "$BASHPID" | "${AUTOMOUNT_PID:-}") continue ;; esac
      [ "$proc/ns/mnt" -ef /proc/$$/ns/mnt ] 2>/dev/null || continue
      kill -KILL "$pid" 2>/dev/null && found=1
    done
    [ "$found" -eq 1 ] || break
    sleep "$POLL_INTERVAL"
  done
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
  _priv_kill_namespace_strays

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

  tap_finish || [ "$status" -ne 0 ] || status=1
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

# ------------------------------------------------------- stagehand fixtures

. "$(dirname "${BASH_SOURCE[0]}")/../lib/test-image.sh"

_sh_log_n=0

# stagehand_run ARGS...: run stagehand on the test's sysroot and boot, output
# to a numbered log (printed as diagnostics on failure). Sets SH_LOG.
stagehand_run() {
  local rc
  _sh_log_n=$((_sh_log_n + 1))
  SH_LOG=$T/stagehand.$_sh_log_n.log
  "$STAGEHAND" --sysroot="$SYSROOT" --boot="$BOOT" "$@" </dev/null >"$SH_LOG" 2>&1
  rc=$?
  if [ "$rc" -ne 0 ]; then
    diag "stagehand $* exited $rc"
    diag_file "$SH_LOG" 20
  fi
  return "$rc"
}

# Deployment ids of testos, one per line, sorted.
deployment_ids() {
  local d
  for d in "$SYSROOT"/stagehand/deploy/testos/*/; do
    [ -d "$d" ] || continue
    d=${d%/}
    d=${d##*/}
    case $d in .*) continue ;; esac
    echo "$d"
  done | sort
}

# stage_image IMAGE: stage it without starting a unit; sets STAGED_ID to the
# one deployment the stage created.
stage_image() {
  local before after new
  before=$(deployment_ids)
  stagehand_run stage "$1" --no-start || return 1
  after=$(deployment_ids)
  new=$(comm -13 <(printf '%s\n' "$before") <(printf '%s\n' "$after") | sed '/^$/d')
  if [ "$(printf '%s\n' "$new" | sed '/^$/d' | wc -l)" -ne 1 ]; then
    diag "stage created '$new', expected exactly one new deployment"
    return 1
  fi
  STAGED_ID=$new
}

# start_hold: start `finalize-staged --hold` in the background; sets HOLD_PID
# and HOLD_LOG. NOTIFY_SOCKET is passed on when set.
start_hold() {
  # shellcheck disable=SC2119 # no wrapper
  start_hold_under
}

# start_hold_under WRAPPER...: the same, run under a wrapper such as strace;
# HOLD_PID is then the wrapper's pid.
# shellcheck disable=SC2120 # start_hold passes none
start_hold_under() {
  _sh_log_n=$((_sh_log_n + 1))
  HOLD_LOG=$T/stagehand.$_sh_log_n.log
  spawn "$@" "$STAGEHAND" --sysroot="$SYSROOT" --boot="$BOOT" finalize-staged --hold \
    </dev/null >"$HOLD_LOG" 2>&1
  HOLD_PID=$SPAWNED_PID
}

# The loader symlink's target, read through the automount (triggers it).
loader_target() {
  readlink "$BOOT/loader"
}

# check_boot_config: <boot>/loader is a symlink to loader.0 or loader.1 and
# every entry there is complete: title, version, linux, initrd and options
# with stagehand=/stagehand/deploy/testos/<id> naming an existing deployment,
# and the linux/initrd files exist and are not empty. Diagnoses what is wrong.
check_boot_config() {
  local target entries confs conf key value word dep bad=0
  target=$(loader_target) || { diag "$BOOT/loader is not a symlink"; return 1; }
  case $target in
    loader.0 | loader.1) ;;
    *) diag "$BOOT/loader -> '$target', expected loader.0 or loader.1"; return 1 ;;
  esac
  entries=$BOOT/$target/entries
  [ -d "$entries" ] || { diag "$entries is not a directory"; return 1; }
  confs=("$entries"/*.conf)
  [ -e "${confs[0]}" ] || return 0
  # One pass over all entries: "<file> <key> <value>" for the keys that
  # matter, "<file> missing <key>" for each one that is absent.
  while IFS=$'\t' read -r conf key value; do
    case $key in
      missing) diag "$conf has no '$value' line"; bad=1 ;;
      linux | initrd)
        [ -s "$BOOT/${value#/}" ] || { diag "$conf: $key $value does not exist in $BOOT"; bad=1; } ;;
      options)
        dep=""
        for word in $value; do
          case $word in stagehand=*) dep=${word#stagehand=} ;; esac
        done
        case $dep in
          /stagehand/deploy/testos/?*)
            [ -d "$SYSROOT$dep" ] || { diag "$conf: $dep is not a deployment in $SYSROOT"; bad=1; } ;;
          *) diag "$conf: options '$value' carry no stagehand=/stagehand/deploy/testos/<id>"; bad=1 ;;
        esac ;;
    esac
  done < <(awk '
    function flush(   k, n, i) {
      n = split("title version linux initrd options", k, " ")
      for (i = 1; i <= n; i++)
        if (k[i] in v) print file "\t" k[i] "\t" v[k[i]]
        else print file "\tmissing\t" k[i]
      delete v
    }
    FNR == 1 { if (file != "") flush(); file = FILENAME }
    NF >= 2 && !($1 in v) { key = $1; sub(/^[^ \t]+[ \t]+/, ""); v[key] = $0 }
    END { if (file != "") flush() }' "${confs[@]}")
  [ "$bad" -eq 0 ]
}

# entry_for_deployment ID: print the path of the entry in the active loader
# dir whose options name deployment ID.
entry_for_deployment() {
  local target
  target=$(loader_target) || return 1
  grep -lE "^options([[:space:]].*)?[[:space:]]stagehand=/stagehand/deploy/testos/$1([[:space:]]|\$)" \
    "$BOOT/$target"/entries/stagehand-*.conf 2>/dev/null | head -n 1 | grep .
}

# A listing of <boot> precise enough to notice any write: type, mode, size,
# mtime, ctime, link target and content hash of every file, sorted.
snapshot_boot() {
  (
    cd "$BOOT" || exit 1
    find . -xdev -printf '%p\t%y\t%m\t%s\t%T@\t%C@\t%l\n' | sort
    find . -xdev -type f -print0 | sort -z | xargs -0 -r sha256sum
  )
}

# ------------------------------------------------------ sd_notify listener

# notify_listen: bind a datagram socket at $T/notify.sock and export
# NOTIFY_SOCKET. For each datagram the listener, before anything else,
# records the sender's open fds (pid from SCM_CREDENTIALS) into
# $T/notify.<n>.fds in the format of snapshot_fds, and its mountinfo into
# $T/notify.<n>.mountinfo; then it writes "<n> <pid> <message>" (newlines as
# spaces) to a fifo this shell reads, so wait_for_ready is event-driven.
# Every message is also appended to $T/notify.log.
notify_listen() {
  local line
  cat >"$T/notify-listener.py" <<'EOF'
import os, socket, struct, sys

sock_path, fifo_path, fds_prefix = sys.argv[1:4]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind(sock_path)
out = open(fifo_path, "w", buffering=1)
out.write("LISTENING\n")
n = 0
while True:
    msg, anc, _flags, _addr = s.recvmsg(65536, socket.CMSG_SPACE(12))
    pid = 0
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", data[:12])[0]
    # Snapshot first: this is the state the sender had when it sent.
    fds = []
    if pid:
        try:
            names = os.listdir("/proc/%d/fd" % pid)
        except OSError:
            names = []
        for name in names:
            try:
                target = os.readlink("/proc/%d/fd/%s" % (pid, name))
                with open("/proc/%d/fdinfo/%s" % (pid, name)) as info:
                    mnt_id = [l.split()[1] for l in info if l.startswith("mnt_id:")][0]
            except (OSError, IndexError):
                continue
            fds.append("%s\t%s\n" % (target, mnt_id))
    with open("/proc/self/mountinfo") as f:
        mountinfo = f.read()
    n += 1
    with open("%s.%d.fds" % (fds_prefix, n), "w") as f:
        f.write("".join(sorted(fds)))
    with open("%s.%d.mountinfo" % (fds_prefix, n), "w") as f:
        f.write(mountinfo)
    text = msg.decode("utf-8", "replace").replace("\n", " ").strip()
    with open("%s.log" % fds_prefix, "a") as f:
        f.write("%d %d %s\n" % (n, pid, text))
    out.write("%d %d %s\n" % (n, pid, text))
EOF
  rm -f "$T/notify.sock" "$T/notify.fifo"
  mkfifo "$T/notify.fifo"
  python3 "$T/notify-listener.py" "$T/notify.sock" "$T/notify.fifo" "$T/notify" \
    </dev/null >"$T/notify-listener.log" 2>&1 &
  NOTIFY_LISTENER_PID=$!
  track_pid "$NOTIFY_LISTENER_PID"
  exec {NOTIFY_FD}<"$T/notify.fifo"
  read -r -t 10 -u "$NOTIFY_FD" line
  [ "$line" = LISTENING ] || { diag_file "$T/notify-listener.log"; bail "notify listener did not start"; }
  export NOTIFY_SOCKET=$T/notify.sock
}

# wait_for_ready PID TIMEOUT: wait for a datagram with a READY=1 line,
# failing early if PID exits first. Sets READY_SENDER, READY_MESSAGE,
# READY_AFTER, and READY_FDS / READY_MOUNTINFO (the sender's fds and the
# mount table as they were when the datagram arrived).
wait_for_ready() {
  local pid=$1 timeout=$2 start deadline chunk partial="" n sender text
  start=$(now_us)
  deadline=$((start + timeout * 1000000))
  READY_SENDER="" READY_MESSAGE="" READY_FDS="" READY_MOUNTINFO=""
  while [ "$(now_us)" -lt "$deadline" ]; do
    # A timed-out read keeps what it got of a line: carry it over.
    if IFS= read -r -t 0.2 -u "$NOTIFY_FD" chunk; then
      read -r n sender text <<<"$partial$chunk"
      partial=""
      case " $text " in
        *" READY=1 "*)
          READY_SENDER=$sender
          READY_MESSAGE=$text
          READY_FDS=$T/notify.$n.fds
          READY_MOUNTINFO=$T/notify.$n.mountinfo
          READY_AFTER=$(seconds_since "$start")
          return 0 ;;
      esac
      diag "notification without READY=1 from pid $sender: $text"
    elif [ $? -le 128 ]; then
      diag_file "$T/notify-listener.log"
      diag "the notify listener closed its end"
      return 1
    else
      partial+=$chunk
      if ! pid_alive "$pid"; then
        diag "pid $pid exited before sending READY=1"
        return 1
      fi
    fi
  done
  diag "no READY=1 within ${timeout}s"
  return 1
}

# snapshot_fds PID: "<target>\t<mnt_id>" for each open fd of PID, sorted.
snapshot_fds() {
  local fd target
  for fd in /proc/"$1"/fd/*; do
    target=$(readlink "$fd") || continue
    printf '%s\t%s\n' "$target" \
      "$(awk '$1 == "mnt_id:" { print $2 }' "/proc/$1/fdinfo/${fd##*/}" 2>/dev/null)"
  done | sort
}

# fds_hold_boot FDS MOUNTINFO: the fd snapshot has a directory fd on <boot>
# that is on the ext4 boot mount itself (not the autofs trigger beneath it,
# which would not keep anything mounted), per that mount table.
fds_hold_boot() {
  local id
  id=$(boot_mount_id "$2") || { diag "boot was not mounted"; return 1; }
  grep -qxF -- "$BOOT	$id" "$1" || {
    diag "no fd on $BOOT with mnt_id $id; fds were:"
    diag "$(sed 's/^/  /' "$1")"
    return 1
  }
}

# fds_hold_sysroot FDS: the fd snapshot has an fd on the sysroot.
fds_hold_sysroot() {
  grep -q -- "^$SYSROOT	" "$1" || {
    diag "no fd on $SYSROOT; fds were:"
    diag "$(sed 's/^/  /' "$1")"
    return 1
  }
}

# pid_holds_boot_and_sysroot PID: right now, PID has a directory fd on the
# ext4 boot mount and one on the sysroot.
pid_holds_boot_and_sysroot() {
  local fds=$T/fds.$1
  snapshot_fds "$1" >"$fds" &&
    fds_hold_boot "$fds" /proc/self/mountinfo &&
    fds_hold_sysroot "$fds"
}

# boot_fs_readlink PATH: read a symlink straight from the ext4 image on the
# loop device, not through any mount (the boot mount must have expired).
boot_fs_readlink() {
  ! boot_is_mounted || { diag "boot is mounted; not reading its device"; return 1; }
  debugfs -R "stat $1" "$LOOP" 2>/dev/null | sed -n 's/^Fast link dest: "\(.*\)"$/\1/p'
}
