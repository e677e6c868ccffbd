#!/bin/bash
# HUP under load: rsyslog forwards its HUP to pixel-omprog (hup.signal),
# which reloads the pipeline between transactions.  Nothing is lost or
# duplicated, a broken pipeline leaves the old one serving with a clear log
# line, and events after a good reload carry the new pipeline version.
set -u
. "$(dirname "$0")/lib.sh"
px_init reload
px_need_kafka

# A private copy of the pipeline at the same depth, so relative paths hold.
mkdir -p "$PX_WORK/examples/realestate"
for d in schemas modules; do
    [ -e "$PIXEL_SOURCE_DIR/$d" ] && ln -s "$PIXEL_SOURCE_DIR/$d" "$PX_WORK/$d"
done
PIPE=$PX_WORK/examples/realestate/pipeline.yaml
cp "$PIPELINE_SRC" "$PIPE"

px_corpus 21 6000 "$PX_WORK/all.log"
px_expected "$PX_WORK/all.log" "$PX_WORK/expected" "$PIPE"
want=$(wc -l <"$PX_WORK/expected/events.ids")

px_mock_kafka "$PX_WORK/kafka"
px_delivery_yaml "$PX_WORK/delivery.yaml" "$PX_WORK/spool"
TCP=$(px_free_port)
UDP=$(px_free_port)
px_tier2_conf "$PX_WORK/t2.conf" "$TCP" "$UDP" "$PX_WORK/delivery.yaml" "$PIPE" on
px_rsyslog_start t2 "$PX_WORK/t2.conf"
px_wait_port "$TCP" 30 || px_fail "rsyslog did not listen"
pid=$RSYSLOG_PID_t2

px_send_tcp "$TCP" "$PX_WORK/all.log" 1500 &
sender=$!
px_track $sender
# rsyslog starts pixel-omprog with the action's first batch, which on a
# loaded machine came more than a second after the first line: a HUP
# before that has no child to go to, and the child then loads whatever the
# file holds.  So wait until pixel-omprog serves, then break the file.
px_wait_count "grep -c 'ready: pipeline realestate 1.0.0' $PX_WORK/t2.omprog.log 2>/dev/null" 1 60 ||
    px_fail "pixel-omprog did not start"
# hup_until PATTERN SECONDS: HUP rsyslog every 2 s until the omprog log
# matches.  rsyslog forwards a HUP to the action's worker instances it has
# registered; one sent while it is still waiting for the child's first OK
# can go nowhere, so the test repeats it (a HUP is idempotent here).
hup_until() {
    local end=$((SECONDS + $2))
    while [ "$SECONDS" -lt "$end" ]; do
        kill -HUP "$pid"
        for _ in $(seq 1 20); do
            grep -q "$1" "$PX_WORK/t2.omprog.log" && return 0
            sleep 0.1
        done
    done
    return 1
}
# 1. A broken pipeline: the old one keeps serving.
cp "$PIPE" "$PX_WORK/good.yaml"
printf 'pipeline: {name: realestate, version: 9.9.9}\nfields: [oops\n' >"$PIPE"
hup_until 'reload failed: still serving pipeline realestate 1.0.0' 30 ||
    px_fail "no 'reload failed' log line after a broken pipeline"
# 2. Good reloads, one with a new version, while lines keep coming.
sed 's/^  version: 1.0.0/  version: 1.0.1/' "$PX_WORK/good.yaml" >"$PIPE"
for _ in 1 2 3; do
    kill -HUP "$pid"
    sleep 0.7
done
px_wait_count "grep -c 'reloaded .*pipeline realestate 1.0.1' $PX_WORK/t2.omprog.log" 1 30 ||
    px_fail "pixel-omprog did not log a successful reload"
wait $sender

count() { px_consume pixel-events "$PX_WORK/events.out"; wc -l <"$PX_WORK/events.out"; }
px_wait_count count "$want" 120 || true
px_consume pixel-events "$PX_WORK/events.out"
px_ids "$PX_WORK/events.out" >"$PX_WORK/got.ids"
got=$(wc -l <"$PX_WORK/got.ids")
uniq_got=$(sort -u "$PX_WORK/got.ids" | wc -l)
missing=$(comm -23 <(sort -u "$PX_WORK/expected/events.ids") <(sort -u "$PX_WORK/got.ids") | wc -l)
v101=$(grep -c '"version":"1.0.1"' "$PX_WORK/events.out")
echo "# expected=$want kafka=$got unique=$uniq_got missing=$missing after-reload(1.0.1)=$v101"
[ "$missing" -eq 0 ] || px_fail "$missing events lost across reloads"
[ "$got" -eq "$uniq_got" ] || px_fail "$((got - uniq_got)) duplicates across reloads"
[ "$v101" -gt 0 ] || px_fail "no event was made by the reloaded pipeline"
echo PASS
