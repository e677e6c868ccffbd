#!/bin/sh
# pixelconv as a user meets it: help, usage errors, bad config, bad input,
# gzip input, stats, --explain, and the example's expected output.
set -u
PIXELCONV="$PIXEL_BUILD_DIR/tools/pixelconv/pixelconv"
EX="$PIXEL_SOURCE_DIR/examples/realestate"
. "$PIXEL_SOURCE_DIR/tests/integration/checks.sh"

check "--help exits 0 and documents the exit status" \
    sh -c "[ \$('$PIXELCONV' --help | grep -c 'Exit status') = 1 ]"
check "no pipeline is a usage error (2)" [ "$(status "$PIXELCONV")" = 2 ]
check "an unknown option is a usage error (2)" [ "$(status "$PIXELCONV" -c "$EX/pipeline.yaml" --frobnicate)" = 2 ]
check "a bad -j is a usage error (2)" [ "$(status "$PIXELCONV" -c "$EX/pipeline.yaml" -j 0)" = 2 ]
echo keep >"$T/keep.jsonl"
check "--explain with --kafka is a usage error (2), --kafka-set or not" \
    [ "$(status "$PIXELCONV" -c "$EX/pipeline.yaml" --explain --kafka --kafka-set kafka.brokers=127.0.0.1:1 \
        -o "$T/keep.jsonl" /dev/null)" = 2 ]
check "... said before -o is truncated" grep -qx keep "$T/keep.jsonl"
check "--kafka-set without --kafka is a usage error (2)" \
    [ "$(status "$PIXELCONV" -c "$EX/pipeline.yaml" --kafka-set kafka.brokers=127.0.0.1:1 /dev/null)" = 2 ]
check "... that says so" grep -q -- "--kafka-set applies to --kafka only" "$T/err"

printf 'input: {pixel_paths: [/p]}\nfields:\n  a: {from: query.a, type: integr}\n' >"$T/bad.yaml"
check "a bad pipeline exits 2" [ "$(status "$PIXELCONV" -c "$T/bad.yaml" /dev/null)" = 2 ]
check "... naming file:line:column and the fix" \
    grep -q "bad.yaml:3:28: unknown type 'integr' (expected string, integer" "$T/err"
check "a missing pipeline file exits 2" [ "$(status "$PIXELCONV" -c "$T/nope.yaml" /dev/null)" = 2 ]
check "a missing input file exits 1" [ "$(status "$PIXELCONV" -c "$EX/pipeline.yaml" "$T/missing.log")" = 1 ]
check "... and says which" grep -q "missing.log" "$T/err"
mkdir "$T/adir"
check "a directory as input exits 1" [ "$(status "$PIXELCONV" -c "$EX/pipeline.yaml" -o /dev/null "$T/adir")" = 1 ]
check "... naming it and the system's reason" grep -q "adir: read error: Is a directory" "$T/err"

run() { "$PIXELCONV" -c "$EX/pipeline.yaml" --fixed-time 2026-11-26T12:00:00Z --quiet "$@"; }

# --fixed-time takes RFC 3339 times: an offset, a fraction of any length
# (cut to milliseconds; ".5" is 500 ms), nothing else
ingest() { head -n 3 "$EX/sample.log" | "$PIXELCONV" -c "$EX/pipeline.yaml" --fixed-time "$1" --quiet |
    head -n 1 | grep -o '"ingest_time":"[^"]*"'; }
check "--fixed-time with an offset and a long fraction" \
    [ "$(ingest 2026-11-26T13:30:00.123456+01:30)" = '"ingest_time":"2026-11-26T12:00:00.123Z"' ]
check "--fixed-time .5 is half a second" \
    [ "$(ingest 2026-11-26T12:00:00.5Z)" = '"ingest_time":"2026-11-26T12:00:00.500Z"' ]
for bad in 2026-11-26T12:00:00 2026-02-29T00:00:00Z 2026-11-26T12:00:00.Z 2026-11-26T12:00:00+1:00 \
    "2026-11-26T12:00:00Z junk"; do
    check "--fixed-time '$bad' is a usage error (2)" \
        [ "$(status "$PIXELCONV" -c "$EX/pipeline.yaml" --fixed-time "$bad" /dev/null)" = 2 ]
