#!/bin/bash
# `meson install --destdir=IMAGE` puts everything that boots a deployment
# where the initramfs generators look: stagehand-root-setup in libexec, the
# initramfs-tools hook and local-bottom script, the dracut module, and the
# empty /sysroot a deployment's physical root is mounted on. Each script
# names the installed program, and parses.
. "$(dirname "$0")/lib.sh"

BUILD=$(cd "$(dirname "$STAGEHAND")/../.." && pwd)
if ! command -v meson >/dev/null || [ ! -f "$BUILD/meson-private/coredata.dat" ]; then
  echo "1..0 # SKIP needs meson and the build directory of $STAGEHAND"
  exit 0
fi
plan 12

IMAGE=$TEST_TMP/image
meson install -C "$BUILD" --destdir "$IMAGE" --no-rebuild --quiet >"$TEST_TMP/install.log" 2>&1
is "$?" 0 "meson install --destdir exits 0" || diag_file "$TEST_TMP/install.log"

prefix=$(meson introspect --buildoptions "$BUILD" |
  "$PYTHON" -c 'import json, sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"][0])')
setup=$(find "$IMAGE" -name stagehand-root-setup -type f)
ok "stagehand-root-setup is installed and executable" test -n "$setup" -a -x "$setup"
installed=${setup#"$IMAGE"}
ok "/sysroot is there, empty" test -d "$IMAGE/sysroot" -a -z "$(ls -A "$IMAGE/sysroot")"

itools=$IMAGE$prefix/share/initramfs-tools
ok "the initramfs-tools hook is executable" test -x "$itools/hooks/stagehand"
ok "the local-bottom script is executable" test -x "$itools/scripts/local-bottom/stagehand"
like "$(cat "$itools/hooks/stagehand")" "copy_exec $installed\$" "the hook copies the installed program"
like "$(cat "$itools/scripts/local-bottom/stagehand")" "$installed \"\\\$\\{rootmnt\\}\"" \
  "the script runs it on \${rootmnt}"

dracut=$(find "$IMAGE" -type d -name 50stagehand)
ok "the dracut module is installed" test -x "$dracut/module-setup.sh"
like "$(cat "$dracut/stagehand-root-setup.service")" "ExecStart=$installed /sysroot" \
  "its unit runs the installed program on /sysroot"
unit=$(grep -E '^(After|Before)=' "$dracut/stagehand-root-setup.service" | paste -sd' ')
is "$unit" "After=sysroot.mount Before=initrd-root-fs.target" \
  "after the physical root's mount, before initrd-root-fs.target"

bad=""
for f in "$itools/hooks/stagehand" "$itools/scripts/local-bottom/stagehand" \
  "$dracut/stagehand-root-setup.sh"; do
  sh -n "$f" 2>>"$TEST_TMP/syntax" || bad="$bad $f"
done
is "$bad" "" "the shell scripts parse" || diag_file "$TEST_TMP/syntax"
bash -n "$dracut/module-setup.sh"
is "$?" 0 "module-setup.sh parses"
