#!/bin/bash
# Corrupt and truncated entry files in the live entry set.
#
# What an operator expects: a broken stagehand entry is not a reason to
# stop updating — the next finalize writes a complete new set anyway, from
# the deployments, not from the old files. So:
#   - `status` exits 0 and shows a warning naming the file and what is wrong
#     (text and --json .boot.warnings), whether the file does not parse at
#     all or parses but names a deployment or a kernel that does not exist;
#   - finalize-staged exits 0 and the new live set is complete (the
#     invariant holds), with the staged deployment as the default and the
#     broken file gone;
#   - another tool's entry is never ours to judge: a garbage one is carried
#     into the new set byte for byte, without a warning; one that is not a
#     file (a dangling symlink, a directory) is carried over as it is, a
#     symlink as a symlink, a directory with what it holds, and never
#     stops the finalize (issue 14); status warns about the one it cannot
#     read (the directory), not about a symlink, which it never follows.

# shellcheck source=tests/lib/fault-lib.sh
. "$(dirname "$0")/../lib/fault-lib.sh"
require_commands python3 find sha256sum
require_stagehand
make_temp corrupt-entry

for v in 1 2 3; do make_test_image "$T/img$v" "$v"; done
S0=$T/template
for args in init "deploy $T/img1" "deploy $T/img2" "stage $T/img3 --no-start"; do
  # shellcheck disable=SC2086 # words
  sh_at "$S0" $args
  [ "$SH_RC" -eq 0 ] || { diag_run; bail "preparing: stagehand $args failed"; }
done
live=$(readlink "$S0/boot/loader")
entry=$live/entries/stagehand-2-testos-2.conf
[ -f "$S0/boot/$entry" ] || bail "no $entry in the template"
is "$(summary "$S0" | cut -d' ' -f1-3)" "default=testos/2 menu=testos/2,testos/1 staged=testos/3" \
  "the template: testos/2 default (its entry: $entry), testos/1 behind it, testos/3 staged"

fresh() {
  S=$T/case
  rm -rf "$S"
  cp -a "$S0" "$S"
}

cut_at() { # the entry up to (not including) the first occurrence of $1, plus $2 bytes of it
  "$PYTHON" -S -c 'import sys
d = open(sys.argv[1]).read()
i = d.index(sys.argv[2]) + int(sys.argv[3])
sys.stdout.write(d[:i])' "$S0/boot/$entry" "$1" "$2"
}

corrupt_entry() {
  local f=$S/boot/$entry
  case $1 in
    garbage) printf 'this is not a boot entry\n' >"$f" ;;
    empty) : >"$f" ;;
    binary) printf '\x00\xff\xfetitle\x00' >"$f" ;;
    no-linux) sed -i '/^linux /d' "$f" ;;
    no-options) sed -i '/^options /d' "$f" ;;
    key-without-value) sed -i 's/^version .*/version/' "$f" ;;
    cut-after-title) cut_at $'\nversion' 1 >"$f" ;;
    cut-in-linux-path) cut_at 'linux /stagehand/' 20 >"$f" ;;
    cut-in-options) cut_at 'stagehand=/stagehand/deploy' 16 >"$f" ;;
    unknown-deployment) sed -i 's|stagehand=/stagehand/deploy/testos/2|stagehand=/stagehand/deploy/testos/99|' "$f" ;;
    missing-kernel) sed -i 's|^linux /stagehand/.*|linux /stagehand/testos-0000/vmlinuz|' "$f" ;;
  esac
}

kinds=(garbage empty binary no-linux no-options key-without-value cut-after-title cut-in-linux-path
  cut-in-options unknown-deployment missing-kernel)
