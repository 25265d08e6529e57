#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Issue 17, proof 3: counters survive a rewrite, and the health-check hook
# keeps a boot from being blessed.  OVMF and systemd-boot as in test 40; an
# administrator's check in /etc/stagehand/health-check.d fails
# (stagehand-health-check.service enabled), so v1 is never blessed and
# systemd-boot counts its tries down.
#
#   boot 1  the cached kernel: stagehand init on the ESP, deploy v1 (+3)
#   boot 2  firmware: v1 at +2-1; the health check fails, boot-complete.target
#           is not reached, systemd-bless-boot does not run
#   boot 3  firmware: v1 at +1-2; stage v2, power off (finalize at shutdown)
#   host    the rewritten set: v1's entry still +1-2, v2's +3 and the default
. "$(dirname "$0")/lib.sh"

vm_require_destdir
vm_init vfat
vm_firmware_init
vm_install_stagehand
vm_make_guest_images shtest 1 2
root=$(vm_root_mount)
mkdir -p "$root/etc/stagehand/health-check.d"
cat >"$root/etc/stagehand/health-check.d/50-stagehand-vm" <<'EOS'
#!/bin/sh
# The VM test's health check: unhealthy while the flag file exists.
if [ -e /etc/stagehand-vm-unhealthy ]; then
  echo "stagehand-vm: unhealthy (flag /etc/stagehand-vm-unhealthy)"
  exit 1
fi
EOS
chmod 0755 "$root/etc/stagehand/health-check.d/50-stagehand-vm"
touch "$root/etc/stagehand-vm-unhealthy"
vm_systemctl enable stagehand-health-check.service >/dev/null 2>&1 \
  || vm_bail "systemctl --root enable stagehand-health-check.service failed"

vm_guest_script unhealthy <<'EOS'
#!/bin/bash
. /usr/local/lib/stagehand-vm/lib.sh
wait_until 90 sh -c 's=$(systemctl show -P ActiveState stagehand-health-check.service); [ "$s" = failed ] || [ "$s" = active ]'
systemctl show -P ActiveState stagehand-health-check.service | record health-check
systemctl show -P ActiveState boot-complete.target | record boot-complete
systemctl show -P ActiveState systemd-bless-boot.service | record bless-boot
journalctl -b -o cat -u stagehand-health-check.service | record health-check-log
if [ "$VM_BOOT" = 3 ]; then
  record_cmd stage stagehand stage /var/lib/stagehand-vm/images/v2
  stagehand status --json >"$VM_RESULTS/status-staged.json" 2>"$VM_RESULTS/status-staged.err"
fi
EOS

tap_plan 16

vm_firmware_first_install
v1_entry=$(vm_bls_sorted | head -n 1)
tap_like "$v1_entry" '^stagehand-[0-9]+-shtest-1\+3\.conf$' "v1's entry has +3"

# ---- boot 2: v1, unhealthy ----------------------------------------------------------------------

vm_boot_firmware unhealthy
tap_ok "boot 2 powered off cleanly" vm_last_boot_powered_off
tap_is "$(vm_efi_boot_count_path)" "/loader/entries/${v1_entry%+3.conf}+2-1.conf" \
  "systemd-boot booted v1 at +2-1"
tap_is "$(cat "$(vm_result health-check)")" failed "stagehand-health-check.service failed"
tap_like "$(cat "$(vm_result health-check-log)")" "50-stagehand-vm" "its log names the failed check"
tap_is "$(cat "$(vm_result boot-complete)")" inactive "boot-complete.target was not reached"
tap_is "$(cat "$(vm_result bless-boot)")" inactive "systemd-bless-boot did not run"
tap_ok "on the ESP v1's entry keeps its counter: +2-1" \
  grep -qx "::/loader/entries/${v1_entry%+3.conf}+2-1.conf" <(vm_boot_tree)

# ---- boot 3: v1 at +1-2, stage v2 ----------------------------------------------------------------

vm_boot_firmware unhealthy
tap_ok "boot 3 powered off cleanly" vm_last_boot_powered_off
tap_is "$(vm_efi_boot_count_path)" "/loader/entries/${v1_entry%+3.conf}+1-2.conf" \
  "systemd-boot booted v1 at +1-2"
tap_is "$(cat "$(vm_result health-check)")" failed "the health check failed again"
tap_is "$(cat "$(vm_result stage.status)")" 0 "stagehand stage v2 exited 0"
staged=$(jq -r '.staged // empty' "$(vm_result status-staged.json)" 2>/dev/null)

# ---- host: after the finalize ------------------------------------------------------------------

vm_boot_tree >"$VM_WORK/tree-after-boot3"
tap_is "$(grep -c '^::/loader/entries/.*\.conf$' "$VM_WORK/tree-after-boot3")" 2 "two entries in the rewritten set"
tap_ok "v1's entry kept its counter through the rewrite: +1-2" \
  grep -Eq "^::/loader/entries/stagehand-[0-9]+-shtest-1\+1-2\.conf\$" "$VM_WORK/tree-after-boot3"
tap_like "$(vm_bls_sorted | head -n 1)" "^stagehand-[0-9]+-shtest-${staged#shtest/}\+3\.conf\$" \
  "v2's entry is the new default with +3"
vm_boot_pull /loader/loader.conf "$VM_WORK/loader.conf"
tap_is "$(cat "$VM_WORK/loader.conf")" "$VM_FIRMWARE_LOADER_CONF" "loader.conf is untouched"
