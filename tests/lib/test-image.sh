# shellcheck shell=bash
# make_test_image DIR [VERSION]: a tiny deterministic OS tree with exactly
# one kernel (usr/lib/modules/6.1.0-test), an os-release naming VERSION
# (default 1), and a file, an executable and a symlink; kernel and
# initramfs content differ per VERSION. Shared by tests/privileged/lib.sh
# and tests/lib/fault-lib.sh.
make_test_image() {
  local dir=$1 version=${2:-1} kdir
  kdir=$dir/usr/lib/modules/6.1.0-test
  mkdir -p "$kdir" "$dir/etc" "$dir/usr/bin"
  cat >"$dir/usr/lib/os-release" <<EOS
ID=testos
VERSION_ID=$version
PRETTY_NAME="Test OS $version"
EOS
  printf 'testos %s kernel image\n' "$version" >"$kdir/vmlinuz"
  printf 'testos %s initramfs\n' "$version" >"$kdir/initramfs.img"
  printf 'testos\n' >"$dir/etc/hostname"
  printf '#!/bin/sh\nexit 0\n' >"$dir/usr/bin/true"
  chmod 0755 "$dir/usr/bin/true"
  ln -s true "$dir/usr/bin/sh"
}
