#!/bin/bash
# SIGKILL before every state-changing system call of stage, finalize-staged,
# deploy, rollback and cleanup: the boot configuration stays complete (old or
# new, never between; with the non-atomic exchange fallback, every entry
# complete, old and new side by side), running the command again reaches the
# intended end state, and cleanup then leaves no temp file behind.
# finalize-staged and rollback run in symlink mode and again in exchange
# mode, with RENAME_EXCHANGE and with the fallback.
#
# How: each command first runs once under strace to count its calls of each
# state-changing syscall. Then, for every syscall S and every N up to its
# count, a fresh copy of the starting sysroot gets the command again under
#   strace -e inject=S:signal=KILL:when=N
# which kills the process on entry to its Nth call of S, before the call
# runs. For openat only the calls with O_CREAT are injection points (found
# by position in the counting run); the runs are deterministic, so the Nth
# call is the same call every time, and each run must really be killed.
#
# After each kill: check-invariant; then the recovery an operator would do
# (below, per command) and `cleanup`; then the invariant again, the
# expected end state, exactly the expected deployments and no `.*-tmp-*`
# name anywhere under the sysroot and boot.
#
# The import runs on one thread (fault-lib.sh sets
# STAGEHAND_DEBUG_ONE_THREAD): strace counts calls per thread.
#
# Privileged only because of its run time (CI runs this suite as root); the
# sysroots are plain temp directories on local disk. Points run in parallel
# (SWEEP_JOBS, default: twice the number of CPUs, as much of a point's time
# is spent waiting in fsync and syncfs); SWEEP_COMMANDS limits the
# sweep to some commands (when working on one). It was checked against a
# deliberately broken product (a swap that unlinks loader, then creates the
# new symlink): the kill between the two is caught.
#
# The /etc merge (issue 16) runs in stage, deploy and finalize-staged: those
# run as if testos/1 were booted (STAGEHAND_DEBUG_CMDLINE), whose etc/ (the
# running /etc) was changed before the stage and again after it, with a
# conflict with the new image. After each kill testos/1's etc/ must be as it
# was (the merge never writes the running /etc), and after the recovery the
# new default's /etc must hold every local change.

# ------------------------------------------------------------------ syscalls

# The calls that change state. "?" lets strace accept names an architecture
# lacks (aarch64 has no rename, mkdir, ...). copy_file_range is how kernels
# and image files are copied, so it writes data as surely as write does.
STATE_SYSCALLS="?rename renameat ?renameat2 ?symlink symlinkat ?link linkat ?unlink unlinkat ?rmdir
?mkdir mkdirat openat write pwrite64 fsync fdatasync syncfs ?copy_file_range"
STATE_SYSCALLS=$(echo $STATE_SYSCALLS | tr ' ' ,)

# ------------------------------------------------------------------ commands

# A command may carry a boot mode after a colon: CMD:exchange runs on a boot
# directory in exchange mode (a real loader/, RENAME_EXCHANGE of
# loader/entries), CMD:fallback the same with STAGEHAND_DEBUG_NO_EXCHANGE=1,
# which makes the swap behave as on a filesystem that refuses the exchange:
# the entries are moved one at a time (docs/design.md, "The fallback is
# rolled back on failure"). Without one: symlink mode.

# command_args CMD: the arguments of CMD in the sweep; command_template CMD:
# the starting state it runs on (built below).
command_args() {
  case ${1%%:*} in
    stage) echo "stage $T/img2.tar --no-start" ;;
    finalize-staged) echo "finalize-staged" ;;
    deploy) echo "deploy $T/img2.tar" ;;
    rollback) echo "rollback" ;;
    cleanup) echo "cleanup" ;;
  esac
}

# command_booted CMD: the kernel command line CMD runs with: the commands
# that merge /etc run as if testos/1 were booted.
BOOTED="root=/dev/vda stagehand=/stagehand/deploy/testos/1"
command_booted() {
  case $1 in
    stage | deploy | finalize-staged) echo "$BOOTED" ;;
    *) echo "" ;;
  esac
}

