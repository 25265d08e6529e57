#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Issue 14: a real power cut, like ostree's kola destructive tests.  The
# SIGKILL and ENOSPC sweeps never lose the page cache, so they cannot see a
# missing fsync; this test does.  In each boot the guest turns off periodic
# writeback and ext4's 5 s journal commits (so nothing reaches the disks
# unless stagehand syncs it), runs a stage or a finalize that strace kills on
# entry to a chosen state-changing call, and prints a marker; the host then
# kills qemu outright: whatever the guest had only in its page cache is gone.
# On the host, the disks are mounted as the next boot would (journal
# replayed) and tests/lib/check-invariant, an independent reading of the
# on-disk format, checks that the boot configuration is complete and that
# every deployment with an origin is whole: its content equals its image.
. "$(dirname "$0")/lib.sh"

vm_require_destdir
vm_init ext4
vm_install_stagehand
vm_first_install

# v2 gets enough files of its own that an unsynced import loses something.
root=$(vm_root_mount)
img2=$root/var/lib/stagehand-vm/images/v2
mkdir -p "$img2/usr/share/power-cut"
for i in $(seq 1 64); do
  head -c $((4096 + i * 1531)) /dev/urandom >"$img2/usr/share/power-cut/f$i"
done
vm_umount

vm_guest_script cut <<'EOF'
#!/bin/bash
. /usr/local/lib/stagehand-vm/lib.sh
read -r op sc n </var/lib/stagehand-vm/cut-point
exec 9</boot                       # /boot stays mounted until the cut
# Nothing reaches the disks but what is synced: no periodic writeback, no
# timed journal commits.
sysctl -qw vm.dirty_writeback_centisecs=0 vm.dirty_expire_centisecs=360000
mount -o remount,commit=3600 / && mount -o remount,commit=3600 /boot || die "remount failed"
if [ "$op" = finalize ]; then
  stagehand stage /var/lib/stagehand-vm/images/v2 --no-start >/dev/null 2>&1 || die "stage failed"
  args=(finalize-staged)
else
  args=(stage /var/lib/stagehand-vm/images/v2 --no-start)
fi
sync
if [ "$sc" = - ]; then
  stagehand "${args[@]}" >/dev/null 2>&1       # let it finish, then cut
else
  strace -f -qq -o /dev/null -e trace="$sc" -e inject="$sc":signal=KILL:when="$n" \
    stagehand "${args[@]}" >/dev/null 2>&1
fi
echo "stagehand-vm: POWER-CUT-NOW $op $sc $n exit=$?"
sleep 600
EOF

# The starting disks, restored before each cut.
vm_umount
cp --sparse=always "$VM_WORK/root.img" "$VM_WORK/root.start"
cp --sparse=always "$VM_WORK/boot.img" "$VM_WORK/boot.start"

# check_after_cut: the invariant on the disks as the next boot sees them.
check_after_cut() {
  local root boot trees=() origin image id
  root=$(vm_root_mount) && boot=$(vm_boot_mount) || return 1
  mkdir -p "$VM_WORK/empty-run"
  for origin in "$root"/stagehand/deploy/shtest/*.origin; do
    [ -f "$origin" ] || continue
    id=$(basename "$origin" .origin)
    # v1 was deployed on the host (its image= is a path under this very
    # mount), v2 staged in the guest (a path of the guest's).
    image=$(sed -n 's/^image=//p' "$origin")
    [ -e "$image" ] || image=$root$image
    trees+=(--tree "shtest/$id=$image")
  done
  python3 "$VM_DIR/../lib/check-invariant" --sysroot "$root" --boot "$boot" \
    --run-dir "$VM_WORK/empty-run" --no-image-compare --all-deployments "${trees[@]}"
  local rc=$?
  echo "deployments with an origin: $((${#trees[@]} / 2))"
  vm_umount
  return "$rc"
}

# OP SYSCALL N, comma-separated (STAGEHAND_VM_CUT_POINTS for a run of your own).
# "OP - -": the power goes right after OP returned (everything it promised
# must be on disk by then).
IFS=, read -ra points <<<"${STAGEHAND_VM_CUT_POINTS:-stage syncfs 1,stage renameat 2,stage - -,finalize fsync 2,finalize renameat 1,finalize - -}"
tap_plan $((2 * ${#points[@]}))

for point in "${points[@]}"; do
  vm_umount
  cp --sparse=always "$VM_WORK/root.start" "$VM_WORK/root.img"
  cp --sparse=always "$VM_WORK/boot.start" "$VM_WORK/boot.img"
  root=$(vm_root_mount)
  echo "$point" >"$root/var/lib/stagehand-vm/cut-point"
  vm_umount
  VM_POWER_CUT_ON="POWER-CUT-NOW" vm_boot_guest cut
  said=$(grep -a -o 'POWER-CUT-NOW .*' "$VM_WORK/boot$VM_BOOT_N/serial.log" | head -n 1 | tr -d '\r')
  if [ "${point#* }" = "- -" ]; then
    tap_is "$VM_LAST_END:$(sed 's/.*exit=//' <<<"$said")" "power-cut:0" \
      "$point: stagehand finished, then the power was cut"
  else
    tap_is "$VM_LAST_END:$(sed 's/.*exit=//' <<<"$said")" "power-cut:137" \
      "$point: stagehand was killed on entry to the call, then the power was cut"
  fi
  tap_ok "$point: after the cut the boot configuration is complete and every deployment whole" \
    check_after_cut
done
