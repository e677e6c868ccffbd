#!/bin/bash
# Bring the whole two-tier topology up on loopback:
#
#   curl/ab ─HTTP─▶ nginx (empty_gif) ─UDP syslog─▶ tier one rsyslog
#     ─RELP─▶ HAProxy ─▶ tier two rsyslog A | B ─omprog─▶ pixel-omprog
#     ─▶ Kafka (pixel-mock-kafka, 3 brokers)   spool (shared dir) as failover
#   tier one failover file + spool ─▶ pixel-replay ─▶ Kafka
#
#   examples/topology/up.sh [WORKDIR]      start everything, print the ports,
#                                          wait for Ctrl-C, then stop it all
#
# Sourced with TOPO_LIB=1 (tests/topology/fault_test.sh) it only defines the
# topo_* functions.  Needs a build (PIXEL_BUILD_DIR, default ./build).
set -u
TOPO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${PIXEL_SOURCE_DIR:=$(cd "$TOPO_DIR/../.." && pwd)}"
. "$PIXEL_SOURCE_DIR/tests/rsyslog/lib.sh"
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
NGINX=${NGINX:-/usr/sbin/nginx}

topo_fill() { # topo_fill IN OUT: replace every @WORD@ we know
    sed -e "s|@WORKDIR@|$3|g" -e "s|@LOGDIR@|$PX_WORK|g" -e "s|@UDP_PORT@|$T1_UDP|g" \
        -e "s|@T1_UDP_PORT@|$T1_UDP|g" -e "s|@HAPROXY_PORT@|$HAPROXY_PORT|g" \
        -e "s|@T2A_PORT@|$T2A_RELP|g" -e "s|@T2B_PORT@|$T2B_RELP|g" -e "s|@HTTP_PORT@|$HTTP_PORT|g" \
        -e "s|@FAILOVER_FILE@|$FAILOVER_FILE|g" "$1" >"$2"
}

topo_check() {
    [ -x "$HAPROXY" ] || px_skip "haproxy is not installed"
    [ -x "$NGINX" ] || px_skip "nginx is not installed"
    [ -f "$RSYSLOG_MODDIR/imrelp.so" ] && [ -f "$RSYSLOG_MODDIR/omrelp.so" ] ||
        px_skip "rsyslog-relp (imrelp/omrelp) is not installed"
    [ -x "$REPLAY_BIN" ] || px_skip "pixel-replay is not built"
    [ -x "$QUEUE_TRIM_BIN" ] || px_skip "pixel-queue-trim is not built"
    px_need_kafka
}

# The pipeline with the delivery section, at the same depth as the original
# so that its relative paths (schemas, modules) still resolve.
topo_pipeline() {
    mkdir -p "$PX_WORK/examples/realestate"
    for d in schemas modules; do
        [ -e "$PIXEL_SOURCE_DIR/$d" ] && [ ! -e "$PX_WORK/$d" ] && ln -s "$PIXEL_SOURCE_DIR/$d" "$PX_WORK/$d"
    done
    TOPO_PIPELINE=$PX_WORK/examples/realestate/pipeline.yaml
    px_delivery_yaml "$PX_WORK/delivery.yaml" "$PX_WORK/spool"
    # The topology's delivery section replaces the pipeline's own (a YAML
    # mapping may not hold the same key twice): drop the top-level
    # `delivery:` block, up to the next top-level key.
    awk '/^delivery:/ {skip = 1; next} skip && /^[^ #]/ {skip = 0} !skip' \
        "$PIPELINE_SRC" >"$TOPO_PIPELINE"
    cat "$PX_WORK/delivery.yaml" >>"$TOPO_PIPELINE"
}

topo_tier2_start() { # A or B
    local n=$1 relp tcp udp conf
    eval "relp=\$T2${n}_RELP tcp=\$T2${n}_TCP udp=\$T2${n}_UDP"
    conf=$PX_WORK/tier2$n.conf
    # sed turns the \n into a newline when it fills @EXTRA_INPUTS@.
    PX_EXTRA_INPUTS='module(load="imrelp")\ninput(type="imrelp" port="'$relp'" address="127.0.0.1" ruleset="pixel")'
    # useTransactions: off, the docs' default (TOPO_TRANSACTIONS=on for the batching opt-in).
    px_tier2_conf "$conf" "$tcp" "$udp" "$PX_WORK/delivery.yaml" "$TOPO_PIPELINE" "${TOPO_TRANSACTIONS:-off}"
    sed -i "s|--delivery $PX_WORK/delivery.yaml ||" "$conf"
    # As the docs' ExecStartPre= does: cut the Disk queue (queue.filename="pixel") back
    # to what its .qi file records, in case the last run of this instance was SIGKILLed
    # between a queue write and its checkpoint (docs/deployment.md).
    "$QUEUE_TRIM_BIN" "$PX_WORK/tier2$n.work/pixel.qi" >>"$PX_WORK/tier2$n.trim.log" 2>&1 ||
        px_fail "pixel-queue-trim failed on tier two $n's queue: $(tail -1 "$PX_WORK/tier2$n.trim.log")"
    px_rsyslog_start "tier2$n" "$conf"
    px_wait_port "$relp" 30 || px_fail "tier two $n did not start"
}

