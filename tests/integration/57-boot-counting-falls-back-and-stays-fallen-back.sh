#!/bin/bash
# Automatic boot assessment on a temporary sysroot, with systemd-boot faked
# (a systemd-bootx64.efi in <boot>/EFI/systemd) and its work done by hand,
# as it does it: before each try it renames the default entry
# +3 -> +2-1 -> +1-2 -> +0-3; once no tries are left it sorts the entry
# last and boots the previous one; systemd-bless-boot drops the counter of
# a good boot. Which deployment runs is STAGEHAND_DEBUG_CMDLINE.
#
# - the new default, and only it, gets +3; a blessed entry keeps no
#   counter; loader.conf never gets a default pinned;
# - the boot that fell back says so: status (text and --json), and
#   status --report-failure (the boot-complete unit) exits 1 once;
# - the fallback is permanent: rollback refuses the failed deployment, a
#   finalize carries its +0-3 (so it stays last), and the counters of
#   entries that are not new survive the rewrite, zero-padded ones too.
. "$(dirname "$0")/lib.sh"

make_image "$TEST_TMP/v1" --version 1.0 --kernel-content "kernel one"
make_image "$TEST_TMP/v2" --version 2.0 --kernel-content "kernel two"
make_image "$TEST_TMP/v3" --version 3.0 --kernel-content "kernel three"
make_image "$TEST_TMP/v4" --version 4.0 --kernel-content "kernel four"
S=$(new_sysroot sysroot)
E=$(entries_dir "$S")
mkdir -p "$S/boot/EFI/systemd"
printf 'not really systemd-boot\n' >"$S/boot/EFI/systemd/systemd-bootx64.efi"
# systemd-boot's own configuration beside the entries: no default pinned.
printf 'timeout 0\n' >"$S/boot/loader/loader.conf"

booted() { # DEPLOYMENT: this "boot" runs it
  export STAGEHAND_DEBUG_CMDLINE="root=/dev/vda2 stagehand=/stagehand/deploy/$1"
}
# counted_entry ID: the name of demo/ID's entry with a counter.
counted_entry() {
  local path
  for path in "$E"/stagehand-*-demo-"$1"+*.conf; do
    [ -e "$path" ] && { basename "$path"; return 0; }
  done
  return 1
}
# sd_boot_try ID: systemd-boot takes one try of the entry of demo/ID.
sd_boot_try() {
  local f left done_
  f=$(counted_entry "$1") || bail "no counted entry for demo/$1 in: $(ls "$E")"
  left=$(printf '%s' "$f" | sed -E 's/.*\+([0-9]+)(-[0-9]+)?\.conf$/\1/')
  done_=$(printf '%s' "$f" | sed -E 's/.*\+[0-9]+(-([0-9]+))?\.conf$/\2/')
  mv "$E/$f" "$E/$(printf '%s' "$f" | sed -E 's/\+[0-9]+(-[0-9]+)?\.conf$//')+$((left - 1))-$((${done_:-0} + 1)).conf"
}
# sd_bless ID: systemd-bless-boot marks the boot of demo/ID good.
sd_bless() {
  local f
  f=$(counted_entry "$1") || bail "no counted entry for demo/$1 in: $(ls "$E")"
  mv "$E/$f" "$E/$(printf '%s' "$f" | sed -E 's/\+[0-9]+(-[0-9]+)?\.conf$/.conf/')"
}

status_json "$S"
is "$(json 'j["boot_counting"]["tries"]')" 3 "with systemd-boot in <boot>/EFI, boot counting is on with 3 tries"
like "$(json 'j["boot_counting"]["reason"]')" 'systemd-boot found: .*/EFI/systemd/systemd-bootx64.efi' \
  "... and status says where it found systemd-boot"

# --- the first install, blessed at its first boot
must "$S" deploy "$TEST_TMP/v1"
is "$(ls "$E")" "stagehand-1-demo-1+3.conf" "deploy: the new default gets +3"
booted demo/1
sd_boot_try 1
sd_bless 1
is "$(ls "$E")" "stagehand-1-demo-1.conf" "(systemd-boot tried it, systemd-bless-boot blessed it)"

# --- an update that never boots
must "$S" stage --no-start "$TEST_TMP/v2"
must "$S" finalize-staged
is "$(live_entries "$S")" "stagehand-2-demo-2+3.conf
stagehand-1-demo-1.conf" "finalize: only the new default gets a counter; the blessed entry keeps none"
is "$(cat "$S/boot/loader/loader.conf")" "timeout 0" "loader.conf is carried as it was: no default pinned"
status_json "$S"
is "$(json 'j["default"]')" "demo/2" "status: demo/2 is the default"
is "$(json '[d["boot_counter"] for d in j["deployments"]]')" '[{"tries_left": 3, "tries_done": 0}, null]' \
  "status --json: demo/2 has 3 tries left, demo/1 no counter"
is "$(json 'j["failed_boot"]')" null "status --json: no failed boot yet"

