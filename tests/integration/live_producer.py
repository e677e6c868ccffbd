#!/usr/bin/env python3
"""Write the first lines of a log to stdout, then keep the pipe open.

A slow producer for pixelconv's tests: the lines (plain, or gzip with every
byte of them really sent: Z_SYNC_FLUSH) go out at once, then it waits until
STOPFILE exists (at most a minute) before it ends the stream and exits.

usage: live_producer.py [--gzip] [--members A,B,...] [--end finish|cut|zeros]
                        LOG NLINES STOPFILE
--members starts a new gzip member before each of those line numbers (the
members before the last are complete); --end says how the last member ends
once STOPFILE exists: its trailer (finish, the default), its trailer and
zero padding (zeros), or nothing (cut: the stream stops short).
"""
import argparse
import os
import sys
import time
import zlib

ap = argparse.ArgumentParser()
ap.add_argument("--gzip", action="store_true")
ap.add_argument("--members", default="")
ap.add_argument("--end", choices=["finish", "cut", "zeros"], default="finish")
ap.add_argument("log")
ap.add_argument("nlines", type=int)
ap.add_argument("stopfile")
a = ap.parse_args()

with open(a.log, "rb") as f:
    lines = f.readlines()[: a.nlines]
out = sys.stdout.buffer

if not a.gzip:
    out.write(b"".join(lines))
    out.flush()
else:
    cuts = [int(x) for x in a.members.split(",") if x] + [len(lines)]
    start = 0
    for i, cut in enumerate(cuts):
        z = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: a gzip member
        data = z.compress(b"".join(lines[start:cut]))
        last = i == len(cuts) - 1
        out.write(data + z.flush(zlib.Z_SYNC_FLUSH if last else zlib.Z_FINISH))
        start = cut
    out.flush()

deadline = time.time() + 60
while not os.path.exists(a.stopfile) and time.time() < deadline:
    time.sleep(0.05)

if a.gzip and a.end != "cut":
    out.write(z.flush(zlib.Z_FINISH) + (b"\0" * 100 if a.end == "zeros" else b""))
    out.flush()
