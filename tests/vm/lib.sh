# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# tests/vm/lib.sh — the host side of stagehand's VM test tier.
#
# A VM test is a TAP-speaking bash script run as root:
#
#   #!/bin/bash
#   . "$(dirname "$0")/lib.sh"          # re-execs the test in a private mount namespace
#   vm_init                             # guest built or cached, per-test disks created
#   vm_guest_script boot1 <<'EOF'       # what the guest runs in its first boot
#   . /usr/local/lib/stagehand-vm/lib.sh
#   findmnt /boot | record findmnt
#   EOF
#   tap_plan 2
#   vm_boot_guest boot1                 # boot the cached kernel, run boot1, power off
#   tap_ok "guest powered off" vm_last_boot_powered_off
#   tap_is "$(cat "$(vm_result findmnt.status)")" 0 "findmnt succeeded"
#
# Everything a test leaves is in $VM_WORK, printed at the start; it is removed
# when every assertion passed and kept otherwise (STAGEHAND_VM_KEEP=1 keeps
# it always).  Per boot N there is $VM_WORK/bootN/ with serial.log, cmdline,
# the BLS entry booted (entry.conf, bootloader boots only), summary, and
# results/ (the guest's $VM_RESULTS for that boot).  $VM_WORK/journal/ is the
# guest's persistent journal as of the last boot.
#
# ---- setup ------------------------------------------------------------------
# vm_init [ext4|vfat]        build/reuse the guest (tests/vm/build-guest), make
#                            $VM_WORK with a fresh root disk (sparse copy of
#                            the cached image) and an empty boot disk (label
#                            SHBOOT, ext4 by default) and install the guest
#                            runner.  Sets VM_GUEST (cache dir), VM_KVER.
# vm_boot_disk_create ext4|vfat [SIZE_MB]
#                            replace the boot disk with an empty one.
#
# ---- putting things into the root disk (host side, between boots) -----------
# vm_root_mount              mount the root disk, print the mount point
# vm_boot_mount [ro]         same for the boot disk (ext4 only; vfat: mtools);
#                            ro = read-only without replaying the journal
# vm_umount                  unmount both (every boot does this first)
# vm_install SRC DEST [MODE] copy a host file to DEST inside the guest root
# vm_install_destdir DIR     merge a `meson install` DESTDIR tree into the
#                            guest root (keeps the /lib -> usr/lib symlinks)
#                            and update the journal catalog
# vm_guest_script NAME [FILE]  install a guest test script (FILE or stdin) as
#                            /usr/local/lib/stagehand-vm/scripts/NAME
# vm_systemctl ARGS...       systemctl --root=<guest root> ARGS (enable, mask)
# vm_require_destdir         skip the test unless a stagehand build is given
# vm_install_stagehand       install it into the guest root, enable its units
# vm_install_build           the same without enabling anything (sets
#                            VM_STAGEHAND)
# vm_stagehand ARGS...       run it on the host with --sysroot/--boot set to
#                            the mounted guest disks (first install: deploy)
# vm_make_guest_images OS VERSION...
#                            vm_make_image into the guest root, as
#                            /var/lib/stagehand-vm/images/v<VERSION>
# vm_first_install           host side (ext4 boot disk): images v1 and v2 of
#                            os "shtest", stagehand init, deploy v1 with
#                            root=LABEL=SHROOT rw: v1 is the default entry
# vm_make_image DIR OS VERSION
#                            write a stagehand IMAGE tree to DIR: the guest
#                            kernel and an initramfs that differs per VERSION
#                            (a small cpio naming it is appended), plus
#                            usr/lib/os-release.  Build it under
#                            "$(vm_root_mount)/..." or copy it with vm_install.
#
# ---- a stagehand sysroot as the root disk (booting into a deployment) -------
# vm_os_image DIR VERSION [initramfs-tools|dracut]
#                            a bootable OS image tree (the guest's root with
#                            this build installed and its own initramfs, made
#                            by its mkinitramfs or, replacing it, by dracut);
#                            $VM_WORK/initramfs-contents.txt lists that
#                            initramfs (lsinitramfs, lsinitrd)
# vm_sysroot_create [FS]     the root disk becomes an empty sysroot disk, the
#                            boot disk an empty FS (ext4) disk
# vm_sysroot_deploy IMAGE    host side: init + deploy IMAGE onto them
#
# ---- booting ----------------------------------------------------------------
# vm_boot_guest SCRIPT [KARG...]
#                            boot the cached kernel+initramfs with the root on
#                            the root disk and run SCRIPT (a "first boot")
# vm_boot_default SCRIPT [KARG...]
#                            act as the boot loader: read the boot disk, pick
#                            the default BLS entry (vm_bls_sorted) and boot its
#                            linux/initrd/options plus the harness's arguments
# vm_boot KERNEL INITRD CMDLINE
#                            the primitive both use; returns 0 if the guest
#                            powered off.  Timeout: STAGEHAND_VM_BOOT_TIMEOUT
#                            (default 300 s), then qemu is killed.
#
# ---- real firmware and a real boot loader (issue 17) ----------------------------
# vm_firmware_init [SIZE_MB] after vm_init: the boot disk becomes a GPT disk
#                            with an ESP (vm_esp_disk_create, label SHBOOT)
#                            holding systemd-boot, and the test gets its own
#                            copy of OVMF's variables
# vm_firmware_first_install [IMAGE]
#                            boot with the cached kernel: stagehand init, a
#                            loader.conf of $VM_FIRMWARE_LOADER_CONF ("timeout
#                            0", no default), deploy IMAGE (default v1) with
#                            vm_firmware_kargs
# vm_firmware_kargs          the harness's kernel arguments as --karg= options
# vm_boot_firmware SCRIPT    power on with OVMF: systemd-boot picks the entry,
#                            the runner reads SCRIPT from next-boot; no
#                            -no-reboot (a panic goes back to the firmware), so
#                            one run can hold several boots, until a poweroff
#                            or the timeout
# vm_make_image DIR OS VERSION panic
#                            an image whose initramfs panics (its init exits)
# After each boot: VM_BOOT_N is its number, VM_BOOT_DIR its directory,
# VM_LAST_END one of poweroff|reboot|panic|timeout|qemu-error|power-cut.
# VM_POWER_CUT_ON=TEXT: kill qemu (a power cut) once the serial console
# shows TEXT.
#
# ---- reading results (host side, after a boot) --------------------------------
# vm_result NAME [BOOT]      path of a file the guest's script recorded
# vm_guest_exit_status [BOOT]  the guest script's exit status (or "none")
# vm_last_boot_powered_off   true if the last boot ended in a clean poweroff
# vm_booted_image_version [BOOT]
#                            the VERSION of the vm_make_image initramfs that
#                            boot BOOT ran, from its kernel log (empty if its
#                            appended archive was not unpacked)
# vm_booted_image_versions [BOOT]
#                            all of them, one a line (a firmware run may hold
#                            several boots)
# vm_efi_entry_selected [BOOT]
#                            the entry systemd-boot booted (LoaderEntrySelected,
#                            counter stripped); results/efi-NAME hold the raw
#                            LoaderEntrySelected, LoaderBootCountPath, LoaderInfo
# vm_efi_boot_count_path [BOOT]
#                            the entry file it booted after counting the try
#                            (LoaderBootCountPath, with / separators)
# vm_journal ARGS...         journalctl on the guest's journal (host side)
# vm_journal_mono BOOT MATCH...
#                            the __MONOTONIC_TIMESTAMP (µs since that boot's
#                            start) of each entry of BOOT (journalctl -b: 0 the
#                            last boot, -1 the one before) that matches the
#                            journalctl MATCHes (FIELD=VALUE), one a line, oldest
#                            first; $VM_MSG_* name the MESSAGE_IDs tests use
# vm_shutdown_timeline BOOT UNIT
#                            key=µs lines for the shutdown of BOOT: script_exit
#                            (the guest script ended: shutdown begins),
#                            unit_first_stopping (PID 1 first stops UNIT),
#                            unit_stopping (the same after script_exit),
#                            finalize_done (stagehand's finalize-done
#                            message), boot_unmounting (the last stop of
#                            boot.mount); "none" where there is no such entry
# vm_pull PATH DEST          copy PATH from the guest root to DEST
# vm_boot_pull PATH DEST     copy PATH from the boot disk (ext4 or vfat)
# vm_boot_put SRC PATH       copy a host file to PATH on the boot disk (ext4 or
#                            vfat; parent directories are created)
# vm_boot_mkdir PATH         mkdir -p on the boot disk (ext4 or vfat)
# vm_boot_tree               print the boot disk's files and symlinks
# vm_bls_sorted              print the entry file names, default first
# vm_bls_default             print the host path of a copy of the default entry
# vm_bls_get FILE KEY        the value of KEY in entry FILE (options: all joined)
#
# ---- TAP ----------------------------------------------------------------------
# tap_plan N                 print "1..N"
# tap_ok DESC CMD...         run CMD; "ok"/"not ok" with DESC, CMD's output as diagnostics
# tap_is GOT WANT DESC       compare strings
# tap_like GOT REGEX DESC    grep -E match
# tap_skip N REASON          N "ok # skip" lines
# tap_diag MSG               "# MSG"
# tap_ordered DESC TIMELINE KEY...
#                            ok if TIMELINE (key=number lines, as from
#                            vm_shutdown_timeline) has every KEY, in strictly
#                            increasing order (vm_timeline_ordered TIMELINE
#                            KEY... is the test alone); the timeline is the
#                            diagnostic
# vm_bail MSG                "Bail out!", keep artifacts, exit 1 (harness failures)
#
# Environment: STAGEHAND_VM_CACHE (guest cache, default /var/cache/stagehand-vm),
# STAGEHAND_VM_ARTIFACTS (default /var/tmp/stagehand-vm-tests),
# STAGEHAND_VM_KEEP=1, STAGEHAND_VM_BOOT_TIMEOUT, STAGEHAND_VM_DESTDIR or
# STAGEHAND_VM_BUILDDIR (the stagehand build scenarios use; see
# vm_require_destdir).