booted demo/2
sd_boot_try 2
sd_boot_try 2
sh_on "$S" status --report-failure
is "$RC" 0 "while demo/2 still has tries, the boot-time check has nothing to say"
sd_boot_try 2
is "$(ls "$E")" "stagehand-1-demo-1.conf
stagehand-2-demo-2+0-3.conf" "(three tries: +0-3)"
sh_on "$S" status --report-failure
is "$RC" 0 "the last try itself runs demo/2 (renamed to +0-3 first): not a failure"

# No tries left: systemd-boot boots demo/1.
booted demo/1
is "$(live_entries "$S")" "stagehand-1-demo-1.conf
stagehand-2-demo-2+0-3.conf" "(the reference order puts the entry with no tries left last)"
sh_on "$S" status
is "$RC" 0 "status exits 0"
like "$OUT" 'Failed boot: demo/2 failed to boot 3 times; running demo/1' "status says demo/2 failed to boot 3 times; running demo/1"
like "$OUT" 'demo/2 \(failed to boot 3 times\)' "... and marks demo/2"
like "$OUT" '\* demo/1 \(default\) \(booted\)' "... and demo/1 is the default, as systemd-boot sorts"
status_json "$S"
is "$(json 'j["failed_boot"]["deployment"] + " " + str(j["failed_boot"]["tries"]) + " " + j["failed_boot"]["running"]')" \
  "demo/2 3 demo/1" "status --json .failed_boot: deployment, tries, running"
is "$(json 'j["failed_boot"]["entry"]')" "stagehand-2-demo-2+0-3.conf" "... and the entry as systemd-boot left it"
is "$(json 'j["failed_boot"]["reported"]')" false "... not reported yet"
is "$(json 'j["default"] + " " + j["last_finalize"]["result"] + " " + j["last_finalize"]["deployment"]')" \
  "demo/1 success demo/2" "the finalize of demo/2 succeeded, but demo/1 is the default now"
is "$(json '[e["file"] for e in j["boot"]["entries"]]')" \
  "$(live_entries "$S" | "$PYTHON" -c 'import json,sys; print(json.dumps(sys.stdin.read().split()))')" \
  "status lists the entries in systemd-boot's order"
is "$(json '[d["failed_to_boot"] for d in j["deployments"]]')" '[false, true]' \
  "status --json: demo/2 failed_to_boot"

sh_on "$S" status --report-failure
is "$RC" 1 "the boot-time check fails (the unit shows in systemctl --failed)"
is "$(printf '%s\n' "$ERR" | wc -l)" 1 "... with one line"
like "$ERR" '^stagehand: demo/2 failed to boot 3 times; running demo/1: the boot loader ran out of tries for its entry stagehand-2-demo-2\+0-3.conf' \
  "... that says what failed and what runs"
status_json "$S"
is "$(json 'j["failed_boot"]["reported"]')" true "status --json: reported"
sh_on "$S" status --report-failure
is "$RC:$ERR" "0:" "the next boot reports nothing new"

# The boot loader's own word wins: LoaderEntrySelected names the entry it
# chose (here demo/2's, as an older systemd-boot names it: with its counter).
efivars="$TEST_TMP/efivars"
mkdir -p "$efivars"
efivar() { # NAME VALUE: a Boot Loader Interface variable, as efivarfs shows it
  "$PYTHON" -c 'import sys; open(sys.argv[1], "wb").write(b"\x06\x00\x00\x00" + (sys.argv[2] + "\0").encode("utf-16-le"))' \
    "$efivars/$1-4a67b082-0a4c-41cf-b6c7-440b29bb8c4f" "$2"
}
efivar LoaderEntrySelected "stagehand-2-demo-2+1-2.conf"
STAGEHAND_DEBUG_EFIVARS_DIR=$efivars status_json "$S"
is "$(json 'j["failed_boot"]')" null "LoaderEntrySelected naming the failed entry: not a fallback"
efivar LoaderEntrySelected "stagehand-1-demo-1.conf"
STAGEHAND_DEBUG_EFIVARS_DIR=$efivars status_json "$S"
is "$(json 'j["failed_boot"]["deployment"]')" "demo/2" "LoaderEntrySelected naming another entry: the fallback"

# --- the fallback is permanent
refused "rollback to the deployment that failed to boot" "$S" 1 \
  'no previous deployment .*demo/2 failed to boot' -- rollback

printf "[stagehand]\nretain=3\n" >"$S/stagehand/stagehand.conf"
must "$S" stage --no-start "$TEST_TMP/v3"
must "$S" finalize-staged
is "$(live_entries "$S")" "stagehand-3-demo-3+3.conf
stagehand-2-demo-1.conf
stagehand-1-demo-2+0-3.conf" "the next finalize: demo/3 gets +3, demo/2 keeps +0-3 and stays last"
sh_on "$S" status --report-failure
is "$RC" 0 "with demo/3 the default, demo/2's failure is no longer this boot's news"
ok "... and the record of the reported failure is gone" test ! -e "$S/stagehand/failed-boot-reported"

