#!/bin/bash
# An image path that does not exist, cannot be read, or is not an image:
# exit 1, one line naming the path and the reason, nothing left behind.
# Unreadable needs a non-root process: as root, those cases run stagehand
# as nobody (setpriv) on a sysroot nobody owns.
. "$(dirname "$0")/lib.sh"

plan $((10 * REFUSED_POINTS))

make_image "$TEST_TMP/v1" --version 1.0
sysroot=$(new_sysroot sysroot)
must "$sysroot" deploy "$TEST_TMP/v1"

refused "missing image path" "$sysroot" 1 "$TEST_TMP/no-such-image.*(no such file|does not exist)" \
  -- stage "$TEST_TMP/no-such-image"
refused "missing image path (deploy)" "$sysroot" 1 "$TEST_TMP/no-such-image.*(no such file|does not exist)" \
  -- deploy "$TEST_TMP/no-such-image"

printf 'this is not a tar archive, just text\n' >"$TEST_TMP/garbage"
refused "a file that is not an archive" "$sysroot" 1 "garbage.*(format|archive|tar)" -- stage "$TEST_TMP/garbage"
: >"$TEST_TMP/empty"
refused "an empty file" "$sysroot" 1 "empty.*(empty|format|archive|tar)" -- stage "$TEST_TMP/empty"

# Cut off in the middle of a member: the import has begun when it fails.
make_image "$TEST_TMP/big" --version 1.0
seq 1 300000 >"$TEST_TMP/big/usr/lib/big-file"
make_tar "$TEST_TMP/big" "$TEST_TMP/big.tar.gz" gz
head -c $(($(stat -c %s "$TEST_TMP/big.tar.gz") / 2)) "$TEST_TMP/big.tar.gz" >"$TEST_TMP/truncated.tar.gz"
refused "a truncated tar.gz" "$sysroot" 1 "truncated\.tar\.gz.*(truncat|unexpected|end of|eof|damaged)" \
  -- stage "$TEST_TMP/truncated.tar.gz"

mkdir -p "$TEST_TMP/no-os-release/usr/lib/modules/6.1.0"
echo k >"$TEST_TMP/no-os-release/usr/lib/modules/6.1.0/vmlinuz"
refused "an image without os-release" "$sysroot" 1 "os-release" -- stage "$TEST_TMP/no-os-release"

make_image "$TEST_TMP/bad-id" --os "Not Valid"
refused "an os-release ID that is not a valid os name" "$sysroot" 1 'ID=.*Not Valid.*(valid|allowed)' \
  -- stage "$TEST_TMP/bad-id"

# Unreadable: needs a process that permissions apply to.
if is_root; then
  as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
  chmod 0755 "$TEST_TMP"
  user_root="$TEST_TMP/user-sysroot"
  "$STAGEHAND" --sysroot="$user_root" init >/dev/null
  "$STAGEHAND" --sysroot="$user_root" deploy "$TEST_TMP/v1" >/dev/null
  chown -R 65534:65534 "$user_root"
  # refused runs $STAGEHAND: point it at a wrapper that drops to nobody.
  printf '#!/bin/sh\nexec %s "%s" "$@"\n' "${as_user[*]}" "$STAGEHAND" >"$TEST_TMP/as-nobody"
  chmod 0755 "$TEST_TMP/as-nobody"
  real_stagehand=$STAGEHAND
  STAGEHAND="$TEST_TMP/as-nobody"
else
  user_root=$sysroot
fi
make_image "$TEST_TMP/unreadable-dir" --version 1.0
chmod 0000 "$TEST_TMP/unreadable-dir"
refused "an image directory that cannot be read" "$user_root" 1 "unreadable-dir.*permission denied" \
  -- stage "$TEST_TMP/unreadable-dir"
make_tar "$TEST_TMP/v1" "$TEST_TMP/unreadable.tar"
chmod 0000 "$TEST_TMP/unreadable.tar"
refused "an image tar that cannot be read" "$user_root" 1 "unreadable\.tar.*permission denied" \
  -- stage "$TEST_TMP/unreadable.tar"
# One file deep inside cannot be read: the import is half done when it fails.
make_image "$TEST_TMP/partly" --version 1.0
seq 1 1000 >"$TEST_TMP/partly/usr/lib/zz-secret"
chmod 0000 "$TEST_TMP/partly/usr/lib/zz-secret"
refused "an image with one unreadable file" "$user_root" 1 "zz-secret.*permission denied" \
  -- stage "$TEST_TMP/partly"
if is_root; then STAGEHAND=$real_stagehand; fi
chmod -R u+rwX "$TEST_TMP"
