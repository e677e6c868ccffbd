#!/bin/bash
# pixel-omprog killed by a signal mid-stream (twice, SIGKILL then SIGSEGV):
# rsyslog restarts it and retries the unconfirmed messages; every valid
# event reaches Kafka (duplicates are allowed: at least once, same IDs).
set -u
. "$(dirname "$0")/lib.sh"
px_init kill
px_need_kafka

px_corpus 31 6000 "$PX_WORK/all.log"
px_expected "$PX_WORK/all.log" "$PX_WORK/expected"
want=$(wc -l <"$PX_WORK/expected/events.ids")

px_mock_kafka "$PX_WORK/kafka"
px_delivery_yaml "$PX_WORK/delivery.yaml" "$PX_WORK/spool"
TCP=$(px_free_port)
UDP=$(px_free_port)
px_tier2_conf "$PX_WORK/t2.conf" "$TCP" "$UDP" "$PX_WORK/delivery.yaml" "$PIPELINE_SRC" "${PX_TX:-on}"
px_rsyslog_start t2 "$PX_WORK/t2.conf"
px_wait_port "$TCP" 30 || px_fail "rsyslog did not listen"
pid=$RSYSLOG_PID_t2

px_send_tcp "$TCP" "$PX_WORK/all.log" 1500 &
sender=$!
px_track $sender
kills=0
for sig in KILL SEGV; do
    sleep 1.5
    child=""
    for _ in $(seq 1 50); do
        child=$(px_omprog_children "$pid" | head -1)
        [ -n "$child" ] && break
        sleep 0.1
    done
    [ -n "$child" ] || px_fail "no pixel-omprog child of rsyslog to kill"
    kill -"$sig" "$child" && kills=$((kills + 1))
    echo "# killed pixel-omprog $child with SIG$sig"
done
wait $sender

count() { px_consume pixel-events "$PX_WORK/events.out"; sort -u <(px_ids "$PX_WORK/events.out") | wc -l; }
px_wait_count count "$want" 150 || true
px_consume pixel-events "$PX_WORK/events.out"
px_ids "$PX_WORK/events.out" >"$PX_WORK/got.ids"
got=$(wc -l <"$PX_WORK/got.ids")
uniq_got=$(sort -u "$PX_WORK/got.ids" | wc -l)
missing=$(comm -23 <(sort -u "$PX_WORK/expected/events.ids") <(sort -u "$PX_WORK/got.ids") | wc -l)
restarts=$(grep -c "ready: pipeline" "$PX_WORK/t2.omprog.log")
echo "# expected=$want kafka=$got unique=$uniq_got duplicates=$((got - uniq_got)) missing=$missing kills=$kills starts=$restarts"
[ "$missing" -eq 0 ] || px_fail "$missing events lost when pixel-omprog was killed"
[ "$restarts" -ge 3 ] || px_fail "rsyslog did not restart pixel-omprog ($restarts starts)"
echo PASS
