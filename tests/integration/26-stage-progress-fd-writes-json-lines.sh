#!/bin/bash
# stage --progress-fd=N writes one JSON object a line to fd N, for an
# updater that is not on a terminal: the phases in order (import, kernel,
# sync, start-unit), the files and bytes so far, at most ten updates a
# second, then one final line with the result. stdout and stderr stay as
# they are without it. The format is in stagehand(8) and docs/json-schema.json.
. "$(dirname "$0")/lib.sh"

plan 17

img="$TEST_TMP/big"
make_image "$img" --version 1.0
# Thousands of small files and 48 MiB of data.
"$PYTHON" -c '
import hashlib, os, sys
root = sys.argv[1]
for d in range(40):
    os.makedirs(f"{root}/usr/share/many/{d}")
    for f in range(100):
        with open(f"{root}/usr/share/many/{d}/{f}", "w") as o:
            o.write(f"{d} {f}\n")
with open(f"{root}/usr/lib/blob", "wb") as o:
    h = b"seed"
    for _ in range(48 * 1024 * 1024 // 32):
        h = hashlib.sha256(h).digest()
        o.write(h)
' "$img"
# Every entry the import writes, the root directory too.
nfiles=$(find "$img" | wc -l)
nbytes=$(find "$img" -type f -printf '%s\n' | awk '{s += $1} END {print s}')

# Fed as a tar through a FIFO by a writer that paces itself (2 ms every
# 64 KiB, about a second and a half in all), so the import lasts long
# enough for many updates however fast this machine is.
mkfifo "$TEST_TMP/image.fifo"
"$PYTHON" -c '
import subprocess, sys, time
tar = subprocess.Popen(["tar", "-C", sys.argv[1], "-cf", "-", "."], stdout=subprocess.PIPE)
with open(sys.argv[2], "wb") as out:
    while True:
        chunk = tar.stdout.read(65536)
        if not chunk:
            break
        out.write(chunk)
        time.sleep(0.002)
sys.exit(tar.wait())
' "$img" "$TEST_TMP/image.fifo" &
writer=$!
root=$(new_sysroot on-fd)
sh_on "$root" stage --progress-fd=3 "$TEST_TMP/image.fifo" 3>"$TEST_TMP/progress"
wait "$writer" || bail "the paced tar writer failed"
is "$RC" 0 "stage --progress-fd exits 0"
like "$OUT" '^Staged demo/1' "stdout still says what was staged"
is "$ERR" "" "stderr stays empty"

# Checks the lines; prints one verdict word per check for the TAP points.
checks=$("$PYTHON" - "$TEST_TMP/progress" "$nfiles" "$nbytes" <<'PY'
import json, sys
lines = open(sys.argv[1]).read().split("\n")
nfiles, nbytes = int(sys.argv[2]), int(sys.argv[3])
def say(name, ok, why=""):
    print(f"{name} {'ok' if ok else 'FAIL:' + why.replace(' ', '_')[:300]}")
say("newline-terminated", lines[-1] == "", repr(lines[-1]))
objs = []
try:
    objs = [json.loads(l) for l in lines[:-1]]
    say("json", all(isinstance(o, dict) for o in objs))
except ValueError as e:
    say("json", False, str(e))
say("version", all(o.get("version") == 1 for o in objs))
phases = [o.get("phase") for o in objs]
order = []
for p in phases:
    if not order or order[-1] != p:
        order.append(p)
# Not the running system: the finalize unit is not started, so no start-unit.
say("phase-order", order == ["import", "kernel", "sync", "done"], ",".join(map(str, order)))
imp = [o for o in objs if o["phase"] == "import"]
say("many-updates", len(imp) >= 3, str(len(imp)))
mono = all(a["files"] <= b["files"] and a["bytes"] <= b["bytes"] for a, b in zip(imp, imp[1:]))
say("monotonic", mono)
t = [o["elapsed_usec"] for o in objs]
say("elapsed-monotonic", all(a <= b for a, b in zip(t, t[1:])))
# Rate: updates within a phase are at least 100 ms apart (a phase's first
# line and the final line come when they happen).
gaps = [b["elapsed_usec"] - a["elapsed_usec"] for a, b in zip(objs, objs[1:])
        if a["phase"] == b["phase"]]
say("rate-bounded", all(g >= 100000 for g in gaps), str(min(gaps, default=None)))
k = [o for o in objs if o["phase"] == "kernel"]
say("kernel-total", len(k) >= 1 and k[0]["total_files"] == 2 and k[0]["total_bytes"] > 0,
    json.dumps(k))
last = objs[-1] if objs else {}
say("final-result", last.get("result") == "success" and last.get("exit_status") == 0
    and last.get("deployment") == "demo/1" and last.get("error") is None, json.dumps(last))
say("final-counts", last.get("files") == nfiles and last.get("bytes") == nbytes,
    f"{last.get('files')}/{nfiles} {last.get('bytes')}/{nbytes}")
PY
)
while read -r name verdict; do
  if [ "$verdict" = ok ]; then pass "progress lines: $name"; else not_ok "progress lines: $name" "$verdict"; fi
done <<<"$checks"

# A failed stage ends with a failure line naming the error, like stderr.
sh_on "$root" stage --progress-fd=3 "$TEST_TMP/no-such-image" 3>"$TEST_TMP/progress-fail"
last=$(tail -n1 "$TEST_TMP/progress-fail")
is "$(printf '%s' "$last" | "$PYTHON" "$LIBPY" json '[j["phase"], j["result"], j["exit_status"], j["error"] in "'"${ERR//\"/}"'"]')" \
  '["done", "failure", 1, true]' "a failed stage ends with result failure, exit_status 1 and the error of stderr"

# Not an open, writable fd: a usage error before anything is done.
sh_on "$root" stage --progress-fd=9 "$img"
like "$RC:$ERR" '^2:stagehand: stage: invalid --progress-fd 9: ' "a closed fd is a usage error"

# The reader went away: staging still succeeds (no SIGPIPE), with a warning.
"$PYTHON" - "$STAGEHAND" "$root" "$img" >"$TEST_TMP/gone" 2>&1 <<'PY'
import os, subprocess, sys
r, w = os.pipe()
os.close(r)
p = subprocess.run([sys.argv[1], f"--sysroot={sys.argv[2]}", "stage", f"--progress-fd={w}",
                    sys.argv[3]], pass_fds=(w,), capture_output=True, text=True)
print(p.returncode)
print(p.stderr, end="")
PY
like "$(tr '\n' ' ' <"$TEST_TMP/gone")" '^0 stagehand: warning: .*progress' \
  "with the reader gone, stage succeeds and warns once that progress is no longer written"
