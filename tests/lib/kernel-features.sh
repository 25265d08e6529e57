# shellcheck shell=bash
# What this kernel can do, asked of the kernel itself, never guessed from its
# version: a kernel of any version may be built without autofs or vfat (the
# CI machines' kernel has neither), and a Debian kernel has both as modules
# that are loaded on first use.
#
#   kernel_has FEATURE        true if the running kernel has FEATURE now, or
#                             after one real attempt to load its module
#   kernel_missing FEATURE... print the FEATUREs the kernel lacks, one a line
#   kernel_feature_why FEATURE
#                             one line: how the absence was seen
#
# FEATUREs: a filesystem type as /proc/filesystems names it (autofs, vfat,
# ext4, ...), or "loop" (loop block devices).  A filesystem is there when
# /proc/filesystems lists it; otherwise `modprobe` is tried once (it fails
# where there are no modules, as on a kernel built without them) and
# /proc/filesystems is read again.

# The module that provides a filesystem type where the names differ.
_kernel_fs_module() {
  case $1 in
    autofs) echo autofs4 ;; # the module is called autofs4 before Linux 6.2
    *) echo "$1" ;;
  esac
}

_kernel_lists_fs() {
  awk -v fs="$1" '$NF == fs { found = 1 } END { exit !found }' /proc/filesystems 2>/dev/null
}

kernel_has() {
  local feature=$1 mod
  case $feature in
    loop)
      [ -e /dev/loop-control ] && return 0
      modprobe -q loop 2>/dev/null
      [ -e /dev/loop-control ]
      ;;
    *)
      _kernel_lists_fs "$feature" && return 0
      command -v modprobe >/dev/null 2>&1 || return 1
      for mod in "$(_kernel_fs_module "$feature")" "$feature"; do
        modprobe -q "$mod" 2>/dev/null && break
      done
      _kernel_lists_fs "$feature"
      ;;
  esac
}

kernel_missing() {
  local f
  for f in "$@"; do
    kernel_has "$f" || echo "$f"
  done
}

kernel_feature_why() {
  case $1 in
    loop) echo "loop: no /dev/loop-control, and modprobe loop failed" ;;
    *) echo "$1: not in /proc/filesystems, and modprobe $(_kernel_fs_module "$1") failed" ;;
  esac
}

# needs_kernel FEATURE...: the calling test script ($0) needs these features;
# call it before its plan, after entering its private namespace, with
# tests/lib/tap.sh sourced (for bail and diag). Where this kernel lacks one,
# the whole script runs again inside the VM guest, whose Debian kernel has
# autofs and vfat as modules (tests/vm/run-in-guest), and the guest's TAP is
# the test's TAP. Where the guest lacks it too, the test fails with one line
# naming the feature: a test that cannot run is never a skip.
# KERNEL_NEEDS collects what was declared (setup code checks it).
KERNEL_NEEDS=()
needs_kernel() {
  local missing f why=() runner
  KERNEL_NEEDS+=("$@")
  mapfile -t missing < <(kernel_missing "$@")
  [ ${#missing[@]} -gt 0 ] || return 0
  for f in "${missing[@]}"; do why+=("$(kernel_feature_why "$f")"); done
  if [ -n "${STAGEHAND_TEST_IN_GUEST:-}" ]; then
    bail "the kernel lacks ${missing[*]} on the host and in the VM guest ($(uname -r): ${why[*]})"
  fi
  diag "host kernel $(uname -r) lacks ${missing[*]} (${why[*]}): running in the VM guest"
  runner=$(cd "$(dirname "${BASH_SOURCE[0]}")/../vm" && pwd)/run-in-guest
  exec "$runner" "$(readlink -f "$0")" "${missing[@]}"
  bail "could not run $runner"
}