# --- counters survive a rewrite: demo/3 is on a zero-padded try
booted demo/3
mv "$E/stagehand-3-demo-3+3.conf" "$E/stagehand-3-demo-3+01-02.conf"
must "$S" stage --no-start "$TEST_TMP/v4"
must "$S" finalize-staged
is "$(live_entries "$S")" "stagehand-3-demo-4+3.conf
stagehand-2-demo-3+01-02.conf
stagehand-1-demo-1.conf" "demo/4 gets +3; demo/3 keeps +01-02 as written; demo/1 none"
must "$S" rollback
is "$(live_entries "$S")" "stagehand-3-demo-3+01-02.conf
stagehand-2-demo-4+3.conf
stagehand-1-demo-1.conf" "rollback: nobody gets fresh tries; every counter is kept"

# --- exchange mode (the vfat ESP), and its non-atomic merge fallback
unset STAGEHAND_DEBUG_CMDLINE
X=$TEST_TMP/esp
must "$X" init --mode=exchange
E=$X/boot/loader/entries
mkdir -p "$X/boot/EFI/BOOT"
printf 'MZ...#### LoaderInfo: systemd-boot 257.4 ####...' >"$X/boot/EFI/BOOT/BOOTX64.EFI"
must "$X" deploy "$TEST_TMP/v1"
is "$(ls "$E")" "stagehand-1-demo-1+3.conf" "exchange mode, systemd-boot found by its signature in EFI/BOOT/BOOTX64.EFI: +3"
booted demo/1
sd_boot_try 1
sd_bless 1
must "$X" stage --no-start "$TEST_TMP/v2"
must "$X" finalize-staged
sd_boot_try 2; sd_boot_try 2; sd_boot_try 2
status_json "$X"
is "$(json 'j["failed_boot"]["deployment"] + " " + j["default"]')" "demo/2 demo/1" \
  "exchange mode: demo/2 failed to boot, demo/1 is the default"
must "$X" stage --no-start "$TEST_TMP/v3"
STAGEHAND_DEBUG_NO_EXCHANGE=1 must "$X" finalize-staged
is "$(ls "$E")" "stagehand-1-demo-1.conf
stagehand-2-demo-3+3.conf" "the merge fallback removes the failed entry by its name with the counter, adds demo/3 with +3"

# Not systemd-boot: a BOOTX64.EFI without the signature; LoaderInfo naming
# another boot loader wins over a systemd-boot binary on disk.
G=$TEST_TMP/grub
must "$G" init
mkdir -p "$G/boot/EFI/BOOT"
printf 'MZ...GRUB...' >"$G/boot/EFI/BOOT/BOOTX64.EFI"
status_json "$G"
is "$(json 'j["boot_counting"]["tries"]')" 0 "another boot loader in EFI/BOOT: boot counting is off"
must "$G" deploy "$TEST_TMP/v1"
is "$(ls "$G/boot/loader/entries")" "stagehand-1-demo-1.conf" "... and the new default gets no counter"
rm -r "$G/boot/EFI"
mkdir -p "$G/boot/efi/Systemd"
: >"$G/boot/efi/Systemd/SYSTEMD-BOOTX64.EFI"
status_json "$G"
is "$(json 'j["boot_counting"]["tries"]')" 3 "systemd-boot*.efi in EFI/systemd, names in any case: on"
efivar LoaderInfo "GRUB 2.12"
STAGEHAND_DEBUG_EFIVARS_DIR=$efivars status_json "$G"
is "$(json 'j["boot_counting"]["tries"]')" 0 "LoaderInfo naming another boot loader: off"
efivar LoaderInfo "systemd-boot 257.4"
rm -r "$G/boot/efi"
STAGEHAND_DEBUG_EFIVARS_DIR=$efivars status_json "$G"
is "$(json 'j["boot_counting"]["tries"]')" 3 "LoaderInfo naming systemd-boot: on, with nothing in <boot>/EFI"
printf '[stagehand]\nboot-counting-tries=5\n' >"$G/stagehand/stagehand.conf"
status_json "$G"
is "$(json 'j["boot_counting"]["tries"] + 0')" 5 "boot-counting-tries=5 in stagehand.conf"
must "$G" deploy "$TEST_TMP/v2"
is "$(live_entries "$G")" "stagehand-2-demo-2+5.conf
stagehand-1-demo-1.conf" "... gives the new default +5"
printf '[stagehand]\nboot-counting-tries=0\nretain=3\n' >"$G/stagehand/stagehand.conf"
efivar LoaderInfo "systemd-boot 257.4"
STAGEHAND_DEBUG_EFIVARS_DIR=$efivars must "$G" deploy "$TEST_TMP/v3"
is "$(live_entries "$G")" "stagehand-3-demo-3.conf
stagehand-2-demo-1.conf
stagehand-1-demo-2+5.conf" "boot-counting-tries=0 turns it off even with systemd-boot; other counters are kept"

done_testing
