# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=bash
#
# Issue 15: the next boot runs the staged image, not just its kernel.  The
# scenario of tests 30 (initramfs-tools) and 32 (dracut), sourced after
# lib.sh:  vm_scenario_boot_into_the_deployment GENERATOR
#
# The root disk is a stagehand sysroot made on the host with init + deploy
# of a Debian 12 image that has stagehand installed and its initramfs made
# by its own GENERATOR (so stagehand's part of it, the initramfs-tools hook
# and boot script or the dracut module, is in it: checked with the
# generator's own lister); /boot is still the automounted second disk,
# expiring after 2 s.
#
#   boot 1  from v1's entry: / is deployment 1 (mountinfo), read-only under
#           /usr, /sysroot is the physical root, status (no flags) names
#           deployment 1 as booted; write a file under /var; stage v2 (its
#           own VERSION_ID and /usr/share/stagehand-vm/image-version);
#           power off: the hold finalizes.  dracut: the root setup ran as
#           stagehand-root-setup.service in the initrd, after sysroot.mount
#           and before initrd-root-fs.target
#   boot 2  from the new default: / is deployment 2, v2's marker and
#           os-release, the /var file survived, status says 2 is booted;
#           stagehand rollback
#   boot 3  / is deployment 1 again
#   boot 4  an entry whose stagehand= names a missing deployment: the boot
#           fails, with the one-line reason in the serial log, no test
#           script runs, and the machine reboots by itself (initramfs-tools'
#           panic with panic=-1, dracut's emergency target with
#           rd.emergency=reboot)

# initramfs_is GENERATOR: the image's initramfs, as its generator's lister
# shows it ($VM_WORK/initramfs-contents.txt), was made by GENERATOR and has
# stagehand's part in it; otherwise says what is missing.
initramfs_is() {
  local list=$VM_WORK/initramfs-contents.txt want missing=0
  case $1 in
    initramfs-tools)
      for want in usr/libexec/stagehand-root-setup scripts/local-bottom/stagehand; do
        grep -qx "$want" "$list" || { echo "no $want in the initramfs"; missing=1; }
      done
      ! grep -q 'dracut' "$list" || { echo "dracut files in an initramfs-tools initramfs"; missing=1; }
      ;;
    dracut)
      # lsinitrd: the arguments and the dracut modules it was made with,
      # then ls -l of every file.  Its "Version:" line is empty here
      # (Debian 12's lsinitrd 059), but the version file is listed.
      grep -q ' usr/lib/dracut/dracut-[0-9]' "$list" || { echo "no dracut version file in the initramfs"; missing=1; }
      sed -n '/^dracut modules:/,/^=/p' "$list" | grep -qx systemd-initrd \
        || { echo "not a systemd initrd (no dracut module systemd-initrd)"; missing=1; }
      sed -n '/^dracut modules:/,/^=/p' "$list" | grep -qx stagehand \
        || { echo "the dracut module stagehand is not in the initramfs"; missing=1; }
      for want in 'usr/libexec/stagehand-root-setup$' 'usr/lib/systemd/system/stagehand-root-setup\.service$' \
                  '\(etc\|usr/lib\)/systemd/system/initrd-root-fs\.target\.wants/stagehand-root-setup\.service -> .*/stagehand-root-setup\.service$'; do
        grep -q " $want" "$list" || { echo "nothing matches '$want' in the initramfs"; missing=1; }
      done
      ! grep -q ' scripts/local-bottom' "$list" || { echo "initramfs-tools scripts in a dracut initramfs"; missing=1; }
      ;;
  esac
  [ "$missing" = 0 ] || { echo "lsinitrd/lsinitramfs said:"; head -n 40 "$list"; }
  return "$missing"
}

vm_scenario_boot_into_the_deployment() {
  local generator=$1 root dep1 dep2 entry b line timeline plan=27
  [ "$generator" = dracut ] && plan=28

  vm_require_destdir
  vm_init ext4

  # ---- the images and the first install, on the host --------------------------------------

  vm_os_image "$VM_WORK/images/v1" 1 "$generator"
  vm_os_image "$VM_WORK/images/v2" 2 "$generator"
  vm_sysroot_create ext4

  # ---- guest scripts ------------------------------------------------------------------

  vm_guest_script whoami <<'GUEST'
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
GUEST

  vm_guest_script boot1 <<'GUEST'
#!/bin/bash
. /sysroot/stagehand-vm/scripts/whoami
echo "written in boot 1" >/var/lib/stagehand-vm/written-in-boot-1
sync
record_cmd stage stagehand stage /sysroot/images/v2
stagehand status --json >"$VM_RESULTS/status-staged.json" 2>&1
GUEST

  vm_guest_script boot2 <<'GUEST'
#!/bin/bash
. /sysroot/stagehand-vm/scripts/whoami
record_cmd rollback stagehand rollback
GUEST

  vm_guest_script boot3 <<'GUEST'
#!/bin/bash
. /sysroot/stagehand-vm/scripts/whoami
GUEST

  vm_sysroot_deploy "$VM_WORK/images/v1"
  root=$(vm_root_mount)
  mkdir -p "$root/images"
  cp -a "$VM_WORK/images/v2" "$root/images/v2" || vm_bail "copying image v2 onto the sysroot disk failed"
  dep1=$(cd "$root/stagehand/deploy/shtest" && ls -d */ | tr -d / | head -n 1)
  vm_umount
  rm -rf "$VM_WORK/images"

  tap_plan "$plan"
  tap_ok "the image's initramfs was made by $generator, with stagehand's part in it" initramfs_is "$generator"

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
  if [ "$generator" = dracut ]; then
    timeline=$(dracut_initrd_timeline)
    tap_ordered "boot 1: stagehand-root-setup.service ran in the initrd, after sysroot.mount, before initrd-root-fs.target" \
      "$timeline" sysroot_mounted setup_starting setup_finished root_fs_reached
    tap_diag "boot 1's initrd (µs): $(echo $timeline)"
  fi

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
  tap_is "$VM_LAST_END" reboot "boot 4: the failed boot ended in a reboot, by itself (not at the timeout)"
}

# root_of DEPLOYMENT: the mount root / should have when it is DEPLOYMENT.
root_of() { echo "/stagehand/deploy/shtest/$1"; }

# dracut_initrd_timeline: key=µs lines for the last boot's initrd, from PID
# 1's own messages (so in the order it wrote them; the initrd's part of the
# journal is kept in the guest's): sysroot.mount mounted, then
# stagehand-root-setup.service starting and finished, then
# initrd-root-fs.target reached; "none" where there is no such message.
dracut_initrd_timeline() {
  local key unit id
  while read -r key unit id; do
    echo "$key=$(vm_journal_mono 0 _PID=1 UNIT="$unit" MESSAGE_ID="$id" | head -n 1 | grep . || echo none)"
  done <<EOF
sysroot_mounted sysroot.mount $VM_MSG_UNIT_STARTED
setup_starting stagehand-root-setup.service $VM_MSG_UNIT_STARTING
setup_finished stagehand-root-setup.service $VM_MSG_UNIT_STARTED
root_fs_reached initrd-root-fs.target $VM_MSG_UNIT_STARTED
EOF
}