set -u -o pipefail

VM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Loop mounts live in a private mount namespace: if the test dies, the kernel
# drops them (and auto-clears their loop devices) with the namespace, and
# nothing the host sees is touched.
if [ "${STAGEHAND_VM_IN_NS:-}" != "$$" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "1..0 # SKIP VM tests need root (loop mounts, qemu disks)"
    exit 0
  fi
  exec env STAGEHAND_VM_IN_NS=self unshare --mount --propagation private -- \
    /bin/bash -c 'export STAGEHAND_VM_IN_NS=$$; exec "$@"' bash "$BASH" "$0" "$@"
fi

# TAP goes to the test's stdout even from inside $(...).
exec {VM_TAP_FD}>&1

VM_GUEST_LIBDIR=/usr/local/lib/stagehand-vm
VM_GUEST_RESULTS=/var/lib/stagehand-vm/results
# Where, on the root disk, the guest's /var and the per-test scripts are:
# the guest's own when the root disk is a plain root, elsewhere when it is a
# stagehand sysroot (vm_sysroot_create).
VM_VAR_ON_DISK=/var
VM_SCRIPTS_ON_DISK=$VM_GUEST_LIBDIR/scripts
VM_ROOT_LABEL=SHROOT
VM_BOOT_LABEL=SHBOOT

VM_WORK=
VM_GUEST=
VM_KVER=
VM_BOOT_N=0
VM_BOOT_DIR=
VM_LAST_END=
VM_BOOT_FSTYPE=
# Byte offset of the boot filesystem in boot.img: 0 for a bare disk, the
# ESP partition's start for a GPT disk (vm_esp_disk_create).
VM_BOOT_OFFSET=0
VM_FIRMWARE_VARS=
VM_MOUNTED_ROOT=
VM_STAGEHAND=
TAP_N=0
TAP_FAILED=0
TAP_PLANNED=

# ---- TAP ----------------------------------------------------------------------

tap_plan() {
  TAP_PLANNED=$1
  echo "1..$1"
}

tap_diag() {
  local line
  while IFS= read -r line; do echo "# $line"; done <<<"$*"
}

tap_result() { # PASSED(0|1) DESC
  TAP_N=$((TAP_N + 1))
  if [ "$1" = 0 ]; then
    echo "ok $TAP_N - $2"
  else
    TAP_FAILED=$((TAP_FAILED + 1))
    echo "not ok $TAP_N - $2"
  fi
}

tap_ok() {
  local desc=$1 out rc
  shift
  out=$("$@" 2>&1)
  rc=$?
  tap_result "$rc" "$desc"
  if [ "$rc" != 0 ]; then
    tap_diag "command: $* (exit $rc)"
    [ -z "$out" ] || tap_diag "$out"
  fi
  return "$rc"
}

tap_is() {
  if [ "$1" = "$2" ]; then
    tap_result 0 "$3"
  else
    tap_result 1 "$3"
    tap_diag "got:      '$1'"
    tap_diag "expected: '$2'"
    return 1
  fi
}

tap_like() {
  if grep -Eq -- "$2" <<<"$1"; then
    tap_result 0 "$3"
  else
    tap_result 1 "$3"
    tap_diag "no match for /$2/ in:"
    tap_diag "$1"
    return 1
  fi
}

# TIMELINE KEY...: true if every KEY is in TIMELINE in strictly increasing
# order; otherwise says why.
vm_timeline_ordered() {
  local timeline=$1 key val prev="" prevkey=""
  shift
  for key in "$@"; do
    val=$(sed -n "s/^$key=//p" <<<"$timeline")
    case $val in
      '' | *[!0-9]*) echo "no $key in the timeline"; return 1 ;;
    esac
    if [ -n "$prev" ] && [ "$val" -le "$prev" ]; then
      echo "$key ($val) is not after $prevkey ($prev)"
      return 1
    fi
    prev=$val prevkey=$key
  done
}

tap_ordered() {
  local desc=$1 timeline=$2 why
  shift 2
  if why=$(vm_timeline_ordered "$timeline" "$@"); then
    tap_result 0 "$desc"
  else
    tap_result 1 "$desc"
    tap_diag "$why"
    tap_diag "$timeline"
    return 1
  fi
}

tap_skip() {
  local i
  for ((i = 0; i < $1; i++)); do
    TAP_N=$((TAP_N + 1))
    echo "ok $TAP_N # skip $2"
  done
}

vm_bail() {
  TAP_FAILED=$((TAP_FAILED + 1))
  echo "Bail out! $*" >&"$VM_TAP_FD"
  exit 1
}

# ---- lifetime -------------------------------------------------------------------

# Installed when lib.sh is sourced: the exit status says whether every
# planned assertion ran and passed, and the work dir is kept if not.
vm_exit_trap() {
  local rc=$?
  if [ -n "$TAP_PLANNED" ] && [ "$TAP_N" != "$TAP_PLANNED" ]; then
    echo "# planned $TAP_PLANNED tests but ran $TAP_N"
    rc=1
  fi
  [ "$TAP_FAILED" = 0 ] || rc=1
  if [ -n "$VM_WORK" ]; then
    vm_umount >/dev/null 2>&1
    if [ "$rc" != 0 ] || [ "${STAGEHAND_VM_KEEP:-0}" = 1 ]; then
      echo "# artifacts kept in $VM_WORK (serial logs: $VM_WORK/boot*/serial.log)"
    else
      rm -rf "$VM_WORK"
    fi
  fi
  exit "$rc"
}
trap vm_exit_trap EXIT

vm_init() {
  local fstype=${1:-ext4} tool name base
  for tool in qemu-system-x86_64 mkfs.ext4 mkfs.vfat mcopy cpio debugfs journalctl timeout; do
    command -v "$tool" >/dev/null || vm_bail "'$tool' not found: run ci/vm --deps"
  done
  VM_GUEST=$("$VM_DIR/build-guest" --quiet) || vm_bail "building the guest failed (tests/vm/build-guest)"
  VM_KVER=$(cat "$VM_GUEST/kver")

  name=${VM_TEST_NAME:-$(basename "$0" .sh)}
  base=${STAGEHAND_VM_ARTIFACTS:-/var/tmp/stagehand-vm-tests}
  mkdir -p "$base"
  chmod 0700 "$base"
  VM_WORK=$(mktemp -d "$base/$name.$(date +%Y%m%d-%H%M%S).XXXX") || vm_bail "cannot create a work dir under $base"
  mkdir -p "$VM_WORK/mnt/root" "$VM_WORK/mnt/boot"
  echo "# work dir: $VM_WORK"

  cp --sparse=always "$VM_GUEST/root.img" "$VM_WORK/root.img" || vm_bail "copying the root image failed"
  vm_boot_disk_create "$fstype"
  vm_install_guest_runtime
}

