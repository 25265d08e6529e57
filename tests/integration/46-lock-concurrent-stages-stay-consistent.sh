#!/bin/bash
# 20 concurrent `stage --no-start --lock-timeout=N` of 20 different images
# (N = 0, 1 or 2, so some get the lock and some give up) while `status
# --json` runs in a loop: every stage ends in success or exit 75 and nothing
# else, every status succeeds, and afterwards the state is consistent - the
# staged record names a complete deployment (tree, .origin, kernel dir in
# <boot>/stagehand/), each successful stage left exactly one complete
# deployment, and no temporary file or directory remains. Issue 4.
# shellcheck disable=SC2016,SC2034 # check eval's its single-quoted conditions
. "$(dirname "$0")/lock-lib.sh"

S=$T/sysroot
N=20
check "sysroot initialised" new_sysroot "$S"
for i in $(seq 1 $N); do
  make_tar "$T/img-$i.tar" "c$i"
done

# status --json in two loops for as long as the stages run; it never takes
# the lock, so it must never fail or wait, whatever the stages are doing.
poll_status () {
  local k=$1 n=0
  while [ ! -e "$T/stages-done" ]; do
    n=$((n + 1))
    "$STAGEHAND" --sysroot="$S" status --json >"$T/poll-$k-$n.json" 2>"$T/poll-$k-$n.err" \
      || { echo "status run $k-$n exited $?:" && cat "$T/poll-$k-$n.err"; } >>"$T/poll-failures"
  done
  echo "$n" >>"$T/poll-count"
}
poll_status 1 &
POLLER1=$!
bg_track "$POLLER1"
poll_status 2 &
POLLER2=$!
bg_track "$POLLER2"

t0=$(now_ms)
pids=()
for i in $(seq 1 $N); do
  "$STAGEHAND" --sysroot="$S" stage --no-start --lock-timeout=$((i % 3)) "$T/img-$i.tar" \
    >"$T/stage-$i.out" 2>"$T/stage-$i.err" &
  pids[i]=$!
  bg_track "${pids[i]}"
done
ok_count=0
tempfail_count=0
other=""
for i in $(seq 1 $N); do
  wait "${pids[i]}"
  stage_rc[i]=$?
  case ${stage_rc[i]} in
    0) ok_count=$((ok_count + 1)) ;;
    75) tempfail_count=$((tempfail_count + 1)) ;;
    *) other="$other $i:${stage_rc[i]}" ;;
  esac
done
t=$(($(now_ms) - t0))
touch "$T/stages-done"
wait "$POLLER1" "$POLLER2"
diag "$ok_count succeeded, $tempfail_count timed out, in $t ms"

check "every stage ended in success or exit 75 (others:${other:- none})" [ -z "$other" ]
for i in ${other}; do diag_file "stage ${i%%:*} stderr" "$T/stage-${i%%:*}.err"; done
check "at least one stage got the lock" [ "$ok_count" -ge 1 ]

all_pids=" ${pids[*]} "
bad=""
for i in $(seq 1 $N); do
  case ${stage_rc[i]} in
    0)
      # "Staged locktest/<id>; ..." and nothing on stderr but waiting lines
      grep -q "^Staged locktest/[0-9]*;" "$T/stage-$i.out" || bad="$bad $i(no Staged line)"
      grep -v "^stagehand: waiting for the sysroot lock" "$T/stage-$i.err" | grep -q . \
        && bad="$bad $i(stderr)"
      ;;
    75)
      # one message naming another stage as the holder (or nobody, if the
      # holder released the lock between the refusal and the naming)
      line=$(grep "^stagehand: sysroot lock is held by " "$T/stage-$i.err")
      holder=$(printf '%s\n' "$line" | sed -n 's/^stagehand: sysroot lock is held by PID \([0-9]*\) .*/\1/p')
      case $line in
        *"; gave up after $((i % 3)) s (see --lock-timeout)") ;;
        *) bad="$bad $i(message)" ;;
      esac
      if [ -n "$holder" ]; then
        case $all_pids in
          *" $holder "*) [ "$holder" != "${pids[i]}" ] || bad="$bad $i(names itself)" ;;
          *) bad="$bad $i(holder $holder is not a stage)" ;;
        esac
        # Its command line; its operation too, unless it took the lock so
        # recently that it had not written its metadata yet.
        printf '%s\n' "$line" | grep -Eq "PID $holder \(.*stage --no-start --lock-timeout=[0-2] $T/img-[0-9]+\.tar\)(, operation stage, held for [0-9]+ s)?; gave up" \
          || bad="$bad $i(holder not described)"
      else
        case $line in
          *"held by an unidentified process;"*) ;;
          *) bad="$bad $i(message)" ;;
        esac
      fi
      grep -v "^stagehand: waiting for the sysroot lock" "$T/stage-$i.err" \
        | grep -qv "^stagehand: sysroot lock is held by " && bad="$bad $i(stderr)"
      ;;
  esac
done
check "each stage said what happened: Staged, or one timeout message naming another stage (bad:${bad:- none})" \
  [ -z "$bad" ]
