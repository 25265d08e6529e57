#!/bin/bash
# ENOSPC from each data-writing system call of stage and finalize-staged,
# injected with `strace -e inject=SYSCALL:error=ENOSPC:when=N`, one call at
# a time:
#
#   - stage: exits 1 with one line naming the failure; <boot> is byte for
#     byte as it was, nothing is staged, no deployment and no temp file is
#     left; staging over a staged deployment leaves that one staged, its
#     staged-pending marker as it was;
#   - finalize-staged, a write into <boot> (the entry set, or the kernel when
#     it must be copied again): exits 1; <boot> is byte for byte as it was;
#     the verdict (finalize-result and `status --json` .last_finalize) says
#     result=failed with the failing step and the error; the deployment is
#     still staged, so the next attempt can succeed; the staged-pending
#     marker is gone (the verdict tells the next boot);
#   - finalize-staged, the verdict write after the commit point: a warning,
#     and finalize still succeeds;
#   - either, the lock's metadata write: best effort, the command succeeds.
#
# With the staged kernel missing from <boot> (finalize copies it again),
# only the kernel copy is injected: a failure after it leaves the copied
# kernel in place for the next attempt, so <boot> is not as it was. With
# another tool's files beside the entries (loader.conf, keys/db.auth), the
# writes that carry them into the new set are injection points too.
#
# The /etc merge (issue 16) runs in both: every command here runs as if
# testos/1 were booted (STAGEHAND_DEBUG_CMDLINE), whose etc/ (the running
# /etc) was changed before the stage and again after it. A write of the
# merge (a file carried into the staged tree's etc/, the merge's state
# file) failing in finalize: exits 1 during etc-merge, <boot> as it was,
# still staged. In both, testos/1's etc/ is never written.
#
# Which call is which comes from a counting run under `strace -y` (fd paths).
# Writes to stdout and stderr are not injection points.
#
# finalize-staged also runs in exchange mode (a real loader/, another
# tool's files in it): with RENAME_EXCHANGE, and with the fallback that
# moves the entries one at a time (STAGEHAND_DEBUG_NO_EXCHANGE=1 behaves as
# a filesystem that refuses the exchange). There every rename out of a
# directory in <boot> is an injection point too (a full vfat directory
# refuses a new name with ENOSPC): a failed move is undone, so <boot> is
# byte for byte as it was and the verdict says failed during swap
# (docs/design.md, "The fallback is rolled back on failure").

# shellcheck source=tests/lib/fault-lib.sh
. "$(dirname "$0")/../lib/fault-lib.sh"
enter_private_namespace "needs root" "$@"
require_commands strace python3 find sha256sum
require_stagehand
make_temp enospc-inject

# Imported on one thread (fault-lib.sh sets STAGEHAND_DEBUG_ONE_THREAD),
# so the Nth call is the same call in every run (strace counts per thread).
make_etc_tar_image "$T/img1.tar" 1
make_etc_tar_image "$T/img2.tar" 2
make_etc_tar_image "$T/img3.tar" 3
mkdir -p "$T/tpl"
tpl_run base init
tpl_run base deploy "$T/img1.tar"
export STAGEHAND_DEBUG_CMDLINE="root=/dev/vda stagehand=/stagehand/deploy/testos/1"
RUNNING_ETC=stagehand/deploy/testos/1/etc
E=$T/tpl/base/$RUNNING_ETC
printf 'local\n' >"$E/hostname"
printf 'a=1\n' >"$E/local.conf"
rm "$E/motd"
chmod 0600 "$E/ssh/sshd_config"
printf 'local banner\n' >"$E/issue"
cp -a "$T/tpl/base" "$T/tpl/staged"
tpl_run staged stage "$T/img2.tar" --no-start
E=$T/tpl/staged/$RUNNING_ETC
printf 'a=2\n' >>"$E/local.conf"
printf 'later\n' >"$E/later.conf"
rm "$E/hostname"
printf 'Test OS 1\n' >"$E/issue"
# Staged, but its kernel went missing from <boot>: finalize copies it again.
cp -a "$T/tpl/staged" "$T/tpl/staged-nokernel"
csum2=$(sed -n 's/^bootcsum=//p' "$T/tpl/staged/stagehand/deploy/testos/2.origin")
rm -rf "$T/tpl/staged-nokernel/boot/stagehand/testos-$csum2"
# Staged, with another tool's files beside the entries: their copies into
# the new set are writes into <boot> too.
cp -a "$T/tpl/staged" "$T/tpl/staged-extras"
printf 'timeout 3\neditor no\n' >"$T/tpl/staged-extras/boot/loader/loader.conf"
mkdir -p "$T/tpl/staged-extras/boot/loader/keys"
printf 'key\0bytes' >"$T/tpl/staged-extras/boot/loader/keys/db.auth"

