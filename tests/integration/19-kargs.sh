#!/bin/bash
# Kernel arguments: inherited from the current default entry (minus its
# stagehand=), then amended by stagehand.conf's kargs, then by --karg; an
# argument with the same key replaces the inherited one. stagehand= comes
# first in the entry, so a command line cut short loses another argument,
# never the root.
. "$(dirname "$0")/lib.sh"

plan 21

for n in 1 2 3 4 5 6 7 8; do
  make_image "$TEST_TMP/v$n" --version "$n.0" --kernel-content "kernel $n"
done
sysroot=$(new_sysroot sysroot)
conf="$sysroot/stagehand/stagehand.conf"

# options_of N: the options line of demo/N's live entry.
options_of() {
  sed -n 's/^options //p' "$sysroot"/boot/loader/entries/stagehand-*-demo-"$1".conf
}

must "$sysroot" deploy "$TEST_TMP/v1" --karg=quiet --karg=console=ttyS0,115200n8
is "$(options_of 1)" "stagehand=/stagehand/deploy/demo/1 quiet console=ttyS0,115200n8" \
  "--karg values go into the entry, after stagehand= (a command line cut short keeps it)"

must "$sysroot" deploy "$TEST_TMP/v2"
is "$(options_of 2)" "stagehand=/stagehand/deploy/demo/2 quiet console=ttyS0,115200n8" \
  "a new deployment inherits the default's arguments, not its stagehand="

must "$sysroot" deploy "$TEST_TMP/v3" --karg=console=tty1 --karg=rd.luks=0 --karg=quiet
is "$(options_of 3)" "stagehand=/stagehand/deploy/demo/3 console=tty1 rd.luks=0 quiet" \
  "--karg with an inherited key replaces it; a repeated flag is not doubled"

printf '[stagehand]\nkargs=splash loglevel=3\n' >"$conf"
must "$sysroot" deploy "$TEST_TMP/v4"
is "$(options_of 4)" "stagehand=/stagehand/deploy/demo/4 console=tty1 rd.luks=0 quiet splash loglevel=3" \
  "stagehand.conf kargs are added to the inherited ones"
must "$sysroot" deploy "$TEST_TMP/v5" --karg=loglevel=7
is "$(options_of 5)" "stagehand=/stagehand/deploy/demo/5 console=tty1 rd.luks=0 quiet splash loglevel=7" \
  "--karg overrides stagehand.conf's value for the same key, nothing doubled"
rm "$conf"

must "$sysroot" deploy "$TEST_TMP/v6" --karg='dyndbg="file drivers/usb/* +p"' --karg=console=tty0 --karg=console=ttyS1
is "$(options_of 6)" 'stagehand=/stagehand/deploy/demo/6 rd.luks=0 quiet splash loglevel=7 dyndbg="file drivers/usb/* +p" console=tty0 console=ttyS1' \
  "a quoted value with spaces stays one argument; two console= given together are both kept"

status_json "$sysroot"
is "$(json '[d["kargs"] for d in j["deployments"] if d["id"] == "6"][0]')" \
  '["rd.luks=0", "quiet", "splash", "loglevel=7", "dyndbg=\"file drivers/usb/* +p\"", "console=tty0", "console=ttyS1"]' \
  "status --json lists the deployment's arguments, one per item, without stagehand="
like "$(sed -n 's/^kargs=//p' "$sysroot/stagehand/deploy/demo/6.origin")" '^rd\.luks=0 quiet splash loglevel=7 dyndbg=' \
  "the origin file records the arguments"

# Inherited from the current default: after a rollback, that is the
# rolled-back-to entry.
must "$sysroot" rollback
is "$(live_entries "$sysroot" | head -n1)" "stagehand-2-demo-5.conf" "set-up: demo/5 is the default after rollback"
must "$sysroot" stage "$TEST_TMP/v7"
must "$sysroot" finalize-staged
is "$(options_of 7)" "stagehand=/stagehand/deploy/demo/7 console=tty1 rd.luks=0 quiet splash loglevel=7" \
  "after a rollback, a new deployment inherits from the rolled-back-to default"

