#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Issue 17, proof 2: a bad update falls back by itself.  OVMF and systemd-boot
# as in test 40; v2's initramfs panics (its init exits; panic=-1 reboots at
# once), and qemu runs without -no-reboot, so the machine goes round by
# itself until systemd-boot has used up v2's tries and boots v1.
#
#   boot 1  the cached kernel: stagehand init on the ESP, deploy v1
#   boot 2  firmware: v1 (blessed); stage the broken v2, power off
#   host    v2's entry is the default with +3
#   boot 3  firmware, one qemu run: v2 panics three times (+2-1, +1-2,
#           +0-3), then systemd-boot boots v1 with no help; there
#           status --json reports the fallback (failed_boot) and
#           stagehand-boot-complete.service has failed with the message
#   host    v2's entry is +0-3
#   boot 4  firmware: v1 again; stagehand-boot-complete.service passes and
#           logs nothing new; status still shows the failure, as reported
. "$(dirname "$0")/lib.sh"

vm_require_destdir
vm_init vfat
vm_firmware_init
vm_install_stagehand
vm_make_guest_images shtest 1
vm_make_image "$(vm_root_mount)/var/lib/stagehand-vm/images/v2" shtest 2 panic

MSG_FELL_BACK=24e76ae49c3544688236b13032a4c83d

vm_guest_script stage <<'EOS'
#!/bin/bash
. /usr/local/lib/stagehand-vm/lib.sh
record_cmd stage stagehand stage /var/lib/stagehand-vm/images/v2
stagehand status --json >"$VM_RESULTS/status-staged.json" 2>"$VM_RESULTS/status-staged.err"
EOS

vm_guest_script fell-back <<'EOS'
#!/bin/bash
. /usr/local/lib/stagehand-vm/lib.sh
stagehand status --json >"$VM_RESULTS/status.json" 2>"$VM_RESULTS/status.err"
stagehand status >"$VM_RESULTS/status.txt" 2>&1
systemctl show -P ActiveState stagehand-boot-complete.service | record boot-complete-state
journalctl -b -o cat -u stagehand-boot-complete.service | record boot-complete-log
journalctl -b -o cat MESSAGE_ID=24e76ae49c3544688236b13032a4c83d | record fell-back-messages
systemctl --failed --no-legend --plain | record failed-units
EOS

tap_plan 20

# ---- boot 1: first install; boot 2: stage the broken v2 ----------------------------------

vm_firmware_first_install
vm_boot_firmware stage
tap_ok "boot 2 powered off cleanly" vm_last_boot_powered_off
tap_is "$(vm_booted_image_versions | xargs)" 1 "boot 2 ran v1"
tap_is "$(cat "$(vm_result stage.status)")" 0 "stagehand stage v2 exited 0"
staged=$(jq -r '.staged // empty' "$(vm_result status-staged.json)" 2>/dev/null)
v1=$(jq -r '.booted // empty' "$(vm_result status-staged.json)" 2>/dev/null)
v2_entry=$(vm_bls_sorted | head -n 1)
v1_entry=$(vm_bls_sorted | sed -n 2p)
tap_like "$v2_entry" "^stagehand-[0-9]+-shtest-${staged#shtest/}\+3\.conf\$" "v2's entry is the default, with +3"

# ---- boot 3: three panics, then v1 ----------------------------------------------------------

STAGEHAND_VM_BOOT_TIMEOUT=${STAGEHAND_VM_BOOT_TIMEOUT:-900} vm_boot_firmware fell-back
tap_ok "run 3 ended with the guest powering off (no help from the harness)" vm_last_boot_powered_off
tap_is "$(vm_booted_image_versions | xargs)" "2 2 2 1" "systemd-boot tried v2 three times, then booted v1"
tap_is "$(grep -ac 'Kernel panic - not syncing' "$VM_WORK/boot$VM_BOOT_N/serial.log")" 3 "v2 panicked three times"
tap_is "$(vm_efi_entry_selected)" "$v1_entry" "LoaderEntrySelected: systemd-boot chose v1's (blessed) entry by itself"
tap_is "$(jq -r '.booted' "$(vm_result status.json)" 2>&1)" "$v1" "status: v1 runs"
tap_is "$(jq -r '.failed_boot | "\(.deployment) \(.tries) \(.running)"' "$(vm_result status.json)" 2>&1)" \
  "$staged 3 $v1" "status --json reports the fallback: v2 failed to boot 3 times, v1 running"
tap_like "$(cat "$(vm_result status.txt)")" "failed to boot 3 times" "status says it in words"
tap_is "$(cat "$(vm_result boot-complete-state)")" failed "stagehand-boot-complete.service failed"
tap_like "$(cat "$(vm_result fell-back-messages)")" "${staged}.*3" \
  "its message (MESSAGE_ID $MSG_FELL_BACK) names v2 and the tries"
tap_like "$(cat "$(vm_result failed-units)")" "^stagehand-boot-complete.service " "systemctl --failed lists it"
tap_ok "on the ESP v2's entry has no tries left (+0-3)" \
  grep -qx "::/loader/entries/${v2_entry%+3.conf}+0-3.conf" <(vm_boot_tree)

# ---- boot 4: v1 again, nothing new -------------------------------------------------------------

vm_boot_firmware fell-back
tap_ok "boot 4 powered off cleanly" vm_last_boot_powered_off
tap_is "$(vm_booted_image_versions | xargs)" 1 "systemd-boot boots v1 straight away"
tap_is "$(cat "$(vm_result boot-complete-state)")" active "stagehand-boot-complete.service passes"
tap_is "$(cat "$(vm_result fell-back-messages)")" "" "no fallback message in boot 4"
tap_is "$(jq -r '.failed_boot | "\(.deployment) \(.reported)"' "$(vm_result status.json)" 2>&1)" "$staged true" \
  "status --json still shows the failed boot, as reported"
