#!/bin/bash
# pixel-mmexternal inside real rsyslog: each line comes back with
# $!pixel_outcome and $!pixel (the event or the quarantine record), which a
# plain omfile template writes out.  Counts match the library's own.
set -u
. "$(dirname "$0")/lib.sh"
px_init mmexternal
[ -f "$RSYSLOG_MODDIR/mmexternal.so" ] || px_skip "rsyslog's mmexternal module is missing"
[ -x "$MMEXTERNAL_BIN" ] || px_skip "pixel-mmexternal is not built"

px_corpus 41 500 "$PX_WORK/in.log"
px_expected "$PX_WORK/in.log" "$PX_WORK/expected"
want=$(wc -l <"$PX_WORK/expected/events.ids")
want_q=$(cat "$PX_WORK/expected/quarantined.count")
TCP=$(px_free_port)
cat >"$PX_WORK/mm.conf" <<CONF
global(workDirectory="$PX_WORK")
module(load="imtcp")
module(load="mmexternal")
template(name="out" type="string" string="%\$!pixel_outcome% %\$!pixel%\n")
input(type="imtcp" port="$TCP" address="127.0.0.1" ruleset="pixel")
ruleset(name="pixel") {
  action(type="mmexternal" binary="$MMEXTERNAL_BIN --module-path ${PIXEL_MODULE_PATH:-/nonexistent} $PIPELINE_SRC" interface.input="rawmsg")
  action(type="omfile" file="$PX_WORK/out.txt" template="out")
}
CONF
px_rsyslog_start mm "$PX_WORK/mm.conf"
px_wait_port "$TCP" 30 || px_fail "rsyslog did not listen"
px_send_tcp "$TCP" "$PX_WORK/in.log"
px_wait_count "wc -l <$PX_WORK/out.txt 2>/dev/null || echo 0" 500 60 || px_fail "not every line came out"
grep '^event ' "$PX_WORK/out.txt" | cut -d' ' -f2- >"$PX_WORK/events.jsonl"
got=$(px_ids "$PX_WORK/events.jsonl" | sort -u | wc -l)
got_q=$(grep -c '^quarantined ' "$PX_WORK/out.txt")
echo "# expected events=$want quarantined=$want_q; mmexternal events=$got quarantined=$got_q"
[ "$got" -eq "$want" ] || px_fail "events differ"
[ "$got_q" -eq "$want_q" ] || px_fail "quarantine records differ"
echo PASS
