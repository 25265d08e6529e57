# shellcheck shell=bash disable=SC2034 # variables set here are read by the sourcing script
# Helpers for the lock tests (tests/integration/4*-lock-*.sh), sourced by them.
# Not a test itself: meson runs only [0-9]*.sh. Self-contained on purpose:
# the lock tests depend on nothing but the built binary, python3 and tar.
#
# Speaks TAP: every check prints one "ok"/"not ok" line, the plan comes last
# (lock_done), so a script that dies half-way has no plan and fails.

set -u

STAGEHAND=${STAGEHAND:-build/src/cli/stagehand}
case $STAGEHAND in
  /*) ;;
  *) STAGEHAND=$PWD/$STAGEHAND ;;
esac
if [ ! -x "$STAGEHAND" ]; then
  echo "1..0 # SKIP stagehand binary $STAGEHAND not built"
  exit 0
fi
if ! command -v python3 >/dev/null 2>&1; then
  echo "1..0 # SKIP python3 is needed to hold OFD locks from a foreign process"
  exit 0
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/stagehand-lock-test.XXXXXX")
TAP_N=0
TAP_FAILED=0
# PIDs of the background processes this script started; killed on exit, one
# by one, never by name.
BG_PIDS=""

lock_cleanup () {
  for p in $BG_PIDS; do
    kill -KILL "$p" 2>/dev/null
  done
  for p in $BG_PIDS; do
    wait "$p" 2>/dev/null
  done
  rm -rf "$T"
}
trap lock_cleanup EXIT

bg_track () {
  BG_PIDS="$BG_PIDS $1"
}

diag () {
  printf '%s\n' "$@" | sed 's/^/# /'
}

diag_file () {
  # $1 label, $2 file
  echo "# --- $1:"
  if [ -s "$2" ]; then sed 's/^/#   /' "$2"; else echo "#   (empty)"; fi
}

ok () {
  TAP_N=$((TAP_N + 1))
  echo "ok $TAP_N - $1"
}

not_ok () {
  TAP_N=$((TAP_N + 1))
  TAP_FAILED=$((TAP_FAILED + 1))
  echo "not ok $TAP_N - $1"
}

# check DESCRIPTION COMMAND...: one TAP line for whether COMMAND succeeds.
check () {
  local desc=$1
  shift
  if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

lock_done () {
  echo "1..$TAP_N"
  [ "$TAP_FAILED" -eq 0 ]
  exit $?
}

now_ms () {
  echo $(($(date +%s%N) / 1000000))
}

# make_image DIR NAME: a small root filesystem tree whose kernel and
# initramfs contents (and so bootcsum) depend on NAME.
make_image () {
  local dir=$1 name=$2
  mkdir -p "$dir/usr/lib/modules/6.1.0-$name" "$dir/etc"
  printf 'kernel of %s\n' "$name" >"$dir/usr/lib/modules/6.1.0-$name/vmlinuz"
  printf 'initramfs of %s\n' "$name" >"$dir/usr/lib/modules/6.1.0-$name/initramfs.img"
  printf 'NAME="Lock Test"\nID=locktest\nVERSION_ID=%s\nPRETTY_NAME="Lock Test %s"\n' \
    "$name" "$name" >"$dir/usr/lib/os-release"
}

# make_tar OUT NAME: make_image, archived deterministically.
make_tar () {
  local out=$1 name=$2
  make_image "$T/tree-$name" "$name"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$T/tree-$name" \
    -cf "$out" .
}

# new_sysroot DIR: an initialised sysroot in DIR.
new_sysroot () {
  "$STAGEHAND" --sysroot="$1" init >"$T/init.out" 2>&1 || {
    diag_file "init output" "$T/init.out"
    return 1
  }
}

# status_field SYSROOT EXPR: evaluates the Python expression EXPR over
# j = status --json; prints the result (JSON), or fails.
status_json () {
  "$STAGEHAND" --sysroot="$1" status --json
}
# read_lock_json FILE: sets LOCK_HELD (true/false), LOCK_PID, LOCK_OP and
# LOCK_CMD from the "lock" object of a status --json output. jq when there
# is one (python3 is slow to start on a loaded machine), else python3.
read_lock_json () {
  LOCK_HELD='' LOCK_PID='' LOCK_OP='' LOCK_CMD=''
  {
    read -r LOCK_HELD
    read -r LOCK_PID
    read -r LOCK_OP
    read -r LOCK_CMD
  } < <(
    if command -v jq >/dev/null 2>&1; then
      jq -r '.lock | (.held | tostring), (.pid // "" | tostring), (.operation // ""),
        ((.command // "") | gsub("\n"; " "))' "$1"
    else
      python3 -c '
import json, sys
l = json.load(open(sys.argv[1]))["lock"]
print(json.dumps(l["held"]))
for k in ("pid", "operation", "command"):
    print(str(l.get(k, "")).replace("\n", " "))
' "$1"
    fi
  )
  [ -n "$LOCK_HELD" ]
}

# The Python helper that holds an OFD lock like any foreign program would.
#   lock-holder.py LOCKFILE hold [--metadata-for PID]
#       takes the OFD write lock, prints "locked <pid>", holds until killed;
#       --metadata-for writes stagehand-format metadata naming PID (with that
#       process's real start ticks and boot id): a lie the waiter must see
#       through unless PID is the holder itself.
#   lock-holder.py LOCKFILE posix-hold
#       the same with a classic (per-process) POSIX lock.
#   lock-holder.py LOCKFILE run [--inherit] [--metadata-for PID] -- CMD...
#       takes the lock, then runs CMD as its child and prints
#       "rc <exit status> ms <elapsed> pid <its own pid>"; --inherit passes the
#       locked fd to CMD.
#   lock-holder.py LOCKFILE exec -- CMD...
#       takes the lock on an inheritable fd, prints "exec-at <epoch ms>",
#       then becomes CMD (exec).
write_lock_holder_py () {
  cat >"$T/lock-holder.py" <<'EOF'
import fcntl, os, signal, struct, subprocess, sys, time

def metadata_for(pid, operation="stage"):
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    ticks = stat[stat.rindex(")") + 2:].split()[19]
    with open("/proc/sys/kernel/random/boot_id") as f:
        boot_id = f.read().strip()
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        cmd = f.read().rstrip(b"\0").replace(b"\0", b" ").decode()
    return ("[lock]\npid=%d\nprocess_start_ticks=%s\ncommand=%s\noperation=%s\n"
            "start_time_usec=%d\nboot_id=%s\n" % (pid, ticks, cmd, operation,
                                                  int(time.time() * 1e6), boot_id))

def main():
    path, mode = sys.argv[1], sys.argv[2]
    args = sys.argv[3:]
    meta_pid = None
    inherit = False
    while args and args[0] != "--":
        if args[0] == "--metadata-for":
            meta_pid = int(args[1]); args = args[2:]
        elif args[0] == "--inherit":
            inherit = True; args = args[1:]
        else:
            sys.exit("lock-holder.py: unknown option " + args[0])
    cmd = args[1:]
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    if mode == "exec":
        # Python makes every fd close-on-exec (PEP 446); this one must survive.
        os.set_inheritable(fd, True)
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (x86-64/aarch64 layout).
    lk = struct.pack("hhqqi4x", fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
    fcntl.fcntl(fd, fcntl.F_SETLK if mode == "posix-hold" else fcntl.F_OFD_SETLK, lk)
    if meta_pid is not None:
        data = metadata_for(meta_pid).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    if mode in ("hold", "posix-hold"):
        print("locked %d" % os.getpid(), flush=True)
        while True:
            signal.pause()
    elif mode == "run":
        start = time.monotonic()
        rc = subprocess.run(cmd, pass_fds=(fd,) if inherit else ()).returncode
        print("rc %d ms %d pid %d" % (rc, (time.monotonic() - start) * 1000, os.getpid()),
              flush=True)
    elif mode == "exec":
        print("exec-at %d" % (time.time() * 1000), flush=True)
        os.execvp(cmd[0], cmd)
    else:
        sys.exit("lock-holder.py: unknown mode " + mode)

main()
EOF
}

# start_py_holder LOCKFILE ARGS...: runs lock-holder.py LOCKFILE hold ARGS in
# the background; sets PY_PID once it reports that it holds the lock (its
# own "locked" line is the readiness signal, no sleeping).
start_py_holder () {
  local lockfile=$1
  shift
  rm -f "$T/py.out"
  mkfifo "$T/py.out"
  python3 "$T/lock-holder.py" "$lockfile" "$@" >"$T/py.out" 2>"$T/py.err" &
  PY_PID=$!
  bg_track "$PY_PID"
  local line=""
  exec 8<"$T/py.out"
  read -r -t 10 line <&8
  exec 8<&-
  case $line in
    "locked $PY_PID") return 0 ;;
  esac
  diag "python lock holder did not report the lock: '$line'"
  diag_file "lock-holder.py stderr" "$T/py.err"
  return 1
}

stop_py_holder () {
  kill -TERM "$PY_PID" 2>/dev/null
  wait "$PY_PID" 2>/dev/null
  return 0
}

# start_fifo_holder SYSROOT TAR: a real `stagehand stage` that holds the lock
# while it blocks reading its image from a FIFO: the first 1 KiB of TAR is
# written, the rest waits for finish_fifo_holder. Sets HOLDER_PID and
# HOLDER_FIFO. Ready once status (which never takes the lock) names it.
start_fifo_holder () {
  local sysroot=$1 tar=$2
  HOLDER_FIFO=$T/holder-$RANDOM.fifo
  HOLDER_TAR=$tar
  mkfifo "$HOLDER_FIFO"
  # Read-write: never blocks, and the holder's read-only open returns at
  # once because a writer exists.
  exec 9<>"$HOLDER_FIFO"
  head -c 1024 "$tar" >&9
  "$STAGEHAND" --sysroot="$sysroot" stage --no-start "$HOLDER_FIFO" \
    >"$T/holder.out" 2>"$T/holder.err" &
  HOLDER_PID=$!
  bg_track "$HOLDER_PID"
  wait_holder_named "$sysroot" "$HOLDER_PID"
}

# wait_holder_named SYSROOT PID: until status --json names PID as the holder
# (at most 10 s; status is the readiness signal).
wait_holder_named () {
  local sysroot=$1 pid=$2
  for _ in $(seq 1 200); do
    # json-glib's pretty printing: "pid" : N, (only the lock has a pid)
    if status_json "$sysroot" >"$T/ready.json" 2>/dev/null \
      && grep -q "\"pid\" : $pid," "$T/ready.json"; then
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  diag "holder $pid never showed up in status --json"
  diag_file "holder stderr" "$T/holder.err"
  return 1
}

# finish_fifo_holder: feeds the rest of the image; sets HOLDER_RC.
finish_fifo_holder () {
  tail -c +1025 "$HOLDER_TAR" >&9
  exec 9>&-
  wait "$HOLDER_PID"
  HOLDER_RC=$?
}

# kill_fifo_holder: SIGKILL, then close our end of its FIFO.
kill_fifo_holder () {
  kill -KILL "$HOLDER_PID"
  wait "$HOLDER_PID" 2>/dev/null
  exec 9>&-
}

# wait_for_line FILE REGEX [SECONDS]: until FILE has a line matching REGEX.
wait_for_line () {
  local file=$1 re=$2 secs=${3:-10}
  for _ in $(seq 1 $((secs * 20))); do
    grep -Eq -- "$re" "$file" 2>/dev/null && return 0
    sleep 0.05
  done
  return 1
}

# temp_leftovers DIR: prints every name below DIR that starts with '.' and
# contains '-tmp-' (the project's temporary names).
temp_leftovers () {
  find "$1" -name '.*-tmp-*' -print
}
