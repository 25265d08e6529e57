#!/bin/bash
# Another tool's files in the live entries directory are carried into
# every new set as they are, whatever their names and types, and never
# block a finalize (issue 14): a name of 255 bytes (the temp name of its
# copy must still fit), an entry that is a symlink (carried as a symlink,
# not refused as unreadable), hidden names that look like temp names
# (".*-tmp-*": not stagehand's, so not dropped). In both modes. cleanup
# removes from <boot> itself only the exact temp name of its own loader
# link, not another tool's name that starts the same way.
. "$(dirname "$0")/lib.sh"

plan 20

make_image "$TEST_TMP/v1" --version 1.0 --kernel-content "kernel one"
make_image "$TEST_TMP/v2" --version 2.0 --kernel-content "kernel two"

long_entry=$(printf 'a%.0s' $(seq 250)).conf # 255 bytes
long_file=$(printf 'b%.0s' $(seq 244))       # 244 bytes
# plant DIR: the other tool's files.
plant() {
  printf 'title Long\nlinux /long\n' >"$1/$long_entry"
  printf 'long\n' >"$1/$long_file"
  printf 'title Vendor\nsort-key vendor\nlinux /vendor\n' >"$1/vendor-entry.txt"
  ln -s vendor-entry.txt "$1/vendor.conf"
  ln -s /nonexistent/other.conf "$1/dangling.conf"
  printf 'not ours\n' >"$1/.keep-tmp-abcdef"
  mkdir "$1/.cache-tmp-x" && printf 'x\n' >"$1/.cache-tmp-x/f"
}
# state DIR: what the other tool's files are (type, content or target).
state() {
  (cd "$1" && for n in "$long_entry" "$long_file" vendor-entry.txt vendor.conf dangling.conf \
    .keep-tmp-abcdef .cache-tmp-x .cache-tmp-x/f; do
    if [ -L "$n" ]; then printf '%s -> %s\n' "$n" "$(readlink "$n")"
    elif [ -d "$n" ]; then printf '%s dir\n' "$n"
    elif [ -f "$n" ]; then printf '%s %s\n' "$n" "$(sha256sum <"$n" | cut -c1-16)"
    else printf '%s missing\n' "$n"; fi
  done)
}

for mode in symlink exchange; do
  sysroot="$TEST_TMP/$mode"
  mkdir -p "$sysroot"
  "$STAGEHAND" --sysroot="$sysroot" init --mode="$mode" >/dev/null 2>"$TEST_TMP/init.err" \
    || { diag_file "$TEST_TMP/init.err"; bail "init --mode=$mode failed"; }
  entries=$(entries_dir "$sysroot")
  plant "$entries"
  want=$(state "$entries")

  must "$sysroot" stage "$TEST_TMP/v1"
  sh_on "$sysroot" finalize-staged
  is "$RC" 0 "$mode mode: finalize with the other tool's files exits 0" || diag "$ERR"
  is "$(status_json "$sysroot" 'j["default"]')" "demo/1" "$mode mode: demo/1 is the default"
  is "$(state "$entries")" "$want" "$mode mode: every file of the other tool is carried as it was"
  is "$(sed -n 's/^result=//p' "$sysroot/stagehand/finalize-result")" success \
    "$mode mode: the verdict says success"

  must "$sysroot" stage "$TEST_TMP/v2"
  must "$sysroot" finalize-staged
  is "$(state "$entries")" "$want" "$mode mode: and again at the second finalize"
  must "$sysroot" rollback
  is "$(state "$entries")" "$want" "$mode mode: and at a rollback"
  is "$(ls "$entries" | grep -c '^stagehand-.*\.conf$')" 2 "$mode mode: stagehand's two entries are there"
  is "$(temp_leftovers "$sysroot" | grep -v -e '/\.keep-tmp-abcdef$' -e '/\.cache-tmp-x$')" "" \
    "$mode mode: no temp name of stagehand's left"
  is "$(find "$sysroot/boot" -name "$long_entry" | wc -l)" 1 "$mode mode: one copy of the long name, in the live set"
done

sysroot="$TEST_TMP/symlink"
printf 'mine\n' >"$sysroot/boot/.loader-backup-tmp-1"
: >"$sysroot/boot/.loader-tmp-AbC123"
must "$sysroot" cleanup
ok "cleanup keeps another tool's .loader-backup-tmp-1 in <boot>" test -f "$sysroot/boot/.loader-backup-tmp-1"
ok "cleanup removes stagehand's own leftover .loader-tmp-AbC123" test ! -e "$sysroot/boot/.loader-tmp-AbC123"
