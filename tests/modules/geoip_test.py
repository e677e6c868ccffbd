#!/usr/bin/env python3
"""geoip against small .mmdb files built here (mmdb_writer.py), in a real
pipeline (modrun); the files are cross-checked with mmdblookup when the
mmdb-bin package is installed."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from mmdb_writer import write_mmdb  # noqa: E402

MODRUN = os.environ["PIXEL_MODRUN"]
MODDIRS = os.environ["PIXEL_MODULE_BUILD_DIRS"].split(":")
if not any(os.path.exists(os.path.join(d, "geoip.so")) for d in MODDIRS):
    print("SKIP: geoip.so not built (libmaxminddb missing)")
    sys.exit(77)


def city(cc, country, rc=None, region=None, name=None):
    r = {"country": {"iso_code": cc, "names": {"en": country, "de": country + "-de"}}}
    if rc:
        r["subdivisions"] = [{"iso_code": rc, "names": {"en": region}}]
    if name:
        r["city"] = {"names": {"en": name}, "geoname_id": 2643743}
    r["location"] = {"latitude": 51.5142, "longitude": -0.0931}
    return r


CITY = {
    "81.2.69.0/24": city("GB", "United Kingdom", "ENG", "England", "London"),
    "89.160.20.128/25": city("SE", "Sweden", "E", "Östergötland County", "Linköping"),
    "2001:db8:1::/48": city("DE", "Germany"),
}
ASN = {
    "81.2.69.0/24": {"autonomous_system_number": 20712, "autonomous_system_organization": "Andrews & Arnold Ltd"},
    "89.160.0.0/17": {"autonomous_system_number": 29518, "autonomous_system_organization": "Bredband2 AB"},
}
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print(f"FAIL: {what}")


def log(ip):
    return f'{ip} - - [26/Nov/2026:05:24:46 +0000] "GET /px.gif?a=1 HTTP/1.1" 200 43 "-" "x"'


with tempfile.TemporaryDirectory() as tmp:
    cdb, adb = os.path.join(tmp, "city.mmdb"), os.path.join(tmp, "asn.mmdb")
    write_mmdb(cdb, "GeoIP2-City", CITY)
    write_mmdb(adb, "GeoLite2-ASN", ASN)
    if shutil.which("mmdblookup"):
        out = subprocess.run(["mmdblookup", "--file", cdb, "--ip", "81.2.69.142", "city", "names", "en"],
                             capture_output=True, text=True).stdout
        check('"London"' in out, f"mmdblookup reads our file: {out!r}")
    else:
        print("note: mmdblookup not installed; file not cross-checked")
    pipe = os.path.join(tmp, "p.yaml")
    with open(pipe, "w") as f:
        f.write("pipeline: {name: geo, version: '1'}\n"
                "input: {framing: none, format: combined, pixel_paths: [/px.gif]}\n"
                "fields: {client.ip: log.client}\n"
                f"modules: {{path: {json.dumps(MODDIRS)}}}\n"
                "enrich:\n"
                "  - anonymize_ip: {field: client.ip}\n"
                f"  - module: {{name: geoip, config: {{database: {cdb}, asn_database: {adb}}}}}\n")
    ips = ["81.2.69.142", "89.160.20.130", "89.160.1.1", "2001:db8:1::7", "10.0.0.1", "not-an-ip"]
    r = subprocess.run([MODRUN, pipe], input="".join(log(i) + "\n" for i in ips),
                       capture_output=True, text=True)
    check(r.returncode == 0, f"modrun: {r.stderr}")
    geo = [json.loads(l.split("\t", 1)[1]).get("geo") if l.startswith("event") else l
           for l in r.stdout.splitlines()]
    expected = [
        {"country_code": "GB", "country": "United Kingdom", "region_code": "ENG", "region": "England",
         "city": "London", "asn": 20712, "as_org": "Andrews & Arnold Ltd"},
        {"country_code": "SE", "country": "Sweden", "region_code": "E", "region": "Östergötland County",
         "city": "Linköping", "asn": 29518, "as_org": "Bredband2 AB"},
        {"asn": 29518, "as_org": "Bredband2 AB"},
        {"country_code": "DE", "country": "Germany"},
        None,
        # anonymize_ip (not geoip) refuses it; geoip itself skips non-addresses.
        "quarantined\tenrichment_failed\tanonymize_ip\tanonymize_ip: not an IP address",
    ]
    for ip, exp, got in zip(ips, expected, geo):
        check(exp == got, f"{ip}: expected {exp}, got {got}")
    check(len(geo) == len(ips), f"one outcome per line: {r.stdout}")
    # 89.160.20.130 is in the /25 only by its raw address: anonymize_ip ran
    # first and made the event's client.ip 89.160.20.0, outside it.
    bad = os.path.join(tmp, "bad.yaml")
    with open(bad, "w") as f:
        f.write(open(pipe).read().replace(cdb, os.path.join(tmp, "missing.mmdb")))
    r = subprocess.run([MODRUN, bad], input="", capture_output=True, text=True)
    check(r.returncode != 0 and "module 'geoip'" in r.stderr and "missing.mmdb" in r.stderr,
          f"missing database refused: {r.stderr}")
print("geoip: " + ("ok" if not failures else f"{failures} failures"))
sys.exit(1 if failures else 0)