# points TEMPLATE ARGS...: "SYSCALL N TARGET" for each write-like call of
# the command with a file (not stdout/stderr) as its target; TARGET is the
# path strace -y shows for the destination fd.
points() {
  local tpl=$1 C
  shift
  C=$T/count.$tpl
  rm -rf "$C"
  cp -a "$T/tpl/$tpl" "$C"
  strace -f -qq -y -o "$T/trace.$tpl" -e trace=write,pwrite64,copy_file_range \
    "$STAGEHAND" --sysroot="$C" "$@" </dev/null >"$T/count.$tpl.log" 2>&1 ||
    { diag_file "$T/count.$tpl.log"; bail "the counting run of $* failed"; }
  [ "$(awk '{ print $1 }' "$T/trace.$tpl" | sort -u | wc -l)" -le 1 ] ||
    bail "$1 ran more than one thread: strace counts calls per thread, so the Nth call would not be the same call in every run"
  "$PYTHON" -S - "$T/trace.$tpl" "$C" <<'EOF'
import re, sys
path, root = sys.argv[1:]
counts = {}
for line in open(path):
    m = re.match(r"^\d+\s+([a-z0-9_]+)\((.*)", line)
    if not m:
        continue
    name, args = m.groups()
    counts[name] = counts.get(name, 0) + 1
    # copy_file_range(in, off_in, out, ...): the destination is the third.
    fds = re.findall(r"(\d+)<([^>]*)>", args)
    if not fds:
        continue
    fd, target = fds[1] if name == "copy_file_range" else fds[0]
    if int(fd) <= 2:
        continue
    print(name, counts[name], target.replace(root, "<sysroot>"))
EOF
}

# inject TEMPLATE SYSCALL N ARGS...: a fresh copy of TEMPLATE in $W, the
# command run on it with the Nth SYSCALL failing with ENOSPC.
inject() {
  local tpl=$1 sc=$2 n=$3
  shift 3
  W=$T/run.$tpl.$sc.$n
  cp -a "$T/tpl/$tpl" "$W"
  SH_ERR=$T/run.$tpl.$sc.$n.err
  strace -f -qq -o /dev/null -e trace="$sc" -e inject="$sc":error=ENOSPC:when="$n" \
    "$STAGEHAND" --sysroot="$W" "$@" </dev/null >"$T/run.$tpl.$sc.$n.out" 2>"$SH_ERR"
  SH_RC=$?
}

verdict_field() {
  sed -n "s/^$1=//p" "$W/stagehand/finalize-result"
}

# ------------------------------------------------------------------ stage

base_boot=$(tree_snapshot "$T/tpl/base/boot")
base_summary=$(summary "$T/tpl/base")
points base stage "$T/img2.tar" --no-start >"$T/points.stage"
diag "stage: $(wc -l <"$T/points.stage") write-like calls to files"
[ -s "$T/points.stage" ] || bail "stage made no write-like calls"
while read -r sc n target; do
  what="stage, ENOSPC at $sc #$n ($target)"
  inject base "$sc" "$n" stage "$T/img2.tar" --no-start
  if [ "$target" = "<sysroot>/stagehand/lock" ]; then
    is "$SH_RC" 0 "$what: the lock metadata is best effort; stage succeeds"
    ok "$what: the invariant holds" invariant "$W"
    continue
  fi
  is "$SH_RC" 1 "$what: exits 1"
  like "$(cat "$SH_ERR")" "stagehand: staging *No space left on device*" \
    "$what: says what failed and why"
  is "$(wc -l <"$SH_ERR")" 1 "$what: in one line"
  is "$(tree_snapshot "$W/boot")" "$base_boot" "$what: <boot> is byte for byte as it was"
  is "$(summary "$W")" "$base_summary" "$what: nothing staged, no deployment added"
  is "$(temp_names "$W")" "" "$what: no temp files left"
  is "$(tree_snapshot "$W/$RUNNING_ETC")" "$(tree_snapshot "$T/tpl/base/$RUNNING_ETC")" \
    "$what: the running /etc is untouched"
  ok "$what: the invariant holds" invariant "$W"
