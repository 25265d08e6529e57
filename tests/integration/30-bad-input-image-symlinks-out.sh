#!/bin/bash
# Symlinks in an image are the image's: stagehand never follows one out of
# it when it looks for the kernel and os-release. An image whose usr/ or
# boot/ points at the host's must not get the host's kernel installed as
# its own (or the host's os-release as its name). Symlinks that stay in the
# image resolve as the image would see them (os-release is often one).
. "$(dirname "$0")/lib.sh"

plan $((6 * REFUSED_POINTS + 6 + 3))

make_image "$TEST_TMP/v1" --version 1.0
sysroot=$(new_sysroot sysroot)
must "$sysroot" deploy "$TEST_TMP/v1"

# What lies outside every image: a kernel and an os-release to be lured to.
outside="$TEST_TMP/host"
mkdir -p "$outside/lib/modules/9.9.9" "$outside/boot" "$outside/etc"
echo "HOST KERNEL" >"$outside/lib/modules/9.9.9/vmlinuz"
echo "HOST KERNEL" >"$outside/boot/vmlinuz-9.9.9"
printf 'ID=hostos\nPRETTY_NAME="Host OS"\n' >"$outside/lib/os-release"
printf 'ID=hostos\nPRETTY_NAME="Host OS"\n' >"$outside/etc/os-release"

# lured NAME: no trace of the host's kernel or os name anywhere.
lured() {
  is "$(grep -rl 'HOST KERNEL' "$sysroot/boot" 2>/dev/null; ls -d "$sysroot/stagehand/deploy/hostos" 2>/dev/null)" "" \
    "$1: the host's kernel is not in <boot> and no deployment is named after the host"
}

# An image of its own os-release, no kernel of its own, and usr/lib or
# boot/ leading out.
make_image "$TEST_TMP/usr-abs" --version 2.0
rm -r "$TEST_TMP/usr-abs/usr/lib/modules"
mv "$TEST_TMP/usr-abs/usr/lib/os-release" "$TEST_TMP/usr-abs/etc/os-release.real"
rm "$TEST_TMP/usr-abs/etc/os-release"
mv "$TEST_TMP/usr-abs/etc/os-release.real" "$TEST_TMP/usr-abs/etc/os-release"
rm -r "$TEST_TMP/usr-abs/usr/lib"
ln -s "$outside/lib" "$TEST_TMP/usr-abs/usr/lib"
refused "an image whose usr/lib is an absolute symlink out of it" "$sysroot" 1 'no kernel' -- stage "$TEST_TMP/usr-abs"
lured "usr/lib absolute"

cp -a "$TEST_TMP/usr-abs" "$TEST_TMP/usr-rel"
rm "$TEST_TMP/usr-rel/usr/lib"
ln -s "../../../../../../../../../..$outside/lib" "$TEST_TMP/usr-rel/usr/lib"
refused "an image whose usr/lib is a relative symlink out of it" "$sysroot" 1 'no kernel' -- stage "$TEST_TMP/usr-rel"
lured "usr/lib relative"

make_image "$TEST_TMP/boot-abs" --version 2.0
rm -r "$TEST_TMP/boot-abs/usr/lib/modules"
ln -s "$outside/boot" "$TEST_TMP/boot-abs/boot"
refused "an image whose boot/ is an absolute symlink out of it" "$sysroot" 1 'no kernel' -- stage "$TEST_TMP/boot-abs"
lured "boot/ absolute"

make_tar "$TEST_TMP/usr-abs" "$TEST_TMP/usr-abs.tar"
refused "a tar image whose usr/lib is a symlink out of it" "$sysroot" 1 'no kernel' -- stage "$TEST_TMP/usr-abs.tar"
lured "usr/lib absolute, from a tar"

# os-release through a link out of the image: as if there were none.
make_image "$TEST_TMP/osr-out" --version 2.0 --kernel-content "kernel two"
rm "$TEST_TMP/osr-out/etc/os-release"
ln -sf "$outside/etc/os-release" "$TEST_TMP/osr-out/usr/lib/os-release"
refused "an image whose os-release is a symlink out of it" "$sysroot" 1 'os-release' -- stage "$TEST_TMP/osr-out"
ln -sf "../../../../../../../../../..$outside/etc/os-release" "$TEST_TMP/osr-out/usr/lib/os-release"
refused "an image whose os-release is a relative symlink out of it" "$sysroot" 1 'os-release' -- stage "$TEST_TMP/osr-out"
lured "os-release out of the image"

# Links that stay inside resolve as in the image: an absolute os-release
# link (Fedora-style variant file) and an etc/os-release only.
make_image "$TEST_TMP/osr-in" --version 3.0 --kernel-content "kernel three"
mkdir -p "$TEST_TMP/osr-in/usr/lib/os.release.d"
printf 'ID=variant\nPRETTY_NAME="Variant OS 3"\nVERSION_ID=3\n' >"$TEST_TMP/osr-in/usr/lib/os.release.d/os-release-variant"
ln -sf /usr/lib/os.release.d/os-release-variant "$TEST_TMP/osr-in/usr/lib/os-release"
sh_on "$sysroot" stage "$TEST_TMP/osr-in"
is "$RC" 0 "an image whose os-release is an absolute symlink inside it stages" || diag "$ERR"
like "$OUT" '^Staged variant/' "its os-release is read through the link, inside the image"
status_json "$sysroot"
is "$(json '[d["title"] for d in j["deployments"] if d["is_staged"]]')" '["Variant OS 3"]' "the title is the image's"
lured "an os-release link inside the image"
