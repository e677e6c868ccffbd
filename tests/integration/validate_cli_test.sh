#!/bin/sh
# pixel-validate as a user meets it: a schema given as a file that is also
# under -r, a schema path that does not exist, and where broken JSON is.
set -u
VALIDATE="$PIXEL_BUILD_DIR/tools/pixel-validate/pixel-validate"
SCHEMAS="$PIXEL_SOURCE_DIR/schemas/realestate"
EX="$PIXEL_SOURCE_DIR/examples/realestate"
. "$PIXEL_SOURCE_DIR/tests/integration/checks.sh"

check "-s FILE that -r DIR also loads: the example's events are valid (0)" \
    [ "$(status "$VALIDATE" -r "$SCHEMAS" -s "$SCHEMAS/event.schema.json" --lines "$EX/expected/events.jsonl")" = 0 ]
check "... and quarantine records are not events (1)" \
    [ "$(status "$VALIDATE" -r "$SCHEMAS" -s "$SCHEMAS/event.schema.json" --lines "$EX/expected/quarantine.jsonl")" = 1 ]
check "... with the schema's errors" grep -q 'matches none of the 7 oneOf schemas' "$T/out"

printf '{"type": "object"}\n' >"$T/doc.json"
check "a schema file that does not exist exits 2" \
    [ "$(status "$VALIDATE" -s "$T/nope.schema.json" "$T/doc.json")" = 2 ]
check "... naming the file and the system's reason" \
    grep -q "schema $T/nope.schema.json: No such file or directory" "$T/err"
check "a URI that nothing loaded still says so" \
    [ "$(status "$VALIDATE" -s https://example.com/nope.json "$T/doc.json")" = 2 ]
check "... (no schema is loaded at it)" grep -q 'no schema is loaded at https://example.com/nope.json' "$T/err"

printf '{"type": "object", "properties": {"a": {"type": "string"}}}\n' >"$T/s.json"
printf '{"a": "x",\n  "b": [1, 2,, 3]}\n' >"$T/bad.json"
check "a document that is not JSON is invalid (1)" [ "$(status "$VALIDATE" -s "$T/s.json" "$T/bad.json")" = 1 ]
check "... at file:line:column, said once" grep -qx "pixel-validate: $T/bad.json:2:14: invalid JSON at offset 24: bad number" "$T/err"
printf '{"a": "x"}\n{"a": "y"\n' >"$T/bad.jsonl"
check "a JSON Lines line that is not JSON is invalid (1)" [ "$(status "$VALIDATE" -s "$T/s.json" --lines "$T/bad.jsonl")" = 1 ]
check "... at its line and column" grep -q "$T/bad.jsonl:2:10: invalid JSON at offset 9" "$T/err"
printf '{"type": "object",\n "properties": {}' >"$T/broken.schema.json"
check "a schema that is not JSON exits 2" [ "$(status "$VALIDATE" -s "$T/broken.schema.json" "$T/doc.json")" = 2 ]
check "... at file:line:column, said once" grep -qx "pixel-validate: $T/broken.schema.json:2:18: invalid JSON at offset 36: ',' or '}' expected" "$T/err"

[ $fails = 0 ]
