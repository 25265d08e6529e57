#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Scenario 1 with /boot on vfat, the exact setup of ostree#2543 (issue 7): the
# ESP automounted on /boot, no symlinks, so stagehand runs in exchange mode
# (loader/entries swapped with renameat2(RENAME_EXCHANGE)).
#
#   boot 0  the cached kernel: stagehand init on the empty vfat /boot (the
#           host has no vfat, so the first install happens in the guest) must
#           choose exchange mode by itself; systemd-boot's loader.conf is put
#           into loader/; deploy image v1
#   host    (mtools) the default entry is v1's
#   boot 1  from v1's entry: stage v2, hold through 10 idle timeouts, power off
#   host    (mtools) loader/entries holds v2's entry as the default, no
#           leftover entries.new, loader.conf untouched
#   boot 2  from that entry: v2 booted, the finalize a success, nothing
#           failed; bootctl --esp-path=/boot list shows stagehand's entries
#           with v2 as the default; boot 1's journal shows the finalize after
#           shutdown began and before /boot was unmounted
. "$(dirname "$0")/lib.sh"

vm_require_destdir
vm_init vfat
vm_install_stagehand
vm_make_guest_images shtest 1 2

# bootctl insists on a GPT ESP partition; the boot disk is a bare vfat disk.
vm_guest_script install <<'EOF'
#!/bin/bash
. /usr/local/lib/stagehand-vm/lib.sh
record_cmd init stagehand init
stagehand status --json >"$VM_RESULTS/status-init.json" 2>"$VM_RESULTS/status-init.err"
# systemd-boot keeps its own files in loader/; stagehand must leave them be.
printf 'timeout 3\nconsole-mode keep\n' >/boot/loader/loader.conf
record_cmd deploy stagehand deploy /var/lib/stagehand-vm/images/v1 --karg=root=LABEL=SHROOT --karg=rw
SYSTEMD_RELAX_ESP_CHECKS=1 record_cmd bootctl bootctl --esp-path=/boot list --no-pager
EOF

vm_guest_script stage-and-hold <<'EOF'
#!/bin/bash
. /usr/local/lib/stagehand-vm/lib.sh
record_cmd stage stagehand stage /var/lib/stagehand-vm/images/v2
systemctl show -p ActiveState stagehand-finalize.service | record finalize-unit
boot_mounts | record mounts-after-stage
expired_at=
for i in $(seq 1 20); do
  sleep 1
  boot_held || { expired_at=$i; break; }
done
echo "${expired_at:-never}" | record expired-at
stagehand status --json >"$VM_RESULTS/status-staged.json" 2>"$VM_RESULTS/status-staged.err"
EOF

vm_guest_script after-update <<'EOF'
#!/bin/bash
. /usr/local/lib/stagehand-vm/lib.sh
stagehand status --json >"$VM_RESULTS/status.json" 2>"$VM_RESULTS/status.err"
systemctl --failed --no-legend --plain | record failed-units
SYSTEMD_RELAX_ESP_CHECKS=1 record_cmd bootctl bootctl --esp-path=/boot list --no-pager
SYSTEMD_RELAX_ESP_CHECKS=1 record_cmd bootctl-json bootctl --esp-path=/boot list --json=short
EOF

tap_plan 26

# ---- boot 0: first install inside the guest -------------------------------------------

vm_boot_guest install
tap_ok "boot 0 powered off cleanly" vm_last_boot_powered_off
tap_is "$(cat "$(vm_result init.status)")" 0 "stagehand init on the empty vfat /boot exited 0"
tap_is "$(jq -r '"\(.boot.mode) \(.boot.atomic)"' "$(vm_result status-init.json)" 2>&1)" "exchange true" \
  "init chose exchange mode by itself, with an atomic swap (Linux >= 6.0)"
tap_is "$(cat "$(vm_result deploy.status)")" 0 "stagehand deploy v1 exited 0"
tap_is "$(cat "$(vm_result bootctl.status)")" 0 "bootctl list accepts the first entry set"

