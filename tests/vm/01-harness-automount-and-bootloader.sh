#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The VM harness end to end, without stagehand.
#
# Boot 1 (the cached kernel): the guest's /boot is an automount of the ext4
# boot disk that expires after 2 s idle.  Touching /boot mounts it; left idle
# it is unmounted again while the autofs trigger stays.  That expiry is the
# trap stagehand is built against (ostree#2543), so every later scenario
# relies on it being real here.
#
# Boot 2 (the harness as boot loader): the host writes three BLS entries into
# a loader.0 directory behind a "loader" symlink, as stagehand's symlink mode
# does, and boots the default one; the guest reports which one it got.
. "$(dirname "$0")/lib.sh"

vm_init ext4

vm_guest_script automount <<'EOF'
#!/bin/bash
. /usr/local/lib/stagehand-vm/lib.sh
# Read the mount table only: "findmnt /boot" or any stat of /boot walks the
# path through the autofs trigger, which counts as a use and resets the idle
# timer (autofs_mount_wait sets last_used), so polling that way never expires.
boot_mounts() { findmnt -rn -o FSTYPE,SOURCE,TARGET | awk '$3 == "/boot" { print $1, $2 }'; }
boot_expired() { [ "$(boot_mounts)" = "autofs systemd-1" ]; }
boot_mounts | record before-access
ls /boot >/dev/null || die "cannot list /boot"
boot_mounts | record after-access
echo "written in boot $VM_BOOT" >/boot/written-by-guest || die "cannot write to /boot"
sync /boot/written-by-guest
start=$(date +%s%N)
# Nothing holds /boot now: it must expire (idle timeout 2 s, checked by
# systemd every timeout/3; allow 20 s under emulation on a busy host).
wait_until 20 boot_expired || note "/boot did not expire"
echo $(( ($(date +%s%N) - start) / 1000000 )) | record expiry-ms
boot_mounts | record after-idle
EOF

vm_guest_script cmdline <<'EOF'
#!/bin/bash
. /usr/local/lib/stagehand-vm/lib.sh
tr ' ' '\n' </proc/cmdline | grep '^smoke\.' | record smoke-args
EOF

tap_plan 13

# ---- boot 1 ------------------------------------------------------------------
vm_boot_guest automount
tap_ok "boot 1 powered off cleanly" vm_last_boot_powered_off
tap_is "$(vm_guest_exit_status)" 0 "boot 1: the guest script exited 0"
tap_is "$(cat "$(vm_result before-access)")" "autofs systemd-1" \
  "before any access /boot is only the autofs trigger"
tap_is "$(cat "$(vm_result after-access)")" "$(printf 'autofs systemd-1\next4 /dev/vdb')" \
  "listing /boot mounts the boot disk (ext4, /dev/vdb) over the trigger"
tap_is "$(cat "$(vm_result after-idle)")" "autofs systemd-1" \
  "after idling /boot is unmounted again, the trigger stays"
tap_diag "expiry took $(cat "$(vm_result expiry-ms)" 2>/dev/null) ms after the last use"

b=$(vm_boot_mount)
tap_is "$(cat "$b/written-by-guest" 2>&1)" "written in boot 1" \
  "the file the guest wrote to /boot is on the boot disk"
vm_umount

tap_like "$(vm_journal -b 0 -u boot.mount -o cat)" "Unmounted boot.mount" \
  "the guest's persistent journal, read on the host, records the expiry unmount"

# ---- boot 2: the harness as boot loader -----------------------------------------------
img=$VM_WORK/images
vm_make_image "$img/v1" smoke 1
vm_make_image "$img/v2" smoke 2
b=$(vm_boot_mount)
mkdir -p "$b/loader.0/entries" "$b/stagehand/smoke-1" "$b/stagehand/smoke-2"
for v in 1 2; do
  cp "$img/v$v/usr/lib/modules/$VM_KVER/vmlinuz" "$img/v$v/usr/lib/modules/$VM_KVER/initramfs.img" \
    "$b/stagehand/smoke-$v/"
  cat >"$b/loader.0/entries/smoke-$v.conf" <<EOF
title smoke $v
version $v
sort-key smoke
linux /stagehand/smoke-$v/vmlinuz
initrd /stagehand/smoke-$v/initramfs.img
options root=LABEL=SHROOT rw smoke.entry=$v
EOF
done
# No sort-key: sorts last despite the higher version.
sed -e 's/^title .*/title unsorted/' -e '/^sort-key/d' -e 's/^version .*/version 99/' \
  -e 's/smoke.entry=2/smoke.entry=unsorted/' \
  "$b/loader.0/entries/smoke-2.conf" >"$b/loader.0/entries/zzz-unsorted.conf"
ln -s loader.0 "$b/loader"
vm_umount

tap_is "$(basename "$(vm_bls_default)")" "smoke-2.conf" "the host-side boot loader picks smoke-2.conf as default"
vm_boot_default cmdline smoke.extra=yes
tap_ok "boot 2 powered off cleanly" vm_last_boot_powered_off
tap_is "$(vm_guest_exit_status)" 0 "boot 2: the guest script exited 0"
tap_is "$(vm_booted_image_version)" 2 \
  "boot 2's initramfs is smoke-2's: the archive vm_make_image appends was unpacked in the guest"
tap_is "$(tr '\n' ' ' <"$(vm_result smoke-args)")" "smoke.entry=2 smoke.extra=yes " \
  "boot 2 ran with the default entry's options plus the test's extra argument"
tap_like "$(cat "$VM_WORK/boot2/cmdline")" "systemd.run=" "the harness's own arguments follow the entry's options"
