#!/bin/bash
# Corrupt and truncated origin files and staged records.
#
# What an operator expects: stagehand acts on nothing it cannot read. An
# origin that does not parse stops every verb that reads the state with one
# line naming the file (a deployment whose origin cannot be read must
# neither boot nor be removed: cleanup removes trees *without* an origin, so
# treating a corrupt one as absent would delete a deployment the menu
# names). Nothing changes meanwhile. A finalize at shutdown that cannot
# read the state while something is staged records a failed verdict with
# step "load", so the next boot reports it instead of losing the update
# without a word.
#
# Truncation: the origin and the staged record are cut at many lengths
# (every byte of the staged record; every 11th byte and both sides of each
# line boundary of the origin).
# Each prefix either still parses to the same deployment (only possible once
# every required key is complete) or gets the one-line error; never a
# crash, never a second line, never a different deployment.

# shellcheck source=tests/lib/fault-lib.sh
. "$(dirname "$0")/../lib/fault-lib.sh"
require_commands python3 find sha256sum
require_stagehand
make_temp corrupt-origin

for v in 1 2 3 4; do make_test_image "$T/img$v" "$v"; done
S0=$T/template
for args in init "deploy $T/img1" "deploy $T/img2" "stage $T/img3 --no-start"; do
  # shellcheck disable=SC2086 # words
  sh_at "$S0" $args
  [ "$SH_RC" -eq 0 ] || { diag_run; bail "preparing: stagehand $args failed"; }
done
is "$(summary "$S0" | cut -d' ' -f1-3)" "default=testos/2 menu=testos/2,testos/1 staged=testos/3" \
  "the template: testos/2 default, testos/1 behind it, testos/3 staged"

fresh() {
  S=$T/case
  chmod -R u+rwX "$S" 2>/dev/null
  rm -rf "$S"
  cp -a "$S0" "$S"
}

# refuses DESC REGEX ARGS...: exit 1, one line matching REGEX, and nothing
# under <boot>, deploy/ or the runtime directory changed since mark_state.
mark_state() {
  BEFORE=$(tree_snapshot "$S/boot" "$S/stagehand/deploy" "$S/run")
}
refuses() {
  local desc=$1 regex=$2 after
  shift 2
  sh_at "$S" "$@"
  after=$(tree_snapshot "$S/boot" "$S/stagehand/deploy" "$S/run")
  if [ "$SH_RC" -eq 1 ] && [ "$(wc -l <"$SH_ERR")" -eq 1 ] && grep -Eq -- "$regex" "$SH_ERR" &&
    [ "$BEFORE" = "$after" ] && [ -z "$(temp_names "$S")" ]; then
    pass "$desc"
  else
    fail "$desc"
    diag "expected exit 1 and one line matching: $regex"
    diag_run
    [ "$BEFORE" = "$after" ] || diag "the sysroot changed"
    [ -z "$(temp_names "$S")" ] || diag "temp names left: $(temp_names "$S")"
  fi
}

verdict_field() {
  sed -n "s/^$1=//p" "$S/stagehand/finalize-result"
}

# ------------------------------------------------------------ corrupt origins

corrupt_origin() {
  local f=$1 kind=$2
  case $kind in
    garbage) printf 'this is not a key file\n' >"$f" ;;
    empty) : >"$f" ;;
    binary) printf '\x00\xff\xfe[origin\x00' >"$f" ;;
    no-bootcsum) sed -i '/^bootcsum=/d' "$f" ;;
    bad-bootcsum) sed -i 's/^bootcsum=.*/bootcsum=not-a-checksum/' "$f" ;;
    other-id) sed -i 's/^id=.*/id=1/' "$f" ;;
    newline-in-title) sed -i 's/^title=.*/title=Evil\\noptions init=\/bin\/sh/' "$f" ;;
  esac
}

for which in 2 3; do
  case $which in
    2) role="the default deployment's" ;;
    3) role="the staged deployment's" ;;
  esac
  for kind in garbage empty binary no-bootcsum bad-bootcsum other-id newline-in-title; do
    origin_rel=stagehand/deploy/testos/$which.origin
    regex="$origin_rel.*corrupt"
    fresh
    corrupt_origin "$S/$origin_rel" "$kind"
    mark_state
    # A refused verb changes nothing, so they can all run on one copy. All
    # verbs go through the same loading code: every verb for the first
    # corruption, for the others those that matter most (cleanup must not
    # remove, finalize must record). finalize-staged is always last.
    verbs=(status cleanup finalize-staged)
    [ "$kind" != garbage ] ||
      verbs=(status "stage $T/img4 --no-start" "deploy $T/img4" rollback cleanup finalize-staged)
    for verb in "${verbs[@]}"; do
      # shellcheck disable=SC2086 # words
      refuses "$verb with $role origin $kind: exit 1, one line naming the file, nothing changed" \
        "$regex" $verb
    done
    # The last run was finalize-staged: the next boot must hear about it.
    is "$(verdict_field result):$(verdict_field step)" "failed:load" \
      "finalize with $role origin $kind records result=failed, step=load"
    like "$(verdict_field error)" "*$origin_rel*corrupt*" "... and the error names the origin"
  done
