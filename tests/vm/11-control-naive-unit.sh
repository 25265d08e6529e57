#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# The control for scenario 1: the same update with a naive finalize unit
# (tests/vm/stagehand-finalize-naive.service: ExecStop=stagehand
# finalize-staged, RequiresMountsFor=/boot, no hold) instead of stagehand's.
# It must show the failure of ostree#2543 where scenario 1 shows success: the
# automount expires with the system up, systemd stops boot.mount and with it
# the unit, so the finalize starts right then, before shutdown.  It then
# blocks in the kernel on the very expire that started it (its path walk
# into /boot waits in autofs_expire_wait, uninterruptibly, for an unmount
# that waits for this stop job) until the stop timeouts give up on it; the
# update never becomes the default.  If this test ever stops seeing the early
# stop, the tier can no longer tell a working unit from a broken one.
#
#   host    init + deploy v1 (first install)
#   boot 1  from v1's entry: stage v2 --no-start, start the naive unit,
#           leave /boot idle; record, with the system up, that the unit is
#           being stopped, that its ExecStop (the finalize) sleeps in the
#           kernel's autofs expire, and how the stop ends; power off
#   host    boot 1's journal: the unit's stop began before shutdown did, and
#           no finalize completed; the default entry is still v1's
. "$(dirname "$0")/lib.sh"

vm_require_destdir
vm_init ext4
vm_install_stagehand
vm_install "$VM_DIR/stagehand-finalize-naive.service" /etc/systemd/system/stagehand-finalize-naive.service 0644
vm_first_install

vm_guest_script naive <<'EOS'
#!/bin/bash
. /usr/local/lib/stagehand-vm/lib.sh
unit=stagehand-finalize-naive.service
state() { systemctl show -p ActiveState --value $unit; }
record_cmd stage stagehand stage /var/lib/stagehand-vm/images/v2 --no-start
stagehand --json status | jq -r '.staged // empty' | record staged
record_cmd start systemctl start $unit
boot_mounts | record mounts-after-start
# Nothing holds /boot: after 2 s idle the kernel asks systemd to expire it,
# and systemd stops the unit first.  From here on this script reads only the
# mount table, /proc and systemd: a path walk into /boot would block too.
naive_stopping() { [ "$(state)" != active ]; }
wait_until 60 naive_stopping
state | record state-at-expiry
# The ExecStop process (the finalize): how and where it sleeps.
finalize_blocked() {
  local pid
  pid=$(systemctl show -p ControlPID --value $unit)
  [ "${pid:-0}" != 0 ] && [ "$(awk '{ print $3 }' /proc/"$pid"/stat 2>/dev/null)" = D ] || return 1
  { echo "pid $pid state D wchan $(cat /proc/"$pid"/wchan 2>/dev/null)"
    cat /proc/"$pid"/stack 2>/dev/null; } | record finalize-sleep
}
wait_until 30 finalize_blocked || echo "no ExecStop process in D state" | record finalize-sleep
{ [ -e /run/stagehand/staged ] && echo present || echo gone; } | record staged-while-stopping
# Only the stop timeouts (TimeoutStopSec=10s: ExecStop, SIGTERM, SIGKILL)
# end it; then boot.mount can be unmounted and the blocked process dies.
naive_down() { case $(state) in inactive | failed) ;; *) return 1 ;; esac; }
wait_until 120 naive_down
systemctl show -p ActiveState -p Result $unit | record stop-end
{ wait_until 30 boot_expired && echo expired || echo held; } | record boot-after-stop
{ [ -e /run/stagehand/staged ] && echo present || echo gone; } | record staged-before-shutdown
EOS

tap_plan 13

vm_boot_default naive
tap_ok "boot 1 powered off cleanly" vm_last_boot_powered_off
tap_is "$(cat "$(vm_result stage.status)")" 0 "stagehand stage --no-start exited 0"
staged=$(cat "$(vm_result staged)")
tap_like "$staged" "^shtest/" "a deployment was staged"
tap_is "$(cat "$(vm_result start.status)")" 0 "the naive unit started"
tap_like "$(cat "$(vm_result mounts-after-start)")" "^ext4 /dev/vdb" \
  "its RequiresMountsFor=/boot mounted /boot"
tap_is "$(cat "$(vm_result state-at-expiry)")" deactivating \
  "with the system up, the automount's expiry made systemd stop the naive unit: its finalize started"
# State D, and autofs_expire_wait in its kernel stack (wchan may name the
# autofs_wait it calls).
sleep=$(cat "$(vm_result finalize-sleep)")
if [[ $sleep == "pid "*" state D "* && $sleep == *autofs_expire_wait* ]]; then
  tap_result 0 "the finalize sleeps uninterruptibly in the kernel, waiting for the expire that stops it"
else
  tap_result 1 "the finalize sleeps uninterruptibly in the kernel, waiting for the expire that stops it"
  tap_diag "$sleep"
fi
tap_is "$(cat "$(vm_result staged-while-stopping)")" present "meanwhile nothing is finalized"
tap_like "$(cat "$(vm_result stop-end)")" "ActiveState=failed" \
  "the stop ends only when its timeouts give up on the finalize: the unit failed"
tap_diag "$(cat "$(vm_result stop-end)" "$(vm_result boot-after-stop)" | paste -sd' ')"

timeline=$(vm_shutdown_timeline 0 stagehand-finalize-naive.service)
tap_ordered "boot 1's journal: the naive unit's stop began before shutdown did" \
  "$timeline" unit_first_stopping script_exit
tap_is "$(sed -n 's/^finalize_done=//p' <<<"$timeline")" none "boot 1's journal has no completed finalize"
# What scenario 1 asserts fails here: the tier can tell.
if vm_timeline_ordered "$timeline" script_exit unit_stopping finalize_done boot_unmounting >/dev/null; then
  tap_result 1 "scenario 1's ordering (script ended < unit stopped < finalize done < /boot unmounting) fails for the naive unit"
  tap_diag "$timeline"
else
  tap_result 0 "scenario 1's ordering (script ended < unit stopped < finalize done < /boot unmounting) fails for the naive unit"
fi

entry=$(vm_bls_default)
tap_like "$(vm_bls_get "$entry" options)" "stagehand=/stagehand/deploy/shtest/1( |\$)" \
  "after the power-off the default entry is still v1's: the staged update was lost (ostree#2543)"
