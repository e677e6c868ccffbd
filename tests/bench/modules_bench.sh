#!/bin/sh
# Interceptor module benchmark (issue 6), one thread, best of 3 passes:
#   - the example pipeline (examples/realestate) alone, then with each module
#     added at the end of its enrich list: cost per line of each module;
#   - the useragent cache's hit rate on the corpus;
#   - the example pipeline with the modules it uses (useragent, botfilter,
#     referer) against the pipeline without them: throughput ratio.
#
#   tests/bench/modules_bench.sh [BUILD_DIR] [LINES]
#
# BUILD_DIR should be an optimized build without sanitizers.  The corpus is
# gen_corpus.py --seed 3 (PIXEL_SHARED_DIR, default ../shared).
set -eu
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build}
LINES=${2:-200000}
SHARED=${PIXEL_SHARED_DIR:-$SRC/../shared}
PIPE=${PIPELINE:-$SRC/examples/realestate/pipeline.yaml}
UAP=${PIXEL_UAP_CORE_DIR:-/usr/share/uap-core}
[ -f "$SHARED/bench/gen_corpus.py" ] || { echo "SKIP: $SHARED/bench/gen_corpus.py not found"; exit 77; }
[ -x "$BUILD/tests/modules/modbench" ] || { echo "SKIP: $BUILD/tests/modules/modbench not built"; exit 77; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
CACHE=${BENCH_CACHE:-$BUILD/bench-cache}
mkdir -p "$CACHE"
CORPUS="$CACHE/corpus-seed3-$LINES.log"
[ -s "$CORPUS" ] || python3 "$SHARED/bench/gen_corpus.py" --seed 3 --lines "$LINES" >"$CORPUS"

python3 - "$SRC" "$BUILD" "$PIPE" "$CORPUS" "$T" "$UAP" <<'PY'
import json, os, subprocess, sys
import yaml
src, build, pipe, corpus, tmp, uap = sys.argv[1:]
sys.path.insert(0, os.path.join(src, "tests/modules"))
from mmdb_writer import write_mmdb

moddirs = [os.path.join(build, "modules", m) for m in
           ("useragent", "botfilter", "referer", "privacy", "geoip")]
key = os.path.join(tmp, "key")
with open(key, "w") as f:
    f.write("benchmark-key-0123456789abcdef\n")
mmdb = os.path.join(tmp, "city.mmdb")
write_mmdb(mmdb, "GeoIP2-City", {f"{a}.0.0.0/8": {"country": {"iso_code": "US", "names": {"en": "United States"}}}
                                 for a in range(1, 224, 2)})
ua = {"module": {"name": "useragent", "config": {"regexes": os.path.join(uap, "regexes.yaml")}}}
bot = {"module": {"name": "botfilter"}}
ref = {"module": {"name": "referer", "config": {"table": os.path.join(src, "modules/referer/referers.yaml"),
                                                 "internal_hosts": ["example.com"]}}}
priv = {"module": {"name": "privacy", "config": {"key_file": key, "hash": ["user.id", "user.session"]}}}
geo = {"module": {"name": "geoip", "config": {"database": mmdb}}}

base = yaml.safe_load(open(pipe))
# The example may already carry modules: the baseline has none.
base["enrich"] = [e for e in base.get("enrich", []) if "module" not in e]
base.setdefault("modules", {})["path"] = moddirs


def run(name, extra):
    doc = dict(base, enrich=base["enrich"] + extra)
    path = os.path.join(tmp, name + ".yaml")
    with open(path, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    out = subprocess.run([os.path.join(build, "tests/modules/modbench"), path,
                          os.path.dirname(os.path.abspath(pipe)), corpus, "3"],
                         capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"{name}: {out.stderr.strip()}")
    first, *stats = out.stdout.splitlines()
    r = dict(kv.split("=") for kv in first.split())
    return {k: float(v) for k, v in r.items()}, stats


print(f"corpus: {corpus}")
b, _ = run("base", [])
n = b["lines"]
print(f"{'pipeline':34} {'lines/s':>10} {'ns/line':>8} {'module ns/line':>15}   outcomes (event/quar/skip/drop)")
def show(name, r, extra_ns=None):
    print(f"{name:34} {n / r['seconds']:10,.0f} {r['ns_per_line']:8.0f} "
          f"{'' if extra_ns is None else f'{extra_ns:15.0f}'}   "
          f"{r['events']:.0f}/{r['quarantined']:.0f}/{r['skipped']:.0f}/{r['dropped']:.0f}")
show("example, no modules", b)
have_geo = os.path.exists(os.path.join(build, "modules/geoip/geoip.so"))
ua_r, ua_stats = run("useragent", [ua])
show("+ useragent", ua_r, ua_r["ns_per_line"] - b["ns_per_line"])
for line in ua_stats:
    print(f"    {line}")
nocache = {"module": {"name": "useragent", "config": dict(ua["module"]["config"], cache_size=0)}}
r, _ = run("useragent-nocache", [nocache])
show("+ useragent, cache off (a miss)", r, r["ns_per_line"] - b["ns_per_line"])
for name, mods in (("+ botfilter (patterns only)", [bot]), ("+ referer", [ref]), ("+ privacy", [priv])) + \
        ((("+ geoip", [geo]),) if have_geo else ()):
    r, _ = run(name.split()[1], mods)
    show(name, r, r["ns_per_line"] - b["ns_per_line"])
allr, stats = run("all", [ua, bot, ref])
show("+ useragent, botfilter, referer", allr, allr["ns_per_line"] - b["ns_per_line"])
for line in stats:
    print(f"    {line}")
ratio = b["ns_per_line"] / allr["ns_per_line"]
print(f"example with its modules runs at {ratio:.0%} of the throughput without them "
      f"({'above' if ratio > 0.5 else 'BELOW'} the 50% target)")
PY
