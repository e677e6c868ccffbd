#!/usr/bin/env python3
"""Integration tests of the delivery component against the mock Kafka cluster.

    integration.py CASE      CASE: corpus | brokers_down | sigkill | damaged | full |
                                   quarantine | rejected | pixelconv | mock_nodelay |
                                   omprog_linger

Real processes: pixel-mock-kafka (librdkafka's mock cluster on 127.0.0.1),
delivery-feed (the producing host), pixel-replay, pixel-spool, and kcat to
read topics back.  Binaries come from the environment (meson sets them):
PIXEL_FEED, PIXEL_REPLAY, PIXEL_SPOOL, PIXEL_MOCK; the corpus generator from
PIXEL_SHARED_DIR/bench/gen_corpus.py.  PIXEL_PIPELINE (optional) names a
pipeline YAML: then the corpus case runs raw log lines through libpixel and
checks the events against the generator's labels.  The other cases (and the
corpus case without it) use a stand-in converter of the labelled corpus
(below): they test delivery, not conversion.

Exit 0 pass, 1 fail, 77 skip.  Every wait is a bounded loop on a condition;
nothing asserts on durations.
"""

import atexit
import ctypes
import fcntl
import hashlib
import json
import re
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from urllib.parse import parse_qsl, urlsplit

SKIP = 77
WORKDIR = []
USERS = 40  # case pixelconv: users the corpus is folded into


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    if WORKDIR:
        print(f"work directory kept: {WORKDIR[0]}", file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def env_path(name):
    p = os.environ.get(name)
    if not p or not os.path.exists(p):
        print(f"skip: {name} not set or missing", file=sys.stderr)
        sys.exit(SKIP)
    return p


class Env:
    def __init__(self, name):
        self.feed = env_path("PIXEL_FEED")
        self.replay = env_path("PIXEL_REPLAY")
        self.spool_tool = env_path("PIXEL_SPOOL")
        self.mock_bin = env_path("PIXEL_MOCK")
        shared = os.environ.get("PIXEL_SHARED_DIR", "")
        self.gen = os.path.join(shared, "bench", "gen_corpus.py")
        if not os.path.exists(self.gen):
            print(f"skip: no corpus generator at {self.gen} (PIXEL_SHARED_DIR)", file=sys.stderr)
            sys.exit(SKIP)
        if shutil.which("kcat") is None:
            print("skip: kcat not installed", file=sys.stderr)
            sys.exit(SKIP)
        self.pipeline = os.environ.get("PIXEL_PIPELINE") or None
        self.dir = tempfile.mkdtemp(prefix=f"delivery-{name}-")
        WORKDIR.append(self.dir)
        self.spool = os.path.join(self.dir, "spool")
        self.mock = None

    # -- mock cluster ------------------------------------------------------
    # librdkafka's mock keeps at most 5 MB (and 100000 batches) per partition
    # and silently drops the oldest beyond that (rdkafka_mock.c, hard-coded):
    # spread events over enough partitions, compressed, to keep them all.
    def start_mock(self, topics=("events:32", "quarantine:4")):
        self.fifo = os.path.join(self.dir, "mock.ctl")
        boot = os.path.join(self.dir, "mock.boot")
        args = [self.mock_bin, "-n", "3", "-c", self.fifo, "-b", boot]
        for t in topics:
            args += ["-t", t]
        self.mock_log = open(os.path.join(self.dir, "mock.log"), "w")
        self.mock = subprocess.Popen(args, stdout=self.mock_log, stderr=subprocess.STDOUT)
        atexit.register(self.stop_mock)
        for _ in range(200):
            if os.path.exists(boot):
                break
            time.sleep(0.05)
        check(os.path.exists(boot), "mock cluster did not start")
        self.brokers = open(boot).read().strip()

    def mock_cmd(self, cmd):
        with open(self.fifo, "w") as f:
            f.write(cmd + "\n")

    def stop_mock(self):
        if self.mock is not None and self.mock.poll() is None:
            self.mock.send_signal(signal.SIGTERM)
            try:
                self.mock.wait(10)
            except subprocess.TimeoutExpired:
                self.mock.kill()

    def close(self, ok):
        self.stop_mock()
        if ok and not os.environ.get("PIXEL_KEEP_TMP"):
            shutil.rmtree(self.dir, ignore_errors=True)
        else:
            print(f"work directory kept: {self.dir}", file=sys.stderr)

    # -- inputs --------------------------------------------------------------
    def corpus(self, lines, seed=5):
        log = os.path.join(self.dir, "corpus.log")
        labels = os.path.join(self.dir, "labels.txt")
        with open(log, "w") as out:
            subprocess.run([sys.executable, self.gen, "--seed", str(seed), "--lines", str(lines),
                            "--labels", labels], stdout=out, check=True)
        return log, labels

    def config(self, extra_spool="", probe_initial=200, timeout_ms=3000):
        path = os.path.join(self.dir, "pipeline.yaml")
        with open(path, "w") as f:
            f.write(f"""# delivery settings only: the pipeline itself is passed with -p

delivery:
  kafka:
    brokers: "{self.brokers}"
    topic: events
    key_field: user.id
    type_field: type
    compression: lz4
    delivery_timeout_ms: {timeout_ms}
    properties:
      linger.ms: 5
      reconnect.backoff.ms: 50
      reconnect.backoff.max.ms: 200
  quarantine:
    file: {self.dir}/quarantine.jsonl
  spool:
    dir: {self.spool}
    fsync: batch
    fsync_batch: 512
{extra_spool}  failover:
    probe_initial_ms: {probe_initial}
    probe_max_ms: 2000
""")
        return path

    def feed_input(self, log, labels, real_pipeline=False):
        """The input file for delivery-feed and the expected events {id: payload}.

        With real_pipeline (and PIXEL_PIPELINE set) raw lines go through
        libpixel and the expected payloads are what the feed handed to the
        sink (-O); else the stand-in converter makes them here."""
        if real_pipeline and self.pipeline:
            self.sent = os.path.join(self.dir, "sent.jsonl")
            # -T: convert on a second thread, as a real host would.
            return log, ["-p", self.pipeline, "-T", "-O", self.sent], None
        tsv = os.path.join(self.dir, "input.tsv")
        expected = {}
        with open(log, encoding="utf-8") as lf, open(labels) as bf, open(tsv, "w") as out:
            for line, label in zip(lf, bf):
                kind = label.split()[0]
                line = line.rstrip("\n")
                if kind == "N":
                    out.write("S\n")
                elif kind == "I":
                    out.write("Q\t" + json.dumps({"raw": line, "reason": label.split()[1]},
                                                 separators=(",", ":")) + "\n")
                else:
                    ev = standin_event(line)
                    payload = json.dumps(ev, separators=(",", ":"), ensure_ascii=False)
                    expected[ev["event_id"]] = payload
                    out.write(f"E\t{ev['type']}\t{ev['user']['id']}\t{payload}\n")
        return tsv, ["-j"], expected

    # -- running ---------------------------------------------------------------
    def run_feed(self, cfg, inp, mode, *extra, check_rc=True):
        stats = os.path.join(self.dir, "stats.json")
        err = open(os.path.join(self.dir, "feed.err"), "a")
        p = subprocess.run([self.feed, "-c", cfg, *mode, "-S", stats, *extra, inp],
                           stderr=err)
        err.close()
        if check_rc:
            check(p.returncode == 0, f"delivery-feed exited {p.returncode}; see {self.dir}/feed.err")
        st = json.load(open(stats)) if os.path.exists(stats) and p.returncode >= 0 else None
        if st:
            os.unlink(stats)
        return p.returncode, st

    def consume(self, topic="events"):
        # The mock cluster never splits a stored batch: let a fetch hold the
        # largest one, or the consumer stalls at its offset and -e ends early.
        p = subprocess.run(["kcat", "-C", "-b", self.brokers, "-t", topic, "-e", "-q",
                            "-X", "fetch.message.max.bytes=100000000",
                            "-X", "fetch.max.bytes=200000000",
                            "-X", "receive.message.max.bytes=210000000",
                            "-f", "%s\\n"], stdout=subprocess.PIPE, check=True, timeout=120)
        return [x for x in p.stdout.decode("utf-8").split("\n") if x]

    def spooled(self):
        """Records now in the spool (value strings), via pixel-spool inspect --all."""
        if not os.path.isdir(self.spool):
            return []
        p = subprocess.run([self.spool_tool, "inspect", "--all", self.spool],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out = []
        for line in p.stdout.decode("utf-8").split("\n"):
            if line:
                out.append(line.split("\t")[6])
        return out

    def run_replay(self, cfg, *extra):
        p = subprocess.run([self.replay, "-c", cfg, *extra], stderr=subprocess.PIPE)
        return p.returncode, p.stderr.decode()


def standin_event(line):
    """Stand-in for the pipeline: the fields the delivery tests need."""
    req = line.split('"')[1]
    q = dict(parse_qsl(urlsplit(req.split(" ")[1]).query, keep_blank_values=True))
    return {"event_id": q["eid"], "type": q["ev"], "user": {"id": q["uid"]},
            "ts": int(q["ts"]), "url": q.get("url", "")}


def event_id(payload):
    return json.loads(payload)["event_id"]


def ids_of(payloads):
    return [event_id(p) for p in payloads]


def setup(name, lines, real_pipeline=False):
    e = Env(name)
    e.start_mock()
    e.log, e.labels = e.corpus(lines)
    e.config_path = e.config()
    inp, mode, expected = e.feed_input(e.log, e.labels, real_pipeline)
    return e, inp, mode, expected


# The example pipeline's botfilter module drops crawlers' hits on purpose.
BOT_UA = re.compile(r"bot|crawler|spider|HeadlessChrome", re.I)


def valid_eids(e):
    """The client event IDs of the lines the generator labelled valid (less
    the crawlers' when the real pipeline, with its botfilter, converts)."""
    out = set()
    with open(e.log, encoding="utf-8") as lf, open(e.labels) as bf:
        for line, label in zip(lf, bf):
            ua = line.rstrip("\n").rsplit('"', 2)[-2] if line.count('"') >= 2 else ""
            if label.startswith("V") and not (e.pipeline and BOT_UA.search(ua)):
                out.add(standin_event(line.rstrip("\n"))["event_id"])
    return out


# -- the cases ------------------------------------------------------------------

def case_corpus():
    """200k lines into a 3-broker cluster; IDs and payloads come back intact."""
    e, inp, mode, expected = setup("corpus", 200000, real_pipeline=True)
    rc, st = e.run_feed(e.config_path, inp, mode)
    got = e.consume()
    if expected is None:  # the real pipeline: what it produced, checked against the labels
        expected = {event_id(p): p for p in open(e.sent, encoding="utf-8").read().split("\n") if p}
        want = valid_eids(e)
        check(set(expected) == want, f"the pipeline made {len(expected)} events of "
              f"{len(want)} valid lines ({len(want - set(expected))} missing, "
              f"{len(set(expected) - want)} unexpected)")
    exp = expected
    ids = ids_of(got)
    check(set(ids) == set(exp), f"event IDs differ: {len(set(ids))} consumed, {len(exp)} expected")
    check(len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} duplicates without any failure")
    for p in got:
        check(p == exp[event_id(p)], "payload not byte-identical: " + p[:120])
    check(st["delivered"] == len(exp) and st["spooled"] == 0, f"counters: {st}")
    check(st["lines"] == st["events_in"] + st["quarantine_in"] + st["skipped"] + st["dropped"],
          f"counters do not add up: {st}")
    print(f"ok: {len(ids)} events consumed, payloads identical; counters {st}")
    e.close(True)


def case_brokers_down():
    """All brokers down mid-stream and back; replay completes Kafka."""
    e, inp, mode, expected = setup("down", 100000)
    rc, st = e.run_feed(e.config_path, inp, mode, "-m", e.fifo,
                        "-x", "30000:down all", "-x", "60000:up all")
    check(st["failovers"] >= 1 and st["spooled"] > 0, f"no failover happened: {st}")
    check(st["lines"] == st["events_in"] + st["quarantine_in"] + st["skipped"] + st["dropped"],
          f"counters do not add up: {st}")
    check(st["events_in"] == st["delivered"] + st["spooled"], f"events unaccounted: {st}")
    in_kafka = set(ids_of(e.consume()))
    in_spool = set(ids_of(e.spooled()))
    exp = set(expected) if expected is not None else in_kafka | in_spool
    check(exp <= in_kafka | in_spool, f"{len(exp - in_kafka - in_spool)} events neither in Kafka nor spool")
    check(len(in_spool) >= st["spooled"] * 0.99, "spool holds fewer records than counted")
    # A replay beside a live writer (its lock held, as a running
    # pixel-omprog holds it) leaves that writer's active segment alone, and
    # says so without -v: a summary of 0 records alone reads as "done".
    held = []
    for w in sorted(os.listdir(e.spool)):
        if os.path.isfile(os.path.join(e.spool, w, "lock")):
            fd = os.open(os.path.join(e.spool, w, "lock"), os.O_RDWR)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held.append(fd)
    check(held, "no writer directory in the spool")
    rc, log = e.run_replay(e.config_path, "-a", os.path.join(e.dir, "archive-live"))
    check(rc == 0, f"pixel-replay beside a live writer exited {rc}: {log}")
    check("a live writer appends to it" in log,
          "pixel-replay did not say it left a live writer's segment: " + log)
    for fd in held:
        os.close(fd)
    archive = os.path.join(e.dir, "archive")
    rc, log = e.run_replay(e.config_path, "-a", archive)
    print(log, file=sys.stderr)
    check(rc == 0, f"pixel-replay exited {rc}: {log}")
    archived = sorted(os.listdir(archive))
    check(archived and all(a.endswith(".seg") for a in archived), f"archive: {archived}")
    p = subprocess.run([e.spool_tool, "verify", archive + "/" + archived[0]],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    check(p.returncode == 0, "an archived segment does not verify")
    after = set(ids_of(e.consume()))
    print(f"kafka before replay {len(in_kafka)}, spool {len(in_spool)}, after {len(after)}, "
          f"expected {len(exp)}", file=sys.stderr)
    check(exp <= after, f"{len(exp - after)} events missing after replay")
    check(e.spooled() == [], "spool not empty after replay")
    print(f"ok: {st['delivered']} delivered + {st['spooled']} spooled, "
          f"{st['failovers']} failover(s), {st['recoveries']} recovery(ies); after replay "
          f"Kafka holds all {len(exp)} events")
    e.close(True)


def case_sigkill():
    """Producer SIGKILLed mid-stream and restarted; replay SIGKILLed and restarted."""
    e, inp, mode, expected = setup("kill", 60000)
    acks = os.path.join(e.dir, "acks.txt")
    rc, _ = e.run_feed(e.config_path, inp, mode, "-A", acks, "-m", e.fifo,
                       "-x", "10000:down all", "-K", "40000", check_rc=False)
    check(rc == -signal.SIGKILL, f"feed was expected to die of SIGKILL, exited {rc}")
    e.mock_cmd("up all")
    # Everything acked before the crash is durable: in Kafka or in the spool.
    acked = set()
    for line in open(acks):
        acked.add(int(line.split()[0]))
    lines = open(inp).read().split("\n")
    durable = set(ids_of(e.consume())) | set(ids_of(e.spooled()))
    for n in acked:
        row = lines[n - 1]
        if row.startswith("E\t"):
            check(event_id(row.split("\t", 3)[3]) in durable, f"line {n} was acked but is lost")
    # The host resends what was never acked.
    rc, st = e.run_feed(e.config_path, inp, mode, "-A", acks, "-R", acks)
    # Replay, killed once it has checkpointed, then run again.
    p = subprocess.Popen([e.replay, "-c", e.config_path, "-r", "4000", "-k", "200"],
                         stderr=subprocess.DEVNULL)
    ck_seen = False
    for _ in range(600):
        if any(os.path.exists(os.path.join(e.spool, w, "checkpoint"))
               for w in os.listdir(e.spool)):
            ck_seen = True
            break
        if p.poll() is not None:
            break
        time.sleep(0.02)
    p.send_signal(signal.SIGKILL)
    p.wait()
    check(ck_seen, "replay finished or failed before its first checkpoint: spool too small")
    rc, log = e.run_replay(e.config_path)
    check(rc == 0, f"pixel-replay exited {rc}: {log}")
    check("resuming" in log, "the second replay did not resume from the checkpoint: " + log)
    got = ids_of(e.consume())
    exp = set(expected) if expected is not None else set(got)
    check(exp <= set(got), f"{len(exp - set(got))} events lost")
    dups = len(got) - len(set(got))
    print(f"ok: nothing lost; {dups} duplicates (allowed) after crash and replay restart")
    e.close(True)


def case_damaged():
    """Segments with flipped bytes, a torn tail and a damaged header: reported, rest replayed."""
    e = Env("damaged")
    e.start_mock()
    log, labels = e.corpus(20000)
    e.config_path = e.config(extra_spool="    segment_bytes: 256k\n")
    inp, mode, expected = e.feed_input(log, labels)
    e.run_feed(e.config_path, inp, mode, "-m", e.fifo, "-x", "1:down all")
    e.mock_cmd("up all")
    p = subprocess.run([e.spool_tool, "inspect", "--all", e.spool], stdout=subprocess.PIPE)
    recs = [l.split("\t") for l in p.stdout.decode().split("\n") if l]
    segs = sorted({r[0] for r in recs})
    check(len(segs) >= 4, f"expected several segments, got {len(segs)}")
    by_seg = {s: [(int(r[1]), event_id(r[6])) for r in recs if r[0] == s] for s in segs}
    lost = set()
    # Flip a byte inside the 5th record of the first segment.
    s0 = segs[0]
    off, eid = by_seg[s0][4]
    with open(s0, "r+b") as f:
        f.seek(off + 60)
        b = f.read(1)
        f.seek(off + 60)
        f.write(bytes([b[0] ^ 0xFF]))
    lost.add(eid)
    # Cut the second segment in the middle of its 10th record.
    s1 = segs[1]
    off, eid = by_seg[s1][9]
    os.truncate(s1, off + 30)
    lost |= {i for o, i in by_seg[s1][9:]}
    # Flip a byte of the third segment's header (its magic): none of it can
    # be read, and the segments after it must still be replayed.
    s2 = segs[2]
    with open(s2, "r+b") as f:
        b = f.read(1)
        f.seek(0)
        f.write(bytes([b[0] ^ 0xFF]))
    lost |= {i for o, i in by_seg[s2]}
    p = subprocess.run([e.spool_tool, "verify", e.spool], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE)
    err = p.stderr.decode()
    check(p.returncode == 1, f"verify should report damage (exit 1), got {p.returncode}")
    check(f"{s0}: offset {by_seg[s0][4][0]}" in err, "verify did not name segment+offset: " + err)
    check(f"{s1}: offset {by_seg[s1][9][0]}" in err and "torn" in err, "torn tail not reported: " + err)
    rc, rlog = e.run_replay(e.config_path)
    check(rc == 1, f"replay should finish with damage skipped (exit 1), got {rc}: {rlog}")
    check(f"{s0}: offset" in rlog and "torn" in rlog, "replay did not report the damage: " + rlog)
    check(f"segment {s2}: offset 0: not a spool segment header" in rlog,
          "replay did not report the damaged header: " + rlog)
    kept = os.path.join(e.spool, "damaged", os.path.basename(os.path.dirname(s2)),
                        os.path.basename(s2))
    check(os.path.exists(kept) and not os.path.exists(s2),
          f"the segment with the damaged header was not moved to {kept}")
    got = set(ids_of(e.consume()))
    want = {i for s in segs for o, i in by_seg[s]} - lost
    check(got == want, f"replayed {len(got)} events, expected {len(want)} (all good records)")
    check(any(i in got for o, i in by_seg[segs[3]]), "nothing after the damaged header was replayed")
    p = subprocess.run([e.spool_tool, "verify", os.path.join(e.spool, "damaged")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    check(p.returncode == 1, f"verify of <spool>/damaged should report damage (exit 1), got {p.returncode}")
    p = subprocess.run([e.spool_tool, "verify", os.path.join(e.spool, "nope")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    check(p.returncode == 2 and "nope: No such file or directory" in p.stderr.decode(),
          f"verify of a missing path: exit {p.returncode}, {p.stderr.decode()}")
    print(f"ok: {len(lost)} damaged records reported and skipped, {len(got)} good records replayed")
    e.close(True)


def case_full():
    """The spool's size limit while Kafka is down: back-pressure, no loss, a clear log line."""
    e = Env("full")
    e.start_mock()
    log, labels = e.corpus(20000)
    e.config_path = e.config(extra_spool="    max_bytes: 512k\n    segment_bytes: 128k\n")
    inp, mode, expected = e.feed_input(log, labels)
    errf = os.path.join(e.dir, "feed.err")
    stats = os.path.join(e.dir, "stats.json")
    p = subprocess.Popen([e.feed, "-c", e.config_path, *mode, "-S", stats, "-m", e.fifo,
                          "-x", "1:down all", inp], stderr=open(errf, "w"))
    seen = False
    for _ in range(1200):
        if "back-pressure" in open(errf).read():
            seen = True
            break
        if p.poll() is not None:
            break
        time.sleep(0.05)
    check(seen, "no back-pressure log line while the spool was full")
    check(p.poll() is None, "the producer finished while it should be held by back-pressure")
    e.mock_cmd("up all")
    check(p.wait(300) == 0, "delivery-feed failed after back-pressure: see " + errf)
    st = json.load(open(stats))
    text = open(errf).read()
    check("spool cannot take records" in text and "limit" in text, "unclear log line: " + text)
    check(st["backpressure"] > 0, f"counters show no back-pressure: {st}")
    check(st["events_in"] == st["delivered"] + st["spooled"], f"events unaccounted: {st}")
    rc, rlog = e.run_replay(e.config_path)
    check(rc == 0, f"pixel-replay exited {rc}: {rlog}")
    got = set(ids_of(e.consume()))
    exp = set(expected) if expected is not None else got
    check(exp <= got, f"{len(exp - got)} events lost")
    print(f"ok: back-pressure held the producer ({st['backpressure']} refusals), nothing lost")
    e.close(True)


def case_quarantine():
    """Quarantined lines re-run through a fixed pipeline with pixel-replay -q."""
    pipeline = os.environ.get("PIXEL_PIPELINE")
    if not pipeline:
        print("skip: PIXEL_PIPELINE not set (needs libpixel)", file=sys.stderr)
        sys.exit(SKIP)
    original = open(pipeline).read()
    strict = "{from: query.uid, required: true}"
    if strict not in original:
        print("skip: the example pipeline no longer requires query.uid as this test expects",
              file=sys.stderr)
        sys.exit(SKIP)
    e = Env("quarantine")
    e.start_mock()
    e.log, e.labels = e.corpus(20000)
    e.config_path = e.config()
    inp, mode, _ = e.feed_input(e.log, e.labels, real_pipeline=True)
    rc, st = e.run_feed(e.config_path, inp, mode)
    qfile = os.path.join(e.dir, "quarantine.jsonl")
    quarantined = open(qfile).read().count("\n")
    check(quarantined == st["quarantined"] and quarantined > 0, f"quarantine file: {st}")
    # the hits without uid that the fixed pipeline turns into events (not the crawlers')
    missing_uid = sum(1 for line, label in zip(open(e.log, encoding="utf-8"), open(e.labels))
                      if label.startswith("I missing_uid")
                      and not BOT_UA.search(line.rstrip("\n").rsplit('"', 2)[-2]))
    before = len(e.consume())
    # "Fix" the mapping: a hit without uid becomes an event after all.
    # (The data model requires a user id: the fix maps a missing one to the
    # anonymous user.)  The copy lives elsewhere: its relative paths are made
    # absolute, and its own delivery: section gives way to the test's.
    fixed = os.path.join(e.dir, "fixed.yaml")
    top = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(pipeline)), "..", ".."))
    copy = original.split("\ndelivery:")[0].replace("../../", top + "/")
    with open(fixed, "w") as f:
        f.write(copy.replace(strict, '{from: query.uid, default: "00000000000000000000000000000000"}'))
        f.write(open(e.config_path).read().replace("quarantine.jsonl", "quarantine2.jsonl"))
    p = subprocess.run([e.replay, "-c", fixed, "-q", qfile], stderr=subprocess.PIPE)
    log = p.stderr.decode()
    check(p.returncode == 0, f"pixel-replay -q exited {p.returncode}: {log}")
    after = len(e.consume())
    again = open(os.path.join(e.dir, "quarantine2.jsonl")).read().count("\n")
    check(after - before == missing_uid, f"{after - before} new events, expected {missing_uid}: {log}")
    dropped_now = int(re.search(r"(\d+) skipped/dropped", log).group(1))
    check(again == quarantined - missing_uid - dropped_now, f"{again} quarantined again, expected "
          f"{quarantined - missing_uid - dropped_now} ({dropped_now} crawlers dropped now)")
    missing = os.path.join(e.dir, "no-such.jsonl")
    p = subprocess.run([e.replay, "-c", fixed, "-q", missing], stderr=subprocess.PIPE)
    check(p.returncode == 2 and f"cannot open {missing}: No such file or directory" in
          p.stderr.decode(), f"a missing file: exit {p.returncode}, {p.stderr.decode()}")
    print(f"ok: {missing_uid} of {quarantined} quarantined lines recovered as events, "
          f"{again} quarantined again")
    e.close(True)


def case_rejected():
    """Records Kafka refuses (too large) are set aside, not lost, and do not stall replay."""
    e = Env("rejected")
    e.start_mock()
    log, labels = e.corpus(5000)
    e.config_path = e.config()
    inp, mode, expected = e.feed_input(log, labels)
    huge = []
    with open(inp, "a") as f:
        for i in range(3):
            ev = {"event_id": f"huge-{i}", "type": "page_view", "user": {"id": "u"},
                  "url": "https://www.example.com/" + "x" * 5000}
            payload = json.dumps(ev, separators=(",", ":"))
            huge.append(ev["event_id"])
            f.write(f"E\tpage_view\tu\t{payload}\n")
    e.run_feed(e.config_path, inp, mode, "-m", e.fifo, "-x", "1:down all")
    e.mock_cmd("up all")
    small = os.path.join(e.dir, "small.yaml")
    with open(small, "w") as f:
        f.write(open(e.config_path).read().replace(
            "    properties:\n", "    properties:\n      message.max.bytes: 2000\n"))
    rc, log = e.run_replay(small)
    check(rc == 1, f"replay should report the refused records (exit 1), got {rc}: {log}")
    check("3 refused by Kafka" in log, "refusals not counted: " + log)
    got = set(ids_of(e.consume()))
    check(got == set(expected), f"{len(set(expected) - got)} good events missing")
    p = subprocess.run([e.spool_tool, "inspect", os.path.join(e.spool, "rejected")],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    kept = {event_id(l.split("\t")[6]) for l in p.stdout.decode().split("\n") if l}
    check(kept == set(huge), f"rejected spool holds {kept}")
    print(f"ok: {len(got)} events replayed, {len(kept)} refused records kept aside")
    e.close(True)


def case_pixelconv():
    """pixelconv --kafka, inline and with two workers: every event arrives once,
    byte-identical, keyed by user.id, with its type and pipeline version in the
    headers, and each user's events in input order."""
    conv = os.environ.get("PIXEL_PIXELCONV")
    if not conv or not os.path.exists(conv) or not os.environ.get("PIXEL_PIPELINE"):
        print("skip: PIXEL_PIXELCONV or PIXEL_PIPELINE not set (built without the core)",
              file=sys.stderr)
        sys.exit(SKIP)
    e = Env("pixelconv")
    e.start_mock(topics=("j1:16", "j2:16"))
    # Many of pixelconv's batches (64 KB of input with --kafka), so that workers overlap.
    e.log, e.labels = e.corpus(12000)
    # The generator gives each user about 1.4 events: too few for an order
    # to be seen.  Fold the users into USERS (the same 32 hex digits form),
    # about 270 events each, so that any event handed over out of order,
    # across batches, workers or requests, lands behind one of its user's.
    users = [hashlib.md5(f"user-{k}".encode()).hexdigest() for k in range(USERS)]
    with open(e.log, encoding="utf-8") as f:
        text = f.read()
    text = re.sub(r"uid=([0-9a-f]{32})",
                  lambda m: "uid=" + users[int(m.group(1), 16) % USERS], text)
    with open(e.log, "w", encoding="utf-8") as f:
        f.write(text)
    # Responses 3 ms late: several produce requests in flight per partition,
    # where a producer without idempotence could reorder on a retry.
    e.mock_cmd("rtt all 3")
    base = [conv, "-c", e.pipeline, "--fixed-time", "2026-11-26T12:00:00Z"]
    want = os.path.join(e.dir, "file.jsonl")
    subprocess.run(base + ["-o", want, "-q", "/dev/null", "--quiet", e.log], check=True)
    want = [x for x in open(want, encoding="utf-8").read().split("\n") if x]
    check(len(want) > 5000, f"only {len(want)} events converted")
    want_by_key = {}
    for v in want:
        want_by_key.setdefault(str(json.loads(v)["user"]["id"]), []).append(v)
    fewest = min(len(v) for v in want_by_key.values())
    check(len(want_by_key) <= USERS and fewest >= 100,
          f"{len(want_by_key)} users, the fewest with {fewest} events: too few to see an order")
    for j in (1, 2):
        sets = {"kafka.brokers": e.brokers, "kafka.topic": f"j{j}", "kafka.key_field": "user.id",
                "kafka.type_field": "type", "quarantine.topic": "",
                "quarantine.file": os.path.join(e.dir, f"q{j}.jsonl"),
                "spool.dir": os.path.join(e.dir, f"spool{j}")}
        args = [a for n, v in sets.items() for a in ("--kafka-set", f"{n}={v}")]
        p = subprocess.run(base + ["--kafka", *args, "-j", str(j), e.log], stderr=subprocess.PIPE)
        err = p.stderr.decode()
        check(p.returncode == 0, f"pixelconv --kafka -j{j} exited {p.returncode}: {err}")
        check(f"{len(want)} delivered to Kafka, 0 spooled" in err, f"-j{j}: {err}")
        out = subprocess.run(["kcat", "-C", "-b", e.brokers, "-t", f"j{j}", "-e", "-q",
                              "-X", "fetch.message.max.bytes=100000000",
                              "-f", "%p\t%k\t%h\t%s\n"],
                             stdout=subprocess.PIPE, check=True, timeout=120).stdout.decode()
        rows = [r.split("\t", 3) for r in out.split("\n") if r]
        check(sorted(r[3] for r in rows) == sorted(want),
              f"-j{j}: {len(rows)} messages, not the {len(want)} events byte for byte")
        by_key, part_of = {}, {}
        for part, key, hdrs, value in rows:
            ev = json.loads(value)
            check(key == str(ev["user"]["id"]), f"-j{j}: key {key!r} for user {ev['user']['id']}")
            check(part_of.setdefault(key, part) == part,
                  f"-j{j}: user {key}'s events in partitions {part_of[key]} and {part}")
            check(f"pixel-event-type={ev['type']}" in hdrs.split(","),
                  f"-j{j}: headers {hdrs!r} for a {ev['type']} event")
            check("pixel-pipeline-version=1.0.0" in hdrs.split(","), f"-j{j}: headers {hdrs!r}")
            by_key.setdefault(key, []).append(value)
        check(len(set(part_of.values())) >= 8,
              f"-j{j}: the users' events went to {len(set(part_of.values()))} partitions only")
        for key, got in by_key.items():
            check(got == want_by_key[key], f"-j{j}: user {key}'s events out of input order")
        print(f"ok: -j{j}: {len(rows)} events, byte-identical, keyed, with headers; "
              f"{len(by_key)} users (at least {fewest} events each) each in one of "
              f"{len(set(part_of.values()))} partitions, in input order")
    # Kafka down: the events pixelconv lent to the sink come back in failed
    # delivery reports and are spooled from its buffers, which go back to
    # the batches only after the spool's fsync: every event is in Kafka or
    # the spool, once, byte for byte.
    e.mock_cmd("down all")
    time.sleep(0.5)  # let the mock take the command first (not a timing check)
    spool = os.path.join(e.dir, "spool3")
    sets = {"kafka.brokers": e.brokers, "kafka.topic": "j3", "kafka.key_field": "user.id",
            "kafka.type_field": "type", "quarantine.topic": "", "quarantine.file":
            os.path.join(e.dir, "q3.jsonl"), "spool.dir": spool,
            "kafka.delivery_timeout_ms": "2000", "failover.probe_initial_ms": "200"}
    args = [a for n, v in sets.items() for a in ("--kafka-set", f"{n}={v}")]
    p = subprocess.run(base + ["--kafka", *args, "-j", "2", e.log], stderr=subprocess.PIPE)
    err = p.stderr.decode()
    check(p.returncode == 0, f"pixelconv --kafka -j2, Kafka down, exited {p.returncode}: {err}")
    e.mock_cmd("up all")
    m = re.search(r"delivery: (\d+) delivered to Kafka, (\d+) spooled", err)
    check(m is not None and int(m.group(2)) > 0, f"Kafka down, nothing spooled: {err}")
    check(int(m.group(1)) + int(m.group(2)) == len(want), f"Kafka down: {err}")
    ins = subprocess.run([e.spool_tool, "inspect", "--all", spool], stdout=subprocess.PIPE,
                         check=True).stdout.decode("utf-8")
    # inspect writes a backslash, tab or control byte as \xHH
    spooled = [re.sub(r"\\x([0-9a-f]{2})", lambda h: chr(int(h.group(1), 16)), r.split("\t")[6])
               for r in ins.split("\n") if r]
    delivered = []
    if int(m.group(1)) > 0:
        delivered = [x for x in subprocess.run(
            ["kcat", "-C", "-b", e.brokers, "-t", "j3", "-e", "-q",
             "-X", "fetch.message.max.bytes=100000000", "-f", "%s\n"],
            stdout=subprocess.PIPE, check=True, timeout=120).stdout.decode().split("\n") if x]
    check(sorted(spooled + delivered) == sorted(want),
          f"Kafka down: {len(spooled)} spooled + {len(delivered)} delivered, not the "
          f"{len(want)} events byte for byte")
    print(f"ok: Kafka down: {len(spooled)} spooled + {len(delivered)} delivered, byte-identical")
    e.close(True)


def case_mock_nodelay():
    """pixel-mock-kafka's brokers set TCP_NODELAY on the connections they
    accept, as Kafka's brokers do: read off the mock's own sockets (copies
    taken with pidfd_getfd(2)) after one client connection per broker."""
    e = Env("nodelay")
    e.start_mock(topics=("events:1",))
    ports = {int(b.rsplit(":", 1)[1]) for b in e.brokers.split(",")}
    check(len(ports) == 3, f"bootstrap servers {e.brokers!r}")
    clients = [socket.create_connection(("127.0.0.1", p), timeout=10) for p in sorted(ports)]
    mine = {c.getsockname()[1] for c in clients}
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        pidfd = os.pidfd_open(e.mock.pid)
    except (AttributeError, OSError) as x:
        print(f"skip: pidfd_open: {x}", file=sys.stderr)
        e.close(True)
        sys.exit(SKIP)
    SYS_pidfd_getfd = 438  # x86-64 and most other architectures (not alpha)
    nodelay = {}
    for _ in range(200):
        for name in os.listdir(f"/proc/{e.mock.pid}/fd"):
            try:
                if not os.readlink(f"/proc/{e.mock.pid}/fd/{name}").startswith("socket:"):
                    continue
            except OSError:
                continue
            fd = libc.syscall(SYS_pidfd_getfd, pidfd, int(name), 0)
            if fd < 0:
                err = ctypes.get_errno()
                print(f"skip: pidfd_getfd: {os.strerror(err)}", file=sys.stderr)
                e.close(True)
                sys.exit(SKIP)
            s = socket.socket(fileno=fd)
            try:
                if s.family == socket.AF_INET and s.type == socket.SOCK_STREAM:
                    local, peer = s.getsockname(), s.getpeername()
                    if local[1] in ports and peer[1] in mine:
                        nodelay[peer[1]] = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            except OSError:
                pass  # the listening sockets have no peer
            finally:
                s.close()
        if len(nodelay) == len(mine):
            break
        time.sleep(0.05)
    os.close(pidfd)
    for c in clients:
        c.close()
    check(len(nodelay) == len(mine), f"found {len(nodelay)} of {len(mine)} accepted connections")
    check(all(v != 0 for v in nodelay.values()), f"TCP_NODELAY off on the mock's side: {nodelay}")
    print(f"ok: TCP_NODELAY on all {len(nodelay)} connections the mock brokers accepted")
    e.close(True)


def case_omprog_linger():
    """pixel-omprog sets librdkafka's linger.ms to 0 only when the delivery
    configuration leaves it unset, as pixel_delivery_config_get() reads it:
    block or flow style, either of its names, or --set."""
    omprog = os.environ.get("PIXEL_OMPROG")
    pipeline = os.environ.get("PIXEL_PIPELINE")
    if not omprog or not os.path.exists(omprog) or not pipeline:
        print("skip: PIXEL_OMPROG or PIXEL_PIPELINE not set", file=sys.stderr)
        sys.exit(SKIP)
    e = Env("omprog")
    cases = [("block style", "    properties:\n      linger.ms: 7\n", [], False),
             ("flow style", "    properties: {reconnect.backoff.ms: 50, linger.ms: 7}\n", [], False),
             ("alias", "    properties:\n      queue.buffering.max.ms: 7\n", [], False),
             ("--set", "", ["--set", "kafka.properties.linger.ms=7"], False),
             ("unset", "", [], True),
             ("other properties", "    properties: {batch.size: 65536}\n", [], True)]
    for name, props, args, want_zero in cases:
        path = os.path.join(e.dir, "delivery.yaml")
        with open(path, "w") as f:
            f.write(f"""delivery:
  kafka:
    brokers: "127.0.0.1:1"
    topic: events
{props}  quarantine:
    file: {e.dir}/quarantine.jsonl
  spool:
    dir: {e.spool}
""")
        # End of input at once: it loads, answers OK, flushes and exits.
        p = subprocess.run([omprog, *args, "--delivery", path, pipeline], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        err = p.stderr.decode()
        check(p.returncode == 0 and p.stdout.decode().startswith("OK"),
              f"{name}: pixel-omprog exited {p.returncode}: {err}")
        zero = "kafka linger.ms=0" in err
        check(zero == want_zero, f"{name}: pixel-omprog {'did not set' if want_zero else 'set'} "
              f"linger.ms=0: {err}")
    print(f"ok: linger.ms=0 exactly when the configuration leaves it unset ({len(cases)} cases)")
    e.close(True)


CASES = {"pixelconv": case_pixelconv, "corpus": case_corpus, "rejected": case_rejected, "quarantine": case_quarantine, "brokers_down": case_brokers_down, "sigkill": case_sigkill,
         "damaged": case_damaged, "full": case_full, "mock_nodelay": case_mock_nodelay,
         "omprog_linger": case_omprog_linger}

if __name__ == "__main__":
    if len(sys.argv) != 2 or sys.argv[1] not in CASES:
        print("usage: integration.py " + "|".join(CASES), file=sys.stderr)
        sys.exit(2)
    CASES[sys.argv[1]]()