vm_boot_disk_create() {
  local fstype=$1 size=${2:-256}
  rm -f "$VM_WORK/boot.img"
  case $fstype in
    ext4)
      truncate -s "${size}M" "$VM_WORK/boot.img"
      mkfs.ext4 -q -L "$VM_BOOT_LABEL" "$VM_WORK/boot.img" || vm_bail "mkfs.ext4 of the boot disk failed"
      ;;
    vfat)
      mkfs.vfat -F 32 -n "$VM_BOOT_LABEL" -C "$VM_WORK/boot.img" $((size * 1024)) >/dev/null \
        || vm_bail "mkfs.vfat of the boot disk failed"
      ;;
    *) vm_bail "vm_boot_disk_create: unknown filesystem '$fstype'" ;;
  esac
  VM_BOOT_FSTYPE=$fstype
  VM_BOOT_OFFSET=0
}

# The boot disk for mtools: the image, and where the filesystem starts in it.
vm__mimg() {
  if [ "$VM_BOOT_OFFSET" = 0 ]; then
    echo "$VM_WORK/boot.img"
  else
    echo "$VM_WORK/boot.img@@$VM_BOOT_OFFSET"
  fi
}

# vm_esp_disk_create [SIZE_MB]: the boot disk becomes a GPT disk with one
# EFI system partition (from 1 MiB to the end) holding an empty FAT32
# labelled SHBOOT.  Built on the host without a loop device (the host
# kernel has no vfat): sfdisk writes the table, mkfs.vfat a separate file,
# dd puts it in place.  The guest mounts it by label as before.
vm_esp_disk_create() {
  local size=${1:-256} start=2048 sectors part=$VM_WORK/esp.part
  rm -f "$VM_WORK/boot.img" "$part"
  truncate -s "${size}M" "$VM_WORK/boot.img"
  printf 'label: gpt\nstart=%s, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="ESP"\n' "$start" \
    | sfdisk -q "$VM_WORK/boot.img" >"$VM_WORK/sfdisk.log" 2>&1 \
    || vm_bail "sfdisk of the ESP disk failed: $(cat "$VM_WORK/sfdisk.log")"
  sectors=$(sfdisk -J "$VM_WORK/boot.img" | jq -r '.partitiontable.partitions[0].size')
  case $sectors in '' | *[!0-9]*) vm_bail "cannot read the ESP's size back from sfdisk" ;; esac
  mkfs.vfat -F 32 -n "$VM_BOOT_LABEL" -C "$part" $((sectors / 2)) >/dev/null \
    || vm_bail "mkfs.vfat of the ESP failed"
  dd if="$part" of="$VM_WORK/boot.img" bs=512 seek="$start" conv=notrunc,sparse status=none \
    || vm_bail "writing the ESP into the boot disk failed"
  rm -f "$part"
  VM_BOOT_FSTYPE=vfat
  VM_BOOT_OFFSET=$((start * 512))
}

# ---- mounts -------------------------------------------------------------------
# State lives in the kernel (mountpoint -q), not in shell variables, so these
# also work from $(...) subshells.

vm_root_mount() {
  local mnt=$VM_WORK/mnt/root
  mountpoint -q "$mnt" || mount -o loop "$VM_WORK/root.img" "$mnt" \
    || vm_bail "cannot loop-mount $VM_WORK/root.img"
  echo "$mnt"
}

# ro: mount read-only without replaying the ext4 journal, so that looking does
# not change what the next (boot loader) read of the disk sees.
vm_boot_mount() {
  local mnt=$VM_WORK/mnt/boot opts=loop
  [ "${1:-}" != ro ] || opts=loop,ro,noload
  [ "$VM_BOOT_FSTYPE" = ext4 ] || vm_bail "vm_boot_mount: the host kernel has no vfat; use vm_boot_pull/vm_boot_tree"
  mountpoint -q "$mnt" || mount -o "$opts" "$VM_WORK/boot.img" "$mnt" \
    || vm_bail "cannot loop-mount $VM_WORK/boot.img"
  echo "$mnt"
}

vm_umount() {
  local m
  for m in "$VM_WORK/mnt/root" "$VM_WORK/mnt/boot"; do
    while mountpoint -q "$m"; do
      umount "$m" || vm_bail "cannot unmount $m (still busy?)"
    done
  done
}

# ---- installing -----------------------------------------------------------------

# Mount the root disk and set VM_MOUNTED_ROOT in the current shell.
vm__root() { VM_MOUNTED_ROOT=$(vm_root_mount) || exit 1; }

vm_install() {
  local src=$1 dest=$2 mode=${3:-}
  vm__root
  mkdir -p "$VM_MOUNTED_ROOT$(dirname "$dest")"
  cp -a "$src" "$VM_MOUNTED_ROOT$dest" || vm_bail "vm_install: cannot copy $src to $dest"
  [ -z "$mode" ] || chmod "$mode" "$VM_MOUNTED_ROOT$dest"
}

vm_install_destdir() {
  local destdir=$1 target=${2:-}
  [ -d "$destdir" ] || vm_bail "vm_install_destdir: no directory $destdir"
  if [ -z "$target" ]; then
    vm__root
    target=$VM_MOUNTED_ROOT
  fi
  # tar, not cp -a: Debian 12 is merged-/usr, and a DESTDIR's lib/systemd/...
  # must go through the guest's /lib -> usr/lib symlink, not replace it.
  tar -C "$destdir" -cf - . | tar -C "$target" -xf - --keep-directory-symlink --no-same-owner \
    || vm_bail "vm_install_destdir: copying $destdir into $target failed"
  if compgen -G "$destdir/usr/lib/systemd/catalog/*.catalog" >/dev/null \
     || compgen -G "$destdir/lib/systemd/catalog/*.catalog" >/dev/null; then
    journalctl --root="$target" --update-catalog || vm_bail "journalctl --update-catalog failed"
  fi
}

vm_guest_script() {
  local name=$1 src=${2:--}
  vm__root
  mkdir -p "$VM_MOUNTED_ROOT$VM_SCRIPTS_ON_DISK"
  if [ "$src" = - ]; then
    cat >"$VM_MOUNTED_ROOT$VM_SCRIPTS_ON_DISK/$name"
  else
    cp "$src" "$VM_MOUNTED_ROOT$VM_SCRIPTS_ON_DISK/$name"
  fi
  chmod 0755 "$VM_MOUNTED_ROOT$VM_SCRIPTS_ON_DISK/$name"
}

vm_install_guest_runtime() {
  local target=${1:-}
  if [ -z "$target" ]; then
    vm__root
    target=$VM_MOUNTED_ROOT
  fi
  install -D -m 0755 "$VM_DIR/guest/run" "$target$VM_GUEST_LIBDIR/run"
  install -D -m 0644 "$VM_DIR/guest/lib.sh" "$target$VM_GUEST_LIBDIR/lib.sh"
  cp -r "$VM_DIR/guest/units/." "$target/etc/systemd/system/"
}

vm_systemctl() {
  vm__root
  systemctl --root="$VM_MOUNTED_ROOT" "$@"
}

# vm__stamp_initrd INITRD VERSION [HOW]: INITRD with a stamp archive
# appended, on stdout.  The kernel unpacks concatenated cpio archives, so
# appending one keeps the initramfs bootable while giving each version its
# own boot checksum.  An uncompressed archive is only recognised at a 4-byte
# aligned offset: after the (compressed) initrd the kernel skips zero bytes,
# and without them it reports "Initramfs unpacking failed: invalid magic"
# and drops the rest.  The stamp says in the kernel log which image booted,
# so the host can check that the appended archive really was unpacked
# (vm_booted_image_version).  For initramfs-tools it is a conf.d file, which
# init sources early (with /dev mounted); HOW=dracut makes it a unit of the
# initrd's systemd instead, pulled in by sysinit.target.
vm__stamp_initrd() {
  local initrd=$1 version=$2 how=${3:-} stamp msg
  stamp=$(mktemp -d)
  msg="<5>stagehand-vm-image: IMAGE_VERSION=$version"
  if [ "$how" = dracut ]; then
    mkdir -p "$stamp/etc/systemd/system/sysinit.target.wants"
    cat >"$stamp/etc/systemd/system/stagehand-vm-image.service" <<EOF
[Unit]
Description=stagehand VM harness: name the image in the kernel log
DefaultDependencies=no
ConditionPathExists=/etc/initrd-release

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'echo "$msg" >/dev/kmsg'
EOF
    ln -s ../stagehand-vm-image.service "$stamp/etc/systemd/system/sysinit.target.wants/"
  else
    mkdir -p "$stamp/conf/conf.d"
    printf 'echo "%s" >/dev/kmsg 2>/dev/null || true\n' "$msg" >"$stamp/conf/conf.d/stagehand-vm-image"
    # A broken image: its init exits right after the stamp, and the kernel
    # panics ("Attempted to kill init"); with panic=-1 it reboots at once.
    [ "$how" != panic ] || printf 'echo "<2>stagehand-vm-image: init of IMAGE_VERSION=%s exits" >/dev/kmsg\nexit 1\n' \
      "$version" >>"$stamp/conf/conf.d/stagehand-vm-image"
  fi
  cat "$initrd"
  head -c $(( (4 - $(stat -c %s "$initrd") % 4) % 4 )) /dev/zero
  # Parents before their children: the kernel creates what it unpacks in
  # archive order.
  (cd "$stamp" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort | cpio --quiet -o -H newc --reproducible)
  rm -rf "$stamp"
}

