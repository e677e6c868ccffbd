#!/bin/bash
# End-to-end fault test of the two-tier topology (examples/topology/).
#
# N pixel requests go to nginx with curl while, one after the other:
#   1. one tier-two rsyslog is SIGKILLed (HAProxy moves the traffic; what it
#      had acknowledged over RELP waits in its disk queue), then restarted;
#   2. every Kafka broker goes down (tier two spools); two seconds later,
#      while the other instance holds a backlog waiting on Kafka, it is
#      SIGKILLed with its pixel-omprog (a host crash), restarted; Kafka up;
#   3. both tier-two instances stop (tier one fails over to its file), then back.
# Then the spool and tier one's failover file are replayed with pixel-replay,
# the topics are consumed, and a table is printed.  It fails if any valid
# event nginx served is missing from Kafka, or if a tier-two rsyslog reports
# that its disk queue lost messages.
#
# Tier two runs the docs' configuration: useTransactions="off", and
# pixel-queue-trim on its queue before every start (the docs' ExecStartPre=).
# A SIGKILL between a queue write and its checkpoint (fault 2 hit that window
# in 1 of 10 sanitized runs, and in the run that first lost an event) would
# otherwise make the restarted rsyslog lose the first lines it acknowledges
# once it has drained its backlog (docs/deployment.md, "A tier-two SIGKILL
# between a queue write and its checkpoint"); rsyslog-queue-trim builds
# that state on purpose.
#
#   FAULT_N=20000 (requests)  FAULT_RATE=500 (requests/s)
#   TOPO_TRANSACTIONS=on      tier two with useTransactions="on" instead
set -u
export TOPO_LIB=1
. "$(dirname "$0")/../../examples/topology/up.sh"
N=${FAULT_N:-20000}
RATE=${FAULT_RATE:-500}
px_init topology
command -v curl >/dev/null || px_skip "curl is not installed"
topo_up
px_log "topology up: nginx :$HTTP_PORT, tier one :$T1_UDP, haproxy :$HAPROXY_PORT, kafka $KAFKA_BROKERS"

# Request URLs from the shared corpus (pixel hits, broken hits, other paths).
px_corpus 7 $((N + N / 10)) "$PX_WORK/corpus.log"
python3 - "$PX_WORK/corpus.log" "$N" "$HTTP_PORT" >"$PX_WORK/urls.cfg" <<'PY'
import sys, re
path, n, port = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = 0
for line in open(path, encoding="utf-8", errors="replace"):
    m = re.search(r'"GET (/[^ "]*) HTTP/[0-9.]+" \d+ \d+ "([^"]*)" "([^"]*)"$', line.rstrip("\n"))
    if not m or any(c in m.group(1) for c in '"\\ '):
        continue
    # The browser's own user agent and referer, so that nginx logs what a
    # real visitor would (the pipeline's botfilter drops the crawlers).
    # One operation per request ("next"): curl's options are per operation.
    if out:
        print("next")
    print('url = "http://127.0.0.1:%s%s"\noutput = "/dev/null"\ngloboff\npath-as-is' % (port, m.group(1)))
    print('user-agent = "%s"' % m.group(3).replace("\\", "\\\\"))
    if m.group(2) != "-":
        print('referer = "%s"' % m.group(2))
    out += 1
    if out == n:
        break
PY
sent=$(grep -c '^url' "$PX_WORK/urls.cfg")
[ "$sent" -ge "$N" ] || px_fail "only $sent URLs from the corpus"
start=$(date +%s)
curl -s -g --path-as-is --rate "$RATE/s" -K "$PX_WORK/urls.cfg" 2>"$PX_WORK/curl.err" &
curl_pid=$!
px_track $curl_pid
at() { # wait until second $1 of the run
    while [ $(($(date +%s) - start)) -lt "$1" ]; do sleep 0.2; done
}
dur=$((N / RATE))
kills=0
at $((dur * 10 / 100)); px_log "fault 1: SIGKILL tier two A";       topo_tier2_kill A; kills=$((kills + 1))
at $((dur * 25 / 100)); px_log "fault 1 over: start tier two A";    topo_tier2_start A
at $((dur * 35 / 100)); px_log "fault 2: all Kafka brokers down";   px_kafka_cmd down all
# Within the sink's delivery timeout (5 s): B's queue holds lines waiting on Kafka.
at $((dur * 35 / 100 + 2)); px_log "fault 2: SIGKILL tier two B and its pixel-omprog"
topo_tier2_kill B all; kills=$((kills + 1))
at $((dur * 45 / 100)); px_log "fault 2: start tier two B";         topo_tier2_start B
at $((dur * 55 / 100)); px_log "fault 2 over: Kafka brokers up";    px_kafka_cmd up all
at $((dur * 65 / 100)); px_log "fault 3: stop both tier-two";        topo_tier2_stop A; topo_tier2_stop B
at $((dur * 85 / 100)); px_log "fault 3 over: start both tier-two";  topo_tier2_start A; topo_tier2_start B
wait $curl_pid
px_log "curl done after $(($(date +%s) - start)) s"

