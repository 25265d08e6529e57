#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The harness with a vfat boot disk, like an ESP: the host (which has no vfat
# in its kernel) writes a BLS entry and the kernel with mtools, boots that
# entry as the boot loader, and the guest automounts the disk as vfat,
# writes to it and sees the mount expire.  loader/ is a real directory, as in
# stagehand's vfat mode (no symlinks on FAT).
. "$(dirname "$0")/lib.sh"

vm_init vfat

vm_guest_script vfat <<'SCRIPT'
#!/bin/bash
. /usr/local/lib/stagehand-vm/lib.sh
boot_mounts() { findmnt -rn -o FSTYPE,SOURCE,TARGET | awk '$3 == "/boot" { print $1, $2 }'; }
boot_expired() { [ "$(boot_mounts)" = "autofs systemd-1" ]; }
ls /boot/loader/entries | record entries
boot_mounts | record after-access
echo "written in boot $VM_BOOT" >/boot/from-guest.txt || die "cannot write to /boot"
sync /boot/from-guest.txt
wait_until 20 boot_expired || note "/boot did not expire"
boot_mounts | record after-idle
tr ' ' '\n' </proc/cmdline | grep '^vfat\.' | record vfat-args
SCRIPT

img=$VM_WORK/image
vm_make_image "$img" esp 1
vm_boot_put "$img/usr/lib/modules/$VM_KVER/vmlinuz" /stagehand/esp-1/vmlinuz
vm_boot_put "$img/usr/lib/modules/$VM_KVER/initramfs.img" /stagehand/esp-1/initramfs.img
cat >"$VM_WORK/esp-1.conf" <<ENTRY
title esp 1
version 1
sort-key esp
linux /stagehand/esp-1/vmlinuz
initrd /stagehand/esp-1/initramfs.img
options root=LABEL=SHROOT rw vfat.entry=1
ENTRY
vm_boot_put "$VM_WORK/esp-1.conf" /loader/entries/esp-1.conf

tap_plan 7
tap_is "$(basename "$(vm_bls_default)")" esp-1.conf "the boot loader finds the entry on the vfat disk"
vm_boot_default vfat
tap_ok "the boot powered off cleanly" vm_last_boot_powered_off
tap_is "$(cat "$(vm_result vfat-args)")" vfat.entry=1 "the guest booted the entry's options"
tap_is "$(cat "$(vm_result entries)")" esp-1.conf "the guest sees the entry under /boot"
tap_is "$(cat "$(vm_result after-access)")" "$(printf 'autofs systemd-1\nvfat /dev/vdb')" \
  "/boot is automounted as vfat"
tap_is "$(cat "$(vm_result after-idle)")" "autofs systemd-1" "the vfat mount expires when idle"
vm_boot_pull /from-guest.txt "$VM_WORK/from-guest.txt"
tap_is "$(cat "$VM_WORK/from-guest.txt" 2>&1)" "written in boot 1" "the file the guest wrote is on the vfat disk"