vm_make_image() {
  local dir=$1 os=$2 version=$3 how=${4:-}
  mkdir -p "$dir/usr/lib/modules/$VM_KVER" "$dir/etc"
  cp "$VM_GUEST/vmlinuz" "$dir/usr/lib/modules/$VM_KVER/vmlinuz"
  vm__stamp_initrd "$VM_GUEST/initrd.img" "$version" "$how" >"$dir/usr/lib/modules/$VM_KVER/initramfs.img"
  cat >"$dir/usr/lib/os-release" <<EOF
NAME="stagehand test OS"
ID=$os
VERSION_ID=$version
VERSION="$version"
PRETTY_NAME="stagehand test OS $version"
EOF
}

vm_make_guest_images() {
  local os=$1 root v
  shift
  root=$(vm_root_mount)
  for v in "$@"; do
    vm_make_image "$root/var/lib/stagehand-vm/images/v$v" "$os" "$v"
  done
}

vm_first_install() {
  local root
  vm_make_guest_images shtest 1 2
  root=$(vm_root_mount)
  vm_stagehand init >"$VM_WORK/host-init.log" 2>&1 \
    || vm_bail "host-side stagehand init failed: $(cat "$VM_WORK/host-init.log")"
  vm_stagehand deploy "$root/var/lib/stagehand-vm/images/v1" --karg=root=LABEL=SHROOT --karg=rw \
    >"$VM_WORK/host-deploy.log" 2>&1 \
    || vm_bail "host-side stagehand deploy failed: $(cat "$VM_WORK/host-deploy.log")"
  vm_umount
}

# ---- a stagehand sysroot as the root disk -------------------------------------------

# vm_os_image DIR VERSION [GENERATOR]: a whole bootable OS image at DIR, as
# an image builder makes one: the guest's root filesystem with this
# stagehand build installed, os "shtest" VERSION in os-release,
# /usr/share/stagehand-vm/image-version, and an initramfs made by the
# image's own generator (so it runs stagehand's root setup) plus the image
# stamp (vm__stamp_initrd).  GENERATOR is initramfs-tools (the default: the
# guest's own mkinitramfs) or dracut (the guest's initramfs-tools replaced
# by Debian's dracut, from the packages build-guest keeps, installed before
# stagehand, as on a dracut system).  What the generator's own lister
# (lsinitramfs, lsinitrd) says the initramfs holds is in
# $VM_WORK/initramfs-contents.txt, its output in $VM_WORK/GENERATOR.log.
# The fstab has no / line (the deployment is mounted read-only by the root
# setup, and remounting / from fstab would make it writable) and a tmpfs on
# /tmp.  A second call for another VERSION copies the first image and
# changes only what differs.
vm_os_image() {
  local dir=$1 version=$2 generator=${3:-initramfs-tools} mnt=$VM_WORK/mnt/guest kdir rc
  kdir=usr/lib/modules/$VM_KVER
  case $generator in
    initramfs-tools | dracut) ;;
    *) vm_bail "vm_os_image: unknown initramfs generator '$generator'" ;;
  esac
  if [ -n "${VM__OS_IMAGE_BASE:-}" ]; then
    [ "$generator" = "$VM__OS_IMAGE_GENERATOR" ] \
      || vm_bail "vm_os_image: $VM__OS_IMAGE_BASE was made with $VM__OS_IMAGE_GENERATOR, not $generator"
    cp -a "$VM__OS_IMAGE_BASE" "$dir" || vm_bail "vm_os_image: copying $VM__OS_IMAGE_BASE failed"
  else
    mkdir -p "$mnt" "$dir"
    mount -o loop,ro,noload "$VM_GUEST/root.img" "$mnt" || vm_bail "vm_os_image: cannot mount the guest image"
    cp -a "$mnt/." "$dir/"
    rc=$?
    umount "$mnt"
    [ "$rc" = 0 ] || vm_bail "vm_os_image: copying the guest tree failed"
    [ "$generator" != dracut ] || vm__image_install_dracut "$dir"
    vm__install_into "$dir"
    vm_install_guest_runtime "$dir"
    # What an image build does besides installing (README, "Debian package").
    systemctl --root="$dir" enable stagehand-boot-complete.service >/dev/null 2>&1 \
      || vm_bail "vm_os_image: systemctl --root enable stagehand-boot-complete.service failed"
    sed -i '/^LABEL=SHROOT[[:space:]]/d' "$dir/etc/fstab"
    echo 'tmpfs  /tmp  tmpfs  mode=1777,nosuid,nodev  0 0' >>"$dir/etc/fstab"
    vm__image_initramfs "$dir" "$generator"
    VM__OS_IMAGE_BASE=$dir
    VM__OS_IMAGE_GENERATOR=$generator
  fi
  mkdir -p "$dir/usr/share/stagehand-vm"
  echo "$version" >"$dir/usr/share/stagehand-vm/image-version"
  printf '%s\n' 'NAME="stagehand test OS"' ID=shtest "VERSION_ID=$version" "VERSION=\"$version\"" \
    "PRETTY_NAME=\"stagehand test OS $version\"" >"$dir/usr/lib/os-release"
  vm__stamp_initrd "$dir/$kdir/initramfs.img.base" "$version" "${generator/initramfs-tools/}" \
    >"$dir/$kdir/initramfs.img"
}

# vm__image_chroot DIR LOG CMD...: run CMD chrooted into the image tree DIR
# with the host's /proc, /sys and /dev bound in (the generators read them),
# its output appended to LOG; the binds are undone whatever CMD does.  (A
# test that dies in between loses them with its private mount namespace.)
vm__image_chroot() {
  local dir=$1 log=$2 m rc=0 bound=()
  shift 2
  for m in proc sys dev; do
    mount --bind "/$m" "$dir/$m" || { rc=1; echo "cannot bind /$m into $dir" >>"$log"; break; }
    bound=("$m" "${bound[@]}")
  done
  if [ "$rc" = 0 ]; then
    chroot "$dir" "$@" >>"$log" 2>&1
    rc=$?
  fi
  for m in "${bound[@]}"; do
    umount "$dir/$m" || { rc=1; echo "cannot unmount $dir/$m" >>"$log"; }
  done
  return "$rc"
}

