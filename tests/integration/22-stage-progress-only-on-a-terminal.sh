#!/bin/bash
# stage shows its progress (files, MiB, rate) on one updating line when
# stderr is a terminal, and prints nothing of it when stderr is a file or a
# pipe (journal, logs, scripts). `script` (util-linux) provides the terminal.
. "$(dirname "$0")/lib.sh"

plan 11

command -v script >/dev/null || bail "script (util-linux) is needed to give stagehand a terminal"

img="$TEST_TMP/big"
make_image "$img" --version 1.0
mkdir -p "$img/usr/share/many"
for d in $(seq 1 30); do
  mkdir -p "$img/usr/share/many/$d"
  for f in $(seq 1 100); do printf '%s %s\n' "$d" "$f" >"$img/usr/share/many/$d/$f"; done
done
# 48 MiB of data that compresses badly enough to take a moment.
"$PYTHON" -c '
import hashlib, sys
with open(sys.argv[1], "wb") as f:
    h = b"seed"
    for _ in range(48 * 1024 * 1024 // 32):
        h = hashlib.sha256(h).digest()
        f.write(h)
' "$img/usr/lib/blob"
nfiles=$(find "$img" -mindepth 1 | wc -l)

# On a terminal.
tty_root=$(new_sysroot on-tty)
script -qec "$(printf '%q ' "$STAGEHAND" --sysroot="$tty_root" stage "$img")" /dev/null >"$TEST_TMP/tty.out" </dev/null
rc=$?
is "$rc" 0 "stage on a terminal exits 0"
tty_out=$(tr -d '\000' <"$TEST_TMP/tty.out")
like "$tty_out" 'importing: [0-9]+ files, [0-9.]+ MiB, [0-9.]+ MiB/s' "the progress line shows files, MiB and the rate"
like "$tty_out" $'\r' "the line is updated in place (carriage returns)"
last=$(printf '%s' "$tty_out" | tr '\r' '\n' | grep 'importing:' | tail -n1)
files=$(printf '%s' "$last" | sed -E 's/.*importing: ([0-9]+) files.*/\1/')
mib=$(printf '%s' "$last" | sed -E 's/.* files, ([0-9]+)\.[0-9] MiB.*/\1/')
ok "the last update counts every entry ($files of $nfiles)" test "$files" -ge "$nfiles"
ok "the last update counts the bytes ($mib MiB, at least 48)" test "$mib" -ge 48
# All updates on one line: no newline between the first and the last.
progress_lines=$(printf '%s' "$tty_out" | tr -d '\r' | grep -c 'importing:')
is "$progress_lines" 1 "every update is on the same line"
like "$tty_out" $'MiB/s\r?\n.*Staged demo/1' "the progress line ends before the result is printed"

# stderr to a file (stdout still a terminal): no progress at all.
file_root=$(new_sysroot to-file)
script -qec "$(printf '%q ' "$STAGEHAND" --sysroot="$file_root" stage "$img") 2>$(printf '%q' "$TEST_TMP/stderr.file")" \
  /dev/null >"$TEST_TMP/file.out" </dev/null
rc=$?
is "$rc" 0 "stage with stderr to a file exits 0"
is "$(cat "$TEST_TMP/stderr.file")" "" "nothing on stderr when it is a file"
unlike "$(cat "$TEST_TMP/file.out")" 'importing:|MiB' "no progress on stdout either"

# Not a terminal at all (a pipe), as an updater would run it.
pipe_root=$(new_sysroot to-pipe)
sh_on "$pipe_root" stage "$img"
is "$RC:$ERR" "0:" "through pipes: exit 0 and stderr empty"
