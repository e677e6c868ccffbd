#!/bin/bash
# Throughput of one tier-two rsyslog + pixel-omprog into the mock Kafka
# cluster, with and without omprog transactions, compared in the same run
# with the same rsyslog writing the same lines to a file (the relay's own
# ceiling).  Lines go over one TCP connection as fast as rsyslog takes them;
# the clock stops when the last event is in Kafka (or the file).
#
#   tests/bench/omprog_bench.sh        BENCH_LINES=20000
#   meson test -C BUILD --benchmark omprog
set -u
. "$(dirname "$0")/../rsyslog/lib.sh"
px_init bench
px_need_kafka
M=${BENCH_LINES:-20000}
px_corpus 99 "$M" "$PX_WORK/in.log"
px_expected "$PX_WORK/in.log" "$PX_WORK/expected"
want=$(wc -l <"$PX_WORK/expected/events.ids")
now() { date +%s.%N; }
rate() { python3 -c "import sys; print('%.0f' % (float(sys.argv[1]) / (float(sys.argv[3]) - float(sys.argv[2]))))" "$@"; }

run_omprog() { # on|off
    local tx=$1 d=$PX_WORK/omprog-$1 tcp udp t0 t1 pid
    mkdir -p "$d"
    px_mock_kafka "$d/kafka"
    px_delivery_yaml "$d/delivery.yaml" "$d/spool"
    tcp=$(px_free_port); udp=$(px_free_port)
    px_tier2_conf "$PX_WORK/bench$tx.conf" "$tcp" "$udp" "$d/delivery.yaml" "$PIPELINE_SRC" "$tx"
    px_rsyslog_start "bench$tx" "$PX_WORK/bench$tx.conf"
    px_wait_port "$tcp" 30 || px_fail "rsyslog did not start"
    sleep 1
    t0=$(now)
    px_send_tcp "$tcp" "$PX_WORK/in.log"
    count() { px_consume pixel-events "$d/events.out"; wc -l <"$d/events.out"; }
    px_wait_count count "$want" 600 || px_fail "not every event reached Kafka (transactions $tx)"
    t1=$(now)
    eval "pid=\$RSYSLOG_PID_bench$tx"
    kill -TERM "$pid"
    rate "$M" "$t0" "$t1" >"$PX_WORK/rate-$tx"
}

run_file() {
    local tcp t0 t1
    tcp=$(px_free_port)
    mkdir -p "$PX_WORK/file.work"
    cat >"$PX_WORK/file.conf" <<CONF
global(workDirectory="$PX_WORK/file.work" maxMessageSize="64k")
module(load="imtcp")
template(name="pixel_raw" type="string" string="%rawmsg%\n")
input(type="imtcp" port="$tcp" address="127.0.0.1" ruleset="f")
ruleset(name="f") {
  action(type="omfile" file="$PX_WORK/file.out" template="pixel_raw"
         queue.type="LinkedList" queue.filename="f" queue.saveOnShutdown="on"
         action.resumeRetryCount="-1")
}
CONF
    px_rsyslog_start file "$PX_WORK/file.conf"
    px_wait_port "$tcp" 30 || px_fail "rsyslog did not start"
    sleep 1
    t0=$(now)
    px_send_tcp "$tcp" "$PX_WORK/in.log"
    px_wait_count "wc -l <$PX_WORK/file.out 2>/dev/null || echo 0" "$M" 600 || px_fail "file incomplete"
    t1=$(now)
    kill -TERM "$RSYSLOG_PID_file"
    rate "$M" "$t0" "$t1" >"$PX_WORK/rate-file"
}

# Not in $(...): the helpers must stay in this shell, which ends what they start.
run_file; file_rate=$(cat "$PX_WORK/rate-file")
run_omprog on; tx_rate=$(cat "$PX_WORK/rate-on")
run_omprog off; notx_rate=$(cat "$PX_WORK/rate-off")
echo
echo "| $M lines, one rsyslog, one TCP sender            | lines/s |"
echo "|--------------------------------------------------|---------|"
printf '| %-48s | %7s |\n' "rsyslog -> omfile (relay ceiling)" "$file_rate"
printf '| %-48s | %7s |\n' "rsyslog -> pixel-omprog -> Kafka, transactions" "$tx_rate"
printf '| %-48s | %7s |\n' "rsyslog -> pixel-omprog -> Kafka, per message" "$notx_rate"
echo "(build: ${PIXEL_BUILD_DIR}; a sanitizer build is several times slower)"
