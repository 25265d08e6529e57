#!/bin/bash
# The deployment tree is a faithful copy of the image, from a directory and
# from a tar archive: owner, group, mode (setuid, setgid, sticky), mtime to
# the nanosecond, symlinks (dangling ones too), hard links (one inode),
# sparse files (holes stay holes), extended attributes including
# security.capability, and names that are not UTF-8, byte for byte. Also
# for a second image staged next to the first: a tree that shares
# unchanged files with an earlier deployment is still exactly its image,
# and the earlier one is unchanged.
#
# Root only where it must be: other owners, trusted.* attributes and file
# capabilities need root (CI runs as root); without it those points skip.
. "$(dirname "$0")/lib.sh"

per_source=16
plan $((2 * per_source + 2 + 2 * 6))

root_reason="needs root: other owners, trusted.* xattrs and file capabilities"
img="$TEST_TMP/image"
make_image "$img" --version 1.0 --kver 6.1.0

# Modes.
printf 'su\n' >"$img/usr/bin/su" && chmod 4755 "$img/usr/bin/su"
printf 'wall\n' >"$img/usr/bin/wall" && chmod 2755 "$img/usr/bin/wall"
# Mode 0000: only root can read it to copy it.
if is_root; then printf 'none\n' >"$img/etc/no-access" && chmod 0000 "$img/etc/no-access"; fi
mkdir -p "$img/tmp" "$img/var/mail" "$img/srv/readonly"
chmod 1777 "$img/tmp"
chmod 2775 "$img/var/mail"
printf 'ro\n' >"$img/srv/readonly/file"
mkfifo "$img/srv/fifo"

# Symlinks: relative, absolute, dangling, to a directory, with a long target.
ln -s /usr/lib/os-release "$img/etc/abs-link"
ln -s ../does/not/exist "$img/etc/dangling"
ln -s usr/lib "$img/lib"
long_target=$(printf 'x%.0s' {1..300})
ln -s "$long_target" "$img/etc/long-link"

# Hard links: three names, one inode; one of them setuid.
mkdir -p "$img/usr/sbin"
printf 'busybox\n' >"$img/usr/bin/busybox"
chmod 4755 "$img/usr/bin/busybox"
ln "$img/usr/bin/busybox" "$img/usr/sbin/init"
ln "$img/usr/bin/busybox" "$img/usr/bin/sh"

# Twins: two separate files with the same content and metadata; a pair:
# two names of one file. The second image swaps them.
mkdir -p "$img/usr/share/twins"
printf 'same\n' >"$img/usr/share/twins/twin-a"
printf 'same\n' >"$img/usr/share/twins/twin-b"
printf 'pair\n' >"$img/usr/share/twins/pair-a"
ln "$img/usr/share/twins/pair-a" "$img/usr/share/twins/pair-b"

# Sparse files: two 4 KiB extents in 16 MiB; all hole; a hole at the end.
"$PYTHON" "$LIBPY" sparse-file "$img/var/sparse"
truncate -s 8M "$img/var/all-hole"
printf 'head' >"$img/var/tail-hole" && truncate -s 4M "$img/var/tail-hole"

# Names that are not UTF-8, and other awkward bytes.
printf 'latin-1\n' >"$img/etc/caf"$'\xe9'
mkdir "$img/srv/"$'\xff\xfe'
printf 'inside\n' >"$img/srv/"$'\xff\xfe'"/file"
ln -s $'target-\xe9' "$img/srv/link-to-latin1"
printf 'newline\n' >"$img/srv/new"$'\n'"line"
printf 'backslash\n' >"$img/srv/back\\slash with spaces"
long_dir="$img/srv/$(printf 'd%.0s' {1..120})/$(printf 'e%.0s' {1..120})"
mkdir -p "$long_dir"
printf 'deep\n' >"$long_dir/$(printf 'f%.0s' {1..200})"

