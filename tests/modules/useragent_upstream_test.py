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
        return 1 if failed or cache_check(tmp) or prefilter_check(tmp) else 0


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


# Regexes in the syntax the prefilter reads (and some it gives up on), each
# naming itself as the family; flagged "i" when the tuple says so.
TRICKY = [
    (r"(?:foo|)bar(\d+)", ""), (r"^Mozilla.{0,20}(Gecko|KHTML)", ""), (r"[Ss]afari/(\d+)", ""),
    (r"(ab|cd)(ef|gh)ij", ""), (r"wxy(?=yz)", ""), (r"(?i)MiXeD", ""), (r"\x41BC", ""),
    (r"(Abc)+def", ""), (r"q{2,3}rst", ""), (r"(?P<n>zz)top", ""), (r"a\.b\.c", ""),
    (r"[\d]{3}-xyz", ""), (r"(one|two|three)", ""), (r"\bword\b", ""), (r"foo(bar)?baz", ""),
    (r"CaseLess", "i"), (r"(a(b(c|d)e)f)gh", ""), (r"[^x]yz123", ""), (r"back(ref)\1", ""),
    (r"alpha|beta|gamma", ""), (r"{lit}brace", ""), (r"[-a]bcd", ""), (r"[a-c]{1}xyz", ""),
    (r"(?:\d+|none)suffix", ""), (r"emptyalt(|x)y", ""), (r"(?:AB|C)(?:DE|F)G{1,2}", "i"),
    (r"; {0,2}(Acer |ACER )([^;/]{1,100}?)(?: Build|\) AppleWebKit)", ""),
    (r"(?!neg)look(?<=k)ahead", ""), (r"tab\tsep", ""), (r"[A-Z]{2}-[0-9]{2}", ""),
]
TRICKY_UAS = [
    "xbar12", "foobar7", "Mozilla/5.0 (X11) Gecko/1", "mozilla Gecko", "Safari/605", "safari/1",
    "SAFARI/2", "abefij", "cdghij", "ABEFIJ", "wxyyz", "wxyz", "mixed", "MIXED", "ABC", "abc",
    "AbcAbcdef", "abcdef", "qqrst", "qrst", "zztop", "ZZtop", "a.b.c", "aXbXc", "123-xyz",
    "12-xyz", "two", "TWO", "a word here", "swordfish", "foobaz", "foobarbaz", "FooBaz",
    "caseless", "CASELESS", "abdefgh", "acefgh", "ayz123", "xyz123", "backrefref", "backrefRef",
    "GAMMA", "beta", "{lit}brace", "-bcd", "abcd", "bxyz", "dxyz", "12suffix", "nonesuffix",
    "suffix", "emptyalty", "emptyaltxy", "emptyaltzy", "abdeg", "cfgg", "CFG", "Linux; Android 9;"
    " Acer Iconia Build/X", "; ACER A1) AppleWebKit", "; Acer X", "lookahead", "lookahea",
    "tab\tsep", "tabsep", "AB-12", "ab-12", "", "nothing at all",
]


def prefilter_check(tmp):
    """The prefilter never changes the first match: tricky regexes against Python's re."""
    import re
    regs = os.path.join(tmp, "tricky.yaml")
    with open(regs, "w") as f:
        f.write("user_agent_parsers:\n")
        for i, (rx, flag) in enumerate(TRICKY):
            f.write(f"  - regex: {json.dumps(rx)}\n    family_replacement: 'R{i}'\n")
            if flag:
                f.write(f"    regex_flag: '{flag}'\n")
        f.write("os_parsers: []\ndevice_parsers: []\n")
    pipe = os.path.join(tmp, "tricky-pipe.yaml")
    text = open(os.path.join(tmp, "ua.yaml")).read()
    with open(pipe, "w") as f:
        f.write(text.replace(json.dumps(os.path.join(UAP, "regexes.yaml")), json.dumps(regs))
                .replace("cache_size: 1024", "cache_size: 0"))
    res = subprocess.run([MODRUN, pipe], input="".join(json.dumps({"ua": u}) + "\n" for u in TRICKY_UAS),
                         capture_output=True, text=True)
    if res.returncode != 0:
        print(f"FAIL: modrun on tricky regexes: {res.stderr.strip()}")
        return 1
    bad = 0
    for ua, line in zip(TRICKY_UAS, res.stdout.splitlines()):
        want = "Other"
        for i, (rx, flag) in enumerate(TRICKY):
            if re.search(rx, ua, re.I if flag else 0):
                want = f"R{i}"
                break
        kind, _, js = line.partition("\t")
        got = json.loads(js).get("out", {}).get("browser", {}).get("family") if kind == "event" else None
        if ua and got != want:
            bad += 1
            print(f"  prefilter: {ua!r}: expected {want}, got {got}")
    print(f"prefilter: {len(TRICKY_UAS) - bad}/{len(TRICKY_UAS)} tricky cases give the first match")
    return 1 if bad else 0


sys.exit(main())
