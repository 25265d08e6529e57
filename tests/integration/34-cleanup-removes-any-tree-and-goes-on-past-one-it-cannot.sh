#!/bin/bash
# Removal works on anything the importer can write, and cleanup goes on
# past a tree it cannot remove (issue 14, item 4):
#   - a tree deeper than the fd limit is removed (removal once held one fd
#     per directory level);
#   - as non-root, a deployment holding non-empty read-only (0555, 0500)
#     and unreadable (0000) directories is removed;
#   - a leftover .import-tmp-* that cannot be removed no longer stops
#     cleanup before the old deployments and kernels: they go, and the
#     failure is one short line naming the leftover.
. "$(dirname "$0")/lib.sh"

plan 14
is_root || { skip 14 "needs root (setpriv to nobody, a root-owned obstacle)"; exit 0; }

printf '[stagehand]\nretain=1\n' >"$TEST_TMP/retain1.conf"
deep_image() {
  make_image "$1" --version "$2" --kernel-content "kernel $2"
  mkdir -p "$1/usr/share"
  # 1,500 levels, far more than the 64 fds cleanup runs with below.
  "$PYTHON" -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
for _ in range(1500):
    os.mkdir("d", 0o755, dir_fd=fd)
    nfd = os.open("d", os.O_RDONLY, dir_fd=fd)
    os.close(fd)
    fd = nfd
with open(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as f:
    f.write("bottom\n")
' "$1/usr/share"
  touch_tree "$1"
}

# --- a deployment 1,500 levels deep, removed with 64 fds
deep_image "$TEST_TMP/deep1" 1.0
make_image "$TEST_TMP/v2" --version 2.0 --kernel-content "kernel 2"
sysroot=$(new_sysroot deep)
cp "$TEST_TMP/retain1.conf" "$sysroot/stagehand/stagehand.conf"
must "$sysroot" deploy "$TEST_TMP/deep1"
ok "set-up: the deep tree was deployed" test -f "$sysroot/stagehand/deploy/demo/1.origin"
must "$sysroot" deploy "$TEST_TMP/v2"
RC=0
(ulimit -n 64 && exec "$STAGEHAND" --sysroot="$sysroot" cleanup) >"$OUT_FILE" 2>"$ERR_FILE" || RC=$?
is "$RC" 0 "cleanup with 64 fds removes a deployment 1,500 levels deep" || diag_file "$ERR_FILE"
ok "the deep deployment is gone" test ! -e "$sysroot/stagehand/deploy/demo/1"

# --- as nobody: read-only and unreadable directories in a deployment
as_user=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
chmod 0755 "$TEST_TMP"
make_image "$TEST_TMP/ro1" --version 1.0 --kernel-content "kernel 1"
mkdir -p "$TEST_TMP/ro1/usr/share/ro/inner" "$TEST_TMP/ro1/usr/share/rx" "$TEST_TMP/ro1/usr/share/none"
echo data >"$TEST_TMP/ro1/usr/share/ro/inner/file"
echo data >"$TEST_TMP/ro1/usr/share/rx/file"
chmod 0555 "$TEST_TMP/ro1/usr/share/ro/inner" "$TEST_TMP/ro1/usr/share/ro"
chmod 0500 "$TEST_TMP/ro1/usr/share/rx"
chmod 0000 "$TEST_TMP/ro1/usr/share/none"
touch_tree "$TEST_TMP/ro1"
# A tar, which nobody can read whatever the modes inside.
make_tar "$TEST_TMP/ro1" "$TEST_TMP/ro1.tar"
chmod 0644 "$TEST_TMP/ro1.tar"
user_root="$TEST_TMP/user-sysroot"
mkdir "$user_root"
chown 65534:65534 "$user_root"
"${as_user[@]}" "$STAGEHAND" --sysroot="$user_root" init >/dev/null || bail "init as nobody failed"
cp "$TEST_TMP/retain1.conf" "$user_root/stagehand/stagehand.conf"
chown 65534:65534 "$user_root/stagehand/stagehand.conf"
"${as_user[@]}" "$STAGEHAND" --sysroot="$user_root" deploy "$TEST_TMP/ro1.tar" >/dev/null 2>"$ERR_FILE" \
  || { diag_file "$ERR_FILE"; bail "deploy as nobody failed"; }
is "$(stat -c %a "$user_root/stagehand/deploy/demo/1/usr/share/ro/inner")" 555 \
  "set-up: the deployment keeps the image's 0555 directory"
"${as_user[@]}" "$STAGEHAND" --sysroot="$user_root" deploy "$TEST_TMP/v2" >/dev/null 2>&1 \
  || bail "second deploy as nobody failed"
RC=0
"${as_user[@]}" "$STAGEHAND" --sysroot="$user_root" cleanup >"$OUT_FILE" 2>"$ERR_FILE" || RC=$?
is "$RC" 0 "cleanup as nobody removes a deployment with 0555, 0500 and 0000 directories" \
  || diag_file "$ERR_FILE"
ok "that deployment is gone" test ! -e "$user_root/stagehand/deploy/demo/1"

# --- one leftover that cannot be removed does not stop the rest
make_image "$TEST_TMP/v3" --version 3.0 --kernel-content "kernel 3"
"${as_user[@]}" "$STAGEHAND" --sysroot="$user_root" deploy "$TEST_TMP/v3" >/dev/null 2>&1 \
  || bail "third deploy as nobody failed"
# A leftover holding a directory nobody may not empty (root's, 0755).
stuck="$user_root/stagehand/deploy/.import-tmp-Stuck1"
mkdir -p "$stuck/usr/root-owned"
"$PYTHON" -c 'import sys; open(sys.argv[1], "w").write("x" * 100)' "$stuck/usr/root-owned/file"
chown 65534:65534 "$stuck" "$stuck/usr"
csum2=$(bootcsum_of "$TEST_TMP/v2")
ok "set-up: demo/2 and its kernel are there, out of the menu" \
  test -d "$user_root/stagehand/deploy/demo/2" -a -d "$user_root/boot/stagehand/demo-$csum2"
RC=0
"${as_user[@]}" "$STAGEHAND" --sysroot="$user_root" cleanup >"$OUT_FILE" 2>"$ERR_FILE" || RC=$?
ERR=$(cat "$ERR_FILE")
is "$RC" 1 "cleanup fails when one leftover cannot be removed"
ok "but it removes the old deployment and its kernel all the same" \
  test ! -e "$user_root/stagehand/deploy/demo/2" -a ! -e "$user_root/boot/stagehand/demo-$csum2"
like "$ERR" '^stagehand: cleanup: .*\.import-tmp-Stuck1.*root-owned.*[Pp]ermission denied' \
  "the error names the leftover, the entry and the reason"
ok "the error is one short line" test "$(grep -c '' "$ERR_FILE")" = 1 -a "${#ERR}" -lt 400 \
  || diag_file "$ERR_FILE"

# --- a deployment whose origin cannot be removed still exists: its kernel stays
rm -rf "$stuck"
make_image "$TEST_TMP/v4" --version 4.0 --kernel-content "kernel 4"
"${as_user[@]}" "$STAGEHAND" --sysroot="$user_root" deploy "$TEST_TMP/v4" >/dev/null 2>&1 \
  || bail "fourth deploy as nobody failed"
csum3=$(bootcsum_of "$TEST_TMP/v3")
chown root:root "$user_root/stagehand/deploy/demo"
RC=0
"${as_user[@]}" "$STAGEHAND" --sysroot="$user_root" cleanup >"$OUT_FILE" 2>"$ERR_FILE" || RC=$?
ERR=$(cat "$ERR_FILE")
chown 65534:65534 "$user_root/stagehand/deploy/demo"
is "$RC" 1 "cleanup fails when a deployment's origin cannot be removed"
like "$ERR" 'removing deployment demo/3: .*3\.origin.*[Pp]ermission denied' "the error names it"
ok "that deployment's kernel is kept: it still exists" \
  test -f "$user_root/stagehand/deploy/demo/3.origin" -a -d "$user_root/boot/stagehand/demo-$csum3"