for i in $(printf '%s\n' "$bad" | grep -o '[0-9]*(' | tr -d '('); do
  diag_file "stage $i stderr" "$T/stage-$i.err"
done

# status reads the deployments, the boot entries and the staged record one
# after the other without the lock; a stage or its cleanup finishing in
# between must not make it fail (it did: "staged record ... names x/N, which
# is not a complete deployment", "reading .../N.origin: No such file").
check "status --json never failed while the stages ran ($(($(paste -sd+ "$T/poll-count"))) runs)" \
  [ ! -e "$T/poll-failures" ]
[ ! -e "$T/poll-failures" ] || diag_file "failures" "$T/poll-failures"
# Every holder status named must have been one of the stages.
badpoll=""
# shellcheck disable=SC2013 # PIDs are words
for p in $(sed -n 's/^ *"pid" : \([0-9]*\),$/\1/p' "$T"/poll-*.json | sort -u); do
  case $all_pids in
    *" $p "*) ;;
    *) [ "$p" = 0 ] || badpoll="$badpoll $p" ;;
  esac
done
check "every holder status named was one of the stages (others:${badpoll:- none})" [ -z "$badpoll" ]

# --- the state afterwards
STAGED=$S/run/stagehand/staged
check "the staged record exists" [ -f "$STAGED" ]
os=$(sed -n 's/^os=//p' "$STAGED")
id=$(sed -n 's/^id=//p' "$STAGED")
D=$S/stagehand/deploy/$os/$id
check "the staged record names a deployment ($os/$id)" eval '[ -n "$os" ] && [ -n "$id" ]'
check "the staged deployment's tree exists" [ -d "$D" ]
check "the staged deployment's .origin exists" [ -f "$D.origin" ]
bootcsum=$(sed -n 's/^bootcsum=//p' "$D.origin" 2>/dev/null)
check "the staged deployment's kernel dir exists in <boot>/stagehand/" \
  eval '[ -n "$bootcsum" ] && [ -s "$S/boot/stagehand/$os-$bootcsum/vmlinuz" ]'
staged_by=""
for i in $(seq 1 $N); do
  grep -q "^Staged $os/$id;" "$T/stage-$i.out" && staged_by="$staged_by $i"
done
check "the staged deployment is what one successful stage reported (stage${staged_by:- none})" \
  [ "$(echo "$staged_by" | wc -w)" -eq 1 ]

status_json "$S" >"$T/final.json" 2>"$T/final.err"
rc=$?
check "status --json succeeds afterwards (rc $rc)" [ "$rc" -eq 0 ]
read_lock_json "$T/final.json"
check "the lock is free afterwards" [ "$LOCK_HELD" = false ]
summary=$(python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
print(j["staged"], sum(d["is_staged"] for d in j["deployments"]))
' "$T/final.json")
check "status --json: staged is $os/$id, the only deployment marked staged ($summary)" \
  [ "$summary" = "$os/$id 1" ]

# Each successful stage created its own deployment id (stage cleans up the
# superseded ones as it goes, so not all of them remain), and every
# deployment that remains is one a successful stage reported.
reported=$(cat "$T"/stage-*.out | sed -n 's/^Staged \([^;]*\);.*/\1/p' | sort)
check "each successful stage reported a deployment of its own ($(echo "$reported" | grep -c .) of $ok_count)" \
  eval '[ "$(echo "$reported" | grep -c .)" -eq "$ok_count" ] && [ -z "$(echo "$reported" | uniq -d)" ]'
origins=$(cd "$S/stagehand/deploy" && find . -mindepth 2 -maxdepth 2 -name '*.origin' | sed 's|^\./||; s|\.origin$||' | sort)
orphans=$(comm -13 <(echo "$reported") <(echo "$origins") | tr '\n' ' ')
check "every remaining deployment was reported by a successful stage (orphans: ${orphans:-none})" \
  [ -z "$orphans" ]
incomplete=""
for o in "$S"/stagehand/deploy/*/*.origin; do
  d=${o%.origin}
  c=$(sed -n 's/^bootcsum=//p' "$o")
  oss=$(basename "$(dirname "$o")")
  [ -d "$d" ] && [ -s "$S/boot/stagehand/$oss-$c/vmlinuz" ] || incomplete="$incomplete $d"
done
trees=$(find "$S/stagehand/deploy" -mindepth 2 -maxdepth 2 -type d ! -name '.*' | wc -l)
check "every deployment is complete: tree, .origin and kernel dir (incomplete:${incomplete:- none})" \
  eval '[ -z "$incomplete" ] && [ "$trees" -eq "$(echo "$origins" | grep -c .)" ]'
leftovers=$(temp_leftovers "$S")
check "no temporary files or directories remain anywhere under the sysroot" [ -z "$leftovers" ]
[ -z "$leftovers" ] || diag "$leftovers"
check "the lock file is a 0600 regular file, empty after the last release" \
  eval '[ -f "$S/stagehand/lock" ] && [ "$(stat -c %a "$S/stagehand/lock")" = 600 ] && [ ! -s "$S/stagehand/lock" ]'

lock_done
