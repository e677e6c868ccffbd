#!/bin/bash
# The rsyslog configuration of docs/deployment.md ("Copy and paste"), as it
# is written there, against an installed libpixel.
#
# The blocks marked <!-- test: NAME --> in the doc are extracted verbatim.
# The only edit is the one the doc lists as the user's to make: the Kafka
# brokers in the delivery section.  The paths (/usr/local/bin/pixel-omprog,
# /etc/libpixel/pipeline.yaml, /etc/rsyslog.d, /var/log, /var/spool) and
# ports (514/udp, 2514/tcp) are used as they are, inside private namespaces:
#
#   network  a loopback of its own: the documented ports, nothing else seen
#   mount    /usr/local is the `meson install --destdir` tree; /etc and /var
#            are overlays (writes stay private); /etc/hosts maps
#            haproxy.example.net to 127.0.0.1; ldconfig runs as the doc says
#
# Each tier is a "host" of its own (a nested mount namespace: its own
# /etc/rsyslog.d, /var/log and /var/spool/rsyslog) running the stock Debian
# /etc/rsyslog.conf, minus imuxsock and imklog (a test must not take the
# real host's /dev/log or kernel log).  Lines go as nginx sends them (UDP
# to tier one), over RELP to tier two, through the installed pixel-omprog
# into the mock Kafka cluster; every valid event must arrive.  Tier two
# starts as its documented systemd drop-in says: the ExecStartPre= line
# (pixel-queue-trim on the tier-two queue) first, which must name the
# installed tool and the queue the tier-two block configures.
#
# Needs root, unshare, ip and overlayfs: otherwise it reports itself skipped.
set -u
. "$(dirname "$0")/lib.sh"
DOC=$PIXEL_SOURCE_DIR/docs/deployment.md

if [ "${1:-}" != --inside ]; then
    [ "$(id -u)" = 0 ] || px_skip "not root: needs private mount namespaces over /usr/local, /etc and /var"
    command -v unshare >/dev/null || px_skip "unshare (util-linux) is not installed"
    command -v ip >/dev/null || px_skip "ip (iproute2) is not installed"
    command -v meson >/dev/null || px_skip "meson is not on PATH (meson install)"
    [ -f /etc/rsyslog.conf ] || px_skip "no stock /etc/rsyslog.conf (Debian's rsyslog package)"
    [ -f "$RSYSLOG_MODDIR/imrelp.so" ] && [ -f "$RSYSLOG_MODDIR/omrelp.so" ] ||
        px_skip "rsyslog-relp (imrelp/omrelp) is not installed"
    px_need_kafka
    unshare --mount --net --propagation private true 2>/dev/null ||
        px_skip "cannot create private mount and network namespaces here"
    exec unshare --mount --net --propagation private bash "$0" --inside
fi

