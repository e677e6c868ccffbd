#!/usr/bin/env python3
"""The example pipeline with the privacy module: events still validate.

privacy replaces user.id and user.session by a keyed hash.  The data model
(schemas/realestate) wants user.id as 128 bits in 32 lowercase hex digits, so
the pipeline keeps 16 bytes of the MAC (`bytes: 16`, hex), as docs/modules.md
says.  On the example's sample.log (pixelconv, the ingest clock fixed as in
tests/integration/cli_test.sh) this checks:

  - the events are the example's expected events with user.id and
    user.session replaced by HMAC-SHA-256(key, value)[:16] in hex, byte for
    byte, and the quarantine records and counts are the expected ones: no
    event is quarantined because of its pseudonym;
  - the same input under the same key gives the same pseudonyms (a second
    run, and a user seen twice in the sample), another key gives other ones;
  - with the default 32 bytes (64 hex digits) user.id no longer fits the
    model, and those events are quarantined: why the example sets 16.

Skips without uap-core (the example's useragent module needs it).
"""
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

SRC = os.environ["PIXEL_SOURCE_DIR"]
BUILD = os.environ["PIXEL_BUILD_DIR"]
EX = os.path.join(SRC, "examples/realestate")
PIXELCONV = os.path.join(BUILD, "tools/pixelconv/pixelconv")
KEYFILE = os.path.join(os.environ["PIXEL_MODULE_TEST_DATA"], "privacy.key")

if not os.path.exists("/usr/share/uap-core/regexes.yaml"):
    print("SKIP: uap-core is not installed")
    sys.exit(77)

fail = 0


def check(cond, what):
    global fail
    if not cond:
        fail += 1
        print(f"FAIL: {what}")


def pipeline(tmp, name, privacy):
    """The example pipeline, its relative paths made absolute, with privacy last."""
    p = yaml.safe_load(open(os.path.join(EX, "pipeline.yaml")))
    p["validate"]["schemas"] = os.path.normpath(os.path.join(EX, p["validate"]["schemas"]))
    for e in p["enrich"]:
        cfg = e.get("module", {}).get("config", {})
        if "table" in cfg:
            cfg["table"] = os.path.normpath(os.path.join(EX, cfg["table"]))
    p["enrich"].append({"module": {"name": "privacy", "config": privacy}})
    path = os.path.join(tmp, name + ".yaml")
    with open(path, "w") as f:
        yaml.safe_dump(p, f, sort_keys=False)
    return path


def run(tmp, name, privacy):
    """(events, quarantine text, stats) of the sample through the pipeline."""
    out = {k: os.path.join(tmp, f"{name}.{k}") for k in ("ev", "q", "st")}
    env = dict(os.environ, PIXEL_MODULE_PATH=os.environ["PIXEL_MODULE_BUILD_DIRS"])
    r = subprocess.run([PIXELCONV, "-c", pipeline(tmp, name, privacy), "--fixed-time",
                        "2026-11-26T12:00:00Z", "--quiet", "-o", out["ev"], "-q", out["q"],
                        "-s", out["st"], os.path.join(EX, "sample.log")],
                       env=env, capture_output=True, text=True)
    check(r.returncode == 0, f"{name}: pixelconv exit {r.returncode}: {r.stderr[-2000:]}")
    with open(out["ev"]) as f:
        events = f.read().splitlines()
    return events, open(out["q"]).read(), json.load(open(out["st"]))


def pseudonym(key, value, nbytes=16):
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:2 * nbytes]


key1 = open(KEYFILE, "rb").read().rstrip(b"\n")
key2 = b"another-key-for-the-same-users-0123"
expected = open(os.path.join(EX, "expected/events.jsonl")).read().splitlines()
expected_q = open(os.path.join(EX, "expected/quarantine.jsonl")).read()
expected_st = json.load(open(os.path.join(EX, "expected/stats.json")))
HEX32 = re.compile(r"[0-9a-f]{32}")

with tempfile.TemporaryDirectory() as tmp:
    key2file = os.path.join(tmp, "key2")
    with open(key2file, "wb") as f:
        f.write(key2 + b"\n")
    conf = {"key_file": KEYFILE, "hash": ["user.id", "user.session"], "bytes": 16}
    ev1, q1, st1 = run(tmp, "k1", conf)

    check(st1 == expected_st, f"counts as without privacy: {st1} != {expected_st}")
    check(q1 == expected_q, "quarantine records as without privacy")
    check(len(ev1) == len(expected), f"{len(ev1)} events, expected {len(expected)}")
    # The expected events with the pseudonyms put in, serialized as the library
    # does (compact, member order kept): the output must be exactly that.
    mismatch = 0
    for got, want in zip(ev1, expected):
        w = json.loads(want)
        w["user"] = {k: pseudonym(key1, v) if k in ("id", "session") else v for k, v in w["user"].items()}
        if got != json.dumps(w, separators=(",", ":"), ensure_ascii=False):
            mismatch += 1
            if mismatch == 1:
                print(f"first difference:\n  got  {got}\n  want {json.dumps(w, separators=(',', ':'))}")
    check(mismatch == 0, f"{mismatch} events differ from the expected ones with pseudonyms")
    ids1 = [json.loads(e)["user"]["id"] for e in ev1]
    check(all(HEX32.fullmatch(i) for i in ids1), "every user.id is 32 lowercase hex digits")

    # Stable: a second run, and a user who appears twice in the sample.
    ev1b, _, _ = run(tmp, "k1b", conf)
    check(ev1b == ev1, "the same input and key give the same output")
    orig = [json.loads(e)["user"]["id"] for e in expected]
    seen = {}
    for o, p in zip(orig, ids1):
        check(seen.setdefault(o, p) == p, f"user {o} got two pseudonyms")
    check(len(seen) < len(orig), "the sample has a user seen twice (the stability check above ran)")

    # Another key: every pseudonym differs, and events still validate.
    ev2, q2, st2 = run(tmp, "k2", dict(conf, key_file=key2file))
    check(st2 == expected_st, f"second key: counts {st2}")
    ids2 = [json.loads(e)["user"]["id"] for e in ev2]
    check(len(ids2) == len(ids1) and all(a != b for a, b in zip(ids1, ids2)),
          "another key gives other pseudonyms")
    check(ids2 == [pseudonym(key2, o) for o in orig], "second key: HMAC under that key")

    # The default, 32 bytes: 64 hex digits are not a user.id of the model.
    evd, qd, std = run(tmp, "default", {"key_file": KEYFILE, "hash": ["user.id"]})
    pattern = sum('"location":"/user/id"' in line for line in qd.splitlines())
    print(f"default 32 bytes: {std['events']} events, {std['quarantined']} quarantined, "
          f"{pattern} for /user/id")
    check(std["events"] == 0 and pattern == expected_st["events"],
          "with bytes: 32, every event's user.id fails the model's pattern")

print("privacy on the example: " + ("ok" if not fail else f"{fail} failures"))
sys.exit(1 if fail else 0)
