#!/bin/bash
# Throughput of one tier-two rsyslog + pixel-omprog into the mock Kafka
# cluster, with and without omprog transactions, compared in the same run
# with the same rsyslog writing the same lines to a file (the relay's own
# ceiling), with a memory queue and with tier two's Disk queue.
#
# Every configuration gets the same corpus over one TCP connection, as fast
# as rsyslog takes it.  The clock starts when the first byte is sent and
# stops at the last output: the file's modification time, or the Kafka
# timestamp (CreateTime, set by librdkafka when pixel-omprog produces) of
# the last event, or the last spool write; each run ends only when every
# expected event is in Kafka (or every record in the spool).
# The tier-two runs use examples/topology/tier2.conf.in as the tests do.
#
# librdkafka's mock brokers do not set TCP_NODELAY on their sockets, so a
# response written while an earlier one is unacknowledged waits for the
# client's delayed ACK (~40 ms): Kafka's own brokers set TCP_NODELAY.  Unless
# BENCH_MOCK_NODELAY=0, the mock runs with a small LD_PRELOAD shim (built
# here with cc) that sets it on every accepted socket.
#
#   tests/bench/omprog_bench.sh   BENCH_LINES=50000 BENCH_SLOW_LINES=2000 BENCH_RTT_MS=1
# (the slow rows, one message at a time with a delay per message, take
# BENCH_SLOW_LINES lines)
#   meson test -C BUILD --benchmark omprog
# Measure an optimized build: meson setup /tmp/omp-bench -Dbuildtype=release
set -u
. "$(dirname "$0")/../rsyslog/lib.sh"
px_init bench
px_need_kafka
M=${BENCH_LINES:-50000}
SLOW=${BENCH_SLOW_LINES:-2000}
px_corpus 99 "$M" "$PX_WORK/in.log"
head -n "$SLOW" "$PX_WORK/in.log" >"$PX_WORK/slow.log"
px_corpus 7 50 "$PX_WORK/warm.log"
SPOOL_BIN=${SPOOL_BIN:-$PIXEL_BUILD_DIR/tools/pixel-spool/pixel-spool}
now() { date +%s.%N; }

if [ "${BENCH_MOCK_NODELAY:-1}" != 0 ] && command -v cc >/dev/null; then
    cat >"$PX_WORK/nodelay.c" <<'C'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
static int nodelay(int fd)
{
    int one = 1;
    if (fd >= 0) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    return fd;
}
int accept(int s, struct sockaddr *a, socklen_t *l)
{
    int (*real)(int, struct sockaddr *, socklen_t *) = (int (*)(int, struct sockaddr *, socklen_t *))dlsym(RTLD_NEXT, "accept");
    return nodelay(real(s, a, l));
}
int accept4(int s, struct sockaddr *a, socklen_t *l, int flags)
{
    int (*real)(int, struct sockaddr *, socklen_t *, int) = (int (*)(int, struct sockaddr *, socklen_t *, int))dlsym(RTLD_NEXT, "accept4");
    return nodelay(real(s, a, l, flags));
}
C
    if cc -shared -fPIC -O2 -o "$PX_WORK/nodelay.so" "$PX_WORK/nodelay.c" -ldl 2>"$PX_WORK/nodelay.err"; then
        MOCK_NOTE="mock brokers with TCP_NODELAY, as Kafka's own"
        MOCK_PRELOAD=$PX_WORK/nodelay.so
    fi
fi
: "${MOCK_NOTE:=mock brokers as librdkafka makes them (no TCP_NODELAY)}"
: "${MOCK_PRELOAD:=}"
bench_mock() { # DIR: px_mock_kafka, with the shim
    if [ -n "$MOCK_PRELOAD" ]; then
        local real=$MOCK_KAFKA_BIN
        cat >"$PX_WORK/mock.sh" <<SH
#!/bin/sh
# A sanitizer build's runtime wants to come first; the shim does not mind.
ASAN_OPTIONS=\${ASAN_OPTIONS:-}:verify_asan_link_order=0 LD_PRELOAD=$MOCK_PRELOAD exec $real "\$@"
SH
        chmod +x "$PX_WORK/mock.sh"
        MOCK_KAFKA_BIN=$PX_WORK/mock.sh px_mock_kafka "$1"
    else
        px_mock_kafka "$1"
    fi
}

stop_rsyslog() { # NAME: SIGTERM, and wait so that the next run has the CPUs
    local pid
    eval "pid=\$RSYSLOG_PID_$1"
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
}

# result NAME LINES EVENTS T0 T1: one row of results (lines/s, events/s)
result() {
    python3 - "$@" >>"$PX_WORK/results" <<'PY'
import sys
name, lines, events, t0, t1 = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
secs = t1 - t0
ev = "%.0f" % (int(events) / secs) if events != "-" else "-"
print("%s\t%d\t%.2f\t%.0f\t%s" % (name, lines, secs, lines / secs, ev))
PY
}

