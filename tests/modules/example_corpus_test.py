#!/usr/bin/env python3
"""The example pipeline with its modules on a gen_corpus.py --seed 3 corpus.

pixelconv -j 2 (so the per-thread useragent, botfilter and referer instances
really run on two threads) must give: counts that add
up exactly, every event with browser/OS/device, no bot user agent among
the events, bot lines counted under dropped_by.botfilter, and no
quarantine caused by a module's fields.  Skips while the example pipeline
has no module entries, or without the corpus generator or uap-core.
"""
import json
import os
import subprocess
import sys
import tempfile

SRC = os.environ["PIXEL_SOURCE_DIR"]
BUILD = os.environ["PIXEL_BUILD_DIR"]
SHARED = os.environ.get("PIXEL_SHARED_DIR", os.path.join(SRC, "..", "shared"))
PIPE = os.path.join(SRC, "examples/realestate/pipeline.yaml")
GEN = os.path.join(SHARED, "bench/gen_corpus.py")
LINES = 20000
BOT_UAS = ("Googlebot/2.1", "bingbot/2.0", "AhrefsBot/7.0", "HeadlessChrome/")

if "module:" not in open(PIPE).read():
    print("SKIP: examples/realestate/pipeline.yaml has no module entries yet")
    sys.exit(77)
if not os.path.exists(GEN):
    print(f"SKIP: {GEN} not found")
    sys.exit(77)
if not os.path.exists("/usr/share/uap-core/regexes.yaml"):
    print("SKIP: uap-core is not installed")
    sys.exit(77)

fail = 0


def check(cond, what):
    global fail
    if not cond:
        fail += 1
        print(f"FAIL: {what}")


with tempfile.TemporaryDirectory() as tmp:
    corpus = os.path.join(tmp, "corpus.log")
    with open(corpus, "w") as f:
        subprocess.run([sys.executable, GEN, "--seed", "3", "--lines", str(LINES)], stdout=f, check=True)
    env = dict(os.environ, PIXEL_MODULE_PATH=os.environ["PIXEL_MODULE_BUILD_DIRS"])
    ev, qr, st = (os.path.join(tmp, n) for n in ("ev.jsonl", "q.jsonl", "stats.json"))
    r = subprocess.run([os.path.join(BUILD, "tools/pixelconv/pixelconv"), "-c", PIPE, "-j", "2",
                        "-o", ev, "-q", qr, "-s", st, "--fixed-time", "2026-11-26T06:00:00Z", corpus],
                       env=env, capture_output=True, text=True)
    check(r.returncode == 0, f"pixelconv: {r.returncode} {r.stderr[-2000:]}")
    stats = json.load(open(st))
    print("counts:", {k: stats[k] for k in ("lines", "events", "quarantined", "skipped", "dropped", "failed")},
          "dropped_by:", stats["dropped_by"])
    check(stats["lines"] == LINES, "every line read")
    check(stats["lines"] == stats["events"] + stats["quarantined"] + stats["skipped"] + stats["dropped"],
          "lines = events + quarantined + skipped + dropped")
    check(stats["failed"] == 0, "no infrastructure failures")
    check(stats["dropped_by"].get("botfilter", 0) > 0, "bots dropped by botfilter")
    check(stats["dropped"] == sum(stats["dropped_by"].values()), "every drop has a source")
    events = [json.loads(l) for l in open(ev)]
    check(len(events) == stats["events"], "one output line per event")
    missing = [e for e in events
               if not all(e.get("client", {}).get("ua", {}).get(p, {}).get("family") for p in ("browser", "os", "device"))]
    check(not missing, f"{len(missing)} events lack browser/os/device, e.g. {missing[:1]}")
    bots = [e for e in events if any(b in e.get("client", {}).get("user_agent", "") for b in BOT_UAS)]
    check(not bots, f"{len(bots)} bot events were not dropped")
    by_module = 0
    for line in open(qr):
        q = json.loads(line)
        for reason in q["reasons"]:
            loc = reason.get("location") or ""
            if loc.startswith(("/client/ua", "/referer", "/client/bot")) or reason.get("code") == "module_failed":
                by_module += 1
    check(by_module == 0, f"{by_module} quarantine reasons caused by module fields (schema not updated?)")
print("example corpus: " + ("ok" if not fail else f"{fail} failures"))
sys.exit(1 if fail else 0)
