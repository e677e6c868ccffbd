#!/usr/bin/env python3
"""Conservation and verdicts on a generated corpus, against the generator's ground truth.

Every line must end as exactly one of event / quarantined / skipped / dropped; the counts must
add up; every valid pixel hit must be an event; every invalid one must be quarantined with the
code of its category; every other request must be skipped.  -j 1 and -j 2 must give the same
bytes (order kept).
"""
import collections
import json
import os
import re
import subprocess
import sys
import tempfile

BOT_UA = re.compile(r"bot|crawler|spider|HeadlessChrome", re.I)

EXPECTED = {
    "missing_uid": "missing_required",
    "missing_ev": "missing_event_type",
    "unknown_ev": "unknown_event_type",
    "non_numeric": "bad_integer",
    "bad_percent": "bad_percent_escape",
    "bad_utf8": "invalid_utf8",
    "overlong": "too_long",
    "bad_base64": "bad_base64url_json",
    "truncated": "truncated_line",
}


def main():
    shared = os.environ.get("PIXEL_SHARED_DIR", "../shared")
    gen = os.path.join(shared, "bench", "gen_corpus.py")
    if not os.path.exists(gen):
        print(f"SKIP: {gen} not found (set PIXEL_SHARED_DIR)")
        return 77
    build = os.environ["PIXEL_BUILD_DIR"]
    src = os.environ["PIXEL_SOURCE_DIR"]
    pixelconv = os.path.join(build, "tools", "pixelconv", "pixelconv")
    pipeline = os.environ.get("CORPUS_PIPELINE", os.path.join(src, "examples", "realestate", "pipeline.yaml"))
    lines = os.environ.get("CORPUS_LINES", "100000")
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        corpus, labels = os.path.join(tmp, "c.log"), os.path.join(tmp, "labels.txt")
        with open(corpus, "wb") as out:
            subprocess.run([sys.executable, gen, "--seed", "7", "--lines", lines, "--labels", labels],
                           stdout=out, check=True)
        outputs = {}
        for jobs in ("1", "2"):
            ev, qr, st = (os.path.join(tmp, f"{n}{jobs}") for n in ("ev", "qr", "st"))
            subprocess.run([pixelconv, "-c", pipeline, "-j", jobs, "-o", ev, "-q", qr, "-s", st,
                            "--fixed-time", "2026-11-26T12:00:00Z", "--quiet", corpus], check=True)
            outputs[jobs] = (open(ev, "rb").read(), open(qr, "rb").read(), json.load(open(st)))
        if outputs["1"] != outputs["2"]:
            failures.append("-j 1 and -j 2 outputs differ")
        events_raw, quarantine_raw, stats = outputs["2"]
        raw_lines = open(corpus, "rb").read().split(b"\n")[:-1]
        label_list = open(labels).read().split("\n")[:-1]
        assert len(raw_lines) == len(label_list)
        truth = collections.Counter(l.split()[0] for l in label_list)

        total = stats["events"] + stats["quarantined"] + stats["skipped"] + stats["dropped"]
        print(f"lines={stats['lines']} events={stats['events']} quarantined={stats['quarantined']} "
              f"skipped={stats['skipped']} dropped={stats['dropped']} failed={stats['failed']}")
        print(f"truth: valid={truth['V']} invalid={truth['I']} non_pixel={truth['N']}")
        if stats["lines"] != len(raw_lines) or total != stats["lines"] or stats["failed"]:
            failures.append(f"counts do not add up: {stats}")
        n_events = len(events_raw.split(b"\n")) - 1
        if n_events != stats["events"]:
            failures.append(f"{n_events} event lines written, stats say {stats['events']}")
        # Valid hits from crawlers are dropped on purpose by the botfilter module.
        bots = sum(1 for raw, label in zip(raw_lines, label_list)
                   if label == "V" and BOT_UA.search(raw.rsplit(b'"', 2)[-2].decode()))
        print(f"valid lines with a crawler's user agent: {bots}; dropped_by: {stats.get('dropped_by')}")
        if stats["events"] + stats["dropped"] != truth["V"]:
            failures.append(f"{stats['events']} events + {stats['dropped']} dropped for {truth['V']} valid lines")
        if stats["dropped"] != bots or stats.get("dropped_by", {}).get("botfilter", 0) != stats["dropped"]:
            failures.append(f"{stats['dropped']} dropped ({stats.get('dropped_by')}), {bots} crawler lines")
        if stats["skipped"] != truth["N"]:
            failures.append(f"{stats['skipped']} skipped for {truth['N']} non-pixel lines")

        by_raw = {}
        for rec in quarantine_raw.split(b"\n")[:-1]:
            r = json.loads(rec)
            by_raw[r["raw"].encode()] = [x["code"] for x in r["reasons"]]
        per_category = collections.defaultdict(collections.Counter)
        for raw, label in zip(raw_lines, label_list):
            if label == "V" and raw in by_raw:
                failures.append(f"valid line quarantined: {by_raw[raw]}: {raw[:120]!r}")
            if label.startswith("I "):
                cat = label[2:]
                codes = by_raw.get(raw)
                per_category[cat][codes[0] if codes else "NOT QUARANTINED"] += 1
        for cat, counter in sorted(per_category.items()):
            print(f"  {cat:12s} {dict(counter)}")
            if set(counter) != {EXPECTED[cat]}:
                failures.append(f"category {cat}: {dict(counter)}, expected only {EXPECTED[cat]}")
        if set(per_category) != set(EXPECTED):
            failures.append(f"categories seen: {sorted(per_category)}")
    for f in failures[:20]:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
