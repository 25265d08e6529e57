#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A finalize that cannot write /boot fails safely and is reported at the
# next boot.
#
#   host    init + deploy v1 (first install)
#   boot 1  from v1's entry: stage v2; then make the boot filesystem's root
#           directory immutable (chattr +i), so the finalize at shutdown
#           cannot create the new loader directory; power off
#   host    the loader link and the default entry are unchanged (v1); the
#           verdict file says failed, in step write-entries
#   boot 2  from the default, v1: stagehand-boot-complete.service failed
#           (systemctl is-failed, systemctl --failed), its message with the
#           step and the error is in the journal, status --json shows the
#           failed verdict; the unit run again in the same boot passes and
#           logs nothing new (reported once)
. "$(dirname "$0")/lib.sh"

vm_require_destdir
vm_init ext4
vm_install_stagehand
vm_first_install

vm_guest_script stage-and-break <<'EOF'
#!/bin/bash
. /usr/local/lib/stagehand-vm/lib.sh
record_cmd stage stagehand stage /var/lib/stagehand-vm/images/v2
stagehand --json status | jq -r '.staged // empty' | record staged
# /boot is held (mounted) by the finalize unit: this is the boot disk's root.
record_cmd chattr chattr +i /boot
lsattr -d /boot | record lsattr
EOF

vm_guest_script after-failure <<'EOF'
#!/bin/bash
. /usr/local/lib/stagehand-vm/lib.sh
systemctl is-failed stagehand-boot-complete.service | record is-failed
systemctl --failed --no-legend --plain | record failed-units
stagehand --json status >"$VM_RESULTS/status.json" 2>"$VM_RESULTS/status.err"
record_cmd restart systemctl restart stagehand-boot-complete.service
systemctl is-failed stagehand-boot-complete.service | record is-failed-after-restart
chattr -i /boot
EOF

tap_plan 18

link_before=$(vm__ext4_resolve loader)

vm_boot_default stage-and-break
tap_ok "boot 1 powered off cleanly" vm_last_boot_powered_off
tap_is "$(cat "$(vm_result stage.status)")" 0 "stagehand stage exited 0"
tap_is "$(cat "$(vm_result chattr.status)")" 0 "chattr +i on the held /boot succeeded"
staged=$(cat "$(vm_result staged)")

tap_is "$(vm__ext4_resolve loader)" "$link_before" "after the power-off the loader link is unchanged"
entry=$(vm_bls_default)
tap_like "$(vm_bls_get "$entry" options)" "stagehand=/stagehand/deploy/shtest/1( |\$)" \
  "the default entry is still v1's"
vm_pull /stagehand/finalize-result "$VM_WORK/verdict" 2>/dev/null
tap_like "$(cat "$VM_WORK/verdict" 2>&1)" "result=failed" "the verdict file says failed"
tap_like "$(vm_journal -b 0 MESSAGE_ID=$VM_MSG_FINALIZE_FAILED -o cat 2>&1)" "write-entries.*(Operation not permitted|Permission denied)" \
  "boot 1's journal has the finalize failure with the step and the error"

vm_boot_default after-failure
tap_ok "boot 2 powered off cleanly" vm_last_boot_powered_off
tap_like "$(cat "$(vm_result cmdline)")" "stagehand=/stagehand/deploy/shtest/1( |\$)" "boot 2 booted the old default, v1"
tap_is "$(vm_booted_image_version)" 1 "boot 2 ran v1's initramfs"
tap_is "$(cat "$(vm_result is-failed)")" failed "stagehand-boot-complete.service failed"
tap_like "$(cat "$(vm_result failed-units)")" "^stagehand-boot-complete.service " "systemctl --failed lists it"
report=$(vm_journal -b 0 MESSAGE_ID=$VM_MSG_PREVIOUS_FINALIZE_FAILED -o json 2>&1)
tap_like "$(jq -r '"\(.STAGEHAND_STEP) \(.STAGEHAND_DEPLOYMENT) \(.MESSAGE)"' <<<"$report" 2>&1)" \
  "^write-entries $staged .*(Operation not permitted|Permission denied)" \
  "boot 2's journal: the report names the step, the deployment and the error"
status=$(vm_result status.json)
tap_is "$(jq -r '"\(.booted) \(.last_finalize.result) \(.last_finalize.step) \(.last_finalize.deployment)"' "$status" 2>&1)" \
  "shtest/1 failed write-entries $staged" "status --json: v1 booted; last finalize failed in write-entries for the staged one"
tap_like "$(jq -r '.last_finalize.error' "$status" 2>&1)" "Operation not permitted|Permission denied" \
  "status --json: the verdict carries the system error"
tap_is "$(cat "$(vm_result restart.status)")" 0 "run again in the same boot, the unit passes (reported once)"
tap_is "$(cat "$(vm_result is-failed-after-restart)")" active "and is no longer failed"
tap_is "$(grep -c . <<<"$report")" 1 "the failure was reported once"
