#!/bin/bash
# A stagehand whose ancestor holds the sysroot lock (a hook or wrapper that
# took the lock and then calls stagehand) must not wait for it: waiting
# would deadlock, as the nested package manager did. It fails at once - well
# under a second, whatever its --lock-timeout - with exit 1 and a message
# that says so. The same when it holds the lock itself through an inherited
# fd. A holder that is merely a sibling is waited for as usual. Issue 4.
#
# stagehand itself starts no child processes (the finalize unit is started
# over D-Bus, as a child of PID 1), so the ancestor here is python3 playing
# the wrapper; once with metadata in stagehand's own format, as a stagehand
# running a hook would leave it.
# shellcheck disable=SC2016 # check eval's its single-quoted conditions
. "$(dirname "$0")/lock-lib.sh"
write_lock_holder_py

S=$T/sysroot
LOCK=$S/stagehand/lock
check "sysroot initialised" new_sysroot "$S"
make_tar "$T/img.tar" img
STAGE=("$STAGEHAND" "--sysroot=$S" stage --no-start --lock-timeout=30 "$T/img.tar")

# run_nested LABEL MESSAGE-REGEX HOLDER-ARGS...: python3 takes the lock, runs
# the nested command, reports its exit status, duration and its own PID
# (NESTED_HOLDER); MESSAGE-REGEX may refer to the holder as @PID@.
run_nested () {
  local label=$1 re=$2 rc ms n
  shift 2
  python3 "$T/lock-holder.py" "$LOCK" "$@" >"$T/nested.out" 2>"$T/nested.err"
  read -r _ rc _ ms _ NESTED_HOLDER <"$T/nested.out"
  re=${re//@PID@/${NESTED_HOLDER:-none}}
  check "$label: exits 1 (rc ${rc:-none})" [ "${rc:-x}" = 1 ]
  check "$label: fails fast, not after its 30 s timeout (${ms:-?} ms < 1000 ms)" \
    [ "${ms:-99999}" -lt 1000 ]
  n=$(grep -Ec -- "$re" "$T/nested.err")
  check "$label: one message names the holder and says waiting would deadlock ($n)" [ "$n" -eq 1 ]
  check "$label: and nothing else (no waiting lines)" [ "$(wc -l <"$T/nested.err")" -eq 1 ]
  [ "$TAP_FAILED" -eq 0 ] || diag "expected: $re"
  [ "$TAP_FAILED" -eq 0 ] || diag_file "nested stderr" "$T/nested.err"
}

# The holder's command line as the message shows it (python3 may be run by
# its full path; long command lines are cut).
PY_CMD="[^ ]*python3 $T/lock-holder.py $LOCK"

# --- the parent holds the lock (no metadata: found from fdinfo)
run_nested "parent holds the lock" \
  "^stagehand: sysroot lock is held by PID @PID@ \($PY_CMD run .*\), an ancestor of this process: waiting would deadlock \(is a hook calling stagehand\?\)\$" \
  run -- "${STAGE[@]}"

# --- the grandparent holds it: python3 -> sh -> stagehand (the "exit" keeps
# sh from exec'ing stagehand in its place)
run_nested "grandparent holds the lock" \
  "^stagehand: sysroot lock is held by PID @PID@ \($PY_CMD run .*\), an ancestor of this process: waiting would deadlock" \
  run -- sh -c '"$@"; exit $?' sh "${STAGE[@]}"

# --- the ancestor left stagehand-format metadata about itself, as a stagehand
# running a hook would: the verified metadata path must refuse as well.
python3 - "$LOCK" "$T/img.tar" "$STAGEHAND" "$S" >"$T/nested.out" 2>"$T/nested.err" <<'EOF'
import fcntl, os, struct, subprocess, sys, time
lock, img, stagehand, sysroot = sys.argv[1:]
fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack("hhqqi4x", fcntl.F_WRLCK, 0, 0, 0, 0))
with open("/proc/self/stat") as f:
    stat = f.read()
ticks = stat[stat.rindex(")") + 2:].split()[19]
with open("/proc/sys/kernel/random/boot_id") as f:
    boot_id = f.read().strip()
meta = ("[lock]\npid=%d\nprocess_start_ticks=%s\ncommand=stagehand --sysroot=%s deploy hook-test\n"
        "operation=deploy\nstart_time_usec=%d\nboot_id=%s\n"
        % (os.getpid(), ticks, sysroot, int(time.time() * 1e6), boot_id))
os.ftruncate(fd, 0)
os.pwrite(fd, meta.encode(), 0)
start = time.monotonic()
rc = subprocess.run([stagehand, "--sysroot=" + sysroot, "stage", "--no-start",
                     "--lock-timeout=30", img]).returncode
print("rc %d ms %d pid %d" % (rc, (time.monotonic() - start) * 1000, os.getpid()), flush=True)
EOF
read -r _ rc _ ms _ pid <"$T/nested.out"
check "stagehand-like ancestor (verified metadata): exits 1 (rc ${rc:-none})" [ "${rc:-x}" = 1 ]
check "stagehand-like ancestor: fails fast (${ms:-?} ms < 1000 ms)" [ "${ms:-99999}" -lt 1000 ]
check "stagehand-like ancestor: the message names it from its metadata, with its operation" \
  grep -q "^stagehand: sysroot lock is held by PID $pid (stagehand --sysroot=$S deploy hook-test), operation deploy, held for [0-9]* s, an ancestor of this process: waiting would deadlock" "$T/nested.err"
[ "$TAP_FAILED" -eq 0 ] || diag_file "nested stderr" "$T/nested.err"

# --- the lock fd was inherited by stagehand itself: it already holds it
run_nested "the lock fd is inherited by the child" \
  "^stagehand: sysroot lock is held by PID [0-9]+ .*waiting would deadlock" \
  run --inherit -- "${STAGE[@]}"

# --- a wrapper takes the lock, then execs stagehand: it is the holder
python3 "$T/lock-holder.py" "$LOCK" exec -- "${STAGE[@]}" >"$T/exec.out" 2>"$T/exec.err"
rc=$?
t_end=$(now_ms)
t_exec=$(sed -n 's/^exec-at //p' "$T/exec.out")
t=$((t_end - ${t_exec:-0}))
check "wrapper exec'd into stagehand with the lock held: exits 1 (rc $rc)" [ "$rc" -eq 1 ]
check "... fast (${t} ms from the exec < 1000 ms)" [ "$t" -lt 1000 ]
check "... saying it holds the lock itself" \
  grep -q "^stagehand: sysroot lock is held by PID [0-9]* ($STAGEHAND --sysroot=$S stage .*), this process itself (through another open file): waiting would deadlock" "$T/exec.err"
[ "$TAP_FAILED" -eq 0 ] || diag_file "exec stderr" "$T/exec.err"

# --- the control: a sibling holder is waited for, not refused
check "python3 holds the lock as a sibling of the next stagehand" start_py_holder "$LOCK" hold
"$STAGEHAND" --sysroot="$S" stage --no-start --lock-timeout=1 "$T/img.tar" >"$T/sib.out" 2>"$T/sib.err"
rc=$?
check "a sibling holder is waited for: exit 75, not the deadlock refusal (rc $rc)" [ "$rc" -eq 75 ]
check "... and its message does not claim a deadlock" eval '! grep -q deadlock "$T/sib.err"'
stop_py_holder

# --- nothing was staged by any of the refused commands
check "no deployment was created" \
  [ -z "$(find "$S/stagehand/deploy" -mindepth 1 -maxdepth 2 ! -name '.*')" ]
check "no temporary files or directories remain" [ -z "$(temp_leftovers "$S")" ]

lock_done