# Extended attributes: text, binary with NUL bytes, on a directory.
setfattr -n user.text -v "hello" "$img/etc/hostname"
setfattr -n user.binary -v 0x00ff00ff7f "$img/etc/hostname"
setfattr -n user.dir -v "on a directory" "$img/srv"

if is_root; then
  chown 1234:5678 "$img/srv/readonly/file"
  chown 1234:5678 "$img/srv/readonly"
  chown -h 4321:8765 "$img/etc/dangling"
  chown 0:5678 "$img/usr/bin/wall" && chmod 2755 "$img/usr/bin/wall" # chown clears setgid
  setfattr -h -n trusted.on-link -v "link" "$img/etc/abs-link"
  printf 'ping\n' >"$img/usr/bin/ping"
  setcap cap_net_raw+ep "$img/usr/bin/ping" || bail "setcap failed (apt-get install libcap2-bin)"
fi

# Times last: ns precision, old dates, links too. The read-only directory
# gets its mode after its content.
touch_tree "$img"
touch -d '2001-02-03 04:05:06.123456789' "$img/usr/bin/su"
touch -h -d '1999-12-31 23:59:59.000000001' "$img/etc/dangling"
touch -d '1980-01-01 00:00:00.5' "$img/srv/"$'\xff\xfe'
touch -d '2038-01-19 03:14:08.999999999' "$img/var/sparse"
chmod 0555 "$img/srv/readonly"
touch -d '2010-10-10 10:10:10.101010101' "$img/srv/readonly"

image_manifest=$(manifest "$img")

make_tar "$img" "$TEST_TMP/image.tar.zst" zst

# check_source NAME SYSROOT: the named fidelity points for one import.
check_source() {
  local name=$1 sysroot=$2 dep m
  dep=$(deployment_dir "$sysroot" demo/1)
  m=$(manifest "$dep")
  line() { printf '%s\n' "$m" | grep -F -- "$1 " | head -n1; }

  is "$m" "$image_manifest" "$name: the whole tree, entry by entry (every field below)"
  like "$(line usr/bin/su)" 'mode=4755 .*mtime_ns=981173106123456789 ' "$name: setuid bit and ns mtime kept"
  like "$(line usr/bin/wall)" 'mode=2755 ' "$name: setgid bit kept on a file"
  like "$(line tmp)" 'type=dir mode=1777 ' "$name: sticky bit kept on a directory"
  like "$(line var/mail)" 'type=dir mode=2775 ' "$name: setgid bit kept on a directory"
  like "$(line srv/readonly)" 'type=dir mode=0555 .*mtime_ns=1286705410101010101' \
    "$name: a read-only directory has its mode and mtime after its content was written"
  like "$(line etc/dangling)" 'type=symlink .*mtime_ns=946684799000000001 target=\.\./does/not/exist' \
    "$name: dangling symlink kept, with its own mtime"
  like "$(line etc/long-link)" "target=$long_target\$" "$name: a 300-byte symlink target kept"
  local inodes
  inodes=$(stat -c %i "$dep/usr/bin/busybox" "$dep/usr/sbin/init" "$dep/usr/bin/sh" | sort -u | wc -l)
  is "$inodes" 1 "$name: three hard links are one inode"
  local blocks
  blocks=$(stat -c %b "$dep/var/sparse")
  ok "$name: the sparse 16 MiB file allocates at most 64 KiB ($blocks blocks)" test "$blocks" -le 128
  is "$(stat -c %b "$dep/var/all-hole")" 0 "$name: a file that is all hole allocates nothing"
  ok "$name: a non-UTF-8 file name kept byte for byte" test -f "$dep/etc/caf"$'\xe9'
  is "$(readlink "$dep/srv/link-to-latin1")" $'target-\xe9' "$name: a non-UTF-8 symlink target kept"
  is "$(getfattr --absolute-names -n user.binary -e hex "$dep/etc/hostname" 2>&1 | sed -n 's/^user.binary=//p')" \
    "0x00ff00ff7f" "$name: a binary xattr value with NUL bytes kept"
  if is_root; then
    like "$(line srv/readonly/file)" 'uid=1234 gid=5678 ' "$name: owner and group kept"
    like "$(getcap "$dep/usr/bin/ping")" 'cap_net_raw[=+]ep' "$name: security.capability kept (ping works)"
  else
    skip 2 "$root_reason"
  fi
}

