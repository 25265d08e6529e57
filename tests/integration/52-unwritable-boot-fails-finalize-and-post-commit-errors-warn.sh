#!/bin/bash
# A finalize that cannot write: before the commit point it fails — exit 1,
# one line with the step and the error, a verdict `failed` naming the step
# and the error (finalize-result and `status --json` .last_finalize), the
# old configuration byte for byte intact and the deployment still staged,
# so a later finalize can succeed. After the commit point nothing can make
# it fail: an old loader.N that cannot be removed, a verdict or a staged
# record that cannot be written are warnings, and finalize reports success.
#
# Permission bits do not stop root, so as root every stagehand command here
# runs as nobody (setpriv) on a sysroot nobody owns. The swap step itself
# (the rename of the loader symlink) is failed with strace when it is
# installed.

# shellcheck source=tests/lib/fault-lib.sh
. "$(dirname "$0")/../lib/fault-lib.sh"
require_commands python3 find sha256sum
require_stagehand
make_temp unwritable

AS=()
if [ "$(id -u)" -eq 0 ]; then
  require_commands setpriv
  nobody_gid=$(id -g nobody) || bail "no user nobody"
  AS=(setpriv --reuid=nobody --regid="$nobody_gid" --clear-groups --)
  chmod 755 "$T" "$T/bin"
fi

make_test_image "$T/img1" 1
make_test_image "$T/img2" 2
S0=$T/template
for args in init "deploy $T/img1" "stage $T/img2 --no-start"; do
  # shellcheck disable=SC2086 # words
  sh_at "$S0" $args
  [ "$SH_RC" -eq 0 ] || { diag_run; bail "preparing: stagehand $args failed"; }
