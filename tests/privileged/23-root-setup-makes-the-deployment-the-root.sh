#!/bin/bash
# stagehand-root-setup, for real, as the initramfs runs it: a physical root
# made with `init` + `deploy` is mounted at ROOT, a fake kernel command line
# names a deployment, and afterwards ROOT is that deployment, read-only,
# with its own writable /etc, the os's persistent /var and the physical
# root at /sysroot. A second "boot" of the next deployment finds /var as
# the first left it. Bad stagehand= values fail with one line naming the
# path and the reason, and change nothing.
#
# Root: bind mounts in a private mount namespace (and a private /run).

# shellcheck source=tests/lib/fault-lib.sh
. "$(dirname "$0")/../lib/fault-lib.sh"
enter_private_namespace "needs root" "$@"
require_commands mount umount findmnt stat
require_stagehand
ROOT_SETUP=${STAGEHAND_ROOT_SETUP:-$FAULT_REPO_ROOT/build/src/root-setup/stagehand-root-setup}
[ -x "$ROOT_SETUP" ] || bail "stagehand-root-setup not found at $ROOT_SETUP (build it, or set STAGEHAND_ROOT_SETUP)"
make_temp root-setup
cp "$ROOT_SETUP" "$T/bin/stagehand-root-setup" || bail "cannot copy $ROOT_SETUP"
ROOT_SETUP=$T/bin/stagehand-root-setup

DISK=$T/disk      # the physical root filesystem's content
ROOT=$T/root      # where the initramfs mounts it (initramfs-tools: /root)
RUN=$T/run/stagehand
mkdir -p "$DISK" "$ROOT" "$T/run"

# An image as a builder makes it, with stagehand installed: /var with
# content, and the empty /sysroot that stagehand's install provides.
image() {
  make_test_image "$1" "$2"
  mkdir -p "$1/var/lib/demo" "$1/var/log" "$1/sysroot" "$1/dev" "$1/proc" "$1/sys" "$1/run"
  printf 'state from image %s\n' "$2" >"$1/var/lib/demo/state"
  ln -s ../lib/demo/state "$1/var/log/state-link"
  # Equal times, so that deploy shares what it may between deployments.
  find "$1" -exec touch -h -d @1700000000 {} +
}
image "$T/img1" 1
image "$T/img2" 2
sh_at "$DISK" init
[ "$SH_RC" -eq 0 ] || { diag_run; bail "init failed"; }
for i in 1 2; do
  sh_at "$DISK" deploy "$T/img$i" --karg=root=/dev/test
  [ "$SH_RC" -eq 0 ] || { diag_run; bail "deploy of image $i failed"; }
done
DEPLOY=$DISK/stagehand/deploy/testos

# boot: mounts the physical root at ROOT (a bind mount stands in for the
# block device) and runs the root setup with the command line "$1".
# Boot counting is read from here, never from the machine's own EFI
# variables (a failed root setup with counting on reboots).
export STAGEHAND_DEBUG_EFIVARS_DIR=$T/efivars
mkdir -p "$STAGEHAND_DEBUG_EFIVARS_DIR"
boot() {
  # systemd leaves every mount shared, in the initrd too; a mount under a
  # shared parent cannot be moved, so this is what the root setup meets.
  mount --make-rshared / || bail "cannot make / shared (in the test's own namespace)"
  mount --bind "$DISK" "$ROOT" || bail "cannot mount $DISK on $ROOT"
  printf '%s\n' "$1" >"$T/cmdline"
  RS_OUT=$T/rs.out RS_ERR=$T/rs.err
  "$ROOT_SETUP" --cmdline="$T/cmdline" --run-dir="$RUN" "$ROOT" >"$RS_OUT" 2>"$RS_ERR"
  RS_RC=$?
}
# shutdown: everything below ROOT goes, as at a reboot.
shutdown() {
  umount -R "$ROOT" || bail "cannot unmount $ROOT"
  rm -f "$RUN/booted"
}
AT_EXIT+=("umount -R '$ROOT' 2>/dev/null")
# mount_root PATH: the filesystem-relative root of the mount at PATH.
mount_root() { findmnt -n -o FSROOT --mountpoint "$1" | tail -n 1; }
mount_opts() { findmnt -n -o OPTIONS --mountpoint "$1" | tail -n 1; }
ino() { stat -c %i "$1"; }

