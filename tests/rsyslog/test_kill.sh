#!/bin/bash
# pixel-omprog killed by a signal mid-stream (twice, SIGKILL then SIGSEGV)
# while rsyslog lives on: rsyslog restarts it and re-sends what it had not
# confirmed.  Run once per omprog mode, with the guarantee each has:
#
#   useTransactions="off"  every reply waits for durability, and rsyslog
#                          re-sends the line whose reply never came: no valid
#                          event may be missing (duplicates allowed, same IDs).
#   useTransactions="on"   rsyslog does not re-send the lines it had been
#                          answered DEFER_COMMIT for before the line that
#                          failed (rsyslog issue #2420; the program's death
#                          fails a line): what pixel-omprog had produced but
#                          Kafka not yet acknowledged at the kill can be lost.
#                          At most the interrupted transaction, i.e.
#                          queue.dequeueBatchSize lines per kill
#                          (docs/deployment.md, "What each failure does").
set -u
. "$(dirname "$0")/lib.sh"
px_init kill
px_need_kafka

px_corpus 31 6000 "$PX_WORK/all.log"
px_expected "$PX_WORK/all.log" "$PX_WORK/expected"
want=$(wc -l <"$PX_WORK/expected/events.ids")
batch=$(sed -n 's/.*queue.dequeueBatchSize="\([0-9]*\)".*/\1/p' \
    "$PIXEL_SOURCE_DIR/examples/topology/tier2.conf.in" | head -1)

run_mode() { # off|on: one rsyslog and mock cluster; prints "missing kills"
    local tx=$1 d=$PX_WORK/tx-$1 tcp udp pid sender kills=0 child restarts got uniq_got missing
    mkdir -p "$d"
    px_mock_kafka "$d/kafka"
    px_delivery_yaml "$d/delivery.yaml" "$d/spool"
    tcp=$(px_free_port)
    udp=$(px_free_port)
    px_tier2_conf "$d/t2$tx.conf" "$tcp" "$udp" "$d/delivery.yaml" "$PIPELINE_SRC" "$tx"
    px_rsyslog_start "t2$tx" "$d/t2$tx.conf"
    px_wait_port "$tcp" 30 || px_fail "rsyslog did not listen"
    eval "pid=\$RSYSLOG_PID_t2$tx"

    px_send_tcp "$tcp" "$PX_WORK/all.log" 1500 &
    sender=$!
    px_track $sender
    for sig in KILL SEGV; do
        sleep 1.5
        child=$(px_omprog_child "$pid" 50 0.1)
        [ -n "$child" ] || px_fail "no pixel-omprog child of rsyslog to kill"
        kill -"$sig" "$child" && kills=$((kills + 1))
        echo "# transactions $tx: killed pixel-omprog $child with SIG$sig" >&2
    done
    wait $sender

    count() { px_consume pixel-events "$d/events.out"; sort -u <(px_ids "$d/events.out") | wc -l; }
    if [ "$tx" = off ]; then
        px_wait_count count "$want" 150 || true
    else
        # Some may be lost: wait until Kafka stops growing (or has them all).
        local last=-1 now
        for _ in $(seq 1 60); do
            now=$(count)
            [ "$now" -ge "$want" ] || [ "$now" -eq "$last" ] && break
            last=$now
            sleep 2
        done
    fi
    px_consume pixel-events "$d/events.out"
    px_ids "$d/events.out" >"$d/got.ids"
    got=$(wc -l <"$d/got.ids")
    uniq_got=$(sort -u "$d/got.ids" | wc -l)
    missing=$(comm -23 <(sort -u "$PX_WORK/expected/events.ids") <(sort -u "$d/got.ids") | wc -l)
    restarts=$(grep -c "ready: pipeline" "$PX_WORK/t2$tx.omprog.log")
    echo "# transactions $tx: expected=$want kafka=$got unique=$uniq_got duplicates=$((got - uniq_got)) missing=$missing kills=$kills starts=$restarts" >&2
    [ "$restarts" -ge 3 ] || px_fail "rsyslog did not restart pixel-omprog ($restarts starts, transactions $tx)"
    kill -TERM "$pid"
    echo "$missing $kills"
}

# Not in $(...): the helpers must stay in this shell, which ends what they start.
run_mode off >"$PX_WORK/off.result"
read -r missing kills <"$PX_WORK/off.result"
[ "$missing" -eq 0 ] || px_fail "$missing events lost when pixel-omprog was killed (no transactions)"
run_mode on >"$PX_WORK/on.result"
read -r missing kills <"$PX_WORK/on.result"
[ "$missing" -le $((kills * batch)) ] ||
    px_fail "$missing events lost with transactions: more than the $kills interrupted batches of $batch"
echo PASS