done
check "... that says what it takes" grep -q "fixed-time takes an RFC 3339 time" "$T/err"
if [ -w /dev/full ]; then
    check "events that cannot be written exit 1" \
        [ "$(status run -o /dev/full -q /dev/null "$EX/sample.log")" = 1 ]
    check "... naming the events, the file and the reason" \
        grep -qx "pixelconv: writing events to /dev/full failed: No space left on device" "$T/err"
    check "quarantine records that cannot be written exit 1" \
        [ "$(status run -o /dev/null -q /dev/full "$EX/sample.log")" = 1 ]
    check "... naming the quarantine records, not the events" \
        grep -qx "pixelconv: writing quarantine records to /dev/full failed: No space left on device" "$T/err"
    # The conversion stops at the first failed write instead of converting
    # the rest for nothing.  Reading runs at most the ring (4 batches of
    # 1 MiB at -j 2) ahead of the first write, so the input is 10 MB: with
    # 3 MB, -j 2 could read all of it before that write failed.
    for _ in $(seq 40); do cat "$EX/sample.log"; done >"$T/big.log"
    for jobs in 1 2; do
        check "-j $jobs: a write that fails stops the conversion" \
            [ "$(status run -j $jobs -o /dev/full -q /dev/null -s "$T/stf" "$T/big.log")" = 1 ]
        check "... saying so" grep -q "No space left on device; stopped there: the rest of the input" "$T/err"
        check "... with less than the input converted" python3 -c "
import json, sys; sys.exit(0 if json.load(open('$T/stf'))['lines'] < 40 * 400 else 1)"
    done
fi
check "a stats file that cannot be written exits 1 before anything is converted" \
    [ "$(status run -o "$T/ev0" -s "$T/no/such/dir/st" "$EX/sample.log")" = 1 ]
check "... naming it and the reason, with no events written" \
    sh -c "grep -q 'no/such/dir/st: No such file or directory' '$T/err' && [ ! -e '$T/ev0' ]"
run -o "$T/ev" -q "$T/qr" -s "$T/st" "$EX/sample.log"
check "the example's events are as expected" cmp -s "$T/ev" "$EX/expected/events.jsonl"
check "the example's quarantine records are as expected" cmp -s "$T/qr" "$EX/expected/quarantine.jsonl"
check "the example's stats are as expected" cmp -s "$T/st" "$EX/expected/stats.json"
check "stats add up" python3 -c "
import json,sys; s=json.load(open('$T/st'))
sys.exit(0 if s['lines']==s['events']+s['quarantined']+s['skipped']+s['dropped'] else 1)"

gzip -c "$EX/sample.log" >"$T/sample.log.gz"
run -o "$T/ev2" -q "$T/qr2" "$T/sample.log.gz"
check "gzip input gives the same events" cmp -s "$T/ev2" "$EX/expected/events.jsonl"
head -c 20000 "$T/sample.log.gz" >"$T/cut.gz"
check "a gzip file cut short is an I/O failure (1)" [ "$(status run -q /dev/null "$T/cut.gz")" = 1 ]
check "... that names the file" grep -q "cut.gz: .*damaged or incomplete" "$T/err"
run -q "$T/qr3" <"$EX/sample.log" >"$T/ev3"
check "stdin gives the same events" cmp -s "$T/ev3" "$EX/expected/events.jsonl"
# Input is told plain or gzip by its first bytes, whether it is a file or a pipe.
cat "$EX/sample.log" | run -q /dev/null >"$T/ev5"
check "plain text through a pipe gives the same events" cmp -s "$T/ev5" "$EX/expected/events.jsonl"
run -q /dev/null <"$T/sample.log.gz" >"$T/ev6"
check "gzip on stdin gives the same events" cmp -s "$T/ev6" "$EX/expected/events.jsonl"
gzip -c "$EX/sample.log" | run -q /dev/null >"$T/ev7"
check "gzip through a pipe gives the same events" cmp -s "$T/ev7" "$EX/expected/events.jsonl"
cat "$EX/expected/events.jsonl" "$EX/expected/events.jsonl" >"$T/twice"
run -j 2 -q /dev/null "$T/sample.log.gz" "$EX/sample.log" >"$T/ev8"
check "a gzip file then a plain one, -j 2: both, in order" cmp -s "$T/ev8" "$T/twice"
# gzip as gzip -d takes it: zero padding after the data is ignored (see the
# live tests below); other bytes after it are said and fail the run, the
# lines before them converted; a corrupt stream is named.
cp "$T/sample.log.gz" "$T/tail.gz"
printf 'not gzip\n' >>"$T/tail.gz"
check "trailing garbage after gzip data is an I/O failure (1)" \
    [ "$(status run -q /dev/null -o "$T/ev9" "$T/tail.gz")" = 1 ]
