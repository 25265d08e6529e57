#!/bin/bash
# A deep path costs memory in proportion to the image, not to the square
# of its depth (issue 14, item 5): each parent's full path was stored
# twice, and a 30 KB tar of depth 10,000 took 232 MB (depth 20,000:
# 862 MB). A tar whose one file is 10,000 directories deep stages with a
# maximum RSS well under 200 MB (a generous bound: it is a few MB now);
# no timing is asserted.
. "$(dirname "$0")/lib.sh"

plan 7

make_image "$TEST_TMP/v1" --version 1.0
tar_path="$TEST_TMP/deep.tar"
"$PYTHON" - "$TEST_TMP/v1" "$tar_path" <<'PY'
import io, sys, tarfile
src, out = sys.argv[1], sys.argv[2]
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
    t.add(src, arcname=".")
    info = tarfile.TarInfo("usr/share/" + "d/" * 10000 + "bottom")
    data = b"the bottom\n"
    info.size = len(data)
    info.mtime = 1700000000
    t.addfile(info, io.BytesIO(data))
PY

sysroot=$(new_sysroot sysroot)
read -r RC maxrss_kb < <("$PYTHON" -c '
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
' "$STAGEHAND" --sysroot="$sysroot" stage --no-start "$tar_path")
is "$RC" 0 "a tar with a file 10,000 directories deep stages"
ok "its maximum RSS stays under 200 MB (was ${maxrss_kb} KB)" test "$maxrss_kb" -lt 204800
is "$("$PYTHON" -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
for _ in range(10000):
    nfd = os.open("d", os.O_RDONLY, dir_fd=fd); os.close(fd); fd = nfd
print(open(os.open("bottom", os.O_RDONLY, dir_fd=fd)).read(), end="")
' "$sysroot/stagehand/deploy/demo/1/usr/share")" "the bottom" "the file at the bottom has its content"
sh_on "$sysroot" unstage
sh_on "$sysroot" cleanup
ok "and the deep deployment can be removed again" test ! -e "$sysroot/stagehand/deploy/demo/1"

# A refusal 10,000 directories down is still one short line: the path in
# the message has its middle elided.
"$PYTHON" - "$TEST_TMP/v1" "$TEST_TMP/deep-refused.tar" <<'PY'
import io, sys, tarfile
src, out = sys.argv[1], sys.argv[2]
deep = "usr/share/" + "d/" * 10000
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
    t.add(src, arcname=".")
    link = tarfile.TarInfo(deep + "link")
    link.type = tarfile.SYMTYPE
    link.linkname = "/etc"
    t.addfile(link)
    info = tarfile.TarInfo(deep + "link/passwd")
    info.size = 0
    t.addfile(info, io.BytesIO(b""))
PY
sh_on "$sysroot" stage --no-start "$TEST_TMP/deep-refused.tar"
is "$RC" 1 "a tar going through a symlink 10,000 directories down is refused"
like "$ERR" '^stagehand: .*image entry "usr/share/d/d/.*\.\.\..*d/d/link/passwd": path goes through the symlink "usr/share/d/.*\.\.\..*d/link"$' \
  "the message says where and why"
ok "in one line of fewer than 1,000 bytes" test "$(printf '%s' "$ERR" | grep -c '')" = 1 -a "${#ERR}" -lt 1000 \
  || diag "${#ERR} bytes"