dir_root=$(new_sysroot from-dir)
sh_on "$dir_root" stage "$img"
is "$RC" 0 "stage of the image directory exits 0" || diag "$ERR"
check_source "directory" "$dir_root"

tar_root=$(new_sysroot from-tar)
sh_on "$tar_root" stage "$TEST_TMP/image.tar.zst"
is "$RC" 0 "stage of the image as a zstd tar exits 0" || diag "$ERR"
check_source "tar" "$tar_root"

# A second image: mostly the same files, some changed in one attribute
# only. Each tree must stay its own image whatever is shared between them
# (hard links across trees are invisible here: links count within a tree).
img2="$TEST_TMP/image2"
cp -a "$img" "$img2"
chmod 0700 "$img2/usr/bin/hello"                                # mode only
touch -d '2024-05-06 07:08:09.987654321' "$img2/etc/hostname"    # mtime only
setfattr -n user.new -v "added" "$img2/usr/bin/su"              # xattrs only
touch -d '2001-02-03 04:05:06.123456789' "$img2/usr/bin/su"
printf 'ID=demo\nNAME="Test OS"\nVERSION_ID=2.0\nPRETTY_NAME="Test OS 2.0"\n' >"$img2/usr/lib/os-release"
ln "$img2/usr/bin/busybox" "$img2/usr/bin/sh2"                  # one more name in a link group
# The twins become one file; the pair becomes two equal files.
rm "$img2/usr/share/twins/twin-b" "$img2/usr/share/twins/pair-b"
ln "$img2/usr/share/twins/twin-a" "$img2/usr/share/twins/twin-b"
cp -a "$img2/usr/share/twins/pair-a" "$img2/usr/share/twins/pair-b"
touch -d "@$FIXTURE_EPOCH" "$img2/usr/share/twins"
if is_root; then
  chown 4321 "$img2/srv/readonly/file"                          # owner only
  touch -d '2010-10-10 10:10:10.101010101' "$img2/srv/readonly"
  setcap -r "$img2/usr/bin/ping"                                # a capability dropped
fi
make_tar "$img2" "$TEST_TMP/image2.tar.zst" zst
image1_links=$(manifest --links-within-tree "$img")
image2_links=$(manifest --links-within-tree "$img2")

for source in directory tar; do
  if [ "$source" = directory ]; then root=$dir_root src2=$img2; else root=$tar_root src2="$TEST_TMP/image2.tar.zst"; fi
  sh_on "$root" stage "$src2"
  is "$RC" 0 "$source: staging a second image next to the first exits 0" || diag "$ERR"
  like "$OUT" '^Staged demo/2' "$source: the second image is demo/2"
  is "$(manifest --links-within-tree "$(deployment_dir "$root" demo/2)")" "$image2_links" \
    "$source: demo/2 is exactly the second image (mode, mtime, xattrs, owner, caps, links)"
  is "$(manifest --links-within-tree "$(deployment_dir "$root" demo/1)")" "$image1_links" \
    "$source: demo/1 is still exactly the first image"
  twins="$(deployment_dir "$root" demo/2)/usr/share/twins"
  is "$(stat -c %i "$twins/pair-a" "$twins/pair-b" | sort -u | wc -l)" 2 \
    "$source: two separate files of demo/2's image are two inodes (one linked file in demo/1)"
  is "$(stat -c %i "$twins/twin-a" "$twins/twin-b" | sort -u | wc -l)" 1 \
    "$source: two names of one file in demo/2's image are one inode (two files in demo/1)"
done
