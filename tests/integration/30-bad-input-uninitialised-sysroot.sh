#!/bin/bash
# Every verb but init, on a sysroot that was never initialised: exit 1,
# one line that says so and suggests `stagehand init`, and nothing created
# (not even the state or runtime directories).
. "$(dirname "$0")/lib.sh"

verbs=("stage IMAGE" "deploy IMAGE" unstage status "status --json" finalize-staged rollback cleanup)
plan $((${#verbs[@]} * (REFUSED_POINTS + 1) + 4))

make_image "$TEST_TMP/v1" --version 1.0
sysroot="$TEST_TMP/never-initialised"
mkdir -p "$sysroot"

for v in "${verbs[@]}"; do
  read -r -a args <<<"${v/IMAGE/$TEST_TMP/v1}"
  refused "$v on a never-initialised sysroot" "$sysroot" 1 \
    "$sysroot.*not initiali[sz]ed.*stagehand .*init" -- "${args[@]}"
  is "$(find "$sysroot" -mindepth 1)" "" "$v on a never-initialised sysroot creates nothing in it"
done

# Initialised, but the boot directory is gone (an ESP that is not there).
sysroot=$(new_sysroot no-boot)
rm -r "$sysroot/boot"
sh_on "$sysroot" stage "$TEST_TMP/v1"
is "$RC" 1 "stage without a boot directory exits 1"
like "$ERR" "boot directory $sysroot/boot does not exist.*(init|--boot)" "the message names the boot directory and what to do"
is "$(printf '%s' "$ERR" | grep -c '')" 1 "one line on stderr"
is "$(find "$sysroot/stagehand" -mindepth 1 -path '*deploy/*')" "" "no deployment was created"
