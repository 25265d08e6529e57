#!/bin/bash
# A tar archive of an image (plain, gzip, xz, zstd; as GNU tar writes it)
# yields the same deployment tree, entry for entry and byte for byte, as
# the image directory itself, and both are the image.
. "$(dirname "$0")/lib.sh"

plan 17

img="$TEST_TMP/image"
make_image "$img" --version 1.0 --kver 6.1.0
# A little more than make_image's minimum: nesting, a hard link, an empty
# file, a dangling link, restrictive modes, a file of a few MiB.
mkdir -p "$img/usr/share/doc/demo/deep/er/still"
seq 1 400000 >"$img/usr/share/doc/demo/numbers"
: >"$img/usr/share/doc/demo/empty"
ln "$img/usr/bin/hello" "$img/usr/bin/hello-again"
ln -s /nonexistent/target "$img/usr/share/doc/demo/dangling"
printf 'secret\n' >"$img/etc/shadow"
chmod 0600 "$img/etc/shadow"
chmod 0700 "$img/usr/share/doc/demo/deep"
touch_tree "$img"
image_manifest=$(manifest "$img")

# The directory image.
dir_root=$(new_sysroot from-dir)
sh_on "$dir_root" stage "$img"
is "$RC" 0 "stage of the image directory exits 0" || diag "$ERR"
dir_manifest=$(manifest "$(deployment_dir "$dir_root" demo/1)")
is "$dir_manifest" "$image_manifest" "the deployment from the directory is the image, entry for entry"

for comp in "" gz xz zst; do
  name="image.tar${comp:+.$comp}"
  make_tar "$img" "$TEST_TMP/$name" "$comp"
  root=$(new_sysroot "from-${comp:-plain}")
  sh_on "$root" stage "$TEST_TMP/$name"
  is "$RC" 0 "stage of $name exits 0" || diag "$ERR"
  is "$(manifest "$(deployment_dir "$root" demo/1)")" "$dir_manifest" \
    "$name yields the same tree as the directory"
  is "$(sed -n 's/^bootcsum=//p' "$root/stagehand/deploy/demo/1.origin")" "$(bootcsum_of "$img")" \
    "$name: the origin's bootcsum is the image's"
done

# A tar stream from a pipe (an updater downloading as it stages).
root=$(new_sysroot from-pipe)
sh_on "$root" stage <(make_tar "$img" /dev/stdout zst)
is "$RC" 0 "stage of a zstd tar read from a pipe exits 0" || diag "$ERR"
is "$(manifest "$(deployment_dir "$root" demo/1)")" "$dir_manifest" "the piped tar yields the same tree"
is "$(temp_leftovers "$TEST_TMP")" "" "no temporary names left in any sysroot"