# Replace the image's initramfs-tools with dracut: apt, offline, from the
# packages build-guest fetched with the guest (dracut Conflicts with
# initramfs-tools, so apt removes it, and autoremove what only it needed,
# mkinitramfs among them).
vm__image_install_dracut() {
  local dir=$1 debs=/var/cache/stagehand-vm-dracut log=$VM_WORK/dracut-install.log
  compgen -G "$VM_GUEST/dracut-debs/dracut_*.deb" >/dev/null \
    || vm_bail "vm_os_image: no dracut package in $VM_GUEST/dracut-debs (tests/vm/build-guest keeps them)"
  mkdir -p "$dir$debs"
  cp "$VM_GUEST"/dracut-debs/*.deb "$dir$debs/"
  vm__image_chroot "$dir" "$log" sh -c "export DEBIAN_FRONTEND=noninteractive
      apt-get install --yes --no-install-recommends -o Dpkg::Options::=--force-unsafe-io $debs/*.deb &&
      apt-get autoremove --yes --purge -o Dpkg::Options::=--force-unsafe-io" \
    || vm_bail "vm_os_image: installing dracut into the image failed: $(tail -n 20 "$log")"
  rm -rf "${dir:?}$debs"
  [ -x "$dir/usr/bin/dracut" ] && [ ! -e "$dir/usr/sbin/mkinitramfs" ] \
    || vm_bail "vm_os_image: after installing dracut the image should have dracut and no mkinitramfs"
}

# The image's own initramfs, made by GENERATOR in a chroot, with its hooks
# and modules (stagehand's among them), as initramfs.img.base beside the
# kernel.  The guest masks udev's 80-drivers.rules (build-guest), which
# mkinitramfs copies in: it loads the disk drivers by name.  dracut is not
# host-only (the host is not the machine), so it copies no rules from /etc
# and its udev loads the drivers; it gets only the disk drivers and ext4
# instead of every driver and filesystem, and none of the modules for
# storage this machine does not have (dm, crypt, nvdimm, ...; "qemu" is
# the IDE and SCSI drivers of a VM), since every byte is decompressed and
# every unit started under emulation on every boot (omitting them took 3 to
# 11 s off each of test 32's boots; the image went from 15 to 12 MiB).
# Otherwise which dracut modules are in is dracut's own choice: stagehand's
# is there because it includes itself, as it would for an image builder.
vm__image_initramfs() {
  local dir=$1 generator=$2 out log=$VM_WORK/$2.log list rc
  out=/usr/lib/modules/$VM_KVER/initramfs.img.base
  case $generator in
    initramfs-tools)
      cp "$dir/usr/lib/modules/$VM_KVER/config" "$dir/boot/config-$VM_KVER"
      printf '%s\n' virtio_pci virtio_blk >>"$dir/etc/initramfs-tools/modules"
      vm__image_chroot "$dir" "$log" mkinitramfs -o "$out" "$VM_KVER"
      rc=$?
      rm -f "$dir/boot/config-$VM_KVER"
      list=lsinitramfs
      ;;
    dracut)
      vm__image_chroot "$dir" "$log" dracut --force --no-hostonly --kver "$VM_KVER" \
        --drivers "virtio_pci virtio_blk" --filesystems ext4 \
        --omit "crypt dm lunmask nvdimm overlay-root qemu resume virtiofs" --compress "zstd -q -3 -T0" "$out"
      rc=$?
      list=lsinitrd
      ;;
  esac
  [ "$rc" = 0 ] || vm_bail "$generator in the image failed: $(tail -n 20 "$log")"
  rm -f "$VM_WORK/initramfs-contents.txt"
  vm__image_chroot "$dir" "$VM_WORK/initramfs-contents.txt" "$list" "$out" \
    || vm_bail "$list of the image's initramfs failed: $(tail -n 20 "$VM_WORK/initramfs-contents.txt")"
}

# vm_sysroot_create [FS]: make the root disk an empty ext4 (label SHROOT)
# that becomes a stagehand sysroot (vm_sysroot_deploy), and the boot disk an
# empty FS (ext4) disk.  From then on the guest's /var is the sysroot's
# stagehand/var/shtest (made by the root setup on the first boot) and the
# per-test scripts live on the physical root, at /sysroot/stagehand-vm in
# the guest.
vm_sysroot_create() {
  vm_umount
  rm -f "$VM_WORK/root.img"
  truncate -s "${STAGEHAND_VM_ROOT_SIZE_MB:-3072}M" "$VM_WORK/root.img"
  mkfs.ext4 -q -L "$VM_ROOT_LABEL" "$VM_WORK/root.img" || vm_bail "mkfs.ext4 of the sysroot disk failed"
  vm_boot_disk_create "${1:-ext4}"
  VM_VAR_ON_DISK=/stagehand/var/shtest
  VM_SCRIPTS_ON_DISK=/stagehand-vm/scripts
}

# vm_sysroot_deploy IMAGE: on the host, init the sysroot disk and deploy
# IMAGE with root=LABEL=SHROOT rw (the first install of an image builder).
vm_sysroot_deploy() {
  vm__destdir
  vm_stagehand init >"$VM_WORK/host-init.log" 2>&1 \
    || vm_bail "host-side stagehand init failed: $(cat "$VM_WORK/host-init.log")"
  vm_stagehand deploy "$1" --karg=root=LABEL=$VM_ROOT_LABEL --karg=rw >"$VM_WORK/host-deploy.log" 2>&1 \
    || vm_bail "host-side stagehand deploy failed: $(cat "$VM_WORK/host-deploy.log")"
  vm_umount
}

# stagehand comes from STAGEHAND_VM_DESTDIR (a `meson install` DESTDIR tree)
# or is installed from the meson build directory STAGEHAND_VM_BUILDDIR (what
# tests/vm/meson.build passes).  Call this before vm_init: it skips the test
# (TAP "1..0 # SKIP") when neither is there.
vm_require_destdir() {
  if [ -n "${STAGEHAND_VM_DESTDIR:-}" ] && [ -x "$STAGEHAND_VM_DESTDIR/usr/bin/stagehand" ]; then
    return 0
  fi
  if [ -n "${STAGEHAND_VM_BUILDDIR:-}" ] && [ -f "$STAGEHAND_VM_BUILDDIR/build.ninja" ]; then
    return 0
  fi
  echo "1..0 # SKIP no stagehand build (set STAGEHAND_VM_DESTDIR or STAGEHAND_VM_BUILDDIR, or run ci/vm)"
  exit 0
}

# Install stagehand into the guest root and enable what a package would
# (stagehand-boot-complete.service).  Sets VM_STAGEHAND to the host-side
# binary of the same build (for vm_stagehand).
vm_install_stagehand() {
  vm_install_build
  vm_systemctl enable stagehand-boot-complete.service >/dev/null 2>&1 \
    || vm_bail "systemctl --root enable stagehand-boot-complete.service failed"
}

# The install alone: the build's files in the guest root, no unit enabled.
# From the Debian package when there is one for this build (vm__deb), so
# every VM test also tests the packaging; else a meson install.
vm_install_build() {
  vm__install_into "${1:-}"
}

# vm__deb: the path of the package ci/package built from this tree into
# <builddir>/deb (ci/test builds it before the suites), or STAGEHAND_VM_DEB;
# only if it is newer than the build's own stagehand, so a stale package is
# never what a test runs.
vm__deb() {
  local deb=${STAGEHAND_VM_DEB:-}
  if [ -z "$deb" ] && [ -n "${STAGEHAND_VM_BUILDDIR:-}" ]; then
    deb=$(ls "$STAGEHAND_VM_BUILDDIR"/deb/stagehand_*.deb 2>/dev/null | head -n 1)
    [ -n "$deb" ] && [ "$deb" -nt "$STAGEHAND_VM_BUILDDIR/src/cli/stagehand" ] || return 1
  fi
  [ -n "$deb" ] && [ -f "$deb" ] && echo "$deb"
}

# vm__install_into [ROOT]: install into ROOT (default: the guest root disk)
# with `dpkg --root` from the package, its maintainer scripts and triggers
# included, or from the meson install tree. Sets VM_STAGEHAND (host side:
# the package's binaries unpacked, or the install tree's).
vm__install_into() {
  local target=${1:-} deb
  if [ -z "$target" ]; then
    vm__root
    target=$VM_MOUNTED_ROOT
  fi
  if deb=$(vm__deb); then
    if [ ! -x "$VM_WORK/deb-tree/usr/bin/stagehand" ]; then
      dpkg-deb -x "$deb" "$VM_WORK/deb-tree" || vm_bail "dpkg-deb -x $deb failed"
    fi
    STAGEHAND_VM_DESTDIR=$VM_WORK/deb-tree
    VM_STAGEHAND=$STAGEHAND_VM_DESTDIR/usr/bin/stagehand
    # The triggers (update-initramfs, the journal catalog) run in the
    # guest root too; a root without a kernel in /boot has no initramfs to
    # update, which update-initramfs takes in its stride.
    dpkg --root="$target" -i "$deb" >>"$VM_WORK/dpkg.log" 2>&1 \
      || vm_bail "dpkg -i $(basename "$deb") into $target failed: $(tail -n 20 "$VM_WORK/dpkg.log")"
    echo "# installed from the package $(basename "$deb")" >&"$VM_TAP_FD"
    return 0
  fi
  vm__destdir
  vm_install_destdir "$STAGEHAND_VM_DESTDIR" "$target"
}

# The build's install tree: STAGEHAND_VM_DESTDIR, or made from
# STAGEHAND_VM_BUILDDIR.  Sets VM_STAGEHAND.
vm__destdir() {
  if [ -z "${STAGEHAND_VM_DESTDIR:-}" ] || [ ! -x "$STAGEHAND_VM_DESTDIR/usr/bin/stagehand" ]; then
    [ -n "${STAGEHAND_VM_BUILDDIR:-}" ] && [ -f "$STAGEHAND_VM_BUILDDIR/build.ninja" ] \
      || vm_bail "no stagehand build to install (set STAGEHAND_VM_DESTDIR or STAGEHAND_VM_BUILDDIR)"
    STAGEHAND_VM_DESTDIR=$VM_WORK/destdir
    meson install -C "$STAGEHAND_VM_BUILDDIR" --no-rebuild --quiet --destdir "$STAGEHAND_VM_DESTDIR" \
      >"$VM_WORK/meson-install.log" 2>&1 \
      || vm_bail "meson install from $STAGEHAND_VM_BUILDDIR failed: see $VM_WORK/meson-install.log"
  fi
  VM_STAGEHAND=$STAGEHAND_VM_DESTDIR/usr/bin/stagehand
}

# Run the host-side stagehand on the guest's disks (root as --sysroot, the
# boot disk as --boot; ext4 boot disks only): image building, first install.
vm_stagehand() {
  local root boot
  root=$(vm_root_mount) && boot=$(vm_boot_mount) || return 1
  "$VM_STAGEHAND" --sysroot="$root" --boot="$boot" "$@"
}

# ---- booting ----------------------------------------------------------------------

# A boot that fails in the initramfs reboots (qemu's -no-reboot then ends
# the run) rather than wait for a person at a shell: panic=-1 for
# initramfs-tools' panic, rd.shell=0 rd.emergency=reboot for dracut's
# emergency target (without rd.emergency it halts, and qemu runs on to the
# timeout).  Only dracut reads rd.*.
vm__harness_args() { # SCRIPT
  echo "console=ttyS0 panic=-1 rd.shell=0 rd.emergency=reboot" \
    "systemd.run=$VM_GUEST_LIBDIR/run" \
    "systemd.run_success_action=poweroff systemd.run_failure_action=poweroff" \
    "stagehand_vm.boot=$VM_BOOT_N stagehand_vm.script=$1"
}

vm_boot() {
  local kernel=$1 initrd=$2 cmdline=$3
  [ -n "$VM_BOOT_DIR" ] || vm__next_boot
  echo "$cmdline" >"$VM_BOOT_DIR/cmdline"
  vm__qemu -no-reboot -kernel "$kernel" -initrd "$initrd" -append "$cmdline" \
    -drive "file=$VM_WORK/root.img,format=raw,if=virtio,cache=unsafe" \
    -drive "file=$VM_WORK/boot.img,format=raw,if=virtio,cache=unsafe"
}

# vm__qemu QEMU-ARGS...: run qemu for boot $VM_BOOT_N with the common
# machine and these boot and disk arguments; classify how it ended
# (VM_LAST_END), collect the results, write the summary.
vm__qemu() {
  local timeout=${STAGEHAND_VM_BOOT_TIMEOUT:-300} rc t0 t1 end
  vm_umount
  t0=$(date +%s.%N)
  # CPU time as well as wall time: on a shared 2-core machine the wall time
  # of an emulated boot says more about the neighbours than about the boot.
  local TIMEFORMAT='%U %S' cutter=
  rm -f "$VM_BOOT_DIR/qemu.pid" "$VM_BOOT_DIR/power-cut"
  if [ -n "${VM_POWER_CUT_ON:-}" ]; then
    # The power cut: once the guest prints the marker on its serial
    # console, qemu is killed outright. What the guest had only in its page
    # cache is lost; what it had written to its disks stays (cache=unsafe
    # keeps qemu's writes in the host's page cache).
    (
      while ! grep -aq -- "$VM_POWER_CUT_ON" "$VM_BOOT_DIR/serial.log" 2>/dev/null; do
        [ -e "$VM_BOOT_DIR/cpu-times.done" ] && exit 0
        sleep 0.05
      done
      touch "$VM_BOOT_DIR/power-cut"
      kill -KILL "$(cat "$VM_BOOT_DIR/qemu.pid")" 2>/dev/null
    ) &
    cutter=$!
  fi
  { time timeout --kill-after=10 "$timeout" qemu-system-x86_64 \
    -pidfile "$VM_BOOT_DIR/qemu.pid" \
    -machine pc,accel=tcg -cpu max -m 1024 -smp 2 \
    -nodefaults -no-user-config -display none \
    -serial "file:$VM_BOOT_DIR/serial.log" \
    "$@" \
    -device virtio-rng-pci -nic none \
    >"$VM_BOOT_DIR/qemu.log" 2>&1; } 2>"$VM_BOOT_DIR/cpu-times"
  rc=$?
  t1=$(date +%s.%N)
  touch "$VM_BOOT_DIR/cpu-times.done"
  [ -z "$cutter" ] || wait "$cutter"
  if [ -e "$VM_BOOT_DIR/power-cut" ]; then
    end=power-cut
  elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then
    end=timeout
  elif [ "$rc" != 0 ]; then
    end=qemu-error
  elif grep -q 'reboot: Power down' "$VM_BOOT_DIR/serial.log"; then
    end=poweroff
  elif grep -q 'Kernel panic' "$VM_BOOT_DIR/serial.log"; then
    end=panic
  else
    end=reboot
  fi
  VM_LAST_END=$end
  vm__collect
  {
    echo "boot $VM_BOOT_N: end=$end qemu_exit=$rc wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')s" \
      "cpu=$(awk 'NF == 2 { c = $1 + $2 } END { printf "%.1f", c }' "$VM_BOOT_DIR/cpu-times")s" \
      "script_start_uptime=$(cat "$VM_BOOT_DIR/results/uptime-start" 2>/dev/null || echo none)s" \
      "script_exit=$(vm_guest_exit_status "$VM_BOOT_N")"
  } >"$VM_BOOT_DIR/summary"
  tap_diag "$(cat "$VM_BOOT_DIR/summary")"
  VM_BOOT_DIR=
  [ "$end" = poweroff ]
}

vm__next_boot() {
  VM_BOOT_N=$((VM_BOOT_N + 1))
  VM_BOOT_DIR=$VM_WORK/boot$VM_BOOT_N
  mkdir -p "$VM_BOOT_DIR"
}

# Copy what the guest left: this boot's results, the journal, the boot tree.
vm__collect() {
  local root
  root=$(vm_root_mount)
  rm -rf "$VM_BOOT_DIR/results" "$VM_WORK/journal"
  local results=$root$VM_VAR_ON_DISK${VM_GUEST_RESULTS#/var}/boot$VM_BOOT_N
  if [ -d "$results" ]; then
    cp -a "$results" "$VM_BOOT_DIR/results"
  else
    mkdir -p "$VM_BOOT_DIR/results"
  fi
  [ ! -d "$root$VM_VAR_ON_DISK/log/journal" ] || cp -a "$root$VM_VAR_ON_DISK/log/journal" "$VM_WORK/journal"
  vm_umount
  vm_boot_tree >"$VM_BOOT_DIR/boot-tree.txt" 2>&1
}

vm_boot_guest() {
  local script=$1
  shift
  vm__next_boot
  vm_boot "$VM_GUEST/vmlinuz" "$VM_GUEST/initrd.img" \
    "root=LABEL=$VM_ROOT_LABEL rw $(vm__harness_args "$script")${*:+ $*}"
}

vm_boot_default() {
  local script=$1 entry linux initrd options kdir
  shift
  vm__next_boot
  entry=$(vm_bls_default) || vm_bail "boot $VM_BOOT_N: no boot loader entry to boot on the boot disk"
  cp "$entry" "$VM_BOOT_DIR/entry.conf"
  linux=$(vm_bls_get "$entry" linux)
  initrd=$(vm_bls_get "$entry" initrd)
  options=$(vm_bls_get "$entry" options)
  [ -n "$linux" ] || vm_bail "boot $VM_BOOT_N: entry $(basename "$entry") has no 'linux' line"
  kdir=$VM_BOOT_DIR/kernel
  mkdir -p "$kdir"
  vm_boot_pull "$linux" "$kdir/linux" || vm_bail "boot $VM_BOOT_N: cannot read $linux from the boot disk"
  if [ -n "$initrd" ]; then
    # Several initrd lines are concatenated, as boot loaders do.
    local f i=0
    : >"$kdir/initrd"
    for f in $initrd; do
      vm_boot_pull "$f" "$kdir/initrd.$i" || vm_bail "boot $VM_BOOT_N: cannot read $f from the boot disk"
      cat "$kdir/initrd.$i" >>"$kdir/initrd"
      i=$((i + 1))
    done
  else
    vm_bail "boot $VM_BOOT_N: entry $(basename "$entry") has no initrd; the guest needs one"
  fi
  # The entry's options come first; the harness only adds what it needs to
  # find the root (if the entry does not say) and to run the script.
  case " $options " in
    *" root="*) ;;
    *) options="root=LABEL=$VM_ROOT_LABEL rw $options" ;;
  esac
  vm_boot "$kdir/linux" "$kdir/initrd" "$options $(vm__harness_args "$script")${*:+ $*}"
}

# ---- real firmware and a real boot loader --------------------------------------------

VM_OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
VM_OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
VM_SYSTEMD_BOOT=/usr/lib/systemd/boot/efi/systemd-bootx64.efi

# vm_firmware_init: after vm_init, make the boot disk a GPT disk with an ESP
# (vm_esp_disk_create) holding systemd-boot (EFI/BOOT/BOOTX64.EFI, the
# removable-media path OVMF boots with empty variables, and
# EFI/systemd/systemd-bootx64.efi, where bootctl installs it), and give the
# test its own copy of OVMF's variable store (kept across its boots, like a
# machine's NVRAM).  loader/loader.conf is the install script's job
# (vm_firmware_loader_conf), after stagehand init.
vm_firmware_init() {
  local f
  for f in "$VM_OVMF_CODE" "$VM_OVMF_VARS" "$VM_SYSTEMD_BOOT"; do
    [ -f "$f" ] || vm_bail "no $f: run ci/deps vm (packages ovmf, systemd-boot-efi)"
  done
  command -v sfdisk >/dev/null || vm_bail "'sfdisk' not found: run ci/deps vm (package fdisk)"
  vm_esp_disk_create "${1:-256}"
  vm_boot_put "$VM_SYSTEMD_BOOT" /EFI/BOOT/BOOTX64.EFI || vm_bail "cannot put systemd-boot on the ESP"
  vm_boot_put "$VM_SYSTEMD_BOOT" /EFI/systemd/systemd-bootx64.efi || vm_bail "cannot put systemd-boot on the ESP"
  VM_FIRMWARE_VARS=$VM_WORK/OVMF_VARS.fd
  cp "$VM_OVMF_VARS" "$VM_FIRMWARE_VARS" || vm_bail "cannot copy $VM_OVMF_VARS"
}

# The loader.conf firmware tests use: no menu, and no `default` line, so
# systemd-boot alone picks the entry from the entry files (boot counting).
VM_FIRMWARE_LOADER_CONF='timeout 0'

# The kernel arguments a firmware boot needs, as --karg= options for the
# first `stagehand deploy` (stage carries them to later deployments): with
# no -append the harness's arguments must be in the entries.  The per-boot
# part (boot number, script) is read from a file instead (vm_boot_firmware).
# systemd.unit=multi-user.target: an ordinary default target, so units
# ordered after default.target (the health check before
# boot-complete.target) run while the script does (guest/units/
# multi-user.target.d).
vm_firmware_kargs() {
  local a
  for a in root=LABEL=$VM_ROOT_LABEL rw console=ttyS0 panic=-1 systemd.run=$VM_GUEST_LIBDIR/run \
           systemd.run_success_action=poweroff systemd.run_failure_action=poweroff \
           systemd.unit=multi-user.target; do
    printf -- '--karg=%s ' "$a"
  done
  echo
}

# vm_boot_firmware SCRIPT: power on a machine with OVMF and the boot disk
# as its only bootable disk; systemd-boot on the ESP picks the entry.  The
# guest runner finds the script and boot number in next-boot beside the
# scripts (it renames it to next-boot.used, so a second userspace boot in
# the same run runs nothing and powers off).  No -no-reboot: a guest that
# panics or reboots goes back to the firmware, as a machine does, so one
# run can hold several boots (serial.log has all of them); the run ends when
# the guest powers off, or at the timeout.  Returns 0 on a poweroff.
vm_boot_firmware() {
  local script=$1
  [ -n "$VM_FIRMWARE_VARS" ] || vm_bail "vm_boot_firmware: call vm_firmware_init first"
  vm__next_boot
  vm__root
  printf 'stagehand_vm.boot=%s stagehand_vm.script=%s\n' "$VM_BOOT_N" "$script" \
    >"$VM_MOUNTED_ROOT$(dirname "$VM_SCRIPTS_ON_DISK")/next-boot"
  echo "firmware: systemd-boot; runner: $VM_BOOT_N $script" >"$VM_BOOT_DIR/cmdline"
  vm__qemu \
    -drive "if=pflash,format=raw,unit=0,readonly=on,file=$VM_OVMF_CODE" \
    -drive "if=pflash,format=raw,unit=1,file=$VM_FIRMWARE_VARS" \
    -drive "file=$VM_WORK/root.img,format=raw,if=none,id=root,cache=unsafe" \
    -device virtio-blk-pci,drive=root \
    -drive "file=$VM_WORK/boot.img,format=raw,if=none,id=boot,cache=unsafe" \
    -device virtio-blk-pci,drive=boot,bootindex=0
}

# vm_firmware_first_install [IMAGE]: boot 0, with the cached kernel (the
# host has no vfat): stagehand init on the ESP, loader.conf
# ($VM_FIRMWARE_LOADER_CONF), deploy IMAGE (default: the guest's
# /var/lib/stagehand-vm/images/v1) with vm_firmware_kargs.  Bails out if
# any of it fails; boot 0's results keep init, deploy, status (status.json).
vm_firmware_first_install() {
  local image=${1:-/var/lib/stagehand-vm/images/v1}
  vm_guest_script firmware-install <<EOF
#!/bin/bash
. $VM_GUEST_LIBDIR/lib.sh
record_cmd init stagehand init || exit 1
echo '$VM_FIRMWARE_LOADER_CONF' >/boot/loader/loader.conf
record_cmd deploy stagehand deploy $image $(vm_firmware_kargs) || exit 1
stagehand status --json >"\$VM_RESULTS/status.json"
EOF
  vm_boot_guest firmware-install
  [ "$(vm_guest_exit_status)" = 0 ] \
    || vm_bail "boot $VM_BOOT_N (first install) failed: $(cat "$(vm_result output)" "$(vm_result init)" "$(vm_result deploy)" 2>&1)"
}

# The entry systemd-boot says it booted in run N (default: the last), from
# the guest's LoaderEntrySelected, as an identity: systemd-boot 252 reports
# the id in lower case and with its counter; both are taken off (stagehand's
# names are lower case).
vm_efi_entry_selected() {
  sed -E 's/\+[0-9]+(-[0-9]+)?\.conf$/.conf/' "$(vm_result efi-LoaderEntrySelected "${1:-$VM_BOOT_N}")" 2>&1
}

# The path of the entry file systemd-boot booted in run N, after it counted
# the try (LoaderBootCountPath; with / instead of the EFI \), e.g.
# /loader/entries/x+2-1.conf; systemd-bless-boot renames that file.
vm_efi_boot_count_path() {
  tr '\\' / <"$(vm_result efi-LoaderBootCountPath "${1:-$VM_BOOT_N}")" 2>&1
}

# Every IMAGE_VERSION the boots of run N (default: the last) started, in
# order, one a line: a firmware run that reboots holds several.
vm_booted_image_versions() {
  sed -n 's/.*stagehand-vm-image: IMAGE_VERSION=\([^[:space:]]*\).*/\1/p' \
    "$VM_WORK/boot${1:-$VM_BOOT_N}/serial.log"
}