# Let tier one and tier two drain: until Kafka stops growing for 10 s.
events_now() { px_consume pixel-events "$PX_WORK/events.out"; wc -l <"$PX_WORK/events.out"; }
last=-1; still=0
for _ in $(seq 1 120); do
    now=$(events_now)
    if [ "$now" -eq "$last" ]; then still=$((still + 1)); else still=0; fi
    last=$now
    [ "$still" -ge 5 ] && break
    sleep 2
done
# Stop tier two (seals its spool segments), wait for the pixel-omprog of
# the killed rsyslog to finish its flush, then replay spool and failover file.
topo_tier2_stop A; topo_tier2_stop B
topo_wait_orphans 60
spooled=$(find "$PX_WORK/spool" -name '*.seg' -size +16c 2>/dev/null | wc -l)
failover_lines=$( [ -f "$FAILOVER_FILE" ] && wc -l <"$FAILOVER_FILE" || echo 0)
px_log "replaying the spool ($spooled segments) and tier one's failover file ($failover_lines lines)"
"$REPLAY_BIN" -c "$TOPO_PIPELINE" >"$PX_WORK/replay-spool.log" 2>&1
echo "# pixel-replay (spool) exit $?"
if [ "$failover_lines" -gt 0 ]; then
    "$REPLAY_BIN" -c "$TOPO_PIPELINE" -q "$FAILOVER_FILE" >"$PX_WORK/replay-failover.log" 2>&1
    echo "# pixel-replay -q (failover file) exit $?"
    # Its quarantine records may have gone to a new spool segment: replay again.
    "$REPLAY_BIN" -c "$TOPO_PIPELINE" >>"$PX_WORK/replay-spool.log" 2>&1
fi

# Ground truth: what nginx served, through the same pipeline in file mode.
awk '{print "<190>Nov 26 00:00:00 web01 nginx: " $0}' "$PX_WORK/nginx/access.log" >"$PX_WORK/served.log"
px_expected "$PX_WORK/served.log" "$PX_WORK/expected" "$TOPO_PIPELINE"
served=$(wc -l <"$PX_WORK/served.log")
px_consume pixel-events "$PX_WORK/events.out"
px_consume pixel-quarantine "$PX_WORK/quarantine.out"
px_ids "$PX_WORK/events.out" >"$PX_WORK/got.ids"
kafka_total=$(wc -l <"$PX_WORK/got.ids")
kafka_unique=$(sort -u "$PX_WORK/got.ids" | wc -l)
want_events=$(sort -u "$PX_WORK/expected/events.ids" | wc -l)
want_q=$(cat "$PX_WORK/expected/quarantined.count")
q_unique=$(python3 -c '
import json, sys
print(len({json.loads(l).get("raw", l) for l in open(sys.argv[1]) if l.strip()}))' "$PX_WORK/quarantine.out")
missing=$(comm -23 <(sort -u "$PX_WORK/expected/events.ids") <(sort -u "$PX_WORK/got.ids") | wc -l)
unexpected=$(comm -13 <(sort -u "$PX_WORK/expected/events.ids") <(sort -u "$PX_WORK/got.ids") | wc -l)
skipped=$((served - want_events - want_q))
# Restarts whose queue had bytes past its last checkpoint (pixel-queue-trim cut them).
trimmed=$(cat "$PX_WORK"/tier2?.trim.log 2>/dev/null | grep -c ': cut from ')
# rsyslog's own word that a disk queue lost messages (its stdout, every instance).
queue_lost=$(cat "$PX_WORK"/tier2?.stdout 2>/dev/null |
    grep -E 'messages from diskqueue|fewer than specified in \.qi|qDeqDisk error' | head -3)

printf '\n| %-42s | %8s |\n' "measure" "count"
printf '|%s|%s|\n' "$(printf -- '-%.0s' $(seq 1 44))" "$(printf -- '-%.0s' $(seq 1 10))"
row() { printf '| %-42s | %8s |\n' "$1" "$2"; }
row "requests sent (curl)" "$sent"
row "requests served (nginx access log)" "$served"
row "valid events expected" "$want_events"
row "events in Kafka (unique event IDs)" "$kafka_unique"
row "events in Kafka (messages)" "$kafka_total"
row "duplicates (messages - unique)" "$((kafka_total - kafka_unique))"
row "quarantined expected" "$want_q"
row "quarantine records in Kafka (unique)" "$q_unique"
row "skipped or dropped (other paths, crawlers)" "$skipped"
row "tier-two omprog useTransactions" "${TOPO_TRANSACTIONS:-off}"
row "tier-two rsyslog SIGKILLs" "$kills"
row "queues cut back at restart (queue-trim)" "$trimmed"
row "tier-one failover lines replayed" "$failover_lines"
row "spool segments replayed" "$spooled"
row "valid events missing" "$missing"
row "events not expected" "$unexpected"
echo

[ "$served" -ge "$N" ] || px_fail "nginx served $served of $N requests"
[ -z "$queue_lost" ] || echo "# tier two's disk queue: $queue_lost"
[ "$missing" -eq 0 ] || px_fail "$missing valid events are missing from Kafka"
[ -z "$queue_lost" ] || px_fail "a tier-two rsyslog reported lost disk-queue messages"
echo PASS
