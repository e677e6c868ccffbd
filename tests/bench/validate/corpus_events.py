#!/usr/bin/env python3
"""Turn a gen_corpus.py corpus into JSON Lines events for the validator benchmark.

usage: corpus_events.py --model reference|project < corpus.log > events.jsonl

Each pixel hit that survives strict decoding (framing, percent-escapes,
UTF-8, base64url) becomes one event: flat for ../shared/bench/
reference-model.schema.json (`reference`), or nested like the example
pipeline's output for schemas/realestate (`project`).  Defects a schema
catches (a missing uid, an unknown ev, `pid=450k`, an overlong url) are kept,
so both validators see the corpus' mix of valid and invalid events.
"""
import argparse, base64, json, re, sys, urllib.parse
from datetime import datetime, timezone

LINE = re.compile(r'^<\d+>(\w{3} [ \d]\d \d\d:\d\d:\d\d) (\S+) \S+: (\S+) \S+ \S+ \[([^\]]+)\] '
                  r'"(\S+) (\S+) (\S+)" (\d+) (\d+) "([^"]*)" "([^"]*)"$')
PCT = re.compile(r'%(?![0-9A-Fa-f]{2})')
PROPERTY_EVENTS = {"property_view", "save_home", "share", "contact_agent"}


class Bad(Exception):
    pass


def strict_unquote(s):
    if PCT.search(s):
        raise Bad("bad percent")
    raw = urllib.parse.unquote_to_bytes(s.replace("+", " "))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Bad("bad utf-8")


def as_int(s):
    return int(s) if re.fullmatch(r"-?[0-9]{1,18}", s) else s


def as_num(s):
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", s):
        f = float(s)
        return int(f) if f.is_integer() and "." not in s else f
    return s


def b64json(s):
    if not re.fullmatch(r"[A-Za-z0-9_-]*", s) or len(s) % 4 == 1:
        raise Bad("bad base64")
    try:
        return json.loads(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)).decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise Bad("not json")


def rfc3339(clf):
    return datetime.strptime(clf, "%d/%b/%Y:%H:%M:%S %z").astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def params(line):
    m = LINE.match(line)
    if not m:
        raise Bad("framing")
    stamp, host, client, tlocal, method, target, _proto, _st, _sz, referer, ua = m.groups()
    if method != "GET" or not target.startswith("/px.gif?"):
        raise Bad("not a pixel")
    q = {}
    for pair in target[len("/px.gif?"):].split("&"):
        if not pair:
            continue
        k, _, v = pair.partition("=")
        q[strict_unquote(k)] = strict_unquote(v)
    server = {"host": host, "received_at": rfc3339(tlocal), "client_ip": client, "user_agent": ua}
    if referer != "-":
        server["referer"] = referer
    return q, server, stamp


def reference_event(q, server):
    e = {}
    conv = {"v": as_int, "ts": as_int, "pid": as_int, "price": as_int, "beds": as_int, "page": as_int,
            "x": as_int, "y": as_int, "baths": as_num}
    for k, v in q.items():
        if k == "filters":
            e[k] = b64json(v)
        elif k == "ab":
            e[k] = dict(p.split(":", 1) if ":" in p else (p, "") for p in v.split(",") if p)
        else:
            e[k] = conv.get(k, str)(v)
    e["server"] = server
    return e


def anonymize(ip):
    if ":" in ip:
        return ip
    parts = ip.split(".")
    return ".".join(parts[:3] + ["0"]) if len(parts) == 4 else ip


def project_event(q, server):
    r = reference_event(q, server)
    e = {"type": r.get("ev"), "v": r.get("v"), "time": server["received_at"]}
    if isinstance(r.get("ts"), int):
        e["client_time"] = datetime.fromtimestamp(r["ts"] / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    e["user"] = {k2: r[k1] for k1, k2 in (("uid", "id"), ("sid", "session")) if k1 in r}
    page = {}
    if "url" in r:
        page["url"] = r["url"]
        u = urllib.parse.urlsplit(r["url"])
        page.update({"scheme": u.scheme, "host": u.hostname or "", "path": u.path})
        if u.query:
            page["query"] = u.query
    if "ref" in r:
        page["referrer"] = r["ref"]
    e["page"] = page
    t = e["type"]
    if t in PROPERTY_EVENTS:
        e["property"] = {k2: r[k1] for k1, k2 in (("pid", "id"), ("price", "price"), ("beds", "beds"),
                         ("baths", "baths"), ("zip", "zip"), ("city", "city"), ("st", "state")) if k1 in r}
    elif t == "search":
        e["search"] = {k: r[k] for k in ("q", "page", "filters") if k in r}
        if "q" in e["search"]:
            e["search"]["query"] = e["search"].pop("q")
    elif t == "click":
        e["click"] = {k: r[k] for k in ("target", "x", "y") if k in r}
    client = {"ip": anonymize(server["client_ip"]), "user_agent": server["user_agent"]}
    for k1, k2 in (("lang", "language"), ("tz", "timezone"), ("res", "screen")):
        if k1 in r:
            client[k2] = r[k1]
    e["client"] = client
    if "ab" in r:
        e["experiments"] = r["ab"]
    e["server"] = {"host": server["host"], "syslog_time": server["received_at"]}
    if "referer" in server:
        e["server"]["referer"] = server["referer"]
    if "eid" in r:
        e["event_id"] = r["eid"]
    e["ingest_time"] = "2026-11-26T12:00:00.000Z"
    e["pipeline"] = {"name": "realestate", "version": "1.0.0"}
    return {k: v for k, v in e.items() if v is not None}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["reference", "project"], required=True)
    a = ap.parse_args()
    make = reference_event if a.model == "reference" else project_event
    out = sys.stdout
    for line in sys.stdin:
        try:
            q, server, _ = params(line.rstrip("\n"))
            out.write(json.dumps(make(q, server), ensure_ascii=False, separators=(",", ":")) + "\n")
        except Bad:
            pass


if __name__ == "__main__":
    main()
