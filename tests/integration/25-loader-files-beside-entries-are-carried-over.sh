#!/bin/bash
# Symlink mode builds every loader.N afresh, so what other tools keep beside
# the entries - systemd-boot's loader.conf, entries.srel, a keys/ tree in
# loader.N/, a README or a hidden file in loader.N/entries/ - is carried
# into every new set: files byte for byte with their mode, directories
# recursively, symlinks as symlinks, a FIFO as a FIFO (where the filesystem
# can hold one; where not, it is left out and does not stop the update). Exchange mode keeps loader/ where it is and swaps
# only entries/, so what is beside the entries there is carried the same way.
. "$(dirname "$0")/lib.sh"

plan 19

make_image "$TEST_TMP/v1" --version 1.0 --kernel-content "kernel one"
make_image "$TEST_TMP/v2" --version 2.0 --kernel-content "kernel two"
make_image "$TEST_TMP/v3" --version 3.0 --kernel-content "kernel three"

# carried_snapshot DIR: boot_snapshot of a loader directory without the
# entries boot loaders read (entries/*.conf, not hidden): those are the
# new set's, written from the plan.
carried_snapshot() {
  boot_snapshot "$1/." | grep -Ev '^entries/[^./][^/]*\.conf '
}

# --- symlink mode
sysroot=$(new_sysroot sysroot)
loader="$sysroot/boot/loader"
ref="$TEST_TMP/ref"
mkdir -p "$ref/entries" "$ref/keys/auto"
chmod 0755 "$ref" "$ref/entries" "$ref/keys"
chmod 0700 "$ref/keys/auto"
printf 'timeout 3\nconsole-mode max\neditor no' >"$ref/loader.conf" # no final newline
chmod 0644 "$ref/loader.conf"
printf 'type1\n' >"$ref/entries.srel"
chmod 0444 "$ref/entries.srel"
printf 'seed\0with\0NULs\377\n' >"$ref/random-seed"
chmod 0600 "$ref/random-seed"
printf 'PK\0\1\2' >"$ref/keys/auto/PK.auth"
chmod 0640 "$ref/keys/auto/PK.auth"
ln -s loader.conf "$ref/loader.conf.link"
printf 'These entries are written by stagehand.\n' >"$ref/entries/README"
chmod 0644 "$ref/entries/README"
printf 'hidden\n' >"$ref/entries/.hidden.conf"
chmod 0600 "$ref/entries/.hidden.conf"
mkfifo -m 0640 "$ref/a-fifo"
cp -a "$ref/." "$loader/"

must "$sysroot" stage "$TEST_TMP/v1"
sh_on "$sysroot" finalize-staged
is "$RC" 0 "finalize with other tools' files in loader.0 exits 0 (a FIFO among them)" \
  || diag "$ERR"
is "$(readlink "$loader")" "loader.1" "the swap happened"
is "$(carried_snapshot "$loader")" "$(boot_snapshot "$ref")" \
  "after the first finalize: every file, directory and symlink beside the entries is in loader.1 (content, type, mode)"
ok "the FIFO is carried over as a FIFO" test -p "$loader/a-fifo"
is "$(live_entries "$sysroot")" "stagehand-1-demo-1.conf" \
  "the new default is the only entry (README and .hidden.conf are not entries)"

must "$sysroot" stage "$TEST_TMP/v2"
# Another tool adds a file while a deployment is staged: finalize reads
# the live directory when it writes the new set, so it is carried too.
printf 'default stagehand-*\n' >"$ref/late.conf.d"
chmod 0644 "$ref/late.conf.d"
cp -a "$ref/late.conf.d" "$loader/"
must "$sysroot" finalize-staged
is "$(readlink "$loader")" "loader.0" "the second swap went back to loader.0"
is "$(carried_snapshot "$loader")" "$(boot_snapshot "$ref")" \
  "after the second finalize: still all there, with the file added while staged"

# Removing one is that tool's business: it does not come back from an
# older set.
rm "$loader/loader.conf.link" "$ref/loader.conf.link"
must "$sysroot" rollback
is "$(carried_snapshot "$loader")" "$(boot_snapshot "$ref")" "after rollback: carried over"
ok "a removed file does not come back" test ! -e "$loader/loader.conf.link"
is "$(temp_leftovers "$sysroot")" "" "no temporary names left"
is "$(find "$sysroot/boot" -mindepth 1 -maxdepth 1 -name 'loader.*' | wc -l)" 1 "one loader.N directory: the old sets are tidied"

# A file that cannot be read fails finalize before the commit point rather
# than be dropped: the live set stays as it was.
# Root reads a mode-000 file; without CAP_DAC_OVERRIDE and
# CAP_DAC_READ_SEARCH (gone from the bounding set, so the exec'd stagehand
# never has them) it cannot, like any other user.
finalizer=$STAGEHAND
if is_root; then
  command -v setpriv >/dev/null || bail "setpriv (util-linux) is not installed"
  finalizer=$TEST_TMP/no-dac-override
  printf '#!/bin/sh\nexec setpriv --bounding-set=-dac_override,-dac_read_search -- "%s" "$@"\n' \
    "$STAGEHAND" >"$finalizer"
  chmod 0755 "$finalizer"
fi
must "$sysroot" stage "$TEST_TMP/v3"
printf 'secret\n' >"$loader/unreadable"
chmod 000 "$loader/unreadable"
before=$(readlink "$loader")
STAGEHAND=$finalizer sh_on "$sysroot" finalize-staged
is "$RC" 1 "finalize fails when a file beside the entries cannot be read"
like "$ERR" "carrying loader\.[01]/unreadable over: .*Permission denied" \
  "the error names the file and the reason"
is "$(readlink "$loader")" "$before" "the live set stays live"
is "$(find "$sysroot/boot" -mindepth 1 -maxdepth 1 -name 'loader.*' | wc -l)" 1 "the partial new set is gone"
chmod 600 "$loader/unreadable"

# --- exchange mode: loader/ stays, entries/ is swapped
xsysroot="$TEST_TMP/xsysroot"
mkdir -p "$xsysroot"
"$STAGEHAND" --sysroot="$xsysroot" init --mode=exchange >/dev/null 2>"$TEST_TMP/xinit.err" \
  || { diag_file "$TEST_TMP/xinit.err"; bail "init --mode=exchange failed"; }
xloader="$xsysroot/boot/loader"
ok "init --mode=exchange made loader/ a directory" test -d "$xloader" -a ! -L "$xloader"
cp -a "$ref/." "$xloader/"
must "$xsysroot" stage "$TEST_TMP/v1"
must "$xsysroot" finalize-staged
is "$(carried_snapshot "$xloader")" "$(boot_snapshot "$ref")" \
  "exchange mode, first finalize: everything beside the entries is still there"
must "$xsysroot" stage "$TEST_TMP/v2"
must "$xsysroot" finalize-staged
is "$(carried_snapshot "$xloader")" "$(boot_snapshot "$ref")" \
  "exchange mode, after an exchange of entries/: README and .hidden.conf came along"
is "$(live_entries "$xsysroot" | head -n1)" "stagehand-2-demo-2.conf" \
  "exchange mode: the new default is first"