done

# Nothing staged, an unrelated origin corrupt: finalize has nothing to do,
# so it fails (it cannot read the state) but records no verdict: there is
# no lost update to report.
fresh
sh_at "$S" unstage
before_verdict=$(cat "$S/stagehand/finalize-result")
corrupt_origin "$S/stagehand/deploy/testos/1.origin" garbage
mark_state
refuses "finalize with nothing staged and a corrupt origin: exit 1, one line" \
  "testos/1.origin.*corrupt" finalize-staged
is "$(cat "$S/stagehand/finalize-result")" "$before_verdict" \
  "... and the last verdict is left as it was (nothing was staged)"

# ------------------------------------------------------------ truncation

# truncations FILE MIN_OK STEP: cut FILE at every STEPth length and on
# both sides of every line boundary, and run status (which changes nothing,
# so one copy serves). Lengths >= MIN_OK may parse; shorter ones must be
# refused.
truncations() {
  local rel=$1 min_ok=$2 what=$3 step=$4 len bad=0 n=0 first_bad=""
  fresh
  for len in $("$PYTHON" -S -c 'import sys
d = open(sys.argv[1], "rb").read()
cuts = set(range(0, len(d), int(sys.argv[2])))
for i, c in enumerate(d):
    if c == 10:
        cuts.update((i - 1, i, i + 1))
print(" ".join(str(c) for c in sorted(cuts) if 0 <= c < len(d)))' "$S0/$rel" "$step"); do
    head -c "$len" "$S0/$rel" >"$S/$rel"
    sh_at "$S" status --json
    n=$((n + 1))
    if [ "$len" -ge "$min_ok" ] && [ "$SH_RC" -eq 0 ]; then
      # Parsed: it must still say testos/3 is staged, testos/2 the default.
      grep -q '"staged" : "testos/3"' "$SH_OUT" && grep -q '"default" : "testos/2"' "$SH_OUT" ||
        { bad=$((bad + 1)); first_bad=${first_bad:-"$len: parsed to something else: $(head -c 300 "$SH_OUT")"}; }
    elif [ "$SH_RC" -ne 1 ] || [ "$(wc -l <"$SH_ERR")" -ne 1 ] ||
      ! grep -Eq "$what.*(corrupt|not a complete deployment)" "$SH_ERR"; then
      bad=$((bad + 1))
      first_bad=${first_bad:-"$len: exit $SH_RC: $(cat "$SH_ERR")"}
    fi
  done
  if [ "$bad" -eq 0 ]; then
    pass "$rel cut at $n lengths: status parses it whole or says it is corrupt, in one line"
  else
    fail "$rel cut at $n lengths: status parses it whole or says it is corrupt, in one line"
    diag "$bad bad lengths; first: $first_bad"
  fi
}

origin3=stagehand/deploy/testos/3.origin
# The origin parses once every required key is complete: kargs= is the
# last required one (created= after it is optional).
min=$("$PYTHON" -S -c 'import sys
d = open(sys.argv[1]).read()
i = d.index("\nkargs=") + 1
print(d.index("\n", i))' "$S0/$origin3")
truncations "$origin3" "$min" "$origin3" 11
staged=run/stagehand/staged
min=$("$PYTHON" -S -c 'import sys
d = open(sys.argv[1]).read()
print(max(d.index("\nid=") + 1 + len("id=3"), d.index("\nos=") + 1 + len("os=testos")))' "$S0/$staged")
truncations "$staged" "$min" "$staged" 1

# A truncated staged record, at shutdown: refused, and reported.
fresh
head -c 12 "$S0/$staged" >"$S/$staged"
mark_state
refuses "finalize with a truncated staged record: exit 1, one line, nothing changed" \
  "$staged.*corrupt.*unstage" finalize-staged
is "$(verdict_field result):$(verdict_field step)" "failed:load" \
  "... and records result=failed, step=load for the next boot"

done_testing