# The IMAGE_VERSION that the initramfs of boot N (default: the last) wrote to
# the kernel log from the archive vm_make_image appends; nothing if the
# kernel did not unpack it.
vm_booted_image_version() {
  sed -n 's/.*stagehand-vm-image: IMAGE_VERSION=\([^[:space:]]*\).*/\1/p' \
    "$VM_WORK/boot${1:-$VM_BOOT_N}/serial.log" | head -n 1
}

vm_last_boot_powered_off() {
  [ "$VM_LAST_END" = poweroff ] || { echo "last boot ended with: $VM_LAST_END"; return 1; }
}

# ---- reading results ---------------------------------------------------------------

vm_result() {
  echo "$VM_WORK/boot${2:-$VM_BOOT_N}/results/$1"
}

vm_guest_exit_status() {
  local f
  f=$(vm_result exit-status "${1:-$VM_BOOT_N}")
  if [ -f "$f" ]; then cat "$f"; else echo none; fi
}

vm_journal() {
  journalctl -D "$VM_WORK/journal" --no-pager "$@"
}

# MESSAGE_IDs: systemd's (sd-messages.h, systemd 252) and stagehand's
# (src/lib/journal.h).
VM_MSG_UNIT_STARTING=7d4958e842da4a758f6c1cdc7b36dcc5
VM_MSG_UNIT_STARTED=39f53479d3a045ac8e11786248231fbf
VM_MSG_UNIT_STOPPING=de5b426a63be47a7b6ac3eaac82e2f6f
VM_MSG_UNIT_STOPPED=9d1aaa27d60140bd96365438aad20286
VM_MSG_UNIT_SUCCESS=7ad2d189f7e94e70a38c781354912448
VM_MSG_FINALIZE_START=a1f0c3e2b4d6481f9e7c5a3b1d0f2e41
VM_MSG_FINALIZE_DONE=c7e9a1b3d5f74e2a8c6b4d2f0e1a3c52
VM_MSG_FINALIZE_FAILED=e3b5d7f9a1c34b6d8f0e2a4c6b8d0f63
VM_MSG_PREVIOUS_FINALIZE_FAILED=f4a6c8e0b2d44f5b9a1c3e5d7f9b1d96