# ---------------------------------------------------------------- boot 1
boot "root=/dev/test ro quiet stagehand=/stagehand/deploy/testos/1"
is "$RS_RC" 0 "the root setup of deployment 1 exits 0" || diag_file "$RS_ERR"
like "$(mount_root "$ROOT")" "*/disk/stagehand/deploy/testos/1" "/ is deployment 1"
like "$(mount_opts "$ROOT")" "ro,*" "/ is read-only"
like "$(mount_opts "$ROOT/usr")" "ro,*" "/usr is a read-only mount of its own"
msg=$(touch "$ROOT/usr/bin/new" 2>&1)
like "$msg" "*Read-only file system*" "a write under /usr fails with EROFS"
ok "/etc is writable" sh -c "echo changed >'$ROOT/etc/local-change'"
ok "and the change is in deployment 1's /etc" test -e "$DEPLOY/1/etc/local-change"
ok "not in deployment 2's" test ! -e "$DEPLOY/2/etc/local-change"
if [ "$(ino "$DEPLOY/1/etc/hostname")" != "$(ino "$DEPLOY/2/etc/hostname")" ]; then
  pass "an unchanged /etc file is not shared with deployment 2"
else
  fail "an unchanged /etc file is not shared with deployment 2"
fi
like "$(mount_root "$ROOT/var")" "*/disk/stagehand/var/testos" "/var is <sysroot>/stagehand/var/testos"
is "$(cat "$ROOT/var/lib/demo/state" 2>&1)" "state from image 1" "/var starts as the image's /var"
is "$(readlink "$ROOT/var/log/state-link")" "../lib/demo/state" "symlinks in /var are copied"
ok "/var is writable" sh -c "echo kept >'$ROOT/var/lib/demo/written-in-boot-1'"
ok "/sysroot is the physical root" test -d "$ROOT/sysroot/stagehand/deploy/testos/1"
like "$(mount_opts "$ROOT/sysroot")" "rw,*" "/sysroot is writable"
is "$(sed -n 's/^deployment=//p; s/^sysroot=//p' "$RUN/booted" 2>&1 | tr '\n' ' ')" \
  "testos/1 /sysroot " "the marker names deployment 1 and /sysroot"
like "$(grep '^setup-usec=' "$RUN/booted")" "setup-usec=[0-9]*" "the marker records the setup's duration"
diag "the root setup of the first boot (with the /var copy) took $(sed -n 's/^setup-usec=//p' "$RUN/booted") us"
ok "the deployment tree was not written to" test ! -e "$DEPLOY/1/var/lib/demo/written-in-boot-1"
ok "no temp mount point is left beside ROOT" test ! -e "$ROOT.stagehand-tmp"

# cleanup never touches the persistent /var.
sh_at "$ROOT/sysroot" --boot="$DISK/boot" cleanup
is "$SH_RC" 0 "cleanup on the booted sysroot exits 0" || diag_run
ok "and leaves /var alone" test -e "$DISK/stagehand/var/testos/lib/demo/written-in-boot-1"
shutdown

# ---------------------------------------------------------------- boot 2
boot "root=/dev/test stagehand=/stagehand/deploy/testos/2"
is "$RS_RC" 0 "the root setup of deployment 2 exits 0" || diag_file "$RS_ERR"
like "$(mount_root "$ROOT")" "*/disk/stagehand/deploy/testos/2" "/ is deployment 2"
is "$(cat "$ROOT/var/lib/demo/written-in-boot-1" 2>&1)" "kept" "/var kept what boot 1 wrote"
is "$(cat "$ROOT/var/lib/demo/state" 2>&1)" "state from image 1" \
  "/var is the os's, not copied again from image 2"
ok "deployment 2's /etc has no change made in deployment 1's" test ! -e "$ROOT/etc/local-change"
diag "the root setup of a later boot took $(sed -n 's/^setup-usec=//p' "$RUN/booted") us"
shutdown