command_template() {
  local suffix=""
  case $1 in *:*) suffix=-x ;; esac
  case ${1%%:*} in
    stage | deploy) echo base$suffix ;;     # testos/1 deployed
    finalize-staged) echo staged$suffix ;;  # testos/1 default, testos/2 staged
    rollback) echo two$suffix ;;            # menu testos/2, testos/1
    cleanup) echo messy ;;                  # menu testos/3, testos/2; testos/1 and leftovers
  esac
}

# command_env CMD: the environment CMD runs in (for its kill and its
# recovery alike: the same machine).
command_env() {
  case $1 in
    *:fallback) echo STAGEHAND_DEBUG_NO_EXCHANGE=1 ;;
    *) echo STAGEHAND_SWEEP=1 ;;
  esac
}

# ------------------------------------------------------------------ one point

# Runs in a worker (xargs): prints exactly one line, "CMD SYSCALL N ok" or
# "CMD SYSCALL N FAIL <what went wrong>"; keeps the point's directory on
# failure for diagnosis.
run_point() {
  local cmd=$1 sc=$2 n=$3 W S rc sum problems=()
  # shellcheck disable=SC2046 # one VAR=VALUE word
  export $(command_env "$cmd")
  W=$T/points/${cmd/:/-}-$sc-$n
  S=$W/sysroot
  mkdir -p "$W"
  cp -a "$T/tpl/$(command_template "$cmd")" "$S"
  # This worker's own environment: the command, the recovery and the checks.
  export STAGEHAND_DEBUG_CMDLINE
  STAGEHAND_DEBUG_CMDLINE=$(command_booted "$cmd")

  # The outer 2>/dev/null takes bash's "Killed" job message.
  # shellcheck disable=SC2046 # the arguments are words
  {
    strace -f -qq -o /dev/null -e trace="$sc" -e inject="$sc":signal=KILL:when="$n" \
      "$STAGEHAND" --sysroot="$S" $(command_args "$cmd") </dev/null >"$W/killed.log" 2>&1
    rc=$?
  } 2>/dev/null
  [ "$rc" -eq 137 ] || problems+=("not killed (exit $rc): the call did not happen in this run")

  # point_check LABEL: the invariant, and the summary line into $sum (one
  # interpreter for both; this runs about a thousand times).
  point_check() {
    "$STAGEHAND" --sysroot="$S" --json status 2>/dev/null >"$W/status.$1"
    "$PYTHON" -S "$SYSROOT_SUMMARY" --invariant "$S" <"$W/status.$1" >"$W/check.$1" 2>&1 ||
      problems+=("after $1: $(tail -n +2 "$W/check.$1" | tr '\n' ' ')")
    sum=$(head -n 1 "$W/check.$1")
  }
  point_run() {
    local what=$1
    shift
    "$STAGEHAND" --sysroot="$S" "$@" </dev/null >"$W/$what.log" 2>&1 ||
      problems+=("$what failed: $(tr '\n' ' ' <"$W/$what.log")")
  }
  point_expect() {
    # shellcheck disable=SC2053 # a pattern
    [[ $sum == $2 ]] || problems+=("after $1: state '$sum', expected '$2'")
  }
  # point_carried LABEL: the live loader directory holds what another tool
  # keeps beside the entries (the staged template has it), byte for byte:
  # old set or new, it is complete.
  point_carried() {
    local f
    for f in loader.conf keys/db.auth; do
      cmp -s "$T/tpl/staged/boot/loader/$f" "$S/boot/loader/$f" ||
        problems+=("after $1: loader/$f is not as it was")
    done
  }

  # point_running_etc LABEL: testos/1's etc/, the running /etc of the
  # commands that merge, is as in the template: the merge never writes it.
  point_running_etc() {
    local e=stagehand/deploy/testos/1/etc
    [ -z "$STAGEHAND_DEBUG_CMDLINE" ] ||
      [ "$(tree_snapshot "$S/$e")" = "$(tree_snapshot "$T/tpl/$(command_template "$cmd")/$e")" ] ||
      problems+=("after $1: the running /etc (testos/1's etc/) changed")
  }
  # point_merged_etc: the new default's /etc holds every local change, the
  # new image's own, and the conflict's two versions.
  point_merged_etc() {
    local d e want got
    d=$(sed -n 's/^default=\([^ ]*\) .*/\1/p' <<<"$sum")
    e=$S/stagehand/deploy/$d/etc
    case $cmd in
      finalize-staged)
        # After the stage: local.conf edited again, later.conf added,
        # hostname removed, issue back to the image's (conflict resolved).
        want="hostname:- issue:Test OS 2 issue.stagehand-new:- later.conf:later local.conf:a=1,a=2 motd:- sshd_config:600"
        ;;
      *) want="hostname:local issue:local banner issue.stagehand-new:Test OS 2 later.conf:- local.conf:a=1 motd:- sshd_config:600" ;;
    esac
    got=$(for f in hostname issue issue.stagehand-new later.conf local.conf motd; do
      printf '%s:%s ' "$f" "$([ -e "$e/$f" ] && paste -sd, "$e/$f" || echo -)"
    done; printf 'sshd_config:%s' "$(stat -c %a "$e/ssh/sshd_config" 2>/dev/null)")
    [ "$got" = "$want" ] || problems+=("the merged /etc of $d: '$got', expected '$want'")
  }

  # After the kill: the invariant. Then the recovery an operator would do,
  # and cleanup; the invariant and the end state are checked once, after
  # both (cleanup changes neither the menu, nor what is staged, nor the
  # verdict, so what the recovery must reach is still visible then).
  point_check kill
  point_running_etc kill
  [ "${cmd%%:*}" != finalize-staged ] || point_carried kill
  case ${cmd%%:*} in
    stage)
      # Stage the same image again: it must succeed and be staged; then the
      # staged deployment must finalize like any other.
      point_run stage-again stage "$T/img2.tar" --no-start
      [ -e "$S/run/stagehand/staged" ] || problems+=("after stage-again: nothing is staged")
      point_run finalize finalize-staged
      ;;
    deploy)
      # Deploy it again: img2 becomes the default.
      point_run deploy-again deploy "$T/img2.tar"
      ;;
    finalize-staged)
      # Finalize again: the staged deployment becomes the default, whether
      # the killed run had committed or not.
      point_run finalize-again finalize-staged
      ;;
    rollback)
      # Rolling back twice goes back to where we started: an operator
      # looks first, and rolls back only when that has not happened yet.
      case $sum in
        "default=testos/1 "*) ;;
        "default=testos/2 "*) point_run rollback-again rollback ;;
        *) problems+=("after kill: neither testos/1 nor testos/2 is the default: $sum") ;;
      esac
      ;;
    cleanup) ;;
  esac
  point_run cleanup cleanup
  point_check recovery-and-cleanup
  point_running_etc recovery-and-cleanup
  case $cmd in stage | deploy | finalize-staged) point_merged_etc ;; esac

  local menu deps
  case ${cmd%%:*} in
    stage | deploy)
      # img2 is the default (after it: testos/1, or for deploy the killed
      # run's testos/2 if that had already committed); cleanup left exactly
      # the deployments of the menu.
      point_expect recovery "default=testos/* menu=testos/*,testos/* staged=- verdict=success:testos/* * trees_without_origin=- unused_kernels=- default_image=img2.tar pending=-"
      [ "$cmd" = deploy ] || point_expect recovery "* menu=testos/*,testos/1 *"
      menu=$(sed -n 's/.* menu=\([^ ]*\) .*/\1/p' <<<"$sum" | tr , '\n' | sort | paste -sd,)
      deps=$(sed -n 's/.* deployments=\([^ ]*\) .*/\1/p' <<<"$sum" | tr , '\n' | sort | paste -sd,)
      [ "$menu" = "$deps" ] || problems+=("after cleanup: deployments $deps, expected those of the menu, $menu")
      ;;
    finalize-staged)
      point_expect recovery "default=testos/2 menu=testos/2,testos/1 staged=- verdict=success:testos/2 deployments=testos/1,testos/2 trees_without_origin=- unused_kernels=- *"
      point_carried recovery
      ;;
    rollback)
      point_expect recovery "default=testos/1 menu=testos/1,testos/2 staged=- * deployments=testos/1,testos/2 trees_without_origin=- unused_kernels=- *"
      ;;
    cleanup)
      point_expect recovery "default=testos/3 menu=testos/3,testos/2 staged=- * deployments=testos/2,testos/3 trees_without_origin=- unused_kernels=- *"
      ;;
  esac
  # Whatever was staged is finalized (or was never staged: deploy,
  # rollback and cleanup start without a marker), so no staged-pending
  # marker is left to report a lost staging at the next boot.
  point_expect recovery "* pending=-"
  local temps top
  temps=$(temp_names "$S" | sed "s|^$S/||" | paste -sd' ')
  [ -z "$temps" ] || problems+=("after cleanup, temp names remain: $temps")
  top=$(ls -A "$S/boot" | grep -vx 'loader\|stagehand' | paste -sd' ')
  case $cmd in
    *:*)
      [ -z "$top" ] || problems+=("after cleanup, <boot> holds '$top' besides loader and stagehand")
      top=$(ls -A "$S/boot/loader" | grep -vx 'loader.conf\|keys' | paste -sd' ')
      [ "$top" = entries ] ||
        problems+=("after cleanup, <boot>/loader holds '$top' besides another tool's files, expected entries alone")
      ;;
    *)
      [[ $top == loader.[01] ]] || problems+=("after cleanup, <boot> holds '$top' besides loader and stagehand, expected one loader.N")
      ;;
  esac

  if [ ${#problems[@]} -eq 0 ]; then
    echo "$cmd $sc $n ok"
    rm -rf "$W"
  else
    local IFS='|'
    echo "$cmd $sc $n FAIL ${problems[*]}"
  fi
}

# ------------------------------------------------------------------ worker mode

if [ "${1:-}" = --point ]; then
  # shellcheck source=tests/lib/fault-lib.sh
  . "$(dirname "$0")/../lib/fault-lib.sh"
  shift
  run_point "$@"
  exit 0
fi

# shellcheck source=tests/lib/fault-lib.sh
. "$(dirname "$0")/../lib/fault-lib.sh"
enter_private_namespace "needs root" "$@"
require_commands strace python3 xargs cp find sort paste
require_stagehand
make_temp sigkill
export T
export STAGEHAND

sweep_start=$(date +%s)

# ------------------------------------------------------------------ templates

make_etc_tar_image "$T/img1.tar" 1
make_etc_tar_image "$T/img2.tar" 2
make_etc_tar_image "$T/img3.tar" 3
mkdir -p "$T/tpl"

tpl_run base init
tpl_run base deploy "$T/img1.tar"
# The administrator's changes in testos/1's /etc: modified, added, removed,
# mode only, and issue, which img2 changes too (a conflict).
E=$T/tpl/base/stagehand/deploy/testos/1/etc
printf 'local\n' >"$E/hostname"
printf 'a=1\n' >"$E/local.conf"
rm "$E/motd"
chmod 0600 "$E/ssh/sshd_config"
printf 'local banner\n' >"$E/issue"
cp -a "$T/tpl/base" "$T/tpl/staged"
STAGEHAND_DEBUG_CMDLINE=$BOOTED tpl_run staged stage "$T/img2.tar" --no-start
# And after the stage: what the finalize's top-up carries.
E=$T/tpl/staged/stagehand/deploy/testos/1/etc
printf 'a=2\n' >>"$E/local.conf"
printf 'later\n' >"$E/later.conf"
rm "$E/hostname"
printf 'Test OS 1\n' >"$E/issue"
# What another tool keeps beside the entries, carried into every new set:
# the finalize sweep kills during that copy too.
printf 'timeout 3\neditor no\n' >"$T/tpl/staged/boot/loader/loader.conf"
mkdir -p "$T/tpl/staged/boot/loader/keys"
printf 'key\0bytes' >"$T/tpl/staged/boot/loader/keys/db.auth"
cp -a "$T/tpl/base" "$T/tpl/two"
tpl_run two deploy "$T/img2.tar"
cp -a "$T/tpl/two" "$T/tpl/messy"
tpl_run messy deploy "$T/img3.tar"
# What interrupted runs leave behind, everywhere they can leave it.
M=$T/tpl/messy
mkdir -p "$M/stagehand/deploy/.import-tmp-Ab12Cd/usr" "$M/stagehand/deploy/testos/9/etc" \
  "$M/boot/stagehand/.testos-0123-tmp-Ab12Cd"
echo leftover >"$M/stagehand/deploy/.import-tmp-Ab12Cd/usr/x"
echo leftover >"$M/stagehand/deploy/testos/9/etc/hostname"
echo leftover >"$M/stagehand/deploy/testos/.9.origin-tmp-Ab12Cd"
echo leftover >"$M/boot/stagehand/.testos-0123-tmp-Ab12Cd/vmlinuz"
ln -s loader.0 "$M/boot/.loader-tmp-Ab12Cd"
inactive=loader.$((1 - $(readlink "$M/boot/loader" | tr -dc 0-9)))
mkdir -p "$M/boot/$inactive/entries"
echo leftover >"$M/boot/$inactive/entries/.stagehand-9-testos-9.conf-tmp-Ab12Cd"
echo leftover >"$M/run/stagehand/.staged-tmp-Ab12Cd"
echo leftover >"$M/stagehand/.finalize-result-tmp-Ab12Cd"

# The same in exchange mode: a real loader/ with another tool's files in it
# (the staged template), entries/ swapped by RENAME_EXCHANGE or, with the
# fallback, by moving entries one at a time.
tpl_run base-x init --mode=exchange
tpl_run base-x deploy "$T/img1.tar"
cp -a "$T/tpl/base-x" "$T/tpl/staged-x"
tpl_run staged-x stage "$T/img2.tar" --no-start
printf 'timeout 3\neditor no\n' >"$T/tpl/staged-x/boot/loader/loader.conf"
mkdir -p "$T/tpl/staged-x/boot/loader/keys"
printf 'key\0bytes' >"$T/tpl/staged-x/boot/loader/keys/db.auth"
cp -a "$T/tpl/base-x" "$T/tpl/two-x"
tpl_run two-x deploy "$T/img2.tar"

for t in base staged two messy base-x staged-x two-x; do
  invariant "$T/tpl/$t" || bail "template $t does not satisfy the invariant"
done
is "$(summary "$T/tpl/messy")" \
  "default=testos/3 menu=testos/3,testos/2 staged=- verdict=success:testos/3 deployments=testos/1,testos/2,testos/3 trees_without_origin=testos/9 unused_kernels=.testos-0123-tmp-Ab12Cd default_image=img3.tar pending=-" \
  "the cleanup template has an orphaned deployment and leftovers to remove"

# ------------------------------------------------------------------ counting

COMMANDS=${SWEEP_COMMANDS:-"stage finalize-staged deploy rollback cleanup finalize-staged:exchange rollback:exchange finalize-staged:fallback rollback:fallback"}
: >"$T/points.txt"
for cmd in $COMMANDS; do
  C=$T/count-$cmd
  cp -a "$T/tpl/$(command_template "$cmd")" "$C"
  # shellcheck disable=SC2046 # the arguments are words
  env $(command_env "$cmd") STAGEHAND_DEBUG_CMDLINE="$(command_booted "$cmd")" \
    strace -f -qq -o "$T/trace-$cmd" -e trace="$STATE_SYSCALLS" \
    "$STAGEHAND" --sysroot="$C" $(command_args "$cmd") </dev/null >"$T/count-$cmd.log" 2>&1 ||
    { diag_file "$T/count-$cmd.log"; bail "$cmd failed under strace in the counting run"; }
  [ "$(awk '{ print $1 }' "$T/trace-$cmd" | sort -u | wc -l)" -eq 1 ] ||
    bail "$cmd ran more than one thread: strace counts calls per thread, so the Nth call would not be the same call in every run"
  # One line per injection point: "CMD SYSCALL N". openat: only O_CREAT
  # calls, numbered among all openat calls (that is what when= counts).
  "$PYTHON" -S - "$cmd" "$T/trace-$cmd" >>"$T/points.txt" <<'EOF'
import re, sys
cmd, path = sys.argv[1:]
counts = {}
for line in open(path):
    m = re.match(r"^\d+\s+([a-z0-9_]+)\((.*)", line)
    if not m or "resumed>" in line:
        continue
    name = m.group(1)
    if name.startswith("syscall_"):
        continue  # a syscall this strace has no name for; not one of ours
    counts[name] = counts.get(name, 0) + 1
    if name == "openat" and "O_CREAT" not in m.group(2):
        continue
    print(cmd, name, counts[name])
EOF
  n=$(grep -c "^$cmd " "$T/points.txt")
  per=$(awk -v c="$cmd" '$1 == c { print $2 }' "$T/points.txt" | sort | uniq -c |
    awk '{ printf "%s%s %d", (NR > 1 ? ", " : ""), $2, $1 }')
  diag "$cmd: $n injection points ($per)"
  rm -rf "$C"
done

# ------------------------------------------------------------------ the sweep

jobs=${SWEEP_JOBS:-$((2 * $(nproc)))}
total=$(wc -l <"$T/points.txt")
diag "running $total injection points, $jobs at a time"
xargs -P "$jobs" -L 1 "$BASH" "$(readlink -f "$0")" --point <"$T/points.txt" >"$T/results.txt"

# One TAP line per command and syscall.
while read -r cmd sc; do
  pts=$(awk -v c="$cmd" -v s="$sc" '$1 == c && $2 == s' "$T/points.txt" | wc -l)
  got=$(awk -v c="$cmd" -v s="$sc" '$1 == c && $2 == s' "$T/results.txt" | wc -l)
  bad=$(awk -v c="$cmd" -v s="$sc" '$1 == c && $2 == s && $4 != "ok"' "$T/results.txt")
  if [ "$got" -eq "$pts" ] && [ -z "$bad" ]; then
    pass "$cmd: SIGKILL before each of its $pts $sc calls leaves boot complete, and it recovers"
  else
    fail "$cmd: SIGKILL before each of its $pts $sc calls leaves boot complete, and it recovers"
    [ "$got" -eq "$pts" ] || diag "only $got of $pts points reported a result"
    printf '%s\n' "$bad" | head -n 5 | while read -r _ _ n _ rest; do
      diag "when=$n: ${rest//|/$'\n'  }"
    done
  fi
done < <(awk '!seen[$1 " " $2]++ { print $1, $2 }' "$T/points.txt")

if grep -q ' FAIL ' "$T/results.txt"; then
  export STAGEHAND_KEEP=1
  diag "failed points are kept under $T/points"
fi
diag "sweep: $total injection points in $(($(date +%s) - sweep_start)) s with $jobs jobs"
done_testing
