#!/bin/bash
# The man pages are generated from man/*.scd at build time and say what
# the program does: stagehand(8) has every verb --help lists, in its VERBS
# section, every option each verb's --help prints, in that verb's entry (the
# global ones under GLOBAL OPTIONS), and every exit status; stagehand.conf(5)
# has every key the configuration parser reads. Each page renders without
# a warning at 80 columns (MANWIDTH=80 man --warnings -l).
. "$(dirname "$0")/lib.sh"

MAN_DIR=${STAGEHAND_MAN_DIR:-$REPO_ROOT/build/man}
# Skipped only when a tool is missing (ci/package installs both); with
# scdoc there, a page that was not built is a failure.
for tool in man scdoc; do
  command -v "$tool" >/dev/null || { echo "1..0 # SKIP $tool is not installed"; exit 0; }
done
for page in stagehand.8 stagehand.conf.5 stagehand-finalize.service.8; do
  [ -f "$MAN_DIR/$page" ] || bail "$MAN_DIR/$page was not built (meson -Dman=disabled?)"
done

# Each verb's --help, for the checker.
helps="$TEST_TMP/helps"
mkdir "$helps"
"$STAGEHAND" --help >"$helps/MAIN" || bail "stagehand --help failed"
verbs=$(sed -n 's/^  \([a-z-]*\)  .*/\1/p' "$helps/MAIN")
[ -n "$verbs" ] || bail "stagehand --help lists no verbs"
for v in $verbs; do
  "$STAGEHAND" "$v" --help >"$helps/$v" || bail "stagehand $v --help failed"
done
render() { LC_ALL=C MANWIDTH=1000 man -l "$MAN_DIR/$1" 2>/dev/null; }
render stagehand.8 >"$TEST_TMP/stagehand.8.txt"
render stagehand.conf.5 >"$TEST_TMP/stagehand.conf.5.txt"

results=$("$PYTHON" - "$helps" "$TEST_TMP" "$REPO_ROOT" $verbs <<'PY'
import os, re, sys
helps, tmp, repo, verbs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]

def sections(path):
    """Rendered page -> {SECTION: [lines]} (headings start in column 0)."""
    out, cur = {}, None
    for line in open(path).read().splitlines():
        if line and not line[0].isspace() and line.upper() == line:
            cur = line.strip()
            out[cur] = []
        elif cur:
            out[cur].append(line)
    return out

def blocks(lines):
    """Entries of a section: a line indented 7 is an entry's title."""
    out, cur = {}, None
    for line in lines:
        m = re.match(r"^ {7}(\S+)", line)
        if m:
            cur = m.group(1).rstrip(",")
            out.setdefault(cur, [])
        if cur:
            out[cur].append(line)
    return {k: "\n".join(v) for k, v in out.items()}

def options(help_text):
    """The options a --help prints: "-v, --verbose", "--os=NAME", "-h, --help"."""
    found = []
    for line in help_text.splitlines():
        m = re.match(r"^\s+(?:(-\w), )?(--[a-z][a-z-]*)", line)
        if m:
            found += [o for o in m.groups() if o]
    return found

def say(name, ok, why=""):
    print(f"{name}\t{'ok' if ok else 'FAIL: ' + why}")

page = sections(f"{tmp}/stagehand.8.txt")
verb_blocks = blocks(page.get("VERBS", []))
global_text = "\n".join(page.get("GLOBAL OPTIONS", []))
main_help = open(f"{helps}/MAIN").read()
# Global: every option of the usage line, and what every verb accepts.
per_verb = {v: options(open(f"{helps}/{v}").read()) for v in verbs}
common = set.intersection(*(set(o) for o in per_verb.values()))
global_opts = sorted(common | set(re.findall(r"--[a-z-]+|-\w\b", main_help.splitlines()[0])) | {"--version"})
missing = [o for o in global_opts if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", global_text)]
say(f"GLOBAL OPTIONS has every global option ({' '.join(global_opts)})", not missing, f"missing {missing}")
for v in verbs:
    if v not in verb_blocks:
        say(f"VERBS has {v}", False, f"no entry; entries: {sorted(verb_blocks)}")
        continue
    own = [o for o in per_verb[v] if o not in common]
    missing = [o for o in own if not re.search(rf"(?<![\w-]){re.escape(o)}(?![\w-])", verb_blocks[v])]
    say(f"VERBS has {v} with its options ({' '.join(own) or 'none'})", not missing, f"missing {missing}")
extra = sorted(set(verb_blocks) - set(verbs))
say("VERBS has no verb --help does not list", not extra, f"{extra}")

exit_text = "\n".join(page.get("EXIT STATUS", []))
cli_h = open(f"{repo}/src/cli/cli.h").read()
codes = {"0", "1"} | set(re.findall(r"#define EXIT_\w+ (\d+)", cli_h))
missing = sorted(c for c in codes if not re.search(rf"^ {{7}}{c}$", exit_text, re.M))
say(f"EXIT STATUS has every exit status ({' '.join(sorted(codes))})", not missing, f"missing {missing}")

conf = sections(f"{tmp}/stagehand.conf.5.txt")
conf_text = "\n".join(conf.get("OPTIONS", []))
conf_c = open(f"{repo}/src/lib/conf.c").read()
keys = sorted(set(re.findall(r'(?:get_uint \(kf|has_key \(kf, GROUP), "([a-z-]+)"', conf_c)))
missing = [k for k in keys if not re.search(rf"^ {{7}}{k}=", conf_text, re.M)]
say(f"stagehand.conf(5) has every key ({' '.join(keys)})", keys and not missing, f"missing {missing}")
PY
)
n_checks=$(printf '%s\n' "$results" | grep -c .)
plan $((n_checks + 3))
while IFS=$'\t' read -r name verdict; do
  if [ "$verdict" = ok ]; then pass "$name"; else not_ok "$name" "$verdict"; fi
done <<<"$results"

for page in stagehand.8 stagehand.conf.5 stagehand-finalize.service.8; do
  warnings=$(MANWIDTH=80 man --warnings -l "$MAN_DIR/$page" 2>&1 >/dev/null)
  is "$warnings" "" "$page renders at 80 columns without warnings"
done
