#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Issue 15: the next boot runs the staged image, not just its kernel.  The
# root disk is a stagehand sysroot made on the host with init + deploy of a
# Debian 12 image that has stagehand installed and its initramfs made by its
# own mkinitramfs (so stagehand's initramfs-tools hook and boot script are
# in it); /boot is still the automounted second disk, expiring after 2 s.
#
#   boot 1  from v1's entry: / is deployment 1 (mountinfo), read-only under
#           /usr, /sysroot is the physical root, status (no flags) names
#           deployment 1 as booted; write a file under /var; stage v2 (its
#           own VERSION_ID and /usr/share/stagehand-vm/image-version);
#           power off: the hold finalizes
#   boot 2  from the new default: / is deployment 2, v2's marker and
#           os-release, the /var file survived, status says 2 is booted;
#           stagehand rollback
#   boot 3  / is deployment 1 again
#   boot 4  an entry whose stagehand= names a missing deployment: the boot
#           fails, with the one-line reason in the serial log, and no test
#           script runs
. "$(dirname "$0")/lib.sh"

vm_require_destdir
vm_init ext4

# ---- the images and the first install, on the host --------------------------------------

vm_os_image "$VM_WORK/images/v1" 1
vm_os_image "$VM_WORK/images/v2" 2
vm_sysroot_create ext4

# ---- guest scripts ------------------------------------------------------------------

vm_guest_script whoami <<'EOF'
#!/bin/bash
. /usr/local/lib/stagehand-vm/lib.sh
# The mount at / : its root within its filesystem (field 4) and options (6).
awk '$5 == "/" { print $4, $6 }' /proc/self/mountinfo | tail -n 1 | record root-mount
awk '$5 == "/usr" { print $4, $6 }' /proc/self/mountinfo | tail -n 1 | record usr-mount
cat /usr/share/stagehand-vm/image-version | record image-version
. /usr/lib/os-release && echo "$VERSION_ID" | record os-version
touch /usr/stagehand-write-test 2>&1 | record usr-write
[ -d /sysroot/stagehand/deploy ] && echo yes | record sysroot-has-stagehand
cat /var/lib/stagehand-vm/written-in-boot-1 2>&1 | record var-file
stagehand status --json >"$VM_RESULTS/status.json" 2>"$VM_RESULTS/status.err"
journalctl -b -o cat MESSAGE_ID=5eb8fffac07841208e0673537001d9ea 2>/dev/null | record root-setup-journal
EOF

vm_guest_script boot1 <<'EOF'
#!/bin/bash
. /sysroot/stagehand-vm/scripts/whoami
echo "written in boot 1" >/var/lib/stagehand-vm/written-in-boot-1
sync
record_cmd stage stagehand stage /sysroot/images/v2
stagehand status --json >"$VM_RESULTS/status-staged.json" 2>&1
EOF

vm_guest_script boot2 <<'EOF'
#!/bin/bash
. /sysroot/stagehand-vm/scripts/whoami
record_cmd rollback stagehand rollback
EOF

vm_guest_script boot3 <<'EOF'
#!/bin/bash
. /sysroot/stagehand-vm/scripts/whoami
EOF

vm_sysroot_deploy "$VM_WORK/images/v1"
root=$(vm_root_mount)
mkdir -p "$root/images"
cp -a "$VM_WORK/images/v2" "$root/images/v2" || vm_bail "copying image v2 onto the sysroot disk failed"
dep1=$(cd "$root/stagehand/deploy/shtest" && ls -d */ | tr -d / | head -n 1)
vm_umount
rm -rf "$VM_WORK/images"

tap_plan 25

# root-of DEPLOYMENT: the mount root / should have when it is DEPLOYMENT.
root_of() { echo "/stagehand/deploy/shtest/$1"; }

# ---- boot 1 ---------------------------------------------------------------------------------

vm_boot_default boot1
tap_ok "boot 1 powered off cleanly" vm_last_boot_powered_off
tap_is "$(cut -d' ' -f1 "$(vm_result root-mount)")" "$(root_of "$dep1")" \
  "boot 1: / is deployment 1 (mountinfo root $(root_of "$dep1"))"
