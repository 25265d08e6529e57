#!/bin/bash
# A boot directory without a loader (not mounted, or a wrong --boot) has no
# menu, so every deployment but the staged and the booted one would look
# unreferenced. cleanup refuses with one line instead of removing them, and
# stage (which cleans up first) leaves them too. Found by breaking the swap
# on purpose under the SIGKILL sweep: with <boot>/loader gone, cleanup
# removed every deployment.

# shellcheck source=tests/lib/fault-lib.sh
. "$(dirname "$0")/../lib/fault-lib.sh"
require_commands python3
require_stagehand
make_temp no-loader

for v in 1 2 3 4; do make_test_image "$T/img$v" "$v"; done
S=$T/sysroot
for args in init "deploy $T/img1" "deploy $T/img2" "deploy $T/img3"; do
  # shellcheck disable=SC2086 # words
  sh_at "$S" $args
  [ "$SH_RC" -eq 0 ] || { diag_run; bail "preparing: stagehand $args failed"; }
done
like "$(summary "$S")" "default=testos/3 menu=testos/3,testos/2 * deployments=testos/1,testos/2,testos/3 *" \
  "testos/3 and testos/2 in the menu; testos/1 out of it, not yet removed"

mkdir "$T/empty-boot"
sh_at "$S" --boot="$T/empty-boot" cleanup
is "$SH_RC" 1 "cleanup with a boot directory that has no loader exits 1"
is "$(wc -l <"$SH_ERR")" 1 "... with one line"
like "$(cat "$SH_ERR")" "stagehand: cleanup: the boot directory $T/empty-boot has no loader*refusing*" \
  "... saying why it removes nothing"
like "$(summary "$S")" "* deployments=testos/1,testos/2,testos/3 *" "... and every deployment is still there"
is "$(ls -A "$T/empty-boot")" "" "... and the boot directory is untouched"

sh_at "$S" --boot="$T/empty-boot" stage "$T/img4" --no-start
like "$(summary "$S")" "* deployments=testos/1,testos/2,testos/3* *" \
  "stage with that boot directory removes no deployment either"
like "$(cat "$SH_ERR")" "*cleanup before staging*no loader*" "... and warns why it did not clean up"

sh_at "$S" unstage
sh_at "$S" cleanup
is "$SH_RC" 0 "with the real boot directory, cleanup works" || diag_run
like "$(summary "$S")" "* deployments=testos/2,testos/3 *" "... and removes only testos/1 (and what the stray stage left)"
ok "the invariant holds" invariant "$S"

done_testing
