#!/usr/bin/env python3
"""useragent against uap-core's own test cases.

Reads the test YAML files of the uap-core package (PIXEL_UAP_CORE_DIR,
default /usr/share/uap-core), feeds every user agent through the module in
a real pipeline (modrun) and compares browser, OS and device with the
expected values.  Skips (exit 77) when uap-core is not installed.
"""
import json
import os
import subprocess
import sys
import tempfile

UAP = os.environ.get("PIXEL_UAP_CORE_DIR", "/usr/share/uap-core")
MODRUN = os.environ.get("PIXEL_MODRUN", "")
MODDIRS = os.environ.get("PIXEL_MODULE_BUILD_DIRS", "")

try:
    import yaml
    Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
except ImportError:
    print("SKIP: python3-yaml is not installed")
    sys.exit(77)

if not os.path.exists(os.path.join(UAP, "regexes.yaml")):
    print(f"SKIP: uap-core not found in {UAP} (install the uap-core package or set PIXEL_UAP_CORE_DIR)")
    sys.exit(77)

# (file, part, fields compared) -- the files uap-core's own test runner uses.
SUITES = [
    ("tests/test_ua.yaml", "browser", ["family", "major", "minor", "patch"]),
    ("test_resources/firefox_user_agent_strings.yaml", "browser", ["family", "major", "minor", "patch"]),
    ("test_resources/opera_mini_user_agent_strings.yaml", "browser", ["family", "major", "minor", "patch"]),
    ("test_resources/podcasting_user_agent_strings.yaml", "browser", ["family", "major", "minor", "patch"]),
    ("test_resources/pgts_browser_list.yaml", "browser", ["family", "major", "minor", "patch"]),
    ("tests/test_os.yaml", "os", ["family", "major", "minor", "patch", "patch_minor"]),
    ("test_resources/additional_os_tests.yaml", "os", ["family", "major", "minor", "patch", "patch_minor"]),
    ("tests/test_device.yaml", "device", ["family", "brand", "model"]),
]


def norm(v):
    return None if v in (None, "") else str(v)


def main():
    with tempfile.TemporaryDirectory() as tmp:
        pipe = os.path.join(tmp, "ua.yaml")
        with open(pipe, "w") as f:
            f.write(
                "pipeline: {name: ua-test, version: '1'}\n"
                "input: {framing: none, format: combined, pixel_paths: [/px.gif]}\n"
                "fields: {a: query.a}\n"
                f"modules: {{path: {json.dumps(MODDIRS.split(':'))}}}\n"
                "enrich:\n"
                "  - module:\n"
                "      name: useragent\n"
                f"      config: {{regexes: {json.dumps(os.path.join(UAP, 'regexes.yaml'))}, "
                "from: ua, into: out, cache_size: 1024}\n")
        total = failed = 0
        for rel, part, fields in SUITES:
            path = os.path.join(UAP, rel)
            if not os.path.exists(path):
                print(f"note: {rel} not shipped by this uap-core; not run")
                continue
            with open(path, encoding="utf-8") as f:
                cases = yaml.load(f, Loader=Loader)["test_cases"]
            inp = "".join(json.dumps({"ua": c["user_agent_string"]}) + "\n" for c in cases)
            res = subprocess.run([MODRUN, pipe], input=inp, capture_output=True, text=True)
            if res.returncode != 0:
                print(f"FAIL: modrun exited {res.returncode}: {res.stderr.strip()}")
                return 1
            outs = res.stdout.splitlines()
            assert len(outs) == len(cases), (len(outs), len(cases))
            bad = 0
            for c, line in zip(cases, outs):
                kind, _, js = line.partition("\t")
                got = json.loads(js).get("out", {}).get(part, {}) if kind == "event" else {}
                exp = {k: norm(c.get(k)) for k in fields}
                act = {k: norm(got.get(k)) for k in fields}
                if exp != act:
                    bad += 1
                    if bad <= 5:
                        print(f"  {rel}: {c['user_agent_string']!r}\n    expected {exp}\n    got      {act}")
            print(f"{rel}: {len(cases) - bad}/{len(cases)} match")
            total += len(cases)
            failed += bad
        print(f"useragent: {total - failed}/{total} upstream cases match")
        return 1 if failed or cache_check(tmp) else 0


def cache_check(tmp):
    """Each test UA three times through a small cache: same answers, real hits."""
    with open(os.path.join(UAP, "tests/test_ua.yaml"), encoding="utf-8") as f:
        uas = [c["user_agent_string"] for c in yaml.load(f, Loader=Loader)["test_cases"]][:300]
    pipe = os.path.join(tmp, "ua.yaml")
    text = open(pipe).read().replace("cache_size: 1024", "cache_size: 64")
    small = os.path.join(tmp, "small.yaml")
    with open(small, "w") as f:
        f.write(text)
    # Runs of one UA repeated (hits), then everything again (evicted: misses).
    seq = [ua for ua in uas for _ in range(3)] + uas
    inp = "".join(json.dumps({"ua": ua}) + "\n" for ua in seq)
    big = subprocess.run([MODRUN, pipe], input=inp, capture_output=True, text=True)
    tiny = subprocess.run([MODRUN, small], input=inp, capture_output=True, text=True)
    if big.stdout != tiny.stdout or big.returncode or tiny.returncode:
        print("FAIL: a 64-entry cache changes the answers")
        return 1
    stats = dict(kv.split("=") for kv in tiny.stderr.split()[2:])
    hits, misses = int(stats["hits"]), int(stats["misses"])
    print(f"cache (64 entries): hits={hits} misses={misses} for {len(seq)} lookups")
    if hits + misses != len(seq) or hits < 2 * len(uas) - 10:
        print("FAIL: the cache does not hit repeated user agents")
        return 1
    return 0


sys.exit(main())