vm_journal_mono() {
  local boot=$1
  shift
  vm_journal -b "$boot" -o json "$@" 2>/dev/null | jq -r '.__MONOTONIC_TIMESTAMP'
}

# The systemd.run= service (kernel-command-line.service) ending is the start
# of shutdown: its success or failure action powers off.  PID 1 logs that,
# and the stops that follow, itself, so their order in the journal is the
# order they happened in.
vm_shutdown_timeline() {
  local boot=$1 unit=$2 exit_ts stop_ts
  exit_ts=$( { vm_journal_mono "$boot" _PID=1 UNIT=kernel-command-line.service MESSAGE_ID=$VM_MSG_UNIT_SUCCESS
               vm_journal_mono "$boot" _PID=1 UNIT=kernel-command-line.service \
                 MESSAGE_ID=d9b373ed55a64feb8242e02dbe79a49c; } | sort -n | head -n 1)
  echo "script_exit=${exit_ts:-none}"
  stop_ts=$(vm_journal_mono "$boot" _PID=1 UNIT="$unit" MESSAGE_ID=$VM_MSG_UNIT_STOPPING)
  echo "unit_first_stopping=$(head -n 1 <<<"$stop_ts" | grep . || echo none)"
  stop_ts=$(awk -v t="${exit_ts:-0}" '$1 > t' <<<"$stop_ts" | head -n 1)
  echo "unit_stopping=${stop_ts:-none}"
  echo "finalize_done=$(vm_journal_mono "$boot" MESSAGE_ID=$VM_MSG_FINALIZE_DONE | head -n 1 | grep . || echo none)"
  echo "boot_unmounting=$(vm_journal_mono "$boot" _PID=1 UNIT=boot.mount MESSAGE_ID=$VM_MSG_UNIT_STOPPING \
                            | tail -n 1 | grep . || echo none)"
}

