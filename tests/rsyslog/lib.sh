# Shared helpers for the rsyslog integration tests, the topology and the
# benchmark.  Source it; it needs PIXEL_SOURCE_DIR and PIXEL_BUILD_DIR (set
# by meson's test environment, or derived from this file's location).
#
# Every process started through these helpers is remembered and ended by
# px_cleanup (installed as the EXIT trap by px_init), by its PID only.
# Network: 127.0.0.1 only, ports picked free at run time.

PX_PIDS=""
PX_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${PIXEL_SOURCE_DIR:=$(cd "$PX_LIB_DIR/../.." && pwd)}"
: "${PIXEL_BUILD_DIR:=$PIXEL_SOURCE_DIR/build}"
: "${PIXEL_SHARED_DIR:=$PIXEL_SOURCE_DIR/../shared}"
# The uninstalled tools find the modules built beside them through
# PIXEL_MODULE_PATH, which `meson test` and `meson devenv` set, and rsyslog's
# omprog passes on to pixel-omprog.  Run by hand (examples/topology/up.sh,
# the benchmarks), nothing set it: pixel-omprog looked in the install
# directory, failed to load the pipeline and was restarted over and over.
if [ -z "${PIXEL_MODULE_PATH:-}" ] && [ -d "$PIXEL_BUILD_DIR/modules" ]; then
    PIXEL_MODULE_PATH=$(find "$PIXEL_BUILD_DIR/modules" -mindepth 2 -maxdepth 2 -name '*.so' \
        -printf '%h\n' | sort -u | tr '\n' ':')
    export PIXEL_MODULE_PATH=${PIXEL_MODULE_PATH%:}
fi
RSYSLOGD=${RSYSLOGD:-/usr/sbin/rsyslogd}
RSYSLOG_MODDIR=${RSYSLOG_MODDIR:-/usr/lib/x86_64-linux-gnu/rsyslog}
OMPROG_BIN=${OMPROG_BIN:-$PIXEL_BUILD_DIR/tools/pixel-omprog/pixel-omprog}
MMEXTERNAL_BIN=${MMEXTERNAL_BIN:-$PIXEL_BUILD_DIR/tools/pixel-mmexternal/pixel-mmexternal}
QUEUE_TRIM_BIN=${QUEUE_TRIM_BIN:-$PIXEL_BUILD_DIR/tools/pixel-queue-trim/pixel-queue-trim}
MOCK_KAFKA_BIN=${MOCK_KAFKA_BIN:-$PIXEL_BUILD_DIR/tools/pixel-mock-kafka/pixel-mock-kafka}
REPLAY_BIN=${REPLAY_BIN:-$PIXEL_BUILD_DIR/tools/pixel-replay/pixel-replay}
PIPELINE_SRC=${PIPELINE_SRC:-$PIXEL_SOURCE_DIR/examples/realestate/pipeline.yaml}
# Sanitizer builds: leaks of rsyslog-started children would only go to their
# output= file; keep reports but never fail a child on exit for them.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}

px_skip() { echo "SKIP: $*"; exit 77; }
px_fail() { echo "FAIL: $*" >&2; exit 1; }
px_log() { echo "# $*"; }

px_cleanup() {
    local rc=$? pid
    for pid in $PX_PIDS; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in $PX_PIDS; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null
    done
    PX_PIDS=""
    if [ -n "${PX_WORK:-}" ] && [ -z "${PX_KEEP:-}" ]; then
        if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
            # A failure (or a timeout): keep the logs for whoever looks next.
            echo "# exit $rc: work directory kept: $PX_WORK" >&2
        else
            rm -rf "$PX_WORK"
        fi
    fi
}

# px_init NAME: a private work directory and the EXIT trap.
px_init() {
    [ -x "$RSYSLOGD" ] || px_skip "rsyslogd is not installed"
    [ -f "$RSYSLOG_MODDIR/omprog.so" ] || px_skip "rsyslog's omprog module is missing"
    [ -x "$OMPROG_BIN" ] || px_skip "pixel-omprog is not built"
    [ -f "$PIXEL_SHARED_DIR/bench/gen_corpus.py" ] || px_skip "shared data ($PIXEL_SHARED_DIR) is absent"
    PX_WORK=$(mktemp -d "${TMPDIR:-/tmp}/pixel-$1.XXXXXX")
    trap px_cleanup EXIT
    trap 'exit 130' INT TERM
}

px_need_kafka() {
    [ -x "$MOCK_KAFKA_BIN" ] || px_skip "pixel-mock-kafka is not built (librdkafka)"
    command -v kcat >/dev/null || px_skip "kcat is not installed"
}

px_track() { PX_PIDS="$PX_PIDS $1"; }