topo_tier2_stop() { # A or B: SIGTERM, wait until it has saved its queue and exited
    local n=$1 pid
    eval "pid=\$RSYSLOG_PID_tier2$n"
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null
}

# topo_tier2_kill A|B [all]: SIGKILL the tier-two rsyslog, as a crash would.
# Its pixel-omprog sees the end of its input, flushes and exits by itself
# (its PIDs go to TOPO_ORPHANS so a test can wait for them); with "all" it
# is SIGKILLed too, as when the whole host dies.
topo_tier2_kill() {
    local n=$1 pid kids
    eval "pid=\$RSYSLOG_PID_tier2$n"
    kids=$(px_omprog_children "$pid")
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    if [ "${2:-}" = all ] && [ -n "$kids" ]; then
        # shellcheck disable=SC2086
        kill -KILL $kids 2>/dev/null
    else
        TOPO_ORPHANS="${TOPO_ORPHANS:-} $kids"
    fi
}

# topo_wait_orphans [SECONDS]: until the pixel-omprog processes of killed
# tier-two instances have flushed and exited (their spool slots sealed).
topo_wait_orphans() {
    local p n=$((${1:-60} * 10))
    for p in ${TOPO_ORPHANS:-}; do
        for _ in $(seq 1 "$n"); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
    done
}

topo_up() {
    topo_check
    T1_UDP=$(px_free_port); HAPROXY_PORT=$(px_free_port); HTTP_PORT=$(px_free_port)
    T2A_RELP=$(px_free_port); T2A_TCP=$(px_free_port); T2A_UDP=$(px_free_port)
    T2B_RELP=$(px_free_port); T2B_TCP=$(px_free_port); T2B_UDP=$(px_free_port)
    FAILOVER_FILE=$PX_WORK/tier1-failover.jsonl
    px_mock_kafka "$PX_WORK/kafka"
    topo_pipeline
    topo_tier2_start A
    topo_tier2_start B
    mkdir -p "$PX_WORK/haproxy" "$PX_WORK/tier1.work" "$PX_WORK/nginx/tmp"
    topo_fill "$TOPO_DIR/haproxy.cfg.in" "$PX_WORK/haproxy.cfg" "$PX_WORK/haproxy"
    "$HAPROXY" -db -f "$PX_WORK/haproxy.cfg" >"$PX_WORK/haproxy.log" 2>&1 &
    px_track $!
    px_wait_port "$HAPROXY_PORT" 30 || px_fail "haproxy did not start"
    topo_fill "$TOPO_DIR/tier1.conf.in" "$PX_WORK/tier1.conf" "$PX_WORK/tier1.work"
    px_rsyslog_start tier1 "$PX_WORK/tier1.conf"
    topo_fill "$TOPO_DIR/nginx.conf.in" "$PX_WORK/nginx.conf" "$PX_WORK/nginx"
    "$NGINX" -p "$PX_WORK/nginx" -c "$PX_WORK/nginx.conf" >"$PX_WORK/nginx.out" 2>&1 &
    px_track $!
    px_wait_port "$HTTP_PORT" 30 || px_fail "nginx did not start"
    sleep 1 # tier one's UDP socket
}

if [ -z "${TOPO_LIB:-}" ]; then
    if [ $# -ge 1 ]; then
        mkdir -p "$1"
        PX_WORK=$(cd "$1" && pwd)
        PX_KEEP=1
        trap px_cleanup EXIT
        trap 'exit 130' INT TERM
    else
        px_init topology
        PX_KEEP=1
    fi
    topo_up
    cat <<INFO
topology up in $PX_WORK
  pixel:     curl 'http://127.0.0.1:$HTTP_PORT/px.gif?v=1&ev=page_view&...'
  tier one:  udp 127.0.0.1:$T1_UDP   failover file $FAILOVER_FILE
  haproxy:   127.0.0.1:$HAPROXY_PORT -> tier two A relp $T2A_RELP, B relp $T2B_RELP
  kafka:     $KAFKA_BROKERS (control: echo 'down all' > $KAFKA_CTL)
  consume:   kcat -C -b $KAFKA_BROKERS -t pixel-events -e
  replay:    $REPLAY_BIN -c $TOPO_PIPELINE                       (the spool)
             $REPLAY_BIN -c $TOPO_PIPELINE -q $FAILOVER_FILE     (tier one's failover file)
Ctrl-C stops everything.
INFO
    # sleep in the background and wait for it: bash runs the trap (and so
    # stops everything) as soon as a signal comes, not when a foreground
    # sleep ends, so `kill PID` stops the topology as Ctrl-C does.
    UP_SLEEP=
    trap '[ -n "$UP_SLEEP" ] && kill "$UP_SLEEP" 2>/dev/null; exit 130' INT TERM
    while :; do
        sleep 3600 &
        UP_SLEEP=$!
        wait "$UP_SLEEP"
    done
fi
