#!/bin/bash
# A command line stagehand cannot make sense of: exit 2 and one specific
# line on stderr (never the whole help), nothing done. Asking for help is
# not an error.
. "$(dirname "$0")/lib.sh"

cases=13
plan $((cases * REFUSED_POINTS + 7))

make_image "$TEST_TMP/v1" --version 1.0
sysroot=$(new_sysroot sysroot)
must "$sysroot" deploy "$TEST_TMP/v1"

refused "no verb" "$sysroot" 2 'no verb' --
refused "an unknown verb" "$sysroot" 2 'unknown verb "frobnicate"' -- frobnicate
refused "an unknown verb with a newline in it" "$sysroot" 2 'unknown verb' -- $'stage\nx'
refused "stage without IMAGE" "$sysroot" 2 'stage: missing IMAGE' -- stage
refused "deploy without IMAGE" "$sysroot" 2 'deploy: missing IMAGE' -- deploy
refused "stage with two images" "$sysroot" 2 "stage: unexpected argument" -- stage "$TEST_TMP/v1" "$TEST_TMP/v1"
refused "an unknown option of a verb" "$sysroot" 2 'status: unknown option --bogus' -- status --bogus
refused "an unknown global option before the verb" "$sysroot" 2 'unknown option --frob' -- --frob cleanup
refused "an option of another verb" "$sysroot" 2 'rollback: unknown option --karg' -- rollback --karg=quiet
refused "a non-numeric --lock-timeout" "$sysroot" 2 'abc.*lock-timeout|lock-timeout.*abc' -- stage "$TEST_TMP/v1" --lock-timeout=abc
refused "--karg without a value" "$sysroot" 2 'karg' -- stage "$TEST_TMP/v1" --karg
refused "an extra argument to rollback" "$sysroot" 2 'rollback: unexpected argument "now"' -- rollback now
refused "an extra argument to finalize-staged" "$sysroot" 2 'finalize-staged: unexpected argument' -- finalize-staged now

run_stagehand --help
is "$RC" 0 "--help exits 0"
like "$OUT" 'Usage: stagehand' "--help prints the usage on stdout"
like "$OUT" 'finalize-staged' "--help lists the verbs"
run_stagehand stage --help
is "$RC" 0 "stage --help exits 0"
like "$OUT" '--karg' "stage --help lists stage's options"
run_stagehand --version
is "$RC" 0 "--version exits 0"
like "$OUT" '^stagehand [0-9]' "--version prints the version"
