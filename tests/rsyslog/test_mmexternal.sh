#!/bin/bash
# pixel-mmexternal inside real rsyslog: each line comes back with
# $!pixel_outcome and $!pixel (the event or the quarantine record), which a
# plain omfile template writes out.  Counts match the library's own.
#
# Then a reload, as an operator does it (rsyslog does not forward its HUP to
# mmexternal programs: the HUP goes to pixel-mmexternal itself), once with a
# good pipeline and once with a broken one.  mmexternal reads the program's
# stderr from the same pipe as its replies, so a log line written there
# would be taken for a reply and leave one message without its outcome:
# every line must still come out with one, the broken reload must leave the
# old pipeline serving, and what the reloads logged must be in --log-file.
set -u
. "$(dirname "$0")/lib.sh"
px_init mmexternal
[ -f "$RSYSLOG_MODDIR/mmexternal.so" ] || px_skip "rsyslog's mmexternal module is missing"
[ -x "$MMEXTERNAL_BIN" ] || px_skip "pixel-mmexternal is not built"

px_corpus 41 500 "$PX_WORK/in.log"
px_expected "$PX_WORK/in.log" "$PX_WORK/expected"
want=$(wc -l <"$PX_WORK/expected/events.ids")
want_q=$(cat "$PX_WORK/expected/quarantined.count")
# The pipeline at the same depth as the original (its relative paths still
# resolve), so that the test can break it for the reload.
mkdir -p "$PX_WORK/examples/realestate"
for d in schemas modules; do ln -s "$PIXEL_SOURCE_DIR/$d" "$PX_WORK/$d"; done
PIPELINE=$PX_WORK/examples/realestate/pipeline.yaml
cp "$PIPELINE_SRC" "$PIPELINE"
TCP=$(px_free_port)
cat >"$PX_WORK/mm.conf" <<CONF
global(workDirectory="$PX_WORK")
module(load="imtcp")
module(load="mmexternal")
template(name="out" type="string" string="%\$!pixel_outcome% %\$!pixel%\n")
input(type="imtcp" port="$TCP" address="127.0.0.1" ruleset="pixel")
ruleset(name="pixel") {
  action(type="mmexternal" binary="$MMEXTERNAL_BIN --module-path ${PIXEL_MODULE_PATH:-/nonexistent} --log-file $PX_WORK/mm.log $PIPELINE" interface.input="rawmsg")
  action(type="omfile" file="$PX_WORK/out.txt" template="out")
}
CONF
px_rsyslog_start mm "$PX_WORK/mm.conf"
px_wait_port "$TCP" 30 || px_fail "rsyslog did not listen"
px_send_tcp "$TCP" "$PX_WORK/in.log"
px_wait_count "wc -l <$PX_WORK/out.txt 2>/dev/null || echo 0" 500 60 || px_fail "not every line came out"
grep '^event ' "$PX_WORK/out.txt" | cut -d' ' -f2- >"$PX_WORK/events.jsonl"
got=$(px_ids "$PX_WORK/events.jsonl" | sort -u | wc -l)
got_q=$(grep -c '^quarantined ' "$PX_WORK/out.txt")
echo "# expected events=$want quarantined=$want_q; mmexternal events=$got quarantined=$got_q"
[ "$got" -eq "$want" ] || px_fail "events differ"
[ "$got_q" -eq "$want_q" ] || px_fail "quarantine records differ"

