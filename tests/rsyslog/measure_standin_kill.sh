#!/bin/bash
# A measurement, not a test: how many lines real rsyslog loses when the
# omprog program dies (SIGKILL) while rsyslog lives on, with a stand-in
# program instead of pixel-omprog, so that only rsyslog's own handling
# counts.  The stand-in speaks the omprog protocol with confirmMessages; a
# line is durable once written to its log, which happens before it answers
# OK to the COMMIT (with transactions) or to the line (without).
#
#   tests/rsyslog/measure_standin_kill.sh [on|off] [TIER2_CONF_IN] [LINES] [KILLS]
#
# Defaults: on, examples/topology/tier2.conf.in, 20000 lines, 10 kills.
# Prints "lost N of LINES (M duplicates)".  docs/deployment.md, "Transactions
# and a crash of pixel-omprog alone", has the figures.
set -u
. "$(dirname "$0")/lib.sh"
TX=${1:-on}
CONF_IN=${2:-$PIXEL_SOURCE_DIR/examples/topology/tier2.conf.in}
N=${3:-20000}
K=${4:-10}
[ -x "$RSYSLOGD" ] || px_skip "rsyslogd is not installed"
PX_WORK=$(mktemp -d "${TMPDIR:-/tmp}/pixel-standin.XXXXXX")
trap px_cleanup EXIT
trap 'exit 130' INT TERM

cat >"$PX_WORK/standin.py" <<'PY'
import sys
log = open(sys.argv[1], "a")
out = sys.stdout
out.write("OK\n"); out.flush()
txn = []
for line in sys.stdin:
    line = line.rstrip("\n")
    if line == "BEGIN TRANSACTION":
        txn = []
        out.write("OK\n")
    elif line == "COMMIT TRANSACTION":
        log.write("".join(l + "\n" for l in txn)); log.flush()
        txn = []
        out.write("OK\n")
    elif sys.argv[2] == "on":
        txn.append(line)
        out.write("DEFER_COMMIT\n")
    else:
        log.write(line + "\n"); log.flush()
        out.write("OK\n")
    out.flush()
PY
TCP=$(px_free_port)
UDP=$(px_free_port)
mkdir -p "$PX_WORK/t2.work"
sed -e "s|@WORKDIR@|$PX_WORK/t2.work|g" -e "s|@TCP_PORT@|$TCP|g" -e "s|@UDP_PORT@|$UDP|g" \
    -e "s|@OMPROG@ --delivery @DELIVERY@ @PIPELINE@|/usr/bin/python3 $PX_WORK/standin.py $PX_WORK/durable.log $TX|" \
    -e "s|@TRANSACTIONS@|$TX|g" -e "s|@EXTRA_INPUTS@||g" -e "s|@LOGDIR@|$PX_WORK|g" -e "s|@NAME@|t2|g" \
    "$CONF_IN" >"$PX_WORK/t2.conf"
px_rsyslog_start t2 "$PX_WORK/t2.conf"
px_wait_port "$TCP" 30 || px_fail "rsyslog did not start"
seq -f "line %06g" 1 "$N" >"$PX_WORK/in.txt"
px_send_tcp "$TCP" "$PX_WORK/in.txt" 4000 &
sender=$!
px_track $sender
kills=0
for _ in $(seq 1 "$K"); do
    sleep "0.$((RANDOM % 9 + 1))"
    child=$(pgrep -P "$RSYSLOG_PID_t2" -f standin.py | head -1)
    [ -n "$child" ] && kill -KILL "$child" && kills=$((kills + 1))
done
wait $sender
px_wait_count "sort -u $PX_WORK/durable.log | wc -l" "$N" 30 2>/dev/null
got=$(sort -u "$PX_WORK/durable.log" | wc -l)
total=$(wc -l <"$PX_WORK/durable.log")
echo "transactions $TX, $(basename "$CONF_IN"), $kills kills: lost $((N - got)) of $N ($((total - got)) duplicates)"