# ---- inside the private namespaces ----------------------------------------
px_init docs
case "$PX_WORK" in /etc/* | /var/* | /usr/local/*) px_skip "TMPDIR is under a path this test overlays" ;; esac
ip link set lo up || px_fail "cannot bring up the private loopback"

# doc_block NAME: the fenced block after <!-- test: NAME --> in the doc.
doc_block() {
    python3 - "$DOC" "$1" <<'PY'
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
m = re.search(r"^<!-- test: %s -->\n```[a-z]*\n(.*?)^```$" % re.escape(sys.argv[2]), text, re.S | re.M)
if not m:
    sys.exit("no block marked <!-- test: %s --> in %s" % (sys.argv[2], sys.argv[1]))
sys.stdout.write(m.group(1))
PY
}
for b in tier1.conf tier2.conf tier2-unit.conf delivery.yaml; do
    doc_block "$b" >"$PX_WORK/$b" || px_fail "docs/deployment.md: block '$b' is missing"
done

# Install as the doc says (meson install), into a tree mounted on /usr/local.
meson install -C "$PIXEL_BUILD_DIR" --no-rebuild --destdir "$PX_WORK/root" >"$PX_WORK/install.log" 2>&1 ||
    px_fail "meson install failed (see $PX_WORK/install.log)"
[ -x "$PX_WORK/root/usr/local/bin/pixel-omprog" ] ||
    px_skip "this build does not install to /usr/local (its prefix differs from the doc's)"
mkdir -p "$PX_WORK/etc.upper" "$PX_WORK/etc.work" "$PX_WORK/var.upper" "$PX_WORK/var.work"
mount --bind "$PX_WORK/root/usr/local" /usr/local || px_fail "cannot bind-mount /usr/local"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$PX_WORK/etc.upper,workdir=$PX_WORK/etc.work" /etc 2>/dev/null &&
    mount -t overlay overlay -o "lowerdir=/var,upperdir=$PX_WORK/var.upper,workdir=$PX_WORK/var.work" /var 2>/dev/null ||
    px_skip "overlayfs is not available (private /etc and /var)"
ldconfig || px_fail "ldconfig failed"
echo "127.0.0.1 haproxy.example.net" >>/etc/hosts
sed -i -e '/^[[:space:]]*module(load="imuxsock")/d' -e '/^[[:space:]]*module(load="imklog")/d' \
    -e '/^\$ModLoad imuxsock/d' -e '/^\$ModLoad imklog/d' /etc/rsyslog.conf
# From here on, nothing of the build tree: the installed tools find their
# libraries and modules by themselves, as on a user's machine.
unset LD_LIBRARY_PATH PIXEL_MODULE_PATH
OMPROG_BIN=/usr/local/bin/pixel-omprog

# The user's pipeline: the example, set up as the doc's step 2 says, with the
# doc's delivery section and the mock cluster's brokers filled in.
px_mock_kafka "$PX_WORK/kafka"
mkdir -p /etc/libpixel/schemas
cp -r "$PIXEL_SOURCE_DIR/schemas/realestate" /etc/libpixel/schemas/
awk '/^delivery:/ {skip = 1; next} skip && /^[^ #]/ {skip = 0} !skip' "$PIPELINE_SRC" |
    sed -e 's|schemas: \.\./\.\./schemas/realestate|schemas: schemas/realestate|' \
        -e 's|table: \.\./\.\./modules/referer/referers.yaml|table: /usr/local/share/libpixel/referers.yaml|' \
        >/etc/libpixel/pipeline.yaml
grep -q '^    brokers: ' "$PX_WORK/delivery.yaml" || px_fail "the doc's delivery section has no brokers line"
sed "s|^    brokers: .*|    brokers: \"$KAFKA_BROKERS\"|" "$PX_WORK/delivery.yaml" >>/etc/libpixel/pipeline.yaml

# host_exec NAME BLOCK FILE CMD...: CMD on a host whose /etc/rsyslog.d
# holds BLOCK as FILE (/var/log, /var/spool/rsyslog its own).  It execs:
# run it in a subshell or in the background.
host_exec() {
    local name=$1 block=$2 file=$3 h=$PX_WORK/host-$1
    shift 3
    mkdir -p "$h/rsyslog.d" "$h/log" "$h/spool"
    cp "$PX_WORK/$block" "$h/rsyslog.d/$file"
    exec unshare --mount --propagation private bash -c '
        mount --bind "$1/rsyslog.d" /etc/rsyslog.d && mount --bind "$1/log" /var/log &&
            mount --bind "$1/spool" /var/spool/rsyslog || exit 1
        shift; exec "$@"' _ "$h" "$@"
}
# host_rsyslogd NAME BLOCK FILE ARGS...: that host's rsyslogd ($! is rsyslogd).
host_rsyslogd() {
    local name=$1 block=$2 file=$3
    shift 3
    host_exec "$name" "$block" "$file" "$RSYSLOGD" "$@"
}

# The tier-two unit's ExecStartPre= (pixel-queue-trim) must name the
# installed tool and the queue of the doc's tier-two block: the Debian work
# directory plus the ruleset's queue.filename, with .qi.
pre=$(sed -n 's/^ExecStartPre=-\{0,1\}//p' "$PX_WORK/tier2-unit.conf")
[ -n "$pre" ] && grep -qx '\[Service\]' "$PX_WORK/tier2-unit.conf" ||
    px_fail "the doc's tier2-unit.conf block has no [Service] section with an ExecStartPre= line"
read -r pre_bin pre_qi pre_rest <<<"$pre"
workdir=$(sed -n 's/^\$WorkDirectory[[:space:]]\{1,\}//p' /etc/rsyslog.conf | tail -1)
qname=$(sed -n 's/.*queue\.filename="\([^"]*\)".*/\1/p' "$PX_WORK/tier2.conf" | head -1)
[ "$pre_bin" = /usr/local/bin/pixel-queue-trim ] && [ -x "$pre_bin" ] ||
    px_fail "ExecStartPre= runs '$pre_bin', not the installed /usr/local/bin/pixel-queue-trim"
[ -z "$pre_rest" ] || px_fail "ExecStartPre= has more arguments than the queue: '$pre_rest'"
[ "$pre_qi" = "${workdir:-/var/spool/rsyslog}/$qname.qi" ] ||
    px_fail "ExecStartPre= trims '$pre_qi', but tier two's queue is ${workdir:-/var/spool/rsyslog}/$qname.qi"