for kind in "${kinds[@]}"; do
  fresh
  corrupt_entry "$kind"
  ! cmp -s "$S/boot/$entry" "$S0/boot/$entry" || bail "corrupting ($kind) changed nothing"

  sh_at "$S" status
  is "$SH_RC" 0 "$kind entry: status exits 0"
  like "$(grep 'warning:' "$SH_OUT")" "*warning: *stagehand-2-testos-2.conf*" \
    "$kind entry: status shows a warning naming the file" || diag_run
  sh_at "$S" --json status
  like "$(json_get '"\n".join(j["boot"]["warnings"])' <"$SH_OUT")" "*stagehand-2-testos-2.conf*" \
    "$kind entry: status --json .boot.warnings names the file"

  sh_at "$S" finalize-staged
  is "$SH_RC" 0 "$kind entry: finalize-staged exits 0" || diag_run
  ok "$kind entry: the new live set is complete (invariant)" invariant "$S"
  like "$(summary "$S")" "default=testos/3 menu=testos/3,* staged=- verdict=success:testos/3 *" \
    "$kind entry: testos/3 is the default"
  new_live=$(readlink "$S/boot/loader")
  ok "$kind entry: the broken file is not in the new set" \
    test ! -e "$S/boot/$new_live/entries/stagehand-2-testos-2.conf"
  sh_at "$S" status
  is "$(grep -c 'warning:' "$SH_OUT")" 0 "$kind entry: after finalize, status has no warning"
done

# ------------------------------------------------------------ foreign entries

fresh
printf 'this is not a boot entry\n\x00\xff' >"$S/boot/$live/entries/other-tool.conf"
sum_before=$(sha256sum <"$S/boot/$live/entries/other-tool.conf")
sh_at "$S" status
is "$(grep -c 'warning:' "$SH_OUT")" 0 "another tool's garbage entry: no warning (not ours to judge)"
sh_at "$S" finalize-staged
is "$SH_RC" 0 "another tool's garbage entry: finalize-staged exits 0"
new_live=$(readlink "$S/boot/loader")
is "$(sha256sum <"$S/boot/$new_live/entries/other-tool.conf" 2>&1)" "$sum_before" \
  "another tool's garbage entry: carried into the new set byte for byte"
ok "another tool's garbage entry: the invariant holds" invariant "$S"

# foreign_state PATH: a symlink's target, or a directory tree's snapshot.
foreign_state() {
  if [ -L "$1" ]; then printf 'symlink -> %s\n' "$(readlink "$1")"; else tree_snapshot "$1"; fi
}
for odd in dangling-symlink directory; do
  fresh
  f=$S/boot/$live/entries/other-tool.conf
  case $odd in
    dangling-symlink) ln -s /nonexistent/entry.conf "$f" ;;
    directory) mkdir "$f" && printf 'inside\n' >"$f/file" ;;
  esac
  foreign_before=$(foreign_state "$f")
  sh_at "$S" status
  is "$SH_RC" 0 "another tool's entry is a $odd: status exits 0"
  case $odd in
    directory) like "$(grep 'warning:' "$SH_OUT")" "*warning: *other-tool.conf*cannot be read*" \
      "another tool's entry is a $odd: status warns, naming it" || diag_run ;;
    *) is "$(grep -c 'warning:' "$SH_OUT")" 0 "another tool's entry is a $odd: no warning (a symlink is not followed)" ;;
  esac
  sh_at "$S" finalize-staged
  is "$SH_RC" 0 "another tool's entry is a $odd: finalize-staged exits 0 (it is carried over as it is)" \
    || diag_run
  new_live=$(readlink "$S/boot/loader")
  ok "another tool's entry is a $odd: the swap happened" test "$new_live" != "$live"
  is "$(foreign_state "$S/boot/$new_live/entries/other-tool.conf")" "$foreign_before" \
    "another tool's entry is a $odd: carried into the new set as it is"
  is "$(sed -n 's/^result=//p' "$S/stagehand/finalize-result")" success \
    "another tool's entry is a $odd: the verdict says success"
  ok "another tool's entry is a $odd: the invariant holds" invariant "$S"
done

done_testing
