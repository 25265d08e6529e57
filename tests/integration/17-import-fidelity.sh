#!/bin/bash
# The deployment tree is a faithful copy of the image, from a directory and
# from a tar archive: owner, group, mode (setuid, setgid, sticky), mtime to
# the nanosecond, symlinks (dangling ones too), hard links (one inode),
# sparse files (holes stay holes), extended attributes including
# security.capability, and names that are not UTF-8, byte for byte.
#
# Root only where it must be: other owners, trusted.* attributes and file
# capabilities need root (CI runs as root); without it those points skip.
. "$(dirname "$0")/lib.sh"

per_source=16
plan $((2 * per_source + 2))

root_reason="needs root: other owners, trusted.* xattrs and file capabilities"
img="$TEST_TMP/image"
make_image "$img" --version 1.0 --kver 6.1.0

# Modes.
printf 'su\n' >"$img/usr/bin/su" && chmod 4755 "$img/usr/bin/su"
printf 'wall\n' >"$img/usr/bin/wall" && chmod 2755 "$img/usr/bin/wall"
printf 'none\n' >"$img/etc/no-access" && chmod 0000 "$img/etc/no-access"
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

# Sparse files: two 4 KiB extents in 16 MiB; all hole; a hole at the end.
python3 "$LIBPY" sparse-file "$img/var/sparse"
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
