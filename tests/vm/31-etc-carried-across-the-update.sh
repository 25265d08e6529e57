#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Issue 16: /etc is carried across an update, with real systemd and the
# deployment booted as /.  The root disk is a stagehand sysroot as in test
# 30; image v2 changes /etc/issue, adds /etc/new-in-v2 and changes
# /etc/issue.net, which boot 1 changes too (a conflict).
#
#   boot 1  from v1: set a hostname, add /etc/stagehand-test.conf, delete
#           /etc/motd, change the mode of /etc/debian_version, change
#           /etc/issue.net; stage v2; AFTER staging edit
#           /etc/stagehand-test.conf once more; config-diff; power off: the
#           hold finalizes, and tops the merge up with the late edit
#   boot 2  from v2: every local change, the late edit included, plus v2's
#           new and changed files; the conflict kept the local version and
#           v2's beside it, and is in the verdict and the journal
. "$(dirname "$0")/lib.sh"

vm_require_destdir
vm_init ext4

vm_os_image "$VM_WORK/images/v1" 1
vm_os_image "$VM_WORK/images/v2" 2
v2=$VM_WORK/images/v2
echo "stagehand test OS 2 \\n \\l" >"$v2/etc/issue"
echo "new in v2" >"$v2/etc/new-in-v2"
echo "issue.net of v2" >"$v2/etc/issue.net"
vm_sysroot_create ext4

vm_guest_script boot1 <<'EOF'
#!/bin/bash
. /usr/local/lib/stagehand-vm/lib.sh
echo stagehand-etc-test >/etc/hostname
echo "first" >/etc/stagehand-test.conf
rm -f /etc/motd
chmod 0600 /etc/debian_version
echo "issue.net changed here" >/etc/issue.net
record_cmd stage stagehand stage /sysroot/images/v2
echo "second, after staging" >/etc/stagehand-test.conf
stagehand config-diff >"$VM_RESULTS/config-diff" 2>&1
echo $? >"$VM_RESULTS/config-diff.status"
stagehand status >"$VM_RESULTS/status" 2>&1
EOF

vm_guest_script boot2 <<'EOF'
#!/bin/bash
. /usr/local/lib/stagehand-vm/lib.sh
cat /usr/share/stagehand-vm/image-version | record image-version
cat /etc/hostname | record hostname
cat /etc/stagehand-test.conf 2>&1 | record test-conf
[ -e /etc/motd ] && echo present | record motd || echo absent | record motd
stat -c %a /etc/debian_version | record debian-version-mode
cat /etc/issue | record issue
cat /etc/new-in-v2 2>&1 | record new-in-v2
cat /etc/issue.net 2>&1 | record issue-net
cat /etc/issue.net.stagehand-new 2>&1 | record issue-net-new
stagehand status --json >"$VM_RESULTS/status.json" 2>&1
journalctl -b -1 -o cat MESSAGE_ID=28a510e2ef1644b4aa81beda442f0148 2>&1 | record conflict-journal
EOF

vm_sysroot_deploy "$VM_WORK/images/v1"
root=$(vm_root_mount)
mkdir -p "$root/images"
cp -a "$v2" "$root/images/v2" || vm_bail "copying image v2 onto the sysroot disk failed"
vm_umount
rm -rf "$VM_WORK/images"

tap_plan 16

vm_boot_default boot1
tap_ok "boot 1 powered off cleanly" vm_last_boot_powered_off
tap_is "$(cat "$(vm_result stage.status)")" 0 "boot 1: stage of v2 exited 0"
diff=$(cat "$(vm_result config-diff)")
tap_like "$diff" "A +/etc/stagehand-test.conf" "boot 1: config-diff lists the added file"
tap_like "$diff" "D +/etc/motd" "boot 1: config-diff lists the removed file"
tap_like "$diff" "C +/etc/issue.net" "boot 1: config-diff names the conflict"
tap_diag "config-diff in boot 1:"
tap_diag "$diff"

vm_boot_default boot2
tap_ok "boot 2 powered off cleanly" vm_last_boot_powered_off
tap_is "$(cat "$(vm_result image-version)")" 2 "boot 2 runs v2"
tap_is "$(cat "$(vm_result hostname)")" stagehand-etc-test "boot 2: the hostname set in boot 1"
tap_is "$(cat "$(vm_result test-conf)")" "second, after staging" \
  "boot 2: the added file, with the edit made after staging"
tap_is "$(cat "$(vm_result motd)")" absent "boot 2: the file deleted in boot 1 stays deleted"
tap_is "$(cat "$(vm_result debian-version-mode)")" 600 "boot 2: the mode changed in boot 1"
tap_is "$(cat "$(vm_result issue)")" 'stagehand test OS 2 \n \l' "boot 2: v2's changed /etc/issue"
tap_is "$(cat "$(vm_result new-in-v2)")" "new in v2" "boot 2: v2's new /etc/new-in-v2"
tap_is "$(cat "$(vm_result issue-net)")|$(cat "$(vm_result issue-net-new)")" \
  "issue.net changed here|issue.net of v2" \
  "boot 2: the conflict kept the local version, and v2's beside it as .stagehand-new"
tap_like "$(jq -r '.last_finalize.etc_conflicts[]?' "$(vm_result status.json)" 2>&1)" "/etc/issue.net" \
  "boot 2: the verdict names the conflict, and the update applied"
tap_like "$(cat "$(vm_result conflict-journal)")" "/etc/issue.net" \
  "boot 1's journal names the conflict (its MESSAGE_ID)"
