#!/bin/bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# A finalize killed with SIGKILL at any step of the vfat exchange leaves a
# configuration that systemd-boot's bootctl accepts, with a complete default
# (issue 7).  One boot, on a vfat /boot automount:
#
#   - stagehand init (exchange mode, chosen for vfat) and deploy v1;
#   - the exchange sweep (guest/exchange-sweep): for every call of renameat2,
#     rename(at), unlinkat, mkdirat, write and fsync a finalize makes, one
#     finalize is killed on entry to that call (strace -f -e
#     inject=SYSCALL:signal=KILL:when=N); after each kill bootctl
#     --esp-path=/boot list must accept the configuration and mark a complete
#     default (its kernel and initrd there and matching the bootcsum, its
#     deployment there), the previous or the staged one; finalize-staged run
#     again must then make the staged one the default;
#   - the same sweep with the fallback forced (STAGEHAND_DEBUG_NO_EXCHANGE=1,
#     docs/design.md), under which status reports "atomic": false.
. "$(dirname "$0")/lib.sh"

vm_require_destdir
# The sweeps run in one boot: ~3 min of emulation on a quiet 2-core host,
# several times that on a loaded one.
STAGEHAND_VM_BOOT_TIMEOUT=${STAGEHAND_VM_BOOT_TIMEOUT:-1500}
vm_init vfat
vm_install_stagehand
vm_make_guest_images shtest 1 2
vm_install "$VM_DIR/guest/exchange-sweep" "$VM_GUEST_LIBDIR/exchange-sweep" 0755

vm_guest_script sweep <<'EOF'
#!/bin/bash
. /usr/local/lib/stagehand-vm/lib.sh
record_cmd init stagehand init || exit 1
printf 'timeout 3\n' >/boot/loader/loader.conf
record_cmd deploy stagehand deploy /var/lib/stagehand-vm/images/v1 --karg=root=LABEL=SHROOT --karg=rw || exit 1
stagehand --json status | jq -r '"\(.boot.mode) \(.boot.atomic)"' | record mode
STAGEHAND_DEBUG_NO_EXCHANGE=1 stagehand --json status | jq -r '"\(.boot.mode) \(.boot.atomic)"' | record mode-no-exchange
t0=$(date +%s)
/usr/local/lib/stagehand-vm/exchange-sweep exchange "$VM_RESULTS" >"$VM_RESULTS/sweep-exchange.log" 2>&1
echo $? | record sweep-exchange.status
t1=$(date +%s)
STAGEHAND_DEBUG_NO_EXCHANGE=1 /usr/local/lib/stagehand-vm/exchange-sweep fallback "$VM_RESULTS" \
  >"$VM_RESULTS/sweep-fallback.log" 2>&1
echo $? | record sweep-fallback.status
t2=$(date +%s)
echo "exchange $((t1 - t0)) s, fallback $((t2 - t1)) s" | record sweep-times
SYSTEMD_RELAX_ESP_CHECKS=1 record_cmd bootctl bootctl --esp-path=/boot list --no-pager
EOF

tap_plan 17

vm_boot_guest sweep
tap_ok "the boot powered off cleanly" vm_last_boot_powered_off
tap_is "$(cat "$(vm_result deploy.status)")" 0 "init and deploy on the vfat /boot exited 0"
tap_is "$(cat "$(vm_result mode)")" "exchange true" "status: exchange mode, atomic"
tap_is "$(cat "$(vm_result mode-no-exchange)")" "exchange false" \
  "status under STAGEHAND_DEBUG_NO_EXCHANGE=1: exchange mode, \"atomic\": false"
tap_diag "sweeps: $(cat "$(vm_result sweep-times)" 2>&1)"

points=$(vm_result points)
counts=$(vm_result counts)
for sweep in exchange fallback; do
  tap_is "$(cat "$(vm_result sweep-$sweep.status)")" 0 "the $sweep sweep ran to its end" \
    || tap_diag "$(tail -n 5 "$(vm_result sweep-$sweep.log)")"
  failed=$(grep "^$sweep .* FAIL " "$points" 2>/dev/null)
  n=$(grep -c "^$sweep " "$points" 2>/dev/null)
  tap_ok "$sweep: after each of the $n kills bootctl accepts the configuration, with a complete default; finalize again completes" \
    test -z "$failed" -a "$n" -gt 0 || tap_diag "$failed"
  want=$(awk -v s="$sweep" '$1 == s { n += $3 } END { print n + 0 }' "$counts" 2>/dev/null)
  # Each of these must have been a kill point (renameat2 only where it is used).
  missing=$(for sc in renameat unlinkat mkdirat write fsync $([ $sweep = exchange ] && echo renameat2); do
              awk -v s="$sweep" -v c="$sc" '$1 == s && $2 == c && $3 > 0 { f = 1 } END { if (!f) print c }' "$counts" 2>/dev/null
            done | paste -sd' ')
  tap_ok "$sweep: each of the $want counted calls was a kill point; they include every kind of state change" \
    test "$n" = "$want" -a -z "$missing" -a "$want" -gt 0 || tap_diag "points: $n, counted: $want, never called: $missing"
  tap_diag "$sweep: calls per finalize: $(awk -v s="$sweep" '$1 == s && $3 > 0 { printf "%s=%s ", $2, $3 }' "$counts" 2>/dev/null)"
  tap_diag "$sweep: default after the kill: $(grep "^$sweep " "$points" | grep -o 'default-after-kill=[a-z]*' | sort | uniq -c | tr -s ' \n' ' ')"
done
tap_like "$(grep '^exchange status' "$(vm_result final)" 2>&1)" '^exchange status null (shtest/[0-9]+) success bootctl-default \1$' \
  "exchange: at the end status --json shows nothing staged, bootctl's default as the default, a successful finalize"
tap_like "$(grep '^fallback status' "$(vm_result final)" 2>&1)" '^fallback status null (shtest/[0-9]+) success bootctl-default \1$' \
  "fallback: the same"
# The commit point of each sweep must be among the kill points: a kill
# before it leaves the old default, a kill after it the new one.
tap_like "$(grep '^exchange renameat2 ' "$points")" "^exchange renameat2 1 ok default-after-kill=old" \
  "exchange: a kill on entry to renameat2(RENAME_EXCHANGE) leaves the old default"
tap_like "$(grep '^exchange ' "$points" | grep -c 'default-after-kill=new')" "^[1-9]" \
  "exchange: kills after the exchange leave the new default"
tap_like "$(grep '^fallback ' "$points" | grep -c 'default-after-kill=old')" "^[1-9]" \
  "fallback: kills before the entries move leave the old default"
tap_like "$(grep '^fallback ' "$points" | grep -c 'default-after-kill=new')" "^[1-9]" \
  "fallback: kills after it leave the new default"
tap_like "$(vm_journal -b 0 -o cat 2>&1 | grep -c 'without an atomic swap')" "^[1-9]" \
  "the fallback logs that its swap is not atomic to the journal"
