#!/usr/bin/env python3
"""A small MaxMind DB (format 2.0) writer, for tests: no download needed.

    write_mmdb(path, "GeoIP2-City", {"81.2.69.0/24": {...}, "2001:db8::/32": {...}})

IPv6 tree (IPv4 networks live under ::/96, as libmaxminddb expects),
24-bit records; the data section encoder covers maps, arrays, strings,
uint16/32/64, doubles and booleans.  Networks must not overlap.
"""
import ipaddress
import struct
import time


def _ctrl(type_, size):
    if size < 29:
        head, extra = size, b""
    elif size < 285:
        head, extra = 29, bytes([size - 29])
    elif size < 65821:
        head, extra = 30, (size - 285).to_bytes(2, "big")
    else:
        head, extra = 31, (size - 65821).to_bytes(3, "big")
    if type_ <= 7:
        return bytes([(type_ << 5) | head]) + extra
    return bytes([head, type_ - 7]) + extra


def encode(v):
    if isinstance(v, bool):
        return _ctrl(14, int(v))
    if isinstance(v, str):
        b = v.encode()
        return _ctrl(2, len(b)) + b
    if isinstance(v, float):
        return _ctrl(3, 8) + struct.pack(">d", v)
    if isinstance(v, int):
        b = v.to_bytes((v.bit_length() + 7) // 8, "big") if v else b""
        type_ = 5 if v < 1 << 16 else 6 if v < 1 << 32 else 9
        return _ctrl(type_, len(b)) + b
    if isinstance(v, dict):
        return _ctrl(7, len(v)) + b"".join(encode(k) + encode(x) for k, x in v.items())
    if isinstance(v, list):
        return _ctrl(11, len(v)) + b"".join(encode(x) for x in v)
    raise TypeError(type(v))


def write_mmdb(path, db_type, networks):
    nodes = [[None, None]]  # children: None (empty), ("node", i) or ("data", offset)
    data = b""
    for net, record in networks.items():
        n = ipaddress.ip_network(net)
        bits = int(n.network_address)
        plen = n.prefixlen
        if n.version == 4:
            plen += 96
        else:
            pass
        width = 128
        if n.version == 4:
            bits = bits  # ::a.b.c.d
        offset = len(data)
        data += encode(record)
        node = 0
        for depth in range(plen):
            bit = (bits >> (width - 1 - depth)) & 1
            if depth == plen - 1:
                nodes[node][bit] = ("data", offset)
            else:
                child = nodes[node][bit]
                if child is None:
                    nodes.append([None, None])
                    child = ("node", len(nodes) - 1)
                    nodes[node][bit] = child
                assert child[0] == "node", f"{net} overlaps another network"
                node = child[1]
    count = len(nodes)

    def rec(c):
        if c is None:
            return count
        return c[1] if c[0] == "node" else count + 16 + c[1]

    tree = b"".join(rec(l).to_bytes(3, "big") + rec(r).to_bytes(3, "big") for l, r in nodes)
    meta = {
        "node_count": count,
        "record_size": 24,
        "ip_version": 6,
        "database_type": db_type,
        "languages": ["en"],
        "binary_format_major_version": 2,
        "binary_format_minor_version": 0,
        "build_epoch": int(time.time()),
        "description": {"en": "libpixel test database"},
    }
    # node_count and record_size must be uint32/uint16 as the spec says.
    enc_meta = _ctrl(7, len(meta))
    for k, v in meta.items():
        if k == "node_count":
            b = v.to_bytes(4, "big").lstrip(b"\0")
            enc_meta += encode(k) + _ctrl(6, len(b)) + b
        elif k == "build_epoch":
            b = v.to_bytes(8, "big").lstrip(b"\0")
            enc_meta += encode(k) + _ctrl(9, len(b)) + b
        else:
            enc_meta += encode(k) + encode(v)
    with open(path, "wb") as f:
        f.write(tree + b"\0" * 16 + data + b"\xab\xcd\xefMaxMind.com" + enc_meta)