for t in tier2:tier2.conf:60-libpixel.conf tier1:tier1.conf:60-pixel-forward.conf; do
    IFS=: read -r name block file <<<"$t"
    (host_rsyslogd "$name" "$block" "$file" -N1) >"$PX_WORK/$name.check" 2>&1 ||
        { cat "$PX_WORK/$name.check" >&2; px_fail "rsyslogd -N1 rejects the doc's $block"; }
done
# As systemd would: the unit's ExecStartPre=, then rsyslogd.
# shellcheck disable=SC2086
(host_exec tier2 tier2.conf 60-libpixel.conf $pre) >"$PX_WORK/tier2.pre" 2>&1 ||
    px_fail "tier two's ExecStartPre= ($pre) failed: $(cat "$PX_WORK/tier2.pre")"
host_rsyslogd tier2 tier2.conf 60-libpixel.conf -n -i "$PX_WORK/tier2.pid" >"$PX_WORK/tier2.out" 2>&1 &
px_track $!
T2_PID=$!
px_wait_port 2514 30 || px_fail "tier two does not listen on 2514 (RELP)"
host_rsyslogd tier1 tier1.conf 60-pixel-forward.conf -n -i "$PX_WORK/tier1.pid" >"$PX_WORK/tier1.out" 2>&1 &
px_track $!
sleep 1 # tier one's UDP socket

px_corpus 43 3000 "$PX_WORK/in.log"
px_expected "$PX_WORK/in.log" "$PX_WORK/expected" /etc/libpixel/pipeline.yaml
want=$(wc -l <"$PX_WORK/expected/events.ids")
want_q=$(cat "$PX_WORK/expected/quarantined.count")
px_log "installed: $(ls "$PX_WORK/root/usr/local/bin" | tr '\n' ' ')"
px_send_udp 514 "$PX_WORK/in.log" 1500 # as nginx would, to tier one

# The pixel-omprog rsyslog runs is the installed one, with the installed library.
child=$(px_omprog_child "$T2_PID" 100 0.2)
if [ -z "$child" ]; then
    tail -5 "$PX_WORK/tier2.out" "$PX_WORK/host-tier2/log/syslog" >&2 2>/dev/null
    px_fail "no pixel-omprog running under tier two's rsyslog"
fi
exe=$(readlink "/proc/$child/exe")
lib=$(grep -o '/[^ ]*libpixel\.so[^ ]*' "/proc/$child/maps" | sort -u | head -1)
px_log "tier two runs $exe with $lib"
[ "$exe" = /usr/local/bin/pixel-omprog ] || px_fail "rsyslog runs $exe, not the installed pixel-omprog"
case "$lib" in /usr/local/lib/*) ;; *) px_fail "pixel-omprog loaded libpixel from '$lib', not /usr/local/lib" ;; esac

count() { px_consume pixel-events "$PX_WORK/events.out"; sort -u <(px_ids "$PX_WORK/events.out") | wc -l; }
px_wait_count count "$want" 120 || true
px_consume pixel-events "$PX_WORK/events.out"
px_consume pixel-quarantine "$PX_WORK/quarantine.out"
px_ids "$PX_WORK/events.out" >"$PX_WORK/got.ids"
missing=$(comm -23 <(sort -u "$PX_WORK/expected/events.ids") <(sort -u "$PX_WORK/got.ids") | wc -l)
got_q=$(python3 -c '
import json, sys
print(len({json.loads(l).get("raw", l) for l in open(sys.argv[1]) if l.strip()}))' "$PX_WORK/quarantine.out")
failover=$(cat "$PX_WORK/host-tier1/log/pixel-failover.jsonl" 2>/dev/null | wc -l)
px_log "expected events=$want quarantined=$want_q; Kafka events=$(sort -u "$PX_WORK/got.ids" | wc -l) missing=$missing quarantined=$got_q; tier-one failover lines=$failover"
[ "$missing" -eq 0 ] || px_fail "$missing valid events did not reach Kafka through the doc's configuration"
[ "$got_q" -eq "$want_q" ] || px_fail "quarantine records: $got_q in Kafka, $want_q expected"
[ "$failover" -eq 0 ] || px_fail "tier one used its failover file ($failover lines) while tier two was up"
grep -q "ready: pipeline" "$PX_WORK/host-tier2/log/pixel-omprog.log" ||
    px_fail "/var/log/pixel-omprog.log (output=) has no ready line"
echo PASS
