#!/bin/bash
# examples/topology/up.sh run as docs/deployment.md says, by hand: not
# through `meson test`'s or `meson devenv`'s environment (no
# PIXEL_MODULE_PATH), in a work directory of its own.  Pixel requests to its
# nginx must reach the mock Kafka (every line an event or a quarantine
# record), rsyslog's own messages must be in the tier's internal.log, and a
# plain `kill PID` must stop the whole topology, as Ctrl-C does.
set -u
. "$(dirname "$0")/../rsyslog/lib.sh"
px_init topology-up
[ -x /usr/sbin/haproxy ] || px_skip "haproxy is not installed"
[ -x /usr/sbin/nginx ] || px_skip "nginx is not installed"
[ -f "$RSYSLOG_MODDIR/imrelp.so" ] || px_skip "rsyslog-relp is not installed"
px_need_kafka

UP_DIR=$PX_WORK/up
env -u PIXEL_MODULE_PATH PIXEL_BUILD_DIR="$PIXEL_BUILD_DIR" \
    bash "$PIXEL_SOURCE_DIR/examples/topology/up.sh" "$UP_DIR" >"$PX_WORK/up.out" 2>&1 &
UP_PID=$!
px_track "$UP_PID"
for _ in $(seq 1 600); do
    grep -q '^Ctrl-C stops everything' "$PX_WORK/up.out" 2>/dev/null && break
    kill -0 "$UP_PID" 2>/dev/null || { cat "$PX_WORK/up.out"; px_fail "up.sh exited before the topology was up"; }
    sleep 0.1
done
grep -q '^Ctrl-C stops everything' "$PX_WORK/up.out" || px_fail "the topology did not come up in 60 s"
HTTP_PORT=$(sed -n "s|.*curl 'http://127.0.0.1:\([0-9]*\)/.*|\1|p" "$PX_WORK/up.out")
KAFKA_BROKERS=$(sed -n 's|^  kafka: *\([^ ]*\) .*|\1|p' "$PX_WORK/up.out")
[ -n "$HTTP_PORT" ] && [ -n "$KAFKA_BROKERS" ] || px_fail "cannot read the ports from up.sh's output"

# 100 pixel requests of the example's sample log, from a browser.
N=100
grep -o 'GET /px.gif?[^ ]*' "$PIXEL_SOURCE_DIR/examples/realestate/sample.log" | head -$N |
    sed 's/^GET //' >"$PX_WORK/paths"
python3 - "$HTTP_PORT" "$PX_WORK/paths" <<'PY' || px_fail "nginx did not answer"
import http.client, sys
c = http.client.HTTPConnection("127.0.0.1", int(sys.argv[1]), timeout=10)
ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
for p in open(sys.argv[2]).read().split():
    c.request("GET", p, headers={"User-Agent": ua})
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status
PY
count() { # lines in Kafka: events + quarantine records
    px_consume pixel-events "$PX_WORK/events.jsonl"
    px_consume pixel-quarantine "$PX_WORK/quarantine.jsonl"
    cat "$PX_WORK/events.jsonl" "$PX_WORK/quarantine.jsonl" | grep -c .
}
if ! px_wait_count count "$N" 60; then
    tail -3 "$UP_DIR"/tier2?.omprog.log 2>/dev/null
    px_fail "not every request reached Kafka (pixel-omprog's log above)"
fi
echo "# $N requests: $(grep -c . "$PX_WORK/events.jsonl") events, $(grep -c . "$PX_WORK/quarantine.jsonl") quarantine records in Kafka"
grep -q 'rsyslogd.*start' "$UP_DIR/tier1.internal.log" 2>/dev/null ||
    px_fail "tier one's internal.log does not have rsyslog's own messages"

# kill PID (SIGTERM), not Ctrl-C: up.sh must stop everything it started.
pids=$(pgrep -f "$UP_DIR/" | grep -v "^$$\$" | tr '\n' ' ')
kill -TERM "$UP_PID"
for _ in $(seq 1 200); do
    kill -0 "$UP_PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$UP_PID" 2>/dev/null; then
    # shellcheck disable=SC2086
    kill -KILL "$UP_PID" $pids 2>/dev/null
    px_fail "up.sh did not stop within 20 s of SIGTERM"
fi
left=""
for p in $pids; do
    kill -0 "$p" 2>/dev/null && left="$left $p"
done
[ -z "$left" ] || px_fail "still running after up.sh stopped:$left"
rm -rf "$UP_DIR"
echo PASS