# ---------------------------------------------------------------- bad input
mkdir "$DEPLOY/3" && cp -a "$DEPLOY/1/." "$DEPLOY/3/" || bail "cannot make a tree without origin"
# refused CMDLINE GLOB DESCRIPTION: exit 1, one line matching GLOB, and
# nothing changed: no mount on ROOT's children, no marker, no new /var.
refused() {
  local before after
  before=$(tree_snapshot "$DISK/stagehand/var")
  boot "$1"
  is "$RS_RC" 1 "$3: exits 1"
  is "$(wc -l <"$RS_ERR")" 1 "$3: one line"
  like "$(cat "$RS_ERR")" "$2" "$3: names the path and the reason"
  like "$(mount_root "$ROOT")" "*/disk" "$3: ROOT is still the physical root"
  ok "$3: no marker" test ! -e "$RUN/booted"
  after=$(tree_snapshot "$DISK/stagehand/var")
  is "$after" "$before" "$3: /var untouched"
  shutdown
}
refused "stagehand=/stagehand/deploy/testos/9" \
  "stagehand-root-setup: booting /stagehand/deploy/testos/9: deployment tree $ROOT/stagehand/deploy/testos/9: No such file or directory" \
  "a missing deployment"
# (Checked at once: the kernel rate-limits /dev/kmsg writers, and this test
# writes more lines in a second than a boot does.)
if dmesg >/dev/null 2>&1; then
  like "$(dmesg | grep 'stagehand-root-setup: booting /stagehand/deploy/testos/9' | tail -n 1)" \
    "*No such file or directory" "the reason is in the kernel log too"
else
  skip 1 "dmesg cannot read the kernel log here"
fi
refused "stagehand=/stagehand/deploy/testos/3" \
  "stagehand-root-setup: booting /stagehand/deploy/testos/3: $ROOT/stagehand/deploy/testos/3.origin: No such file or directory (an incomplete deployment)" \
  "a deployment without its origin"
mkdir "$DEPLOY/4" && cp -a "$DEPLOY/1/." "$DEPLOY/4/" && cp "$DEPLOY/1.origin" "$DEPLOY/4.origin" &&
  rmdir "$DEPLOY/4/sysroot" || bail "cannot make a tree without /sysroot"
refused "stagehand=/stagehand/deploy/testos/4" \
  "stagehand-root-setup: booting /stagehand/deploy/testos/4: $ROOT/stagehand/deploy/testos/4/sysroot: No such file or directory (install stagehand into the image: it provides /sysroot)" \
  "a deployment without /sysroot"
refused "stagehand=/stagehand/deploy/testos/../../../etc" \
  'stagehand-root-setup: refusing stagehand=/stagehand/deploy/testos/../../../etc: contains ".."' \
  "a path with .."
refused "stagehand=stagehand/deploy/testos/1" \
  "stagehand-root-setup: refusing stagehand=stagehand/deploy/testos/1: not an absolute path" \
  "a relative path"
refused "stagehand=/etc/testos/1" \
  "stagehand-root-setup: refusing stagehand=/etc/testos/1: not below /stagehand/deploy/" \
  "a path outside /stagehand/deploy/"

# With boot counting on (systemd-boot set LoaderBootCountPath for the
# entry it started), a boot that cannot go on reboots, so the try is
# counted, rather than wait in an emergency shell (issue 17).
printf '\x06\x00\x00\x00' >"$T/efivars/LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"
boot "stagehand=/stagehand/deploy/testos/9"
is "$RS_RC" 1 "with boot counting on, a missing deployment: exits 1"
like "$(tail -n 1 "$RS_ERR")" \
  "stagehand-root-setup: boot counting is on (LoaderBootCountPath-*): rebooting in 5 s, so the boot loader counts this try" \
  "... and reboots after saying why"
shutdown
rm "$T/efivars/LoaderBootCountPath-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f"

# A first boot whose /var cannot be created fails with one line.
rm -rf "$DISK/stagehand/var"
printf 'in the way\n' >"$DISK/stagehand/var"
boot "stagehand=/stagehand/deploy/testos/1"
is "$RS_RC" 1 "a /var that cannot be created: exits 1"
is "$(wc -l <"$RS_ERR")" 1 "a /var that cannot be created: one line"
like "$(cat "$RS_ERR")" "stagehand-root-setup: booting /stagehand/deploy/testos/1: $ROOT/stagehand/var: not a directory" \
  "a /var that cannot be created: names the path and the reason"
shutdown
rm -f "$DISK/stagehand/var"

# Without stagehand= nothing happens: a plain root boots as before.
boot "root=/dev/test ro quiet"
is "$RS_RC" 0 "without stagehand= it exits 0"
is "$(cat "$RS_ERR" "$RS_OUT")" "" "and says nothing"
like "$(mount_root "$ROOT")" "*/disk" "ROOT is still the physical root"
ok "no marker is written" test ! -e "$RUN/booted"
ok "no /var is created" test ! -e "$DISK/stagehand/var"
shutdown

done_testing