done <"$T/points.stage"

# Staging over a staged deployment: a failure leaves the staged one as it
# was, its staged record and its staged-pending marker included (stage
# replaces the marker before it writes the new record, and puts the old one
# back when it fails).
# A template of its own: inject's run directories are named by template.
cp -a "$T/tpl/staged" "$T/tpl/restage"
staged_boot=$(tree_snapshot "$T/tpl/restage/boot")
staged_summary=$(summary "$T/tpl/restage")
like "$staged_summary" "* staged=testos/2 * pending=testos/2" "the staged template has testos/2 staged and marked"
points restage stage "$T/img3.tar" --no-start >"$T/points.restage"
diag "stage over a staged one: $(wc -l <"$T/points.restage") write-like calls to files"
while read -r sc n target; do
  what="stage over testos/2, ENOSPC at $sc #$n ($target)"
  inject restage "$sc" "$n" stage "$T/img3.tar" --no-start
  if [ "$target" = "<sysroot>/stagehand/lock" ]; then
    is "$SH_RC" 0 "$what: the lock metadata is best effort; stage succeeds"
    continue
  fi
  is "$SH_RC" 1 "$what: exits 1"
  is "$(tree_snapshot "$W/boot")" "$staged_boot" "$what: <boot> is byte for byte as it was"
  is "$(summary "$W")" "$staged_summary" "$what: testos/2 still staged and marked, no deployment added"
  is "$(temp_names "$W")" "" "$what: no temp files left"
  ok "$what: the invariant holds" invariant "$W"
done <"$T/points.restage"

# ------------------------------------------------------------------ finalize

