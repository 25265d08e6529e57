#!/bin/bash
# JSON output is always valid UTF-8, whatever bytes stagehand reports:
# another tool's entry may have any bytes in its title or file name, a
# sysroot path any bytes in its names. Each byte that is not part of a
# valid UTF-8 sequence becomes U+FFFD (issue 14).
. "$(dirname "$0")/lib.sh"

plan 10

# strict_json: $OUT_FILE decodes as UTF-8 (strictly) and parses as JSON.
strict_json() {
  "$PYTHON" -c 'import json, sys; json.loads(open(sys.argv[1], "rb").read().decode("utf-8"))' \
    "$OUT_FILE" 2>&1
}

make_image "$TEST_TMP/v1" --version 1.0 --kernel-content "kernel one"
sysroot="$TEST_TMP/$(printf 'root-\xff-')"
sh_on "$sysroot" --json init
is "$RC:$(strict_json)" "0:" "init --json on a sysroot whose path is not UTF-8: valid UTF-8 JSON"
entries=$(entries_dir "$sysroot")
printf 'title Other \xfe tool\nversion 6.1 \xc3\nlinux /other\noptions quiet\n' >"$entries/$(printf 'other-\xfc').conf"

sh_on "$sysroot" --json deploy "$TEST_TMP/v1"
is "$RC:$(strict_json)" "0:" "deploy --json: valid UTF-8 JSON"

sh_on "$sysroot" --json status
is "$RC" 0 "status --json exits 0"
is "$(strict_json)" "" "status --json: valid UTF-8 JSON"
is "$(json 'j["sysroot"]')" "$TEST_TMP/root-"$'\xef\xbf\xbd'"-" "the sysroot path's invalid byte is U+FFFD"
files=$(json '[e["file"] for e in j["boot"]["entries"] if not e["stagehand"]]')
is "$files" '["other-\ufffd.conf"]' "the foreign entry's file name: its invalid byte is U+FFFD"
is "$(json '[e["title"] for e in j["boot"]["entries"] if not e["stagehand"]][0]')" \
  "Other "$'\xef\xbf\xbd'" tool" "the foreign entry's title: its invalid byte is U+FFFD"
is "$(json '[e["version"] for e in j["boot"]["entries"] if not e["stagehand"]][0]')" \
  "6.1 "$'\xef\xbf\xbd' "a cut-off UTF-8 sequence is U+FFFD too"

sh_on "$sysroot" --json cleanup
is "$RC:$(strict_json)" "0:" "cleanup --json: valid UTF-8 JSON"
ok "the foreign entry is still there, as it was" \
  grep -q $'title Other \xfe tool' "$entries/$(printf 'other-\xfc').conf"
