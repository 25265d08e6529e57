#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Unstage in boot 1: stagehand unstage stops stagehand-finalize.service, so
# /boot is released and expires, and at power-off nothing is finalized.
#
#   host    init + deploy v1 (first install); note the loader link and verdict
#   boot 1  from v1's entry: stage v2 (the unit holds /boot through several
#           idle timeouts); unstage; the unit is inactive, /boot expires, the
#           staged record is gone; power off
#   host    the loader link, the default entry and the verdict file are what
#           they were; boot 1's journal has no finalize at all
. "$(dirname "$0")/lib.sh"

vm_require_destdir
vm_init ext4
vm_install_stagehand
vm_first_install

vm_guest_script unstage <<'EOF'
#!/bin/bash
. /usr/local/lib/stagehand-vm/lib.sh
record_cmd stage stagehand stage /var/lib/stagehand-vm/images/v2
boot_mounts | record mounts-after-stage
# Three idle timeouts: still held.
sleep 6
boot_mounts | record mounts-held
systemctl is-active stagehand-finalize.service | record unit-before
record_cmd unstage stagehand unstage
systemctl is-active stagehand-finalize.service | record unit-after
# The mount table only: looking at /boot would keep it mounted.
start=$(date +%s%N)
if wait_until 30 boot_expired; then
  echo "expired after $(( ($(date +%s%N) - start) / 1000000 )) ms"
else
  echo "still mounted after 30 s: $(boot_mounts | tr '\n' ' ')"
fi | record expiry
{ [ -e /run/stagehand/staged ] && echo present || echo gone; } | record staged-record
EOF

tap_plan 13

root=$(vm_root_mount)
cp "$root/stagehand/finalize-result" "$VM_WORK/verdict.before" 2>/dev/null
vm_umount
link_before=$(vm__ext4_resolve loader)
entry=$(vm_bls_default) && cp "$entry" "$VM_WORK/default-entry.before"

vm_boot_default unstage
tap_ok "boot 1 powered off cleanly" vm_last_boot_powered_off
tap_is "$(cat "$(vm_result stage.status)")" 0 "stagehand stage exited 0"
tap_like "$(cat "$(vm_result mounts-held)")" "^ext4 /dev/vdb" "the finalize unit held /boot through three idle timeouts"
tap_is "$(cat "$(vm_result unit-before)")" active "stagehand-finalize.service was active before unstage"
tap_is "$(cat "$(vm_result unstage.status)")" 0 "stagehand unstage exited 0"
tap_is "$(cat "$(vm_result unit-after)")" inactive "after unstage stagehand-finalize.service is inactive"
tap_like "$(cat "$(vm_result expiry)")" "^expired after" "after unstage /boot expires (the mount table shows only the trigger)"
tap_is "$(cat "$(vm_result staged-record)")" gone "after unstage nothing is staged"

tap_is "$(vm__ext4_resolve loader)" "$link_before" "the loader link is unchanged after the power-off"
entry=$(vm_bls_default)
tap_ok "the default entry is unchanged (v1's)" cmp "$VM_WORK/default-entry.before" "$entry"
vm_pull /stagehand/finalize-result "$VM_WORK/verdict.after" 2>/dev/null
tap_ok "the verdict file is unchanged: no finalize ran" cmp "$VM_WORK/verdict.before" "$VM_WORK/verdict.after"
tap_is "$(vm_journal -b 0 MESSAGE_ID=$VM_MSG_FINALIZE_START -o cat 2>&1)" "" \
  "boot 1's journal has no finalize start"
tap_is "$(vm_journal_mono 0 _PID=1 UNIT=stagehand-finalize.service MESSAGE_ID=$VM_MSG_UNIT_STOPPING | wc -l)" 1 \
  "stagehand-finalize.service was stopped once (by unstage), not again at shutdown"