check "... that names the file" grep -q "tail.gz: trailing garbage after the gzip data" "$T/err"
check "... after converting every line before it" cmp -s "$T/ev9" "$EX/expected/events.jsonl"
python3 -c "
import sys; b = bytearray(open(sys.argv[1], 'rb').read())
b[3000:3040] = b'\xff' * 40
open(sys.argv[2], 'wb').write(b)" "$T/sample.log.gz" "$T/corrupt.gz"
check "a corrupt gzip file is an I/O failure (1)" [ "$(status run -q /dev/null "$T/corrupt.gz")" = 1 ]
check "... that names the file as damaged" grep -q "corrupt.gz: .*damaged or incomplete" "$T/err"

# Live input: a producer writes the first N lines into a pipe and keeps it
# open until $T/stop exists; what those lines make must come out while it
# waits (not when 256 KB have come, or the pipe closes).
N=60
head -n $N "$EX/sample.log" >"$T/head.log"
run -o "$T/hev" -q "$T/hqr" "$T/head.log"
PRODUCE="python3 $PIXEL_SOURCE_DIR/tests/integration/live_producer.py"
arrived() { # events and quarantine records of the N lines are out within 10 s
    for _ in $(seq 100); do
        cmp -s "$T/lev" "$T/hev" && cmp -s "$T/lqr" "$T/hqr" && return 0
        sleep 0.1
    done
    return 1
}
live() { # PRODUCER-OPTIONS... : pixelconv on the producer's pipe (stdin)
    rm -f "$T/stop" "$T/lev" "$T/lqr"
    $PRODUCE "$@" "$EX/sample.log" $N "$T/stop" | run -o "$T/lev" -q "$T/lqr" 2>"$T/lerr" &
    PC=$!
}
finish() { # lets the producer end; pixelconv's exit status in $RC
    touch "$T/stop"
    wait $PC
    RC=$?
}
check "the first $N lines make events and quarantine records, to wait for" \
    sh -c "[ -s '$T/hev' ] && [ -s '$T/hqr' ]"
live
check "plain text from a pipe held open: events and quarantine records come out" arrived
finish
check "... and it exits 0 when the pipe closes" [ "$RC" = 0 ]
rm -f "$T/stop" "$T/lev" "$T/lqr"
mkfifo "$T/fifo"
run -j 2 -o "$T/lev" -q "$T/lqr" "$T/fifo" 2>"$T/lerr" &
PC=$!
$PRODUCE "$EX/sample.log" $N "$T/stop" >"$T/fifo" &
check "a FIFO named as input, -j 2: the lines come out while it is open" arrived
finish
check "... and it exits 0 when it closes" [ "$RC" = 0 ]
live --gzip --end zeros
check "gzip on stdin, held open: what has come is decoded and goes out" arrived
finish
check "... and it exits 0, the zero padding after it ignored" [ "$RC" = 0 ]
check "... saying nothing" [ ! -s "$T/lerr" ]
live --gzip --members 15,30,45
check "concatenated gzip members, the last held open: all of them go out" arrived
finish
check "... and it exits 0, every line converted once" \
    sh -c "[ $RC = 0 ] && cmp -s '$T/lev' '$T/hev' && cmp -s '$T/lqr' '$T/hqr'"
live --gzip --end cut
check "a gzip stream on a pipe: its lines go out before it is cut short" arrived
finish
check "... which is an I/O failure (1)" [ "$RC" = 1 ]
check "... naming stdin as damaged or incomplete" \
    grep -q "<stdin>: unexpected end of file (the file is damaged or incomplete)" "$T/lerr"
