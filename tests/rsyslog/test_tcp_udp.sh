#!/bin/bash
# Lines sent over TCP and UDP to a real rsyslog reach the mock Kafka cluster
# through pixel-omprog: every valid event exactly as the library makes it
# (same event IDs), every quarantine record in the quarantine topic.
set -u
. "$(dirname "$0")/lib.sh"
px_init tcp-udp
px_need_kafka

px_corpus 11 1500 "$PX_WORK/all.log"
head -n 1200 "$PX_WORK/all.log" >"$PX_WORK/tcp.log"
tail -n 300 "$PX_WORK/all.log" >"$PX_WORK/udp.log"
px_expected "$PX_WORK/all.log" "$PX_WORK/expected"
want_events=$(wc -l <"$PX_WORK/expected/events.ids")
want_q=$(cat "$PX_WORK/expected/quarantined.count")

px_mock_kafka "$PX_WORK/kafka"
px_delivery_yaml "$PX_WORK/delivery.yaml" "$PX_WORK/spool"
TCP=$(px_free_port)
UDP=$(px_free_port)
px_tier2_conf "$PX_WORK/t2.conf" "$TCP" "$UDP" "$PX_WORK/delivery.yaml" "$PIPELINE_SRC" on
px_rsyslog_start t2 "$PX_WORK/t2.conf"
px_wait_port "$TCP" 30 || px_fail "rsyslog did not listen on $TCP"

px_send_tcp "$TCP" "$PX_WORK/tcp.log"
# Paced by the receiving socket's queue (lib.sh): rsyslog's imudp thread
# starved on a loaded machine once let the kernel drop the last 15
# datagrams (Udp RcvbufErrors), which showed as 15 events missing.
px_send_udp "$UDP" "$PX_WORK/udp.log" 2000 | tee "$PX_WORK/udp.send"

count() { px_consume "$1" "$PX_WORK/$1.out"; wc -l <"$PX_WORK/$1.out"; }
px_wait_count "count pixel-events" "$want_events" 120 || true
px_wait_count "count pixel-quarantine" "$want_q" 30 || true
px_consume pixel-events "$PX_WORK/events.out"
px_consume pixel-quarantine "$PX_WORK/q.out"
px_ids "$PX_WORK/events.out" >"$PX_WORK/got.ids"

got=$(wc -l <"$PX_WORK/got.ids")
uniq_got=$(sort -u "$PX_WORK/got.ids" | wc -l)
got_q=$(wc -l <"$PX_WORK/q.out")
missing=$(comm -23 <(sort -u "$PX_WORK/expected/events.ids") <(sort -u "$PX_WORK/got.ids") | wc -l)
echo "# expected events=$want_events quarantined=$want_q; kafka events=$got unique=$uniq_got quarantine=$got_q missing=$missing"
[ "$missing" -eq 0 ] || px_fail "$missing events missing from Kafka ($(grep -o "drops meanwhile.*" "$PX_WORK/udp.send"))"
[ "$uniq_got" -eq "$want_events" ] || px_fail "unexpected events in Kafka"
[ "$got_q" -ge "$want_q" ] || px_fail "quarantine records missing ($got_q < $want_q)"
grep -q '"quarantine":1' "$PX_WORK/q.out" || px_fail "quarantine topic holds no quarantine record"
grep -q "ready: pipeline realestate" "$PX_WORK/t2.omprog.log" || px_fail "no ready line in the omprog log"
echo "PASS"