entry=$(vm_bls_default)
tap_like "$(vm_bls_get "$entry" options)" "stagehand=/stagehand/deploy/shtest/[^ ]+" \
  "the host reads v1's entry from loader/entries on the vfat disk as the default"
vm_boot_pull /loader/loader.conf "$VM_WORK/loader.conf.before"

# ---- boot 1: stage and hold ---------------------------------------------------------------

vm_boot_default stage-and-hold
tap_ok "boot 1 powered off cleanly" vm_last_boot_powered_off
tap_is "$(cat "$(vm_result stage.status)")" 0 "stagehand stage exited 0"
tap_like "$(cat "$(vm_result finalize-unit)")" "ActiveState=active" "stage left stagehand-finalize.service running"
tap_like "$(cat "$(vm_result mounts-after-stage)")" "^vfat /dev/vdb" "after stage /boot is the vfat disk"
tap_is "$(cat "$(vm_result expired-at)")" never "/boot stayed mounted through 10 idle timeouts"
staged=$(jq -r '.staged // empty' "$(vm_result status-staged.json)" 2>/dev/null)
tap_like "$staged" "^shtest/" "status before shutdown names the staged deployment"
tap_is "$(jq -r '"default-is-booted=\(.default == .booted) last-finalize-is-staged=\(.last_finalize.deployment == .staged)"' \
  "$(vm_result status-staged.json)" 2>&1)" "default-is-booted=true last-finalize-is-staged=false" \
  "before shutdown nothing is finalized: the default is still the booted v1 and no finalize ran for v2"

# ---- between boots: the vfat disk, read with mtools -----------------------------------------

entry=$(vm_bls_default)
tap_like "$(vm_bls_get "$entry" options)" "stagehand=/stagehand/deploy/$staged( |\$)" \
  "after the shutdown loader/entries has the staged deployment as the default"
tap_is "$(vm_bls_get "$entry" version | cut -d- -f2)" 2 "the default entry is image version 2"
tap_is "$(vm_boot_tree | grep -c 'loader/entries\.new')" 0 "no entries.new is left in loader/"
vm_boot_pull /loader/loader.conf "$VM_WORK/loader.conf.after"
tap_ok "systemd-boot's loader/loader.conf is unchanged" cmp "$VM_WORK/loader.conf.before" "$VM_WORK/loader.conf.after"

# ---- boot 2: from the new default -----------------------------------------------------------------

vm_boot_default after-update
tap_ok "boot 2 powered off cleanly" vm_last_boot_powered_off
tap_is "$(vm_booted_image_version)" 2 "boot 2 ran v2's initramfs, read from the vfat disk"
tap_is "$(jq -r '.booted' "$(vm_result status.json)" 2>&1)" "$staged" "boot 2 runs the deployment staged in boot 1"
tap_is "$(jq -r '.last_finalize.result' "$(vm_result status.json)" 2>&1)" success \
  "status reports the last finalize as a success"
tap_is "$(cat "$(vm_result failed-units)")" "" "no failed units in boot 2"
tap_is "$(cat "$(vm_result bootctl.status)")" 0 "bootctl --esp-path=/boot list accepts the configuration"

# bootctl's default: the entry marked "(default)" in the text listing.
default_id=$(awk '/^ *title:/ { d = ($0 ~ /\(default\)/) } /^ *id:/ && d { print $2; exit }' "$(vm_result bootctl)")
tap_like "$default_id" "^stagehand-[0-9]+-shtest-${staged#shtest/}\.conf\$" \
  "bootctl's default entry is the staged deployment's"
tap_is "$(jq -rs '[.[] | select(.id | startswith("stagehand-"))] | length' "$(vm_result bootctl-json)" 2>&1)" 2 \
  "bootctl lists both of stagehand's entries (new default and the one booted before)"

# ---- the shutdown of boot 1, from its journal ----------------------------------------------------

tap_ordered "boot 1's journal: the script ended, then the finalize unit was stopped, finalized, then /boot was unmounted" \
  "$(vm_shutdown_timeline -1 stagehand-finalize.service)" script_exit unit_stopping finalize_done boot_unmounting