# Regular files, then input that may wait (stdin held open with nothing in
# it yet, a FIFO): what the files made is written before the wait, not held
# in a buffer until the pipe sends something or closes.
gzip -c "$T/head.log" >"$T/head.log.gz"
rm -f "$T/stop" "$T/lev" "$T/lqr"
$PRODUCE "$EX/sample.log" 0 "$T/stop" | run -o "$T/lev" -q "$T/lqr" "$T/head.log" - 2>"$T/lerr" &
PC=$!
check "a file, then a pipe that stays quiet: the file's lines come out before the wait" arrived
finish
check "... and it exits 0" [ "$RC" = 0 ]
rm -f "$T/stop" "$T/lev" "$T/lqr" "$T/fifo2"
mkfifo "$T/fifo2"
: >"$T/empty.log"
run -j 2 -o "$T/lev" -q "$T/lqr" "$T/empty.log" "$T/head.log.gz" "$T/gone.log" "$T/fifo2" 2>"$T/lerr" &
PC=$!
$PRODUCE "$EX/sample.log" 0 "$T/stop" >"$T/fifo2" &
check "a gzip file, then a FIFO with nothing yet (-j 2, a missing file between): its lines come out" arrived
finish
check "... and the missing file makes it exit 1" [ "$RC" = 1 ]
# The same with a gzip file whose lines end exactly where a batch does (1 MiB)
# and zero padding after its data: the batch is full before the padding is
# read, and reading the padding ends the file only then, with nothing left
# to convert.
python3 -c "
import sys
lines = open(sys.argv[1], 'rb').read().splitlines(keepends=True)
out, i = bytearray(), 0
while len(out) + len(lines[i % len(lines)]) + 200 < 1 << 20:
    out += lines[i % len(lines)]
    i += 1
out += b'x' * ((1 << 20) - len(out) - 1) + b'\\n'
open(sys.argv[2], 'wb').write(out)" "$EX/sample.log" "$T/mib.log"
gzip -c "$T/mib.log" >"$T/mib.log.gz"
head -c 512 /dev/zero >>"$T/mib.log.gz"
run -o "$T/mev" -q "$T/mqr" "$T/mib.log"
check "a gzip file of exactly one batch (1 MiB) and zero padding, then a quiet pipe" \
    sh -c "[ \$(wc -c <'$T/mib.log') = 1048576 ] && [ -s '$T/mev' ]"
arrived_mib() {
    for _ in $(seq 100); do
        cmp -s "$T/lev" "$T/mev" && cmp -s "$T/lqr" "$T/mqr" && return 0
        sleep 0.1
    done
    return 1
}
for jobs in 1 2; do
    rm -f "$T/stop" "$T/lev" "$T/lqr"
    $PRODUCE "$EX/sample.log" 0 "$T/stop" |
        run -j $jobs -o "$T/lev" -q "$T/lqr" "$T/mib.log.gz" - 2>"$T/lerr" &
    PC=$!
    check "... -j $jobs: its lines come out before the wait" arrived_mib
    finish
    check "... and it exits 0" [ "$RC" = 0 ]
done
run --explain "$T/head.log" >"$T/hexp"
rm -f "$T/stop" "$T/lexp"
$PRODUCE "$EX/sample.log" 0 "$T/stop" | run --explain "$T/head.log" - >"$T/lexp" 2>"$T/lerr" &
PC=$!
explained() {
    for _ in $(seq 100); do cmp -s "$T/lexp" "$T/hexp" && return 0; sleep 0.1; done
    return 1
}
check "--explain of a file, then a quiet pipe: the file's lines are explained before the wait" explained
finish
# A stdin pipe left non-blocking by the program that made it: read() says
# EAGAIN whenever the producer is behind, which is a wait, not an error.
python3 -c "
import os, subprocess, sys, time
r, w = os.pipe()
os.set_blocking(r, False)
p = subprocess.Popen(sys.argv[2:], stdin=r)
os.close(r)
data = open(sys.argv[1], 'rb').read()
try:
    for i in range(0, len(data), 40000):
        os.write(w, data[i:i + 40000])
        time.sleep(0.1)
finally:
    os.close(w)
sys.exit(p.wait())" "$EX/sample.log" "$PIXELCONV" -c "$EX/pipeline.yaml" --fixed-time 2026-11-26T12:00:00Z \
    --quiet -o "$T/nbev" -q /dev/null 2>"$T/nberr"
check "a non-blocking stdin pipe with a slow producer: exit 0" [ $? = 0 ]
check "... every line converted" cmp -s "$T/nbev" "$EX/expected/events.jsonl"

head -n 2 "$EX/sample.log" | head -c -1 >"$T/nonl.log"
run -q /dev/null -s "$T/st4" "$T/nonl.log" "$T/nonl.log" >/dev/null
check "a last line without a newline still counts, in each file" grep -q '"lines":4,' "$T/st4"

head -n 1 "$EX/sample.log" | run --explain >"$T/explain"
check "--explain shows every stage" sh -c "grep -q '^parse:' '$T/explain' && grep -q '^map:' '$T/explain' && grep -q '^verdict:' '$T/explain' && grep -q 'query.uid' '$T/explain'"

[ $fails = 0 ]
