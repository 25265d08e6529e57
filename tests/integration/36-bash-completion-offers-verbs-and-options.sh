#!/bin/bash
# The bash completion (data/completion/stagehand) offers every verb
# `stagehand --help` lists and every option each verb's --help prints, the
# values of --mode, and files for IMAGE; global options before the verb do
# not hide it. Driven here as bash-completion drives it: COMP_WORDS split at
# "=" as COMP_WORDBREAKS does, then the function.
. "$(dirname "$0")/lib.sh"

COMPLETION="$REPO_ROOT/data/completion/stagehand"
# shellcheck source=data/completion/stagehand
. "$COMPLETION" || bail "cannot source $COMPLETION"

# offered WORD...: what completing the last WORD offers, one per line, sorted.
offered() {
  COMP_WORDS=(stagehand "$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _stagehand 2>/dev/null
  printf '%s\n' "${COMPREPLY[@]}" | sort
}

# The options of a --help, as completion offers them ("--os=", "--hold", "-v").
help_options() {
  "$STAGEHAND" "$@" --help | sed -nE 's/^ +(-[a-z], )?(--[a-z-]+)(=[A-Z]+)?.*/\1 \2\3/p' |
    sed -E 's/,//; s/=[A-Z]+$/=/' | tr ' ' '\n' | grep . | sort -u
}

verbs=$("$STAGEHAND" --help | sed -n 's/^  \([a-z-]*\)  .*/\1/p' | sort)
[ -n "$verbs" ] || bail "stagehand --help lists no verbs"
plan $(($(wc -w <<<"$verbs") + 7))

is "$(offered "")" "$verbs" "a bare stagehand offers every verb --help lists"
for v in $verbs; do
  want=$(help_options "$v")
  missing=$(comm -23 <(printf '%s\n' "$want") <(offered "$v" -))
  is "$missing" "" "$v - offers every option of '$v --help'"
done
is "$(offered init --mode = "")" $'exchange\nsymlink' "--mode= offers symlink and exchange"
is "$(offered --sysroot = /tmp sta)" "stage
status" "a global option before the verb does not count as the verb"
like "$(offered --sysroot = /tmp stage --p)" '^--progress-fd=$' "... and the verb's options follow it"
mkdir "$TEST_TMP/images" && touch "$TEST_TMP/images/os.tar.zst"
is "$(offered stage "$TEST_TMP/images/o")" "$TEST_TMP/images/os.tar.zst" "stage IMAGE completes file names"
is "$(offered status --report-failure -)" "$(printf '%s\n' --boot= --help --json --report-failure --sysroot= --verbose -h -v | sort)" \
  "a verb's options and the global ones, nothing else"
is "$(offered --v)" $'--verbose\n--version' "before a verb: the global options and --version"