vm_pull() {
  local root
  root=$(vm_root_mount)
  cp -a "$root$1" "$2"
  local rc=$?
  vm_umount
  return "$rc"
}

vm_boot_pull() {
  local src=${1#/} dest=$2
  case $VM_BOOT_FSTYPE in
    ext4)
      # debugfs reads the image without mounting it and without replaying
      # the journal, like a boot loader that reads ext4 (GRUB) does.  It does
      # not follow a symlink in the last path component; resolve loader/ first.
      rm -f "$dest"
      debugfs -R "dump -p /$(vm__ext4_resolve "$src") $dest" "$VM_WORK/boot.img" 2>/dev/null
      [ -f "$dest" ]
      ;;
    vfat)
      mcopy -n -o -i "$(vm__mimg)" "::/$src" "$dest"
      ;;
  esac
}

# Resolve symlinks (relative, inside the boot disk) in an ext4 path with debugfs.
vm__ext4_resolve() {
  local path=$1 out="" comp target n=0
  local IFS=/
  for comp in $path; do
    [ -n "$comp" ] || continue
    target=$(debugfs -R "stat /${out:+$out/}$comp" "$VM_WORK/boot.img" 2>/dev/null \
               | sed -n 's/^Fast link dest: "\(.*\)"$/\1/p')
    if [ -n "$target" ] && [ "$n" -lt 8 ]; then
      n=$((n + 1))
      case $target in
        /*) out=${target#/} ;;
        *) out=${out:+$out/}$target ;;
      esac
    else
      out=${out:+$out/}$comp
    fi
  done
  echo "$out"
}

vm_boot_mkdir() {
  local path=${1#/} prefix="" comp
  case $VM_BOOT_FSTYPE in
    ext4) mkdir -p "$(vm_boot_mount)/$path" ;;
    vfat)
      local IFS=/
      for comp in $path; do
        [ -n "$comp" ] || continue
        prefix=${prefix:+$prefix/}$comp
        mmd -i "$(vm__mimg)" "::/$prefix" 2>/dev/null || true
      done
      ;;
  esac
}

vm_boot_put() {
  local src=$1 dest=${2#/}
  vm_boot_mkdir "$(dirname "$dest")"
  case $VM_BOOT_FSTYPE in
    ext4) cp "$src" "$(vm_boot_mount)/$dest" ;;
    vfat) mcopy -o -i "$(vm__mimg)" "$src" "::/$dest" ;;
  esac
}

vm_boot_tree() {
  case $VM_BOOT_FSTYPE in
    ext4)
      local b
      b=$(vm_boot_mount ro)
      (cd "$b" && find . -path ./lost+found -prune -o -type l -printf 'l %p -> %l\n' -o -printf '%y %p\n' | sort)
      vm_umount
      ;;
    vfat)
      mdir -/ -b -i "$(vm__mimg)" :: 2>/dev/null | sort
      ;;
  esac
}

# ---- the boot loader ----------------------------------------------------------------

# Copy the entries of the boot disk's active loader directory to DIR.
vm__bls_fetch() {
  local dir=$1
  rm -rf "$dir"
  mkdir -p "$dir"
  case $VM_BOOT_FSTYPE in
    ext4)
      local ent
      ent=$(vm__ext4_resolve loader/entries)
      debugfs -R "rdump /$ent $dir" "$VM_WORK/boot.img" >/dev/null 2>&1 || return 1
      [ -d "$dir/entries" ] || return 1
      mv "$dir/entries"/* "$dir/" 2>/dev/null
      rmdir "$dir/entries"
      ;;
    vfat)
      mcopy -n -o -s -i "$(vm__mimg)" ::/loader/entries "$dir/" 2>/dev/null || return 1
      mv "$dir/entries"/* "$dir/" 2>/dev/null
      rmdir "$dir/entries"
      ;;
  esac
}

vm_bls_get() {
  local file=$1 key=$2
  case $key in
    options) awk '$1 == "options" { sub(/^[ \t]*options[ \t]+/, ""); printf "%s%s", sep, $0; sep = " " } END { print "" }' "$file" ;;
    initrd)  awk '$1 == "initrd" { print $2 }' "$file" ;;
    *)       awk -v k="$key" '$1 == k { sub("^[ \t]*" k "[ \t]+", ""); print; exit }' "$file" ;;
  esac
}

# The Boot Loader Specification order, as systemd-boot 252 sorts
# (boot_entry_compare): entries with a sort-key first, by sort-key, then
# machine-id, ascending, then version, newest first (version comparison); then,
# for all entries, by file name, descending (version comparison).  Entries
# without a sort-key are thus ordered by file name alone.  Boot counting
# (tries left) is not modelled.  Prints file names, the default first.
vm_bls_sorted() {
  local dir=${1:-$VM_WORK/bls} f sk mid ver
  [ $# -gt 0 ] || vm__bls_fetch "$dir" || return 1
  for f in "$dir"/*.conf; do
    [ -f "$f" ] || continue
    sk=$(vm_bls_get "$f" sort-key)
    mid='' ver=''
    if [ -n "$sk" ]; then
      mid=$(vm_bls_get "$f" machine-id)
      ver=$(vm_bls_get "$f" version)
    fi
    printf '%s\t%s\t%s\t%s\t%s\n' "$([ -n "$sk" ] && echo 0 || echo 1)" "$sk" "$mid" "$ver" "$(basename "$f")"
  done | LC_ALL=C sort -t "$(printf '\t')" -k1,1 -k2,2 -k3,3 -k4,4Vr -k5,5Vr | cut -f5
}

vm_bls_default() {
  local dir=$VM_WORK/bls first
  vm__bls_fetch "$dir" || return 1
  first=$(vm_bls_sorted "$dir" | head -n 1)
  [ -n "$first" ] || return 1
  echo "$dir/$first"
}
