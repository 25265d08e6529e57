#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Issue 17, proof 1 and 4: real UEFI firmware (OVMF) and a real systemd-boot
# on a GPT ESP choose the entry from stagehand's files alone (loader.conf
# has `timeout 0` and no `default`); a good update is tried with a counter
# and blessed; the vfat exchange-mode finalize at shutdown works under it.
#
#   boot 1  the cached kernel: stagehand init on the ESP (exchange mode,
#           boot counting on with 3 tries: systemd-boot is on the ESP),
#           deploy v1 with the harness's arguments as kernel arguments
#   boot 2  firmware: systemd-boot boots v1 (+3 -> +2-1), blessed; stage v2,
#           power off (the finalize runs at shutdown)
#   host    (mtools) v2's entry is the new default with +3, no entries.new,
#           loader.conf untouched
#   boot 3  firmware: systemd-boot boots v2 with the counter decremented
#           (LoaderBootCountPath +2-1), boot-complete.target is reached,
#           systemd-bless-boot removes the counter; bootctl list shows v2
#           as the default without a counter; status says booted v2
#   host    v2's entry file has no counter
. "$(dirname "$0")/lib.sh"

vm_require_destdir
vm_init vfat
vm_firmware_init
vm_install_stagehand
vm_make_guest_images shtest 1 2

vm_guest_script stage <<'EOS'
#!/bin/bash
. /usr/local/lib/stagehand-vm/lib.sh
wait_until 120 sh -c 's=$(systemctl show -P ActiveState systemd-bless-boot.service); [ "$s" = active ] || [ "$s" = failed ]'
systemctl show -P ActiveState systemd-bless-boot.service | record bless-boot
record_cmd stage stagehand stage /var/lib/stagehand-vm/images/v2
stagehand status --json >"$VM_RESULTS/status-staged.json" 2>"$VM_RESULTS/status-staged.err"
EOS

vm_guest_script after-update <<'EOS'
#!/bin/bash
. /usr/local/lib/stagehand-vm/lib.sh
wait_until 120 sh -c 's=$(systemctl show -P ActiveState systemd-bless-boot.service); [ "$s" = active ] || [ "$s" = failed ]'
systemctl show -P ActiveState systemd-bless-boot.service | record bless-boot
systemctl show -P ActiveState boot-complete.target | record boot-complete
stagehand status --json >"$VM_RESULTS/status.json" 2>"$VM_RESULTS/status.err"
systemctl --failed --no-legend --plain | record failed-units
record_cmd bootctl bootctl --esp-path=/boot list --no-pager
EOS

tap_plan 23

# ---- boot 1: first install -------------------------------------------------------------

vm_firmware_first_install
tap_is "$(jq -r '"\(.boot.mode) \(.boot_counting.tries)"' "$(vm_result status.json)" 2>&1)" "exchange 3" \
  "init chose exchange mode on the ESP; boot counting is on with 3 tries (systemd-boot found on the ESP)"
v1_entry=$(vm_bls_sorted | head -n 1)
tap_like "$v1_entry" '^stagehand-.*\+3\.conf$' "the first deployment's entry has +3"

# ---- boot 2: firmware boots v1, stage v2 --------------------------------------------------

vm_boot_firmware stage
tap_ok "boot 2 powered off cleanly" vm_last_boot_powered_off
tap_is "$(vm_booted_image_version)" 1 "boot 2 ran v1's initramfs, loaded by systemd-boot"
tap_like "$(cat "$(vm_result efi-LoaderInfo)" 2>&1)" "^systemd-boot " "LoaderInfo names systemd-boot"
tap_is "$(vm_efi_entry_selected)" "${v1_entry%+3.conf}.conf" "LoaderEntrySelected: systemd-boot chose v1's entry"
tap_is "$(vm_efi_boot_count_path)" "/loader/entries/${v1_entry%+3.conf}+2-1.conf" \
  "LoaderBootCountPath: it counted the try (+3 -> +2-1)"
tap_is "$(cat "$(vm_result bless-boot)")" active "systemd-bless-boot ran in boot 2"
tap_is "$(cat "$(vm_result stage.status)")" 0 "stagehand stage v2 exited 0"

# ---- host: the entries after the shutdown finalize ----------------------------------------

vm_boot_tree >"$VM_WORK/tree-after-boot2"
staged=$(jq -r '.staged // empty' "$(vm_result status-staged.json)" 2>/dev/null)
v2_entry=$(vm_bls_sorted | head -n 1)
tap_like "$v2_entry" "^stagehand-[0-9]+-shtest-${staged#shtest/}\+3\.conf\$" \
  "after the shutdown finalize v2's entry is the default, with +3"
tap_ok "v1's entry is blessed (no counter) and still there" \
  grep -qx "::/loader/entries/${v1_entry%+3.conf}.conf" "$VM_WORK/tree-after-boot2"
tap_is "$(grep -c 'entries\.new' "$VM_WORK/tree-after-boot2")" 0 "no entries.new is left (exchange mode)"
vm_boot_pull /loader/loader.conf "$VM_WORK/loader.conf"
tap_is "$(cat "$VM_WORK/loader.conf")" "$VM_FIRMWARE_LOADER_CONF" "loader.conf is untouched (no default pinned)"

# ---- boot 3: firmware boots v2, blessed -----------------------------------------------------

vm_boot_firmware after-update
tap_ok "boot 3 powered off cleanly" vm_last_boot_powered_off
tap_is "$(vm_booted_image_version)" 2 "boot 3 ran v2's initramfs"
tap_is "$(vm_efi_entry_selected)" "${v2_entry%+3.conf}.conf" "LoaderEntrySelected: systemd-boot chose v2's entry"
tap_is "$(vm_efi_boot_count_path)" "/loader/entries/${v2_entry%+3.conf}+2-1.conf" \
  "systemd-boot booted v2's entry with the counter decremented (+3 -> +2-1)"
tap_is "$(cat "$(vm_result boot-complete)")" active "boot-complete.target was reached"
tap_is "$(cat "$(vm_result bless-boot)")" active "systemd-bless-boot.service ran"
tap_is "$(jq -r '.booted' "$(vm_result status.json)" 2>&1)" "$staged" "status: boot 3 runs the deployment staged in boot 2"
tap_is "$(cat "$(vm_result failed-units)")" "" "no failed units in boot 3"
default_id=$(awk '/^ *title:/ { d = ($0 ~ /\(default\)/) } /^ *id:/ && d { print $2; exit }' "$(vm_result bootctl)")
tap_is "$default_id" "${v2_entry%+3.conf}.conf" "bootctl list: v2 is the default, without a counter"
tap_is "$(vm_bls_sorted | head -n 1)" "${v2_entry%+3.conf}.conf" "on the ESP, v2's entry has no counter any more"
