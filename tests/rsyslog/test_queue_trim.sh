#!/bin/bash
# Tier two restarted on a disk queue that a SIGKILL left with bytes past the
# write offset its .qi file records: a line written to the queue file but
# not yet checkpointed, so imrelp never acknowledged it.  The topology's
# fault test hit that window (a run lost the first two lines the restarted
# instance acknowledged, and rsyslog said "lost 1 messages from diskqueue
# (invalid .qi file)"); this builds the same state on purpose:
#
#   1. the documented tier-two config with an action that never answers:
#      200 lines wait in the Disk queue; rsyslog is SIGKILLed;
#   2. a copy of the last queued message, with another event ID, is appended
#      to the queue file: the unacknowledged line of the crash window;
#   3. two restarts of tier two (pixel-omprog, mock Kafka) on copies of that
#      state, each: drain the backlog, then 20 new lines, stop.
#
# Without pixel-queue-trim, rsyslog hands the stale line on or loses new
# lines it acknowledged (the test requires that it shows, so the state is
# the dangerous one); after `pixel-queue-trim QUEUE.qi`, as the docs' unit
# runs it before rsyslog starts, every queued and new line must arrive and
# the stale one must not.
set -u
. "$(dirname "$0")/lib.sh"
px_init queue-trim
px_need_kafka
[ -x "$QUEUE_TRIM_BIN" ] || px_skip "pixel-queue-trim is not built"
ORPHAN_EID=0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f

# Valid pixel lines only, so that every line is an event with its own ID.
px_corpus 17 1200 "$PX_WORK/corpus.log"
px_expected "$PX_WORK/corpus.log" "$PX_WORK/all"
python3 - "$PX_WORK/corpus.log" "$PX_WORK/all/events.ids" "$PX_WORK" <<'PY'
import re, sys
ids = set(open(sys.argv[2]).read().split())
lines = [l for l in open(sys.argv[1], encoding="utf-8", errors="replace")
         if (m := re.search(r"[?&]eid=([0-9a-f-]{36})[& ]", l)) and m.group(1) in ids]
seen, out = set(), []
for l in lines:  # one line per event ID
    eid = re.search(r"[?&]eid=([0-9a-f-]{36})", l).group(1)
    if eid not in seen:
        seen.add(eid)
        out.append(l)
open(sys.argv[3] + "/queued.log", "w").writelines(out[:200])
open(sys.argv[3] + "/new.log", "w").writelines(out[200:220])
PY
[ "$(wc -l <"$PX_WORK/new.log")" -eq 20 ] || px_fail "the corpus has too few valid lines"
px_expected "$PX_WORK/queued.log" "$PX_WORK/exp-queued"
px_expected "$PX_WORK/new.log" "$PX_WORK/exp-new"

# ---- 1. a queue of acknowledged lines, then SIGKILL ------------------------
cat >"$PX_WORK/stall.sh" <<'SH'
#!/bin/sh
# Never says OK: omprog's worker waits, the lines stay in the Disk queue.
exec sleep 120
SH
chmod +x "$PX_WORK/stall.sh"
tcp=$(px_free_port)
udp=$(px_free_port)
: >"$PX_WORK/unused.yaml" # the stalled program never reads it
OMPROG_BIN=$PX_WORK/stall.sh px_tier2_conf "$PX_WORK/t2src.conf" "$tcp" "$udp" \
    "$PX_WORK/unused.yaml" "$PIPELINE_SRC" off
px_rsyslog_start t2src "$PX_WORK/t2src.conf"
px_wait_port "$tcp" 30 || px_fail "tier two (phase 1) did not listen"
px_send_tcp "$tcp" "$PX_WORK/queued.log"
QI=$PX_WORK/t2src.work/pixel.qi
qi_size() { sed -n 's/^+iQueueSize:2:[0-9]*:\([0-9]*\):$/\1/p' "$QI" 2>/dev/null; }
px_wait_count qi_size 200 30 || px_fail "the 200 lines did not reach the queue's .qi file"
stall=$(pgrep -P "$RSYSLOG_PID_t2src")
# shellcheck disable=SC2086
[ -z "$stall" ] || px_track $stall
kill -KILL "$RSYSLOG_PID_t2src"
wait "$RSYSLOG_PID_t2src" 2>/dev/null
# shellcheck disable=SC2086
[ -n "$stall" ] && kill -KILL $stall 2>/dev/null

# The queue as rsyslog left it is consistent: nothing for the tool to do.
"$QUEUE_TRIM_BIN" -n "$QI" >"$PX_WORK/trim-before.out" 2>&1 || px_fail "pixel-queue-trim -n failed"
[ ! -s "$PX_WORK/trim-before.out" ] || px_fail "a clean queue needs no trim: $(cat "$PX_WORK/trim-before.out")"

