# shellcheck shell=bash
# TAP for the shell suites (integration, privileged and the fault tests),
# sourced by their lib.sh and by fault-lib.sh. Not a test itself: meson runs
# only [0-9]*.sh.
#
#   plan N                    the plan first ...
#   done_testing              ... or last: a script that dies half-way then
#                             has no plan and fails
#   pass DESC                 one passed test point
#   fail DESC [DIAG...]       one failed test point (not_ok is the same)
#   ok DESC [CMD [ARGS...]]   a point from CMD's status (a plain pass without
#                             one); returns that status
#   is GOT WANT DESC          equality; a diff when either side has several
#                             lines; returns 1 when it fails
#   skip N REASON             N points that cannot run here
#   diag LINE...              "# LINE" lines
#   diag_file FILE [N]        FILE (its last N lines, default 40) as diagnostics
#   bail MSG                  "Bail out!" and exit 1: nothing after a broken
#                             precondition would mean anything
#   tap_finish                for an EXIT trap: 0 if the plan was kept and
#                             nothing failed
# The suites add their own like/unlike: a regular expression in the
# integration suite, a shell pattern in fault-lib.sh.

_tap_count=0
_tap_failed=0
_tap_planned=""

plan() {
  _tap_planned=$1
  echo "1..$1"
}

done_testing() {
  echo "1..$_tap_count"
  [ "$_tap_failed" -eq 0 ]
}

diag() {
  local line
  for line in "$@"; do
    printf '%s\n' "$line" | sed 's/^/# /'
  done
}

diag_file() {
  local file=$1 lines=${2:-40}
  if [ ! -e "$file" ]; then
    diag "($file does not exist)"
  elif [ ! -s "$file" ]; then
    diag "($(basename "$file") is empty)"
  else
    [ "$(wc -l <"$file")" -le "$lines" ] || diag "--- last $lines lines of $file"
    tail -n "$lines" "$file" | sed 's/^/#   /'
  fi
}

pass() {
  _tap_count=$((_tap_count + 1))
  echo "ok $_tap_count - $1"
}

fail() {
  _tap_count=$((_tap_count + 1))
  _tap_failed=$((_tap_failed + 1))
  echo "not ok $_tap_count - $1"
  shift
  [ $# -eq 0 ] || diag "$@"
}

not_ok() {
  fail "$@"
}

ok() {
  local desc=$1 rc=0
  shift
  [ $# -eq 0 ] || "$@" || rc=$?
  if [ "$rc" -eq 0 ]; then pass "$desc"; else fail "$desc" "command failed ($rc): $*"; fi
  return "$rc"
}

is() {
  if [ "$1" = "$2" ]; then
    pass "$3"
  elif [[ $1 == *$'\n'* || $2 == *$'\n'* ]]; then
    fail "$3"
    diff -u <(printf '%s\n' "$2") <(printf '%s\n' "$1") | sed '1,2d; s/^/#   /'
    diag "(- expected, + got)"
    return 1
  else
    fail "$3" "expected: '$2'" "     got: '$1'"
    return 1
  fi
}

skip() {
  local i
  for ((i = 0; i < $1; i++)); do
    _tap_count=$((_tap_count + 1))
    echo "ok $_tap_count # SKIP $2"
  done
}

bail() {
  echo "Bail out! $*"
  exit 1
}

tap_finish() {
  if [ -n "$_tap_planned" ] && [ "$_tap_count" -ne "$_tap_planned" ]; then
    diag "planned $_tap_planned tests but ran $_tap_count"
    return 1
  fi
  [ "$_tap_failed" -eq 0 ]
}