# Kafka: wait until every expected event is there; print the newest timestamp (s).
kafka_done() { # DIR WANT
    local d=$1 want=$2 end=$((SECONDS + 900))
    while :; do
        timeout 120 kcat -C -q -e -b "$KAFKA_BROKERS" -t pixel-events -o beginning -f '%T\t%s\n' \
            -X topic.metadata.refresh.interval.ms=1000 >"$d/events.tsv" 2>/dev/null
        if python3 - "$d/events.tsv" "$want" >"$d/last" <<'PY'; then
import json, sys
ids, last = set(), 0
for line in open(sys.argv[1], encoding="utf-8"):
    ts, _, value = line.rstrip("\n").partition("\t")
    if not value:
        continue
    ids.add(json.loads(value).get("event_id"))
    last = max(last, int(ts))
print("%.3f" % (last / 1000.0))
sys.exit(0 if len(ids) >= int(sys.argv[2]) else 1)
PY
            cat "$d/last"
            return 0
        fi
        [ "$SECONDS" -lt "$end" ] || return 1
        sleep 1
    done
}

run_omprog() { # NAME INPUT TX [--set ...]: tier two with pixel-omprog
    local name=$1 in=$2 tx=$3 d=$PX_WORK/run-$1 tcp udp t0 t1 want
    shift 3
    mkdir -p "$d"
    px_expected "$in" "$d/expected"
    want=$(sort -u "$d/expected/events.ids" | wc -l)
    bench_mock "$d/kafka"
    if [ "${RUN_RTT_MS:-0}" != 0 ]; then
        px_kafka_cmd rtt all "$RUN_RTT_MS"
    fi
    px_delivery_yaml "$d/delivery.yaml" "$d/spool"
    tcp=$(px_free_port); udp=$(px_free_port)
    px_tier2_conf "$PX_WORK/$name.conf" "$tcp" "$udp" "$d/delivery.yaml" "$PIPELINE_SRC" "$tx"
    if [ $# -gt 0 ]; then
        sed -i "s|--delivery $d/delivery.yaml|--delivery $d/delivery.yaml $*|" "$PX_WORK/$name.conf"
    fi
    px_rsyslog_start "$name" "$PX_WORK/$name.conf"
    px_wait_port "$tcp" 30 || px_fail "rsyslog did not start ($name)"
    sleep 1
    t0=$(now)
    px_send_tcp "$tcp" "$in"
    t1=$(kafka_done "$d" "$want") || px_fail "not every event reached Kafka ($name)"
    stop_rsyslog "$name"
    result "$name" "$(wc -l <"$in")" "$want" "$t0" "$t1"
}

spool_records() { # DIR: records in the spool directory's segments
    "$SPOOL_BIN" verify --all "$1" 2>/dev/null | awk '/segments?, / {n = $3} END {print n + 0}'
}

run_spool() { # NAME INPUT TX: tier two with Kafka unreachable: every record to the spool
    local name=$1 in=$2 tx=$3 d=$PX_WORK/run-$1 tcp udp t0 t1 want base
    mkdir -p "$d"
    px_expected "$in" "$d/expected"
    want=$(($(wc -l <"$d/expected/events.ids") + $(cat "$d/expected/quarantined.count")))
    cat >"$d/delivery.yaml" <<YAML
delivery:
  kafka:
    brokers: "127.0.0.1:$(px_free_port)"
    topic: pixel-events
    delivery_timeout_ms: 1000
  quarantine:
    topic: pixel-quarantine
  spool:
    dir: $d/spool
    fsync: batch
  failover:
    probe_initial_ms: 600000
    probe_max_ms: 600000
YAML
    tcp=$(px_free_port); udp=$(px_free_port)
    px_tier2_conf "$PX_WORK/$name.conf" "$tcp" "$udp" "$d/delivery.yaml" "$PIPELINE_SRC" "$tx"
    px_rsyslog_start "$name" "$PX_WORK/$name.conf"
    px_wait_port "$tcp" 30 || px_fail "rsyslog did not start ($name)"
    # Warm up: the first records wait delivery_timeout_ms for Kafka, then
    # the sink fails over; the clock starts once it has.
    px_send_tcp "$tcp" "$PX_WORK/warm.log"
    px_wait_count "spool_records $d/spool" 1 60 || px_fail "nothing reached the spool ($name)"
    sleep 1
    base=$(spool_records "$d/spool")
    t0=$(now)
    px_send_tcp "$tcp" "$in"
    px_wait_count "spool_records $d/spool" $((base + want)) 900 || px_fail "spool incomplete ($name)"
    t1=$(python3 -c 'import glob, os, sys; print("%.3f" % max(os.stat(p).st_mtime for p in glob.glob(sys.argv[1] + "/w*/*.seg")))' "$d/spool")
    stop_rsyslog "$name"
    result "$name" "$(wc -l <"$in")" "$(wc -l <"$d/expected/events.ids")" "$t0" "$t1"
}

run_file() { # NAME memory|disk: the same relay, writing the lines to a file
    local name=$1 q=$2 tcp t0 t1 conf=$PX_WORK/$1.conf
    tcp=$(px_free_port)
    mkdir -p "$PX_WORK/$name.work"
    if [ "$q" = memory ]; then
        cat >"$conf" <<CONF
global(workDirectory="$PX_WORK/$name.work" maxMessageSize="64k")
module(load="imtcp")
template(name="pixel_raw" type="string" string="%rawmsg%\n")
input(type="imtcp" port="$tcp" address="127.0.0.1" ruleset="f")
ruleset(name="f") {
  # A memory queue big enough for the whole corpus: the default (1000
  # lines, discard after 2 s full) dropped lines here on a busy machine.
  action(type="omfile" file="$PX_WORK/$name.out" template="pixel_raw"
         queue.type="LinkedList" queue.size="1000000" queue.timeoutEnqueue="86400000"
         action.resumeRetryCount="-1")
}
CONF
    else
        # tier2.conf.in with omfile in place of the omprog action.
        px_tier2_conf "$conf" "$tcp" "$(px_free_port)" /dev/null "$PIPELINE_SRC" on
        python3 - "$conf" "$PX_WORK/$name.out" <<'PY'
import re, sys
conf = open(sys.argv[1]).read()
conf, n = re.subn(r'action\(type="omprog".*?\)\n\}', 'action(type="omfile" file="%s" template="pixel_raw")\n}' % sys.argv[2], conf, flags=re.S)
assert n == 1, "no omprog action in tier2.conf.in"
open(sys.argv[1], "w").write(conf)
PY
    fi
    px_rsyslog_start "$name" "$conf"
    px_wait_port "$tcp" 30 || px_fail "rsyslog did not start ($name)"
    sleep 1
    t0=$(now)
    px_send_tcp "$tcp" "$PX_WORK/in.log"
    px_wait_count "wc -l <$PX_WORK/$name.out 2>/dev/null || echo 0" "$M" 900 || px_fail "file incomplete ($name)"
    t1=$(python3 -c 'import os, sys; print("%.3f" % os.stat(sys.argv[1]).st_mtime)' "$PX_WORK/$name.out")
    stop_rsyslog "$name"
    result "$name" "$M" - "$t0" "$t1"
}

# Not in $(...): the helpers must stay in this shell, which ends what they start.
run_file file_mem memory
run_file file_disk disk
run_omprog tx "$PX_WORK/in.log" on
run_omprog tx_linger5 "$PX_WORK/in.log" on --set kafka.properties.linger.ms=5
run_omprog msg "$PX_WORK/in.log" off
run_omprog msg_linger5 "$PX_WORK/slow.log" off --set kafka.properties.linger.ms=5
# A Kafka further away than loopback: the mock adds RTT ms to every round trip.
RTT=${BENCH_RTT_MS:-1}
RUN_RTT_MS=$RTT run_omprog tx_rtt "$PX_WORK/in.log" on
RUN_RTT_MS=$RTT run_omprog msg_rtt "$PX_WORK/slow.log" off
# Kafka unreachable: the spool takes every record (an fsync per reply).
run_spool tx_spool "$PX_WORK/in.log" on
run_spool msg_spool "$PX_WORK/slow.log" off

buildtype=$(meson introspect --buildoptions "$PIXEL_BUILD_DIR" 2>/dev/null | python3 -c '
import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print("%s, sanitize=%s" % (o.get("buildtype"), o.get("b_sanitize")))' 2>/dev/null || echo unknown)
python3 - "$PX_WORK/results" "$RTT" <<'PY'
import sys
label = {
    "file_mem": "rsyslog -> omfile, memory queue (relay ceiling)",
    "file_disk": "rsyslog -> omfile, tier two's Disk queue",
    "tx": "tier two -> pixel-omprog -> Kafka, transactions",
    "tx_linger5": "  the same with linger.ms=5 (librdkafka's default)",
    "msg": "tier two -> pixel-omprog -> Kafka, per message",
    "msg_linger5": "  the same with linger.ms=5 (librdkafka's default)",
    "tx_rtt": "transactions, Kafka %s ms away (mock round-trip delay)" % sys.argv[2],
    "msg_rtt": "per message, Kafka %s ms away (mock round-trip delay)" % sys.argv[2],
    "tx_spool": "transactions, Kafka down: to the spool",
    "msg_spool": "per message, Kafka down: to the spool",
}
print()
print("| %-54s | %6s | %7s | %8s | %8s |" % ("one rsyslog, one TCP sender", "lines", "seconds", "lines/s", "events/s"))
print("|%s|%s|%s|%s|%s|" % ("-" * 56, "-" * 8, "-" * 9, "-" * 10, "-" * 10))
for line in open(sys.argv[1]):
    name, lines, secs, lps, eps = line.rstrip("\n").split("\t")
    print("| %-54s | %6s | %7s | %8s | %8s |" % (label[name], lines, secs, lps, eps))
PY
echo "(build: $PIXEL_BUILD_DIR, $buildtype; $MOCK_NOTE; $(nproc) CPUs)"