# reload ROUND: HUP pixel-mmexternal, send the corpus again, then every line
# so far (500 a round) must have come out with an outcome, and the events as
# many times as the rounds.
reload() {
    local child total=$(($1 * 500))
    child=$(pgrep -P "$RSYSLOG_PID_mm" -f pixel-mmexternal | head -1)
    [ -n "$child" ] || px_fail "no pixel-mmexternal running under rsyslog"
    kill -HUP "$child"
    px_send_tcp "$TCP" "$PX_WORK/in.log"
    px_wait_count "wc -l <$PX_WORK/out.txt" "$total" 60 || px_fail "round $1: not every line came out"
    sleep 1 # anything more that would come out
    local lines none events
    lines=$(wc -l <"$PX_WORK/out.txt")
    none=$(grep -cv -E '^(event|quarantined|skipped|dropped) ' "$PX_WORK/out.txt")
    events=$(grep -c '^event ' "$PX_WORK/out.txt")
    echo "# round $1: $lines lines out, $none without an outcome, $events events"
    [ "$lines" -eq "$total" ] || px_fail "round $1: $lines lines came out, not $total"
    [ "$none" -eq 0 ] || px_fail "round $1: $none lines came out without an outcome (a log line taken for a reply?)"
    [ "$events" -eq $(($1 * want)) ] || px_fail "round $1: $events events, not $(($1 * want))"
}
reload 2
grep -q 'info: reloaded pipeline realestate' "$PX_WORK/mm.log" || px_fail "--log-file has no 'reloaded' line"
# every line of the log file starts with its UTC time (RFC 3339, milliseconds)
unstamped=$(grep -cvE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z pixel-mmexternal\[[0-9]+\]: ' "$PX_WORK/mm.log" || true)
[ "$unstamped" -eq 0 ] || px_fail "--log-file has $unstamped lines without a time stamp"
echo 'fields: [unclosed' >"$PIPELINE"
reload 3
grep -q 'error: reload failed: still serving pipeline realestate' "$PX_WORK/mm.log" ||
    px_fail "--log-file has no 'reload failed' line"

# Started as mmexternal starts it (stderr on the reply pipe) and without
# --log-file, the logs of a reload must not reach the replies either.
cp "$PIPELINE_SRC" "$PIPELINE"
python3 - "$MMEXTERNAL_BIN" "${PIXEL_MODULE_PATH:-/nonexistent}" "$PIPELINE" "$PX_WORK/in.log" <<'PY' ||
import os, signal, subprocess, sys, time
binary, mpath, pipeline, corpus = sys.argv[1:]
lines = open(corpus, "rb").read().splitlines()[:20]
r, w = os.pipe()
p = subprocess.Popen([binary, "--module-path", mpath, pipeline], stdin=subprocess.PIPE,
                     stdout=w, stderr=w)
os.close(w)
out = os.fdopen(r, "rb")
replies = []
for i, l in enumerate(lines):
    if i == 10:
        p.send_signal(signal.SIGHUP)
        time.sleep(0.2)
    p.stdin.write(l + b"\n")
    p.stdin.flush()
    replies.append(out.readline())
p.stdin.close()
p.wait()
rest = out.read()
bad = [x for x in replies if not x.startswith(b'{"$!":')] + ([rest] if rest else [])
if bad:
    sys.exit("not a reply on the reply pipe: %r" % bad[0][:200])
PY
    px_fail "pixel-mmexternal wrote a log line into its replies"

# Started with a pipeline that does not load: one pixel-mmexternal stays
# (were it to exit, rsyslog would start one per message) and answers every
# line with outcome "error" and the reason; once the file is fixed, the
# next line loads it, without a HUP or an rsyslog restart.
LATE=$PX_WORK/examples/realestate/late.yaml
echo 'fields: [unclosed' >"$LATE"
TCP2=$(px_free_port)
cat >"$PX_WORK/mm2.conf" <<CONF
global(workDirectory="$PX_WORK")
module(load="imtcp")
module(load="mmexternal")
template(name="out2" type="string" string="%\$!pixel_outcome% %\$!pixel_error%\n")
input(type="imtcp" port="$TCP2" address="127.0.0.1" ruleset="late")
ruleset(name="late") {
  action(type="mmexternal" binary="$MMEXTERNAL_BIN --module-path ${PIXEL_MODULE_PATH:-/nonexistent} --log-file $PX_WORK/mm2.log $LATE" interface.input="rawmsg")
  action(type="omfile" file="$PX_WORK/out2.txt" template="out2")
}
CONF
px_rsyslog_start mm2 "$PX_WORK/mm2.conf"
px_wait_port "$TCP2" 30 || px_fail "rsyslog (mm2) did not listen"
px_send_tcp "$TCP2" "$PX_WORK/in.log"
px_wait_count "wc -l <$PX_WORK/out2.txt 2>/dev/null || echo 0" 500 60 || px_fail "unloaded: not every line came out"
errors=$(grep -c "^error pipeline $LATE: $LATE:2:1: YAML syntax" "$PX_WORK/out2.txt")
starts=$(grep -c "error: pipeline $LATE" "$PX_WORK/mm2.log")
child=$(pgrep -P "$RSYSLOG_PID_mm2" -f pixel-mmexternal | head -1)
echo "# unloaded: $errors of 500 lines answered error with the reason; $starts start(s) logged"
[ "$errors" -eq 500 ] || px_fail "unloaded: $errors lines of 500 answered with the reason"
[ "$starts" -eq 1 ] || px_fail "unloaded: pixel-mmexternal started $starts times, not once"
cp "$PIPELINE_SRC" "$LATE"
sleep 1.2 # the file is looked at once a second at most
px_send_tcp "$TCP2" "$PX_WORK/in.log"
px_wait_count "wc -l <$PX_WORK/out2.txt" 1000 60 || px_fail "fixed: not every line came out"
late_events=$(tail -n 500 "$PX_WORK/out2.txt" | grep -c '^event ')
late_errors=$(tail -n 500 "$PX_WORK/out2.txt" | grep -c '^error ')
echo "# fixed: $late_events events, $late_errors errors in the next 500 lines"
[ "$late_events" -eq "$want" ] || px_fail "fixed: $late_events events, not $want"
[ "$late_errors" -eq 0 ] || px_fail "fixed: $late_errors lines still answered error"
grep -q 'info: loaded pipeline realestate' "$PX_WORK/mm2.log" || px_fail "fixed: no 'loaded pipeline' log line"
[ "$(pgrep -P "$RSYSLOG_PID_mm2" -f pixel-mmexternal | head -1)" = "$child" ] ||
    px_fail "fixed: a new pixel-mmexternal was started"
echo PASS
