#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Scenario 1 (issue 6): a deployment staged early in a boot becomes the
# default at shutdown even though /boot is an automount that would have
# expired many times over in between (ostree#2543).
#
#   host    init + deploy image v1 onto the guest's disks (first install)
#   boot 1  from v1's entry: stage v2; stay up for 10 idle timeouts with no
#           one but stagehand-finalize.service touching /boot; power off,
#           which stops the unit and so finalizes
#   host    the boot disk's default entry is now v2's
#   boot 2  from that entry: stagehand reports v2 booted, the finalize of
#           boot 1 as a success, and nothing failed; boot 1's journal shows
#           the finalize done after shutdown began (the script ended and
#           PID 1 stopped stagehand-finalize.service) and before boot.mount
#           was unmounted (__MONOTONIC_TIMESTAMP order)
. "$(dirname "$0")/lib.sh"

vm_require_destdir
vm_init ext4
vm_install_stagehand

# ---- guest scripts ------------------------------------------------------------------

vm_guest_script stage-and-hold <<'EOF'
#!/bin/bash
. /usr/local/lib/stagehand-vm/lib.sh
# The mount table only: stat()ing /boot would itself count as a use and keep
# the automount alive, hiding the bug this scenario is about.
boot_mounts() { findmnt -rn -o FSTYPE,SOURCE,TARGET | awk '$3 == "/boot" { print $1, $2 }'; }

stagehand status --json >"$VM_RESULTS/status-before.json" 2>"$VM_RESULTS/status-before.err"
record_cmd stage stagehand stage /var/lib/stagehand-vm/images/v2
systemctl show -p ActiveState -p SubState -p Type stagehand-finalize.service | record finalize-unit
boot_mounts | record mounts-after-stage

# Ten idle timeouts.  Time passing is the point here, not synchronisation.
expired_at=
for i in $(seq 1 20); do
  sleep 1
  boot_mounts | grep -q '^ext4 ' || { expired_at=$i; break; }
done
echo "${expired_at:-never}" | record expired-at
boot_mounts | record mounts-after-hold

stagehand status --json >"$VM_RESULTS/status-staged.json" 2>"$VM_RESULTS/status-staged.err"
# Exiting powers off: the stop of stagehand-finalize.service is the finalize.
EOF

vm_guest_script after-update <<'EOF'
#!/bin/bash
. /usr/local/lib/stagehand-vm/lib.sh
stagehand status --json >"$VM_RESULTS/status.json" 2>"$VM_RESULTS/status.err"
systemctl show -p ActiveState -p Result stagehand-boot-complete.service | record boot-complete-unit
systemctl --failed --no-legend --plain | record failed-units
EOF

# ---- first install, on the host ---------------------------------------------------------

root=$(vm_root_mount)
vm_make_image "$root/var/lib/stagehand-vm/images/v1" shtest 1
vm_make_image "$root/var/lib/stagehand-vm/images/v2" shtest 2
vm_stagehand init >"$VM_WORK/host-init.log" 2>&1 || vm_bail "host-side stagehand init failed: $(cat "$VM_WORK/host-init.log")"
vm_stagehand deploy "$root/var/lib/stagehand-vm/images/v1" --karg=root=LABEL=SHROOT --karg=rw \
  >"$VM_WORK/host-deploy.log" 2>&1 || vm_bail "host-side stagehand deploy failed: $(cat "$VM_WORK/host-deploy.log")"
vm_umount

tap_plan 20

entry=$(vm_bls_default)
tap_like "$(vm_bls_get "$entry" options)" "stagehand=/stagehand/deploy/shtest/[^ ]+" \
  "the first install made v1 the default entry"

# ---- boot 1: stage and hold ------------------------------------------------------------------

vm_boot_default stage-and-hold
tap_ok "boot 1 powered off cleanly" vm_last_boot_powered_off
tap_is "$(vm_booted_image_version)" 1 "boot 1 ran v1's initramfs (its appended archive was unpacked)"
tap_is "$(cat "$(vm_result stage.status)")" 0 "stagehand stage exited 0"
tap_like "$(cat "$(vm_result finalize-unit)")" "ActiveState=active" \
  "stage left stagehand-finalize.service running"
tap_like "$(cat "$(vm_result mounts-after-stage)")" "^ext4 /dev/vdb" "after stage /boot is mounted"
tap_is "$(cat "$(vm_result expired-at)")" never "/boot stayed mounted through 10 idle timeouts"
tap_like "$(cat "$(vm_result mounts-after-hold)")" "^ext4 /dev/vdb" "after the hold /boot is still mounted"

staged=$(jq -r '.deployments[] | select(.is_staged) | "\(.os)/\(.id)"' "$(vm_result status-staged.json)" 2>/dev/null)
tap_like "$staged" "^shtest/" "status --json before shutdown names the staged deployment"
tap_is "$(jq -r '"default-is-booted=\(.default == .booted) last-finalize-is-staged=\(.last_finalize.deployment == .staged)"' \
  "$(vm_result status-staged.json)" 2>&1)" "default-is-booted=true last-finalize-is-staged=false" \
  "before shutdown nothing is finalized: the default is still the booted v1 and no finalize ran for v2"

# ---- between boots: what the boot loader sees --------------------------------------------------------

entry=$(vm_bls_default)
tap_like "$(vm_bls_get "$entry" options)" "stagehand=/stagehand/deploy/$staged( |\$)" \
  "after the shutdown the default entry is the staged deployment's"
tap_is "$(vm_bls_get "$entry" version | cut -d- -f2)" 2 "the default entry is image version 2"
vm_pull /stagehand/finalize-result "$VM_WORK/finalize-result" 2>/dev/null
tap_like "$(cat "$VM_WORK/finalize-result" 2>&1)" "result=success" "the verdict file says success"
tap_like "$(vm_journal -b 0 -u stagehand-finalize.service -o cat 2>&1)" "Deactivated successfully|Stopped" \
  "the journal of boot 1 has the finalize unit stopping at shutdown"

# ---- boot 2: from the new default ------------------------------------------------------------------

vm_boot_default after-update
tap_ok "boot 2 powered off cleanly" vm_last_boot_powered_off
tap_is "$(vm_booted_image_version)" 2 "boot 2 ran v2's initramfs"
tap_is "$(jq -r '.booted | if type == "object" then "\(.os)/\(.id)" else . end' "$(vm_result status.json)" 2>&1)" \
  "$staged" "boot 2 runs the deployment staged in boot 1"
tap_is "$(jq -r '.last_finalize.result' "$(vm_result status.json)" 2>&1)" success \
  "status reports the last finalize as a success"
tap_is "$(cat "$(vm_result failed-units)")" "" "no failed units in boot 2 (stagehand-boot-complete has nothing to report)"
tap_ordered "boot 1's journal: the script ended, then the finalize unit was stopped, finalized, then /boot was unmounted" \
  "$(vm_shutdown_timeline -1 stagehand-finalize.service)" script_exit unit_stopping finalize_done boot_unmounting
