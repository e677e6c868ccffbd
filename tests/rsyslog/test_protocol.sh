#!/bin/bash
# pixel-omprog speaks rsyslog's external-plugin protocol exactly: driven
# here directly (no rsyslog) through a pipe, reply by reply.
set -u
. "$(dirname "$0")/lib.sh"
px_init protocol
px_corpus 5 40 "$PX_WORK/in.log"
PIPE="$PIPELINE_SRC"
export PX_WORK OMPROG_BIN PIPE MOCK_KAFKA_BIN
python3 - <<'PY' || exit 1
import os, subprocess, sys, time, select

work, omprog, pipe = os.environ["PX_WORK"], os.environ["OMPROG_BIN"], os.environ["PIPE"]
lines = open(os.path.join(work, "in.log"), "rb").read().splitlines()
fails = 0

def check(cond, what):
    global fails
    print(("ok    " if cond else "FAIL  ") + what)
    if not cond:
        fails += 1

def start(*args):
    return subprocess.Popen([omprog, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=open(os.path.join(work, "omprog.err"), "ab"))

def reply(p):
    """One reply line as rsyslog reads it: leading dots stripped."""
    line = p.stdout.readline()
    return line

ev = os.path.join(work, "ev.jsonl")
p = start("--events-file", ev, pipe)
check(reply(p) == b"OK\n", "initial OK once loaded")
rs = []
for l in lines[:10]:
    p.stdin.write(l + b"\n"); p.stdin.flush()
    rs.append(reply(p))
check(rs == [b"OK\n"] * 10, "one exact OK\\n per message")
n_before = sum(1 for _ in open(ev))
check(n_before >= 1, "events written before their OK (%d)" % n_before)
p.stdin.write(b"BEGIN TRANSACTION\n"); p.stdin.flush()
check(reply(p) == b"OK\n", "BEGIN TRANSACTION answered OK")
rs = []
for l in lines[10:20]:
    p.stdin.write(l + b"\n"); p.stdin.flush()
    rs.append(reply(p))
check(all(r == b"DEFER_COMMIT\n" for r in rs), "messages in a file-mode transaction: DEFER_COMMIT")
p.stdin.write(b"COMMIT TRANSACTION\n"); p.stdin.flush()
check(reply(p) == b"OK\n", "COMMIT TRANSACTION answered OK once durable")
p.stdin.close()
check(p.wait(timeout=30) == 0, "clean exit 0 on end of input")
check(p.stdout.read() == b"", "nothing after the last reply")

# A pipeline that cannot load: a non-OK line, then a non-zero exit.  The
# line is what rsyslog's log shows ("program ... returned: ERROR: ..."), so
# it names the file and the reason, not only "see the log".
bad = os.path.join(work, "bad.yaml")
open(bad, "w").write("pipeline: [\n")
p = start("--events-file", ev, bad)
r = reply(p)
check(r != b"OK\n" and r.endswith(b"\n") and len(r) > 1, "load failure answered with an error line (%r)" % r)
check(r.startswith(b"ERROR: ") and b"bad.yaml:2:" in r and b"YAML syntax" in r and r.count(b"\n") == 1,
      "the error line names the file, the place and the reason (%r)" % r)
check(p.wait(timeout=30) != 0, "load failure exits non-zero")
missing = os.path.join(work, "no-such-pipeline.yaml")
p = start("--events-file", ev, missing)
r = reply(p)
check(r.startswith(b"ERROR: ") and b"no-such-pipeline.yaml" in r and b"No such file" in r,
      "a missing pipeline file is named in the error line (%r)" % r)
check(p.wait(timeout=30) != 0, "a missing pipeline exits non-zero")

# Keep-alive dots while Kafka is down, then OK once the event is spooled.
mock = os.environ.get("MOCK_KAFKA_BIN", "")
if os.access(mock, os.X_OK):
    ctl = os.path.join(work, "ctl"); boot = os.path.join(work, "boot")
    m = subprocess.Popen([mock, "-n", "1", "-t", "pixel-events:1", "-t", "pixel-quarantine:1",
                          "-c", ctl, "-b", boot], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if os.path.exists(boot) and os.path.getsize(boot) > 0: break
            time.sleep(0.1)
        brokers = open(boot).read().strip()
        d = os.path.join(work, "delivery.yaml")
        open(d, "w").write(f"""delivery:
  kafka:
    brokers: "{brokers}"
    topic: pixel-events
    type_field: type
    delivery_timeout_ms: 4000
  quarantine:
    topic: pixel-quarantine
  spool:
    dir: {work}/spool
  failover:
    probe_initial_ms: 500
    probe_max_ms: 1000
""")
        p = start("--delivery", d, "--keepalive-ms", "300", pipe)
        check(reply(p) == b"OK\n", "initial OK with the Kafka sink")
        p.stdin.write(lines[0] + b"\n"); p.stdin.flush()
        check(reply(p) == b"OK\n", "OK once Kafka confirmed")
        with open(ctl, "w") as c: c.write("rtt all 1500\n")
        time.sleep(0.3)
        p.stdin.write(lines[0] + b"\n"); p.stdin.flush()
        r = reply(p)
        check(r.startswith(b".") and r.lstrip(b".") == b"OK\n",
              "keep-alive dots while Kafka is slow, then OK (%d dots)" % r.count(b"."))
        with open(ctl, "w") as c: c.write("rtt all 0\ndown all\n")
        time.sleep(0.3)
        p.stdin.write(lines[0] + b"\n"); p.stdin.flush()
        r = reply(p)
        check(r.lstrip(b".") == b"OK\n", "Kafka down: OK (after %d dots) once spooled" % r.count(b"."))
        with open(ctl, "w") as c: c.write("up all\n")
        p.stdin.close()
        check(p.wait(timeout=60) == 0, "clean exit after flushing")
        segs = [f for dp, dn, fs in os.walk(os.path.join(work, "spool")) for f in fs if f.endswith(".seg")]
        check(len(segs) >= 1, "the spooled event is in a spool segment")
    finally:
        m.terminate(); m.wait()
import re
logged = [l for l in open(os.path.join(work, "omprog.err"), "rb").read().splitlines()
          if b"pixel-omprog[" in l]
stamp = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z pixel-omprog\[\d+\]: ")
check(logged and all(stamp.match(l) for l in logged),
      "each of the %d log lines starts with its UTC time" % len(logged))
sys.exit(1 if fails else 0)
PY
echo PASS
