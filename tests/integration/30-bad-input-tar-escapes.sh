#!/bin/bash
# Hostile tar members are refused, not sanitised: `..`, absolute paths, a
# symlink and then a path (or a directory, or a hard link target) through
# it, hard links to outside the tree, device nodes. Each: exit 1, one line
# naming what and why, nothing written outside, nothing left inside.
. "$(dirname "$0")/lib.sh"

kinds=(dotdot dotdot-leading absolute symlink-then-path symlink-then-dir symlink-inside-then-path
  hardlink-outside hardlink-dotdot hardlink-through-symlink chardev blockdev)
plan $((${#kinds[@]} * (REFUSED_POINTS + 1) + 2))

make_image "$TEST_TMP/v1" --version 1.0
sysroot=$(new_sysroot sysroot)
must "$sysroot" deploy "$TEST_TMP/v1"

outside="$TEST_TMP/outside"
mkdir -p "$outside"

for kind in "${kinds[@]}"; do
  # What the member would reach: a new file, or (hard links) an existing one.
  case "$kind" in
    hardlink-*)
      target="$outside/secret-$kind"
      printf 'do not link me\n' >"$target"
      ;;
    *) target="$outside/escaped-$kind" ;;
  esac
  # A neutral file name: the message must say why, not echo "hardlink".
  n=$((${n:-0} + 1))
  tarball="$TEST_TMP/hostile-$n.tar"
  "$PYTHON" "$LIBPY" hostile-tar "$tarball" "$kind" "$target"
  # The reason, after the quoted entry name: a `..` or a "link" in the
  # name itself must not pass for it, nor a refusal for another reason.
  case "$kind" in
    dotdot*) why='image entry "[^"]*": path leaves the image \("\.\."\)$' ;;
    absolute) why='image entry "[^"]*": absolute path$' ;;
    symlink-*) why='image entry "[^"]*": path goes through the symlink "etc/(escape|alias)"$' ;;
    hardlink-outside) why='image entry "[^"]*": hard link target "[^"]*" is an absolute path$' ;;
    hardlink-dotdot) why='image entry "[^"]*": hard link target "[^"]*" leaves the image \("\.\."\)$' ;;
    # The link's target is below a symlink the image wrote, so it names
    # nothing the import wrote (the import never looks through it).
    hardlink-through-symlink)
      why='image entry "[^"]*": hard link target "etc/escape/[^"]*" is not an entry written earlier in the image$' ;;
    chardev) why='image entry "[^"]*": character device nodes are not allowed in an image \(except under /dev\)$' ;;
    blockdev) why='image entry "[^"]*": block device nodes are not allowed in an image \(except under /dev\)$' ;;
  esac
  refused "tar with $kind member" "$sysroot" 1 "$why" -- stage "$tarball"
  case "$kind" in
    hardlink-*)
      is "$(stat -c '%h' "$target"):$(cat "$target")" "1:do not link me" \
        "tar with $kind member: the file outside is not linked or changed"
      ;;
    *)
      is "$(find "$outside" "$(dirname "$sysroot")" -name "escaped*" | grep -v '\.tar$')" "" \
        "tar with $kind member: nothing was written outside the tree"
      ;;
  esac
done

# The same sysroot still works: the refusals left it usable.
make_image "$TEST_TMP/v2" --version 2.0 --kernel-content "kernel two"
sh_on "$sysroot" stage "$TEST_TMP/v2"
is "$RC" 0 "after all the refusals a good image stages" || diag "$ERR"
like "$OUT" '^Staged demo/2;' "and gets the next id"