done
# What finalize writes belongs to nobody; the deployment trees keep the
# owners of their images (the invariant compares them).
if [ ${#AS[@]} -gt 0 ]; then
  chown "nobody:$nobody_gid" "$S0" "$S0/stagehand" "$S0/stagehand/lock" \
    "$S0/stagehand/finalize-result" "$S0/stagehand/deploy"
  chown -R "nobody:$nobody_gid" "$S0/boot" "$S0/run"
fi

fresh() {
  S=$T/case
  [ -d "$S" ] && chmod -R u+rwX "$S"
  rm -rf "$S"
  cp -a "$S0" "$S"
}

# run ARGS...: stagehand on $S as the unprivileged user; like sh_at.
run() {
  _sh_n=$((${_sh_n:-0} + 1))
  SH_OUT=$T/out.$_sh_n
  SH_ERR=$T/err.$_sh_n
  "${AS[@]}" "$STAGEHAND" --sysroot="$S" "$@" </dev/null >"$SH_OUT" 2>"$SH_ERR"
  SH_RC=$?
}

verdict_field() {
  sed -n "s/^$1=//p" "$S/stagehand/finalize-result"
}

# failed_before_commit WHAT STEP ERROR_GLOB BOOT_BEFORE: the checks of a
# finalize that failed before the commit point (the last run).
failed_before_commit() {
  local what=$1 step=$2 err=$3 boot_before=$4
  is "$SH_RC" 1 "$what: finalize-staged exits 1"
  like "$(cat "$SH_ERR")" "stagehand: finalizing testos/2: during $step: $err" \
    "$what: one message with the step and the error" || diag_run
  is "$(wc -l <"$SH_ERR")" 1 "$what: in one line"
  is "$(tree_snapshot "$S/boot")" "$boot_before" "$what: <boot> is byte for byte as it was"
  is "$(verdict_field result):$(verdict_field step):$(verdict_field deployment)" \
    "failed:$step:testos/2" "$what: finalize-result says failed, step $step, testos/2"
  like "$(verdict_field error)" "$err" "$what: finalize-result has the error"
  run --json status
  is "$(json_get 'j["last_finalize"]["result"] + ":" + j["last_finalize"]["step"]' <"$SH_OUT")" \
    "failed:$step" "$what: status --json .last_finalize says failed during $step"
  like "$(json_get 'j["last_finalize"]["error"]' <"$SH_OUT")" "$err" \
    "$what: status --json .last_finalize has the error"
  like "$(summary "$S")" "default=testos/1 menu=testos/1 staged=testos/2 *" \
    "$what: testos/1 is still the default, testos/2 still staged"
  is "$(temp_names "$S")" "" "$what: no temp files left"
  ok "$what: the invariant holds" invariant "$S"
}

# ------------------------------------------------------------ before the commit point

fresh
chmod 555 "$S/boot"
boot_before=$(tree_snapshot "$S/boot")
run finalize-staged
failed_before_commit "<boot> not writable" write-entries "*Permission denied*" "$boot_before"
chmod 755 "$S/boot"
run finalize-staged
is "$SH_RC" 0 "<boot> writable again: finalize-staged succeeds" || diag_run
like "$(summary "$S")" "default=testos/2 menu=testos/2,testos/1 staged=- verdict=success:testos/2 *" \
  "... and testos/2 is the default"

# The swap itself: fail the rename of the new loader symlink over the old.
if command -v strace >/dev/null 2>&1; then
  fresh
  # strace writes its log as the unprivileged user.
  mkdir -m 1777 "$T/traces"
  run_traced() {
    _sh_n=$((${_sh_n:-0} + 1))
    SH_OUT=$T/out.$_sh_n
    SH_ERR=$T/err.$_sh_n
    "${AS[@]}" strace -f -qq -o "$T/traces/$_sh_n" "$@" "$STAGEHAND" --sysroot="$S" finalize-staged \
      </dev/null >"$SH_OUT" 2>"$SH_ERR"
    SH_RC=$?
  }
  cp -a "$S" "$T/count"
  S_saved=$S
  S=$T/count
  run_traced -e trace=rename,renameat,renameat2
  S=$S_saved
  # "SYSCALL N": the loader rename is the Nth call of SYSCALL.
  point=$("$PYTHON" -S -c 'import re, sys
n = {}
for line in open(sys.argv[1]):
    m = re.match(r"\d+\s+(\w+)\(", line)
    if m:
        n[m.group(1)] = n.get(m.group(1), 0) + 1
        if line.rstrip().split(" = ")[0].endswith("\"loader\")"):
            print(m.group(1), n[m.group(1)])
            break' "$T/traces/$_sh_n")
  if [ -n "$point" ]; then
    sc=${point% *}
    n=${point#* }
    boot_before=$(tree_snapshot "$S/boot")
    run_traced -e trace="$sc" -e inject="$sc":error=EIO:when="$n"
    # strace's own stderr lines would break the one-line check: it has -o.
    failed_before_commit "the loader rename fails (EIO)" swap "*Input/output error*" "$boot_before"
  else
    fail "the counting run renamed nothing over loader"
    diag_file "$T/traces/$_sh_n"
  fi
else
  skip 1 "strace is not installed: the swap step is not failed on its own"
fi

# ------------------------------------------------------------ after the commit point

# succeeded_with_warning WHAT GLOB: finalize exited 0, warned (GLOB), and
# the new configuration is live and complete.
succeeded_with_warning() {
  is "$SH_RC" 0 "$1: finalize-staged exits 0" || diag_run
  like "$(cat "$SH_ERR")" "*warning: $2*" "$1: a warning says what could not be done"
  like "$(summary "$S")" "default=testos/2 menu=testos/2,testos/1 *" "$1: testos/2 is the default"
  ok "$1: the invariant holds" invariant "$S"
}

# Removal gives a directory of the caller's that it must empty u+rwx first
# (issue 14, item 4), so a 0555 directory no longer stops it: the old set
# is made root's, which nobody cannot empty. Without root there is no
# directory the caller cannot remove.
if [ ${#AS[@]} -gt 0 ]; then
  fresh
  old_live=$(readlink "$S/boot/loader")
  chown root:root "$S/boot/$old_live/entries"
  run finalize-staged
  succeeded_with_warning "old loader.N cannot be removed" "*tidying the old entry set*Permission denied*"
  is "$(verdict_field result):$(verdict_field deployment)" "success:testos/2" \
    "old loader.N cannot be removed: the verdict says success"
  is "$(readlink "$S/boot/loader")" "loader.$((1 - ${old_live#loader.}))" \
    "old loader.N cannot be removed: loader points to the new set"
  chown "nobody:$nobody_gid" "$S/boot/$old_live/entries"
  run cleanup
  is "$SH_RC" 0 "... and a later cleanup removes it" || diag_run
  ok "... it is gone" test ! -e "$S/boot/$old_live"
else
  skip 8 "an old loader.N the caller cannot remove needs root to make"
fi

fresh
chmod 555 "$S/stagehand"
run finalize-staged
succeeded_with_warning "the verdict cannot be written" "*finalize-result*Permission denied*"
like "$(summary "$S")" "* staged=- *" "the verdict cannot be written: nothing is staged any more"

fresh
chmod 555 "$S/run/stagehand"
run finalize-staged
succeeded_with_warning "the staged record cannot be removed" "*staged*Permission denied*"
is "$(verdict_field result):$(verdict_field deployment)" "success:testos/2" \
  "the staged record cannot be removed: the verdict says success"
chmod 755 "$S/run/stagehand"
run finalize-staged
is "$SH_RC" 0 "... finalizing the still-staged deployment again succeeds" || diag_run
like "$(summary "$S")" "default=testos/2 menu=testos/2,testos/1 staged=- *" \
  "... and it stays the default, no longer staged"

done_testing