# A free TCP (and UDP) port on 127.0.0.1.
px_free_port() {
    python3 - <<'PY'
import socket
while True:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); print(p); break
    except OSError:
        pass
    finally:
        u.close(); t.close()
PY
}

# px_wait_port PORT [SECONDS]: until something listens on 127.0.0.1:PORT.
px_wait_port() {
    local n=$((${2:-30} * 10))
    for _ in $(seq 1 "$n"); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

# px_wait_file FILE [SECONDS]
px_wait_file() {
    local n=$((${2:-30} * 10))
    for _ in $(seq 1 "$n"); do
        [ -s "$1" ] && return 0
        sleep 0.1
    done
    return 1
}

# px_mock_kafka DIR: start a 3-broker mock cluster; sets KAFKA_BROKERS and
# KAFKA_CTL (a FIFO taking "down all", "up all", ...).
px_mock_kafka() {
    local d=$1
    mkdir -p "$d"
    KAFKA_CTL=$d/ctl
    # librdkafka's mock keeps at most 5 MB per partition and silently drops
    # the rest: 32 partitions hold the fault test's ~22 MB of events.
    "$MOCK_KAFKA_BIN" -n 3 -t pixel-events:32 -t pixel-quarantine:4 -c "$KAFKA_CTL" \
        -b "$d/bootstrap" >"$d/mock.out" 2>"$d/mock.err" &
    px_track $!
    px_wait_file "$d/bootstrap" 30 || px_fail "the mock Kafka cluster did not start"
    KAFKA_BROKERS=$(head -1 "$d/bootstrap")
}

px_kafka_cmd() { echo "$*" >"$KAFKA_CTL"; }

# px_consume TOPIC OUT: every message value of TOPIC, one per line.
px_consume() {
    timeout 60 kcat -C -q -e -b "$KAFKA_BROKERS" -t "$1" -o beginning -f '%s\n' \
        -X topic.metadata.refresh.interval.ms=1000 >"$2" 2>/dev/null || true
}

# px_delivery_yaml FILE SPOOL_DIR [QUARANTINE_FILE]: a delivery section for
# the mock cluster (quarantine records go to their own topic).
px_delivery_yaml() {
    cat >"$1" <<YAML
delivery:
  kafka:
    brokers: "$KAFKA_BROKERS"
    topic: pixel-events
    key_field: user.id
    type_field: type
    delivery_timeout_ms: 5000
    properties:
      reconnect.backoff.max.ms: 500
  quarantine:
    topic: pixel-quarantine
  spool:
    dir: $2
    fsync: batch
  failover:
    probe_initial_ms: 500
    probe_max_ms: 2000
YAML
}

# px_corpus SEED LINES OUT
px_corpus() {
    python3 "$PIXEL_SHARED_DIR/bench/gen_corpus.py" --seed "$1" --lines "$2" >"$3"
}

# px_expected IN OUTDIR: run pixel-omprog in file mode over IN (same
# library, same pipeline) and write OUTDIR/events.ids (event IDs, sorted)
# and OUTDIR/quarantined.count: the ground truth to compare Kafka with.
px_expected() {
    local in=$1 d=$2 pipeline=${3:-$PIPELINE_SRC}
    mkdir -p "$d"
    rm -f "$d/events.jsonl" "$d/q.jsonl"
    "$OMPROG_BIN" --events-file "$d/events.jsonl" --quarantine-file "$d/q.jsonl" "$pipeline" \
        <"$in" >/dev/null 2>"$d/expected.log" || px_fail "file-mode run failed"
    px_ids "$d/events.jsonl" >"$d/events.ids"
    wc -l <"$d/q.jsonl" | tr -d ' ' >"$d/quarantined.count"
}

# px_ids JSONL: the event_id of every line, sorted (duplicates kept).
px_ids() {
    python3 -c '
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.strip()
    if line:
        print(json.loads(line).get("event_id", ""))
' "$1" | sort
}

# px_send_tcp PORT FILE [LINES_PER_SEC]: LF-framed syslog over TCP.
# px_send_udp PORT FILE [LINES_PER_SEC]: one datagram per line.  UDP has no
# flow control: a receiver that does not read for a while (rsyslog's imudp
# thread on a loaded machine) loses what overflows its socket buffer
# (212 KB by default, about 160 of these datagrams), and the kernel counts
# it in /proc/net/snmp's Udp RcvbufErrors.  So the sender waits, after
# every 50 datagrams, until the receiving socket's queue
# (/proc/net/udp{,6} rx_queue) is empty, and prints the kernel's drop count
# over the send, so that a missing event is never blamed on the pipeline
# when the kernel dropped its datagram.
px_send() {
    python3 - "$@" <<'PY'
import socket, sys, time
proto, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rate = float(sys.argv[4]) if len(sys.argv) > 4 else 0
lines = open(path, "rb").read().splitlines()
if proto == "tcp":
    s = socket.create_connection(("127.0.0.1", port))
    if rate <= 0:
        s.sendall(b"".join(l + b"\n" for l in lines))
    else:
        for i, l in enumerate(lines):
            s.sendall(l + b"\n")
            if i % 10 == 9:
                time.sleep(10 / rate)
    s.close()
else:
    def rcvbuf_errors():
        rows = [l.split() for l in open("/proc/net/snmp") if l.startswith("Udp:")]
        return int(rows[1][rows[0].index("RcvbufErrors")])

    def rx_queue():
        # Bytes waiting in the socket bound to the port (0 when none is).
        n = 0
        for f in ("/proc/net/udp", "/proc/net/udp6"):
            try:
                rows = open(f).read().splitlines()[1:]
            except OSError:
                continue
            for r in rows:
                c = r.split()
                if int(c[1].rsplit(":", 1)[1], 16) == port:
                    n += int(c[4].split(":")[1], 16)
        return n

    def drained(limit=30.0):
        end = time.time() + limit
        while rx_queue() > 0 and time.time() < end:
            time.sleep(0.005)

    drops = rcvbuf_errors()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i, l in enumerate(lines):
        s.sendto(l, ("127.0.0.1", port))
        if i % 50 == 49:
            drained()
        if rate > 0 and i % 10 == 9:
            time.sleep(10 / rate)
    drained()
    drops = rcvbuf_errors() - drops
    print("# udp: %d datagrams sent to port %d; kernel receive-buffer drops meanwhile "
          "(all sockets): %d" % (len(lines), port, drops))
PY
}
px_send_tcp() { px_send tcp "$@"; }
px_send_udp() { px_send udp "$@"; }

# px_rsyslog_start NAME CONF: start rsyslogd in the foreground of a
# background job with a private pid file.  Sets RSYSLOG_PID_<NAME>.  Its
# own messages go to PX_WORK/NAME.stdout, appended: a restarted instance
# keeps what the one before it said.
px_rsyslog_start() {
    local name=$1 conf=$2
    "$RSYSLOGD" -n -f "$conf" -i "$PX_WORK/$name.pid" -M "$RSYSLOG_MODDIR" \
        >>"$PX_WORK/$name.stdout" 2>&1 &
    local pid=$!
    px_track "$pid"
    eval "RSYSLOG_PID_$name=$pid"
}

# px_omprog_children PID: PIDs of pixel-omprog processes rsyslog PID started.
px_omprog_children() {
    local p
    for p in $(pgrep -P "$1" 2>/dev/null); do
        if grep -q pixel-omprog "/proc/$p/cmdline" 2>/dev/null; then
            echo "$p"
        fi
    done
}

# px_omprog_child PID TRIES PAUSE: the first pixel-omprog child of rsyslog PID,
# polled up to TRIES times PAUSE seconds apart; empty if none appeared.
px_omprog_child() {
    local child="" i
    for i in $(seq 1 "$2"); do
        child=$(px_omprog_children "$1" | head -1)
        [ -n "$child" ] && break
        sleep "$3"
    done
    echo "$child"
}

# px_wait_count CMD EXPECTED SECONDS: poll until CMD prints >= EXPECTED,
# for at most SECONDS of wall-clock time (CMD's own time included).
px_wait_count() {
    local cmd=$1 want=$2 end=$((SECONDS + $3)) got=0
    while :; do
        got=$(eval "$cmd")
        [ "${got:-0}" -ge "$want" ] && return 0
        [ "$SECONDS" -lt "$end" ] || break
        sleep 0.5
    done
    echo "# waited for $want, have $got" >&2
    return 1
}

# px_tier2_conf CONF TCP UDP DELIVERY_YAML PIPELINE [TRANSACTIONS on|off]
# The tier-two rsyslog configuration of docs/deployment.md with test paths.
px_tier2_conf() {
    local conf=$1 tcp=$2 udp=$3 delivery=$4 pipeline=$5 tx=${6:-off} name
    name=$(basename "$conf" .conf)
    mkdir -p "$PX_WORK/$name.work"
    sed -e "s|@WORKDIR@|$PX_WORK/$name.work|g" -e "s|@TCP_PORT@|$tcp|g" \
        -e "s|@UDP_PORT@|$udp|g" -e "s|@OMPROG@|$OMPROG_BIN|g" \
        -e "s|@DELIVERY@|$delivery|g" -e "s|@PIPELINE@|$pipeline|g" \
        -e "s|@TRANSACTIONS@|$tx|g" -e "s|@EXTRA_INPUTS@|${PX_EXTRA_INPUTS:-}|g" -e "s|@LOGDIR@|$PX_WORK|g" -e "s|@NAME@|$name|g" \
        "$PIXEL_SOURCE_DIR/examples/topology/tier2.conf.in" >"$conf"
}