finalize_case() {
  local tpl=$1 sc=$2 n=$3 target=$4 before_boot before_summary step what
  before_boot=$(tree_snapshot "$T/tpl/$tpl/boot")
  before_summary=$(summary "$T/tpl/$tpl")
  what="finalize ($tpl), ENOSPC at $sc #$n ($target)"
  inject "$tpl" "$sc" "$n" finalize-staged
  case $sc:$target in
    *:"<sysroot>/stagehand/lock")
      is "$SH_RC" 0 "$what: the lock metadata is best effort; finalize succeeds"
      like "$(summary "$W")" "default=testos/2 menu=testos/2,testos/1 staged=- verdict=success:testos/2 *" \
        "$what: testos/2 is the default"
      ;;
    *:"<sysroot>/stagehand/.finalize-result-tmp-"*)
      is "$SH_RC" 0 "$what: after the commit point; finalize succeeds"
      like "$(cat "$SH_ERR")" "*warning:*finalize-result*No space left on device*" \
        "$what: warns that the verdict could not be recorded"
      like "$(summary "$W")" "default=testos/2 menu=testos/2,testos/1 staged=- *" \
        "$what: testos/2 is the default and no longer staged"
      ;;
    *:"<sysroot>/boot/"*)
      case $target in
        "<sysroot>/boot/stagehand/"*) step=install-kernels ;;
        # the fallback's copies of the entries it replaces, made in the swap
        "<sysroot>/boot/loader/entries.old/"*) step=swap ;;
        *) step=write-entries ;;
      esac
      is "$SH_RC" 1 "$what: exits 1"
      # In the fallback, a failure in the swap follows its warning.
      like "$(cat "$SH_ERR")" "$([ "$step" != swap ] || echo '*')stagehand: finalizing testos/2: during $step: *No space left on device*" \
        "$what: names the step and the error"
      is "$(tree_snapshot "$W/boot")" "$before_boot" "$what: <boot> is byte for byte as it was"
      is "$(verdict_field result):$(verdict_field step):$(verdict_field deployment)" \
        "failed:$step:testos/2" "$what: finalize-result records failed, the step and the deployment"
      like "$(verdict_field error)" "*No space left on device*" "$what: finalize-result records the error"
      "$STAGEHAND" --sysroot="$W" --json status >"$W.json" 2>&1
      is "$(json_get 'j["last_finalize"]["result"] + ":" + j["last_finalize"]["step"]' <"$W.json")" \
        "failed:$step" "$what: status --json .last_finalize says failed during $step"
      like "$(json_get 'j["last_finalize"]["error"]' <"$W.json")" "*No space left on device*" \
        "$what: status --json .last_finalize has the error"
      is "$(summary "$W" | sed 's/ verdict=[^ ]*//; s/ pending=[^ ]*//')" \
        "$(sed 's/ verdict=[^ ]*//; s/ pending=[^ ]*//' <<<"$before_summary")" \
        "$what: testos/1 is still the default and testos/2 still staged"
      like "$(summary "$W")" "* pending=-" \
        "$what: the staged-pending marker is gone: the verdict tells the next boot"
      is "$(temp_names "$W")" "" "$what: no temp files left"
      ;;
    *:"<sysroot>/stagehand/deploy/testos/"*)
      # The /etc merge: a file carried into testos/2's etc/, or its state.
      is "$SH_RC" 1 "$what: exits 1"
      like "$(cat "$SH_ERR")" "stagehand: finalizing testos/2: during etc-merge: *No space left on device*" \
        "$what: names the step and the error"
      is "$(tree_snapshot "$W/boot")" "$before_boot" "$what: <boot> is byte for byte as it was"
      is "$(verdict_field result):$(verdict_field step)" "failed:etc-merge" \
        "$what: finalize-result records failed during etc-merge"
      is "$(summary "$W" | sed 's/ verdict=[^ ]*//; s/ pending=[^ ]*//')" \
        "$(sed 's/ verdict=[^ ]*//; s/ pending=[^ ]*//' <<<"$before_summary")" \
        "$what: testos/1 is still the default and testos/2 still staged"
      is "$(temp_names "$W")" "" "$what: no temp files left"
      ;;
    *)
      fail "$what: a write to an unexpected place"
      ;;
  esac
  is "$(tree_snapshot "$W/$RUNNING_ETC")" "$(tree_snapshot "$T/tpl/$tpl/$RUNNING_ETC")" \
    "$what: the running /etc is untouched"
  # The staged kernel is missing in the nokernel case: that is its point.
  ok "$what: the invariant holds" invariant "$W" $([ "$tpl" != staged-nokernel ] || echo --no-staged-kernel)
}

# Exchange mode, with another tool's files in loader/ and loader/entries.
tpl_run base-x init --mode=exchange
tpl_run base-x deploy "$T/img1.tar"
cp -a "$T/tpl/base-x" "$T/tpl/staged-x"
tpl_run staged-x stage "$T/img2.tar" --no-start
printf 'timeout 3\neditor no\n' >"$T/tpl/staged-x/boot/loader/loader.conf"
printf 'title another tool\nlinux /other\n' >"$T/tpl/staged-x/boot/loader/entries/other.conf"
# The fallback's template: the same (run directories are named by template).
cp -a "$T/tpl/staged-x" "$T/tpl/staged-xf"

# rename_points TEMPLATE ARGS...: "SYSCALL N OLDDIR OLDNAME" for each
# rename of the command whose source directory is in <boot>.
rename_points() {
  local tpl=$1 C
  shift
  C=$T/count-renames.$tpl
  rm -rf "$C"
  cp -a "$T/tpl/$tpl" "$C"
  strace -f -qq -y -o "$T/trace-renames.$tpl" -e trace=renameat,renameat2 \
    "$STAGEHAND" --sysroot="$C" "$@" </dev/null >"$T/count-renames.$tpl.log" 2>&1 ||
    { diag_file "$T/count-renames.$tpl.log"; bail "the counting run of $* failed"; }
  "$PYTHON" -S - "$T/trace-renames.$tpl" "$C" <<'EOF'
import re, sys
path, root = sys.argv[1:]
counts = {}
for line in open(path):
    m = re.match(r'^\d+\s+(renameat2?)\(\d+<([^>]*)>, "([^"]*)"', line)
    if not m:
        continue
    name, olddir, oldname = m.groups()
    counts[name] = counts.get(name, 0) + 1
    if olddir.startswith(root + "/boot"):
        print(name, counts[name], olddir.replace(root, "<sysroot>"), oldname)
EOF
}

