#!/bin/sh
# pixelconv --kafka into librdkafka's mock cluster (3 brokers): every event
# arrives byte-identical, on its type's topic, keyed by user; quarantine
# records reach the dead-letter topic; the metrics file adds up.
set -u
BIN="$PIXEL_BUILD_DIR/tools"
EX="$PIXEL_SOURCE_DIR/examples/realestate"
command -v kcat >/dev/null || { echo "SKIP: kcat not installed"; exit 77; }
[ -x "$BIN/pixel-mock-kafka/pixel-mock-kafka" ] || { echo "SKIP: built without librdkafka"; exit 77; }
T=$(mktemp -d)
MOCK=
cleanup() { [ -n "$MOCK" ] && kill "$MOCK" 2>/dev/null; wait 2>/dev/null; rm -rf "$T"; }
trap cleanup EXIT
mkfifo "$T/ctl"
"$BIN/pixel-mock-kafka/pixel-mock-kafka" -n 3 -c "$T/ctl" -b "$T/bootstrap" >"$T/mock.log" 2>&1 &
MOCK=$!
for _ in $(seq 50); do [ -s "$T/bootstrap" ] && break; sleep 0.1; done
B=$(cat "$T/bootstrap")
[ -n "$B" ] || { echo "FAIL: the mock cluster did not start"; cat "$T/mock.log"; exit 1; }
fails=0
check() { desc=$1; shift; if "$@"; then echo "ok   $desc"; else echo "FAIL $desc"; fails=$((fails + 1)); fi; }

conv() { "$BIN/pixelconv/pixelconv" -c "$EX/pipeline.yaml" --fixed-time 2026-11-26T12:00:00Z "$@"; }
conv -o "$T/file.jsonl" -q /dev/null --quiet "$EX/sample.log"
conv --kafka --kafka-set "kafka.brokers=$B" --kafka-set "spool.dir=$T/spool" \
    --metrics-file "$T/metrics.prom" -s "$T/stats" "$EX/sample.log" 2>"$T/err"
check "pixelconv --kafka exits 0" [ $? = 0 ]
check "... and reports what it delivered" grep -q "320 delivered to Kafka, 0 spooled, 44 quarantine" "$T/err"
: >"$T/kafka.jsonl"
for t in page_view property_view search save_home share contact_agent click; do
    kcat -C -b "$B" -t "pixel.$t" -e -q -f '%s\n' >>"$T/kafka.jsonl" 2>/dev/null
    kcat -C -b "$B" -t "pixel.$t" -e -q -f '%k %s\n' 2>/dev/null >>"$T/keys"
done
check "every event is in Kafka, byte-identical" \
    sh -c "sort '$T/file.jsonl' >'$T/a'; sort '$T/kafka.jsonl' >'$T/b'; cmp -s '$T/a' '$T/b'"
check "each event is on its type's topic" \
    sh -c "kcat -C -b '$B' -t pixel.click -e -q 2>/dev/null | grep -vc '\"type\":\"click\"' | grep -qx 0"
check "messages are keyed by user.id" \
    python3 -c "
import json,sys
for l in open('$T/keys'):
    k, v = l.rstrip('\n').split(' ', 1)
    if json.loads(v)['user']['id'] != k: sys.exit(1)"
check "quarantine records reach the dead-letter topic" \
    [ "$(kcat -C -b "$B" -t pixel.quarantine -e -q 2>/dev/null | grep -c '"quarantine":1')" = 44 ]
check "the metrics file counts every line" \
    sh -c "grep -q 'outcome=\"event\"[^ ]* 320' '$T/metrics.prom' && grep -q 'outcome=\"skipped\"[^ ]* 16' '$T/metrics.prom'"

# Input from a pipe that stays open: quarantine records wait no longer than
# the events of their batch (records are gathered across batches only for
# regular files, whose next batch never waits for input).  A pipe is read
# as its lines come: the records of the first 60 lines of the sample must
# all be written while the pipe stays open after them.
head -n 60 "$EX/sample.log" >"$T/head.log"
conv -o /dev/null -q "$T/hq.jsonl" --quiet "$T/head.log"
want=$(wc -l <"$T/hq.jsonl")
# The lines FILE has once it has WANT of them, or after 10 s.
lines_within_10s() {
    n=0
    for _ in $(seq 100); do
        n=$(cat "$1" 2>/dev/null | wc -l)
        [ "$n" = "$2" ] && break
        sleep 0.1
    done
    echo "$n"
}
mkfifo "$T/in"
conv --kafka --kafka-set "kafka.brokers=$B" --kafka-set "spool.dir=$T/spool2" \
    --kafka-set "quarantine.file=$T/q2.jsonl" --kafka-set "quarantine.topic=" "$T/in" 2>"$T/err2" &
