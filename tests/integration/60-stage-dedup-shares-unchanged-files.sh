#!/bin/bash
# Staging the same image again with one file changed shares every unchanged
# regular file with the default deployment (one inode, two names) but those
# under /etc, which the booted system writes (each deployment has its own
# copy), writes
# only the changed one, and costs the disk about the changed bytes plus
# directories and small files. The first deployment is immutable throughout:
# nothing a stage or a cleanup does changes any of its files.
. "$(dirname "$0")/lib.sh"

plan 21

img="$TEST_TMP/image"
make_image "$img" --version 1.0
# Enough content that sharing it, or not, shows in du: 4 MiB unchanged, and
# 1 MiB that changes.
mkdir -p "$img/usr/lib/data" "$img/usr/share/doc"
head -c 4194304 /dev/urandom >"$img/usr/lib/data/unchanged.bin"
head -c 1048576 /dev/urandom >"$img/usr/lib/data/changing.bin"
for n in 1 2 3 4 5 6 7 8; do printf 'doc %s\n' "$n" >"$img/usr/share/doc/file$n"; done
ln "$img/usr/share/doc/file1" "$img/usr/share/doc/file1-again" # a hard link inside the image
chmod 4755 "$img/usr/bin/hello"
touch_tree "$img"

# Regular files below a deployment tree: path, inode (sorted by path).
inodes() {
  (cd "$1" && find . -type f -printf '%p %i\n' | LC_ALL=C sort)
}
# Everything that makes a deployment what it is, but link counts and ctime
# (sharing an inode changes those by design, not the file).
snapshot() {
  manifest --links-within-tree "$1"
}

sysroot=$(new_sysroot sysroot)
must "$sysroot" deploy "$img"
d1=$(deployment_dir "$sysroot" demo/1)
ok "the first deployment has a manifest" test -s "$sysroot/stagehand/deploy/demo/1.manifest"
# Version 2: it also records etc/'s directories and symlinks (the pristine
# /etc the next /etc merge compares with).
is "$(zcat "$sysroot/stagehand/deploy/demo/1.manifest" | head -n1)" "stagehand-manifest 2" \
  "the manifest is gzip-compressed and names its format"
is "$(($(zcat "$sysroot/stagehand/deploy/demo/1.manifest" | wc -l) - 1))" \
  "$(($(find "$d1" -type f | wc -l) + $(find "$d1/etc" \( -type d -o -type l \) | wc -l)))" \
  "the manifest lists every regular file of the tree, and etc/'s directories and symlinks"
d1_before=$(snapshot "$d1")
inodes1=$(inodes "$d1")

# One changed file, same size and mtime as before (an image rebuilt with
# SOURCE_DATE_EPOCH looks like that): only its content tells.
head -c 1048576 /dev/urandom >"$img/usr/lib/data/changing.bin"
touch_tree "$img"
du_before=$(du -sk "$sysroot" | cut -f1)
sh_on "$sysroot" stage --no-start "$img"
is "$RC" 0 "the second stage exits 0"
du_after=$(du -sk "$sysroot" | cut -f1)
d2=$(deployment_dir "$sysroot" demo/2)
inodes2=$(inodes "$d2")

changed_inode() { printf '%s\n' "$1" | awk '$1 == "./usr/lib/data/changing.bin" { print $2 }'; }
unchanged() { printf '%s\n' "$1" | grep -v '^\./usr/lib/data/changing.bin \|^\./etc/'; }
etc_files() { printf '%s\n' "$1" | grep '^\./etc/'; }
is "$(unchanged "$inodes2")" "$(unchanged "$inodes1")" \
  "every unchanged file of demo/2 outside /etc is demo/1's inode"
shared_etc=$(comm -12 <(etc_files "$inodes1") <(etc_files "$inodes2"))
if [ -n "$(etc_files "$inodes1")" ] && [ -z "$shared_etc" ]; then
  pass "no file under /etc is shared with demo/1"
else
  fail "no file under /etc is shared with demo/1" "shared: $shared_etc"
fi
ok "the changed file is a new inode" test "$(changed_inode "$inodes2")" != "$(changed_inode "$inodes1")"
is "$(snapshot "$d2")" "$(snapshot "$img")" "demo/2 is a faithful copy of the changed image"
is "$(stat -c %h "$d2/usr/share/doc/file1")" 4 \
  "the image's own hard link pair shares one inode with demo/1's pair"

# Directories cannot be shared: each costs a block (4 KiB on ext4). Plus a
# few small files: the manifest, the origin, the staged record.
dirs=$(find "$d2" -type d | wc -l)
added=$((du_after - du_before))
limit=$((1024 + 4 * dirs + 64))
ok "disk added is the changed 1024 KiB plus metadata: $added KiB (at most $limit KiB)" \
  test "$added" -ge 1024 -a "$added" -le "$limit"
is "$(snapshot "$d1")" "$d1_before" "staging demo/2 changed nothing in demo/1"

# The same image as a tar stream shares with the default just as well.
make_tar "$img" "$TEST_TMP/image.tar"
sh_on "$sysroot" stage --no-start "$TEST_TMP/image.tar"
is "$RC" 0 "staging the tar of the image exits 0"
d3=$(deployment_dir "$sysroot" demo/3)
is "$(unchanged "$(inodes "$d3")")" "$(unchanged "$inodes1")" \
  "from a tar stream too, every unchanged file outside /etc is demo/1's inode"
is "$(comm -12 <(etc_files "$inodes1") <(etc_files "$(inodes "$d3")"))" "" \
  "and none under /etc"
is "$(snapshot "$d3")" "$(snapshot "$img")" "demo/3 is a faithful copy of the image"

# Removing a deployment drops its names for shared inodes and nothing else.
must "$sysroot" unstage
sh_on "$sysroot" cleanup
is "$RC" 0 "cleanup exits 0"
ok "demo/2 and demo/3 are removed, origins first" \
  test ! -e "$d2" -a ! -e "$d3" -a ! -e "$d2.origin" -a ! -e "$d3.origin"
is "$(ls "$sysroot/stagehand/deploy/demo")" "1
1.manifest
1.origin" "their manifests went with them"
is "$(snapshot "$d1")" "$d1_before" "removing demo/2 and demo/3 changed nothing in demo/1"
is "$(find "$d1" -type f -links +1 -printf '%P\n' | LC_ALL=C sort)" \
  "usr/share/doc/file1
usr/share/doc/file1-again" "demo/1's inodes have their own names again, and only those"
is "$(inodes "$d1")" "$inodes1" "demo/1 kept every inode it had"