# rename_case TEMPLATE SYSCALL N OLDDIR OLDNAME: that rename fails with
# ENOSPC; before the commit point, so the old configuration stays whole.
rename_case() {
  local tpl=$1 sc=$2 n=$3 olddir=$4 oldname=$5 before_boot before_summary step what
  before_boot=$(tree_snapshot "$T/tpl/$tpl/boot")
  before_summary=$(summary "$T/tpl/$tpl")
  what="finalize ($tpl), ENOSPC at $sc #$n ($olddir/$oldname)"
  case $olddir/$oldname in
    */entries.old/.*-tmp-*) step=swap ;;
    */.*-tmp-*) step=write-entries ;;
    *) step=swap ;;
  esac
  inject "$tpl" "$sc" "$n" finalize-staged
  is "$SH_RC" 1 "$what: exits 1"
  # (the fallback's warning that the switch is not atomic may come first)
  like "$(cat "$SH_ERR")" "*stagehand: finalizing testos/2: during $step: *No space left on device*" \
    "$what: names the step and the error"
  case $tpl:$oldname in
    staged-xf:stagehand-*)
      like "$(cat "$SH_ERR")" "*; the previous entries were put back" \
        "$what: says the entries moved so far were put back"
      ;;
  esac
  is "$(tree_snapshot "$W/boot")" "$before_boot" "$what: <boot> is byte for byte as it was"
  is "$(verdict_field result):$(verdict_field step):$(verdict_field deployment)" \
    "failed:$step:testos/2" "$what: finalize-result records failed, the step and the deployment"
  is "$(summary "$W" | sed 's/ verdict=[^ ]*//; s/ pending=[^ ]*//')" \
    "$(sed 's/ verdict=[^ ]*//; s/ pending=[^ ]*//' <<<"$before_summary")" \
    "$what: testos/1 is still the default and testos/2 still staged"
  is "$(temp_names "$W")" "" "$what: no temp files left"
  ok "$what: the invariant holds" invariant "$W"
}

for tpl in staged-x staged-xf; do
  if [ "$tpl" = staged-xf ]; then export STAGEHAND_DEBUG_NO_EXCHANGE=1; fi
  rename_points "$tpl" finalize-staged >"$T/renames.$tpl"
  diag "finalize ($tpl): $(wc -l <"$T/renames.$tpl") renames in <boot>"
  if [ "$tpl" = staged-xf ]; then
    grep -q ' stagehand-[^ ]*$' "$T/renames.$tpl" ||
      fail "finalize ($tpl) moved no entry one at a time: the fallback did not run"
  else
    grep -q '^renameat2 ' "$T/renames.$tpl" || fail "finalize ($tpl) made no renameat2 exchange"
  fi
  while read -r sc n olddir oldname; do
    rename_case "$tpl" "$sc" "$n" "$olddir" "$oldname"
  done <"$T/renames.$tpl"
  unset STAGEHAND_DEBUG_NO_EXCHANGE
done

for tpl in staged staged-extras staged-nokernel staged-x staged-xf; do
  if [ "$tpl" = staged-xf ]; then export STAGEHAND_DEBUG_NO_EXCHANGE=1; fi
  points "$tpl" finalize-staged >"$T/points.$tpl.all"
  if [ "$tpl" != staged-nokernel ]; then
    cp "$T/points.$tpl.all" "$T/points.$tpl"
  else
    grep ' <sysroot>/boot/stagehand/' "$T/points.$tpl.all" >"$T/points.$tpl"
  fi
  diag "finalize ($tpl): $(wc -l <"$T/points.$tpl") write-like calls to files"
  [ -s "$T/points.$tpl" ] || bail "finalize made no write-like calls"
  while read -r sc n target; do
    finalize_case "$tpl" "$sc" "$n" "$target"
  done <"$T/points.$tpl"
  unset STAGEHAND_DEBUG_NO_EXCHANGE
done
grep -q ' <sysroot>/boot/stagehand/' "$T/points.staged-nokernel" ||
  fail "finalize with the kernel missing copied no kernel (no install-kernels point)"

done_testing