PC=$!
exec 3>"$T/in"
cat "$T/head.log" >&3
seen=$(lines_within_10s "$T/q2.jsonl" "$want")
exec 3>&-
wait $PC
check "quarantine records from a pipe still open are written ($seen of $want before it closed)" \
    sh -c "[ $want -gt 0 ] && [ $seen = $want ]"
check "... and no more once it closed" [ "$(wc -l <"$T/q2.jsonl")" = "$want" ]
# A regular file, then a FIFO that stays quiet: the file's quarantine
# records are not held for the FIFO's first batch.
mkfifo "$T/in3"
conv --kafka --kafka-set "kafka.brokers=$B" --kafka-set "spool.dir=$T/spool3" \
    --kafka-set "quarantine.file=$T/q3.jsonl" --kafka-set "quarantine.topic=" \
    "$T/head.log" "$T/in3" 2>"$T/err3" &
PC=$!
exec 3>"$T/in3"
seen=$(lines_within_10s "$T/q3.jsonl" "$want")
exec 3>&-
wait $PC
check "a file before a quiet FIFO: its quarantine records are written before the wait ($seen of $want)" \
    [ "$seen" = "$want" ]
# pixel-replay -q takes back what pixelconv quarantined, a line that was not
# UTF-8 too (its record has "raw_base64", not "raw"); an unusable record is
# named by its own file and line.
head -n 1 "$EX/sample.log" | sed 's/Mozilla/Mo\xe9illa/' >"$T/latin1.log"
conv -o /dev/null -q "$T/rq1.jsonl" --quiet "$T/latin1.log"
b64=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['raw_base64'])" "$T/rq1.jsonl")
check "a line that is not UTF-8 is quarantined with raw_base64" [ -n "$b64" ]
printf '{"quarantine":1}\n' >"$T/rq2.jsonl"
"$BIN/pixel-replay/pixel-replay" -c "$EX/pipeline.yaml" -b "$B" -q "$T/rq1.jsonl" "$T/rq2.jsonl" \
    2>"$T/rqerr"
check "pixel-replay -q with one unusable record exits 1" [ $? = 1 ]
check "... runs the raw_base64 line again and names the unusable one by its file's line" \
    sh -c "grep -q '2 quarantined lines: 0 events, 1 quarantined again, 0 skipped/dropped, 1 unreadable' '$T/rqerr' &&
           grep -q 'rq2.jsonl:1: no \"raw\" or \"raw_base64\" string member' '$T/rqerr'"
check "... and its new quarantine record holds the same bytes" \
    [ "$(kcat -C -b "$B" -t pixel.quarantine -e -q 2>/dev/null | grep -cF "\"raw_base64\":\"$b64\"")" = 1 ]
replay() { "$BIN/pixel-replay/pixel-replay" -c "$EX/pipeline.yaml" -b "$B" "$@" >/dev/null 2>"$T/rperr"; echo $?; }
check "pixel-replay -k abc is a usage error (2)" [ "$(replay -k abc -s "$T/spool")" = 2 ]
check "... that names the option" grep -q -- '-k takes a whole number' "$T/rperr"
check "pixel-replay -t 0 is a usage error (2)" [ "$(replay -t 0 -s "$T/spool")" = 2 ]
check "pixel-replay -s into nowhere exits 2" [ "$(replay -s "$T/nospool")" = 2 ]
check "... naming the directory and the reason" \
    grep -q "cannot open $T/nospool/replay.lock: No such file or directory" "$T/rperr"
# A spool segment whose header is damaged: pixel-spool verify counts all of
# it as damaged (none of its records can be read), and exits 1.
conv --kafka --kafka-set kafka.brokers=127.0.0.1:1 --kafka-set "spool.dir=$T/dspool" \
    -q /dev/null --quiet "$EX/sample.log" 2>/dev/null
seg=$(ls "$T"/dspool/w000/*.seg | head -n 1)
size=$(wc -c <"$seg")
printf 'pix' | dd of="$seg" bs=1 seek=0 conv=notrunc 2>/dev/null  # the magic is PIXSPOOL
"$BIN/pixel-spool/pixel-spool" verify "$T/dspool" >"$T/vout" 2>"$T/verr"
check "pixel-spool verify: a damaged segment header exits 1" [ $? = 1 ]
check "... counts the whole segment as damaged" \
    grep -qx "1 segments, 0 records, 1 corrupt regions, 0 torn tails, $size damaged bytes" "$T/vout"
check "... and says what it expected" grep -q 'offset 0: not a spool segment header (magic and version' "$T/verr"
echo quit >"$T/ctl"
[ $fails = 0 ]