tap_like "$(cut -d' ' -f2 "$(vm_result root-mount)")" "(^|,)ro(,|$)" "boot 1: / is mounted read-only"
tap_like "$(cat "$(vm_result usr-write)")" "Read-only file system" "boot 1: a write under /usr fails with EROFS"
tap_is "$(cat "$(vm_result sysroot-has-stagehand)")" yes "boot 1: /sysroot is the physical root"
tap_is "$(cat "$(vm_result image-version)")" 1 "boot 1: runs image v1's /usr"
tap_is "$(jq -r '.booted' "$(vm_result status.json)" 2>&1)" "shtest/$dep1" \
  "boot 1: stagehand status --json, without flags, names deployment 1 as booted"
tap_is "$(cat "$(vm_result stage.status)")" 0 "boot 1: stagehand stage of v2 exited 0"
dep2=$(jq -r '.staged // empty' "$(vm_result status-staged.json)" 2>/dev/null)
dep2=${dep2#shtest/}
tap_like "$(cat "$(vm_result root-setup-journal)")" "root setup took [0-9]+ us" \
  "boot 1: the journal has the root setup's duration (its MESSAGE_ID)"
tap_diag "boot 1 (first boot of the os, /var copied): $(cat "$(vm_result root-setup-journal)")"

# ---- boot 2 ---------------------------------------------------------------------------------

vm_boot_default boot2
tap_ok "boot 2 powered off cleanly" vm_last_boot_powered_off
tap_is "$(vm_booted_image_version)" 2 "boot 2: the default entry is v2's (its initramfs ran)"
tap_is "$(cut -d' ' -f1 "$(vm_result root-mount)")" "$(root_of "$dep2")" "boot 2: / is deployment 2"
tap_is "$(cat "$(vm_result image-version)")" 2 "boot 2: v2's marker under /usr/share is there"
tap_is "$(cat "$(vm_result os-version)")" 2 "boot 2: os-release says VERSION_ID=2"
tap_is "$(cat "$(vm_result var-file)")" "written in boot 1" "boot 2: the file written under /var in boot 1 survived"
tap_is "$(jq -r '.booted' "$(vm_result status.json)" 2>&1)" "shtest/$dep2" "boot 2: status names deployment 2 as booted"
tap_like "$(cut -d' ' -f2 "$(vm_result root-mount)")" "(^|,)ro(,|$)" "boot 2: / is read-only"
tap_diag "boot 2 (a later boot): $(cat "$(vm_result root-setup-journal)")"
tap_is "$(cat "$(vm_result rollback.status)")" 0 "boot 2: stagehand rollback exited 0"

# ---- boot 3 ---------------------------------------------------------------------------------

vm_boot_default boot3
tap_ok "boot 3 powered off cleanly" vm_last_boot_powered_off
tap_is "$(cut -d' ' -f1 "$(vm_result root-mount)")" "$(root_of "$dep1")" "boot 3: after rollback / is deployment 1 again"
tap_is "$(cat "$(vm_result image-version)")" 1 "boot 3: image v1's /usr"
tap_is "$(cat "$(vm_result var-file)")" "written in boot 1" "boot 3: /var is shared by the deployments of the os"

# ---- boot 4: a stagehand= that names no deployment -----------------------------------------------

entry=$(vm_bls_default)
b=$(vm_boot_mount)
sed -i "s|stagehand=/stagehand/deploy/shtest/[^ ]*|stagehand=/stagehand/deploy/shtest/99|" \
  "$b/loader/entries/$(basename "$entry")"
vm_umount
STAGEHAND_VM_BOOT_TIMEOUT=${STAGEHAND_VM_BOOT_TIMEOUT:-300} vm_boot_default boot3
tap_is "$(vm_guest_exit_status)" none "boot 4: the boot failed before any test script ran"
line=$(grep -a 'stagehand-root-setup: ' "$VM_WORK/boot4/serial.log" | grep -av 'ommand line' | head -n 1)
tap_like "$line" "stagehand-root-setup: .*/stagehand/deploy/shtest/99" \
  "boot 4: the serial log has the root setup's one line naming the missing deployment"
tap_diag "boot 4 said: $line"
tap_ok "boot 4: the boot did not go on into a root filesystem" \
  bash -c "! grep -aq 'Reached target.*Multi-User\|stagehand-vm: boot 4: running' '$VM_WORK/boot4/serial.log'"