# ---- 2. the crash window: one more line written, not checkpointed ---------
python3 - "$PX_WORK/t2src.work/pixel.00000001" "$ORPHAN_EID" <<'PY'
import re, sys
path, eid = sys.argv[1], sys.argv[2].encode()
data = open(path, "rb").read()
last = data.rfind(b"<Obj:1:msg:1:\n")
obj = data[last:]
m = re.search(rb"eid=([0-9a-f-]{36})", obj)
assert last >= 0 and m, "no queued message with an event ID"
open(path, "ab").write(obj[:m.start(1)] + eid + obj[m.end(1):])
PY
"$QUEUE_TRIM_BIN" -n "$QI" >"$PX_WORK/trim-dry.out" 2>&1
grep -q 'would cut it' "$PX_WORK/trim-dry.out" || px_fail "pixel-queue-trim -n does not see the extra bytes"

# ---- 3. restart on that state, without and with the trim --------------------
# run_variant NAME trim|raw: sets V_Q, V_NEW, V_ORPHAN (queued and new lines
# in Kafka, and whether the stale line was delivered) and V_SAID (rsyslog's
# own report of queue trouble, if any).
run_variant() {
    local name=$1 mode=$2 d=$PX_WORK/$1 t u pid
    mkdir -p "$d"
    cp -a "$PX_WORK/t2src.work" "$PX_WORK/$name.work"
    if [ "$mode" = trim ]; then
        "$QUEUE_TRIM_BIN" "$PX_WORK/$name.work/pixel.qi" >"$d/trim.out" 2>&1 || px_fail "pixel-queue-trim failed"
        grep -q ': cut from ' "$d/trim.out" || px_fail "pixel-queue-trim did not cut the extra bytes"
    fi
    px_mock_kafka "$d/kafka"
    px_delivery_yaml "$d/delivery.yaml" "$d/spool"
    t=$(px_free_port)
    u=$(px_free_port)
    px_tier2_conf "$PX_WORK/$name.conf" "$t" "$u" "$d/delivery.yaml" "$PIPELINE_SRC" off
    px_rsyslog_start "$name" "$PX_WORK/$name.conf"
    px_wait_port "$t" 30 || px_fail "tier two ($name) did not listen"
    eval "pid=\$RSYSLOG_PID_$name"
    # The restarted instance drains its backlog first (its reader reaches the
    # end of what the .qi records), then the new lines come, ten a second.
    count() { px_consume pixel-events "$d/events.out"; sort -u <(px_ids "$d/events.out") | wc -l; }
    px_wait_count count 200 120 2>/dev/null || true
    sleep 1
    px_send_tcp "$t" "$PX_WORK/new.log" 10
    px_wait_count count 220 30 2>/dev/null || true
    sleep 1
    kill -TERM "$pid"
    wait "$pid" 2>/dev/null
    px_consume pixel-events "$d/events.out"
    px_ids "$d/events.out" | sort -u >"$d/got.ids"
    V_Q=$(comm -12 "$d/got.ids" <(sort -u "$PX_WORK/exp-queued/events.ids") | wc -l)
    V_NEW=$(comm -12 "$d/got.ids" <(sort -u "$PX_WORK/exp-new/events.ids") | wc -l)
    V_ORPHAN=$(grep -c "^$ORPHAN_EID\$" "$d/got.ids")
    V_SAID=$(grep -E 'messages from diskqueue|fewer than specified|qDeqDisk' "$PX_WORK/$name.stdout" | head -2)
}

run_variant t2raw raw
px_log "without pixel-queue-trim: queued $V_Q/200, new $V_NEW/20, stale line delivered $V_ORPHAN"
[ -z "$V_SAID" ] || px_log "rsyslog said: $V_SAID"
# The state must be the dangerous one: untrimmed, rsyslog misreads it.
[ "$V_ORPHAN" -gt 0 ] || [ "$V_NEW" -lt 20 ] ||
    px_fail "untrimmed, rsyslog neither lost new lines nor delivered the stale one: the test no longer builds the state rsyslog misreads"
run_variant t2trim trim
px_log "after pixel-queue-trim: queued $V_Q/200, new $V_NEW/20, stale line delivered $V_ORPHAN"
[ "$V_Q" -eq 200 ] || px_fail "after the trim, $((200 - V_Q)) queued lines are missing"
[ "$V_NEW" -eq 20 ] || px_fail "after the trim, $((20 - V_NEW)) new lines are missing"
[ "$V_ORPHAN" -eq 0 ] || px_fail "after the trim, the unacknowledged stale line was still delivered"
[ -z "$V_SAID" ] || px_fail "after the trim, rsyslog still reports a queue problem: $V_SAID"
echo PASS