# Only the default counts: a replaced staged deployment's --karg is not inherited.
must "$sysroot" stage "$TEST_TMP/v8" --karg=only-in-the-replaced-stage
must "$sysroot" stage "$TEST_TMP/v8"
must "$sysroot" finalize-staged
like "$(live_entries "$sysroot" | head -n1)" '^stagehand-2-demo-9\.conf$' "set-up: demo/9 (the second stage of v8) is the default"
is "$(options_of 9)" "stagehand=/stagehand/deploy/demo/9 console=tty1 rd.luks=0 quiet splash loglevel=7" \
  "arguments come from the default entry, not from a staged deployment that was replaced"

# On a sysroot whose menu so far is another tool's, the new deployment
# inherits that default entry's arguments (a first install next to a
# running system keeps its root=), and says where they came from; an
# argument of it that is not fit for an entry is left out, not a reason
# to refuse.
journal=""
[ -w /run/systemd/journal/socket ] && journal="warnings go to the journal on this host"
first=$(new_sysroot first-install)
printf 'title Debian\nversion 6.1.0-13-amd64\nsort-key debian\nlinux /vmlinuz\noptions root=UUID=1b2c ro quiet\n' \
  >"$first/boot/loader/entries/debian.conf"
sh_on "$first" deploy "$TEST_TMP/v1" --karg=rw
is "$RC" 0 "a first deploy next to another tool's entry exits 0" || diag "$ERR"
if [ -z "$journal" ]; then
  like "$ERR" "warning: .*inherits the kernel arguments of another tool's entry loader\.[01]/entries/debian\.conf: \"root=UUID=1b2c ro quiet\"" \
    "it says it took the arguments of another tool's entry, naming it and them"
else
  skip 1 "$journal"
fi
first_options=$(sed -n 's/^options //p' "$first/boot/loader/entries/stagehand-1-demo-1.conf")
is "$first_options" "stagehand=/stagehand/deploy/demo/1 root=UUID=1b2c ro quiet rw" \
  "the first deployment inherits the other tool's default entry's arguments"
is "$(live_entries "$first" | head -n1)" "stagehand-1-demo-1.conf" "and becomes the default"
is "$(sed -n 's/^options //p' "$first/boot/loader/entries/debian.conf")" "root=UUID=1b2c ro quiet" \
  "the other tool's entry is unchanged"

# Once stagehand has an entry, that is where arguments come from, even when
# another tool's entry sorts before it.
printf 'title First\nsort-key 00-aaa\nlinux /vmlinuz\noptions root=/dev/other from-the-other-tool\n' \
  >"$first/boot/loader/entries/aaa.conf"
is "$(live_entries "$first" | head -n1)" "aaa.conf" "set-up: another tool's entry sorts first"
sh_on "$first" deploy "$TEST_TMP/v2"
is "$RC:$(sed -n 's/^options //p' "$first/boot/loader/entries/stagehand-2-demo-2.conf")" \
  "0:stagehand=/stagehand/deploy/demo/2 root=UUID=1b2c ro quiet rw" \
  "the next deployment inherits stagehand's entry's arguments, not the other tool's"
is "$(printf '%s' "$ERR" | grep -c "another tool's entry")" 0 "and says nothing about another tool's entry"

# Another tool's default entry with an argument that is not UTF-8.
odd=$(new_sysroot odd-first-install)
printf 'title Odd\nlinux /vmlinuz\noptions root=/dev/vda caf\xe9=1 quiet\n' >"$odd/boot/loader/entries/odd.conf"
sh_on "$odd" deploy "$TEST_TMP/v1"
is "$RC:$(sed -n 's/^options //p' "$odd/boot/loader/entries/stagehand-1-demo-1.conf")" \
  "0:stagehand=/stagehand/deploy/demo/1 root=/dev/vda quiet" \
  "an argument of another tool's entry that is not UTF-8 is left out; the deploy goes on" || diag "$ERR"
