#!/usr/bin/env python3
"""Writes the seed inputs of fuzz/regressions/<target>/seed-*.

They come from the golden wire vectors (tests/data/vectors: each side's
bytes, cut where the capture's write() calls ended) and from hand-made
edge cases: truncated frames, oversized lengths, too many frames, ADD
payloads at and past each limit, address strings, plug scripts. Inputs that
made a target fail are saved beside them by hand as crash-* files and never
rewritten here. Run from the project root: python3 fuzz/make-seeds.py
"""

import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VECTORS = os.path.join(ROOT, "tests", "data", "vectors")
OUT = os.path.join(ROOT, "fuzz", "regressions")

LEVEL = 0x00110000
ADD, GET, REMOVE, HAVE = 0, 1, 2, 3


def frame(resp, uid, op, complete, data, level=LEVEL, length=None, op_class=0):
    n = len(data) if length is None else length
    return struct.pack(">IBIBBBH", level, resp, uid, op_class, op, complete, n) + data


def message(resp, uid, op, payload):
    """Frames of one message, as the protocol fragments it."""
    if not payload:
        return frame(resp, uid, op, 1, b"")
    out = b""
    chunks = [payload[i:i + 2048] for i in range(0, len(payload), 2048)]
    for i, c in enumerate(chunks):
        out += frame(resp, uid, op, int(i == len(chunks) - 1), c)
    return out


def add_payload(timeout, id_, data, id_len=None):
    n = len(id_) if id_len is None else id_len
    return struct.pack(">II", timeout, n) + id_ + data


def split_stream(flags, stream, cuts):
    cuts = [c for c in cuts if 0 < c < len(stream)][:64]
    return bytes([flags, len(cuts)]) + b"".join(struct.pack(">H", c) for c in cuts) + stream


def load_vector(path):
    writes = []
    for line in open(path):
        if line.startswith("C> ") or line.startswith("S> "):
            writes.append((line[0] == "C", bytes.fromhex(line[3:].strip())))
    return writes


def side(writes, client):
    parts = [b for c, b in writes if c == client]
    cuts, pos = [], 0
    for b in parts[:-1]:
        pos += len(b)
        cuts.append(pos)
    return b"".join(parts), cuts


def add_payloads(stream):
    """The payloads of the ADD requests in a client stream (whole messages)."""
    out, pos, cur = [], 0, b""
    while pos + 14 <= len(stream):
        _, resp, _, _, op, complete, n = struct.unpack(">IBIBBBH", stream[pos:pos + 14])
        data = stream[pos + 14:pos + 14 + n]
        pos += 14 + n
        if resp != 0 or op != ADD or n > 2048:
            break
        cur += data
        if complete == 1:
            out.append(cur)
            cur = b""
    return out


def main():
    seeds = {t: {} for t in ["decoder", "reassembly", "add_payload", "address", "plug", "server"]}

    for name in sorted(os.listdir(VECTORS)):
        if not name.endswith(".txt"):
            continue
        stem = name[:-4]
        writes = load_vector(os.path.join(VECTORS, name))
        client, ccuts = side(writes, True)
        server, scuts = side(writes, False)
        if stem.startswith("raw_"):
            if client:
                seeds["decoder"][stem + "-c"] = client
            if server:
                seeds["decoder"][stem + "-s"] = server
        if client:
            seeds["reassembly"][stem + "-c"] = split_stream(0, client, ccuts)
            seeds["server"][stem] = split_stream(0x00, client, ccuts)
        if server:
            seeds["reassembly"][stem + "-s"] = split_stream(1, server, scuts)
        for i, p in enumerate(add_payloads(client)):
            seeds["add_payload"]["%s-%d" % (stem, i)] = p

    have = message(0, 1, HAVE, b"session-id-0001")
    big = message(0, 2, ADD, add_payload(300000, b"big-session", bytes(range(256)) * 127))
    # Truncated frames: inside the header, at its end, inside the payload.
    for cut in [1, 6, 8, 12, 13, 14, 25, len(have) - 1]:
        seeds["decoder"]["truncated-%d" % cut] = have[:cut]
        seeds["reassembly"]["truncated-%d" % cut] = split_stream(0, have[:cut], [cut // 2])
    seeds["decoder"]["truncated-multiframe"] = big[:2062 + 100]
    # Oversized lengths and too much data.
    seeds["decoder"]["len-2049"] = frame(0, 1, GET, 1, b"x" * 2049)
    seeds["decoder"]["len-ffff"] = frame(0, 1, GET, 1, b"", length=0xFFFF)
    seeds["decoder"]["len-short-fragment"] = frame(0, 1, GET, 0, b"x" * 100)
    seventeen = b"".join(frame(0, 9, ADD, 0, b"\0" * 2048) for _ in range(16)) + frame(0, 9, ADD, 1, b"")
    seeds["decoder"]["frames-17"] = seventeen
    seeds["decoder"]["zero-final-frame"] = frame(0, 3, GET, 0, b"a" * 2048) + frame(0, 3, GET, 1, b"")
    seeds["decoder"]["version-0012"] = frame(0, 1, GET, 1, b"id", level=0x00120000)
    seeds["decoder"]["patch-level"] = frame(1, 1, GET, 1, b"data", level=0x0011ABCD)
    seeds["decoder"]["replies"] = message(1, 7, GET, b"s" * 5000) + message(1, 8, HAVE, b"\x01")
    seeds["reassembly"]["multiframe-cut-everywhere"] = split_stream(
        0, big, [1, 13, 14, 15, 2061, 2062, 2063, 4000, 4124, 4125, len(big) - 1])
    seeds["reassembly"]["pipelined-replies"] = split_stream(
        1, message(1, 1, GET, b"x" * 3000) + message(1, 2, ADD, b"\x00"), [14, 2062, 3100])

    # ADD payloads at and past each limit.
    for n in range(9):
        seeds["add_payload"]["short-%d" % n] = b"\0\0\0\x05\0\0\0\x02ab"[:n]
    cases = {
        "ok": add_payload(1000, b"id", b"data"),
        "id-64": add_payload(1000, b"i" * 64, b"d"),
        "id-65": add_payload(1000, b"i" * 65, b"d"),
        "id-0": add_payload(1000, b"", b"d"),
        "idlen-eq-rest": add_payload(1000, b"id", b""),
        "idlen-huge": add_payload(1000, b"id", b"d", id_len=0xFFFFFFFF),
        "timeout-max": add_payload(604800000, b"id", b"d"),
        "timeout-over": add_payload(604800001, b"id", b"d"),
        "timeout-ffffffff": add_payload(0xFFFFFFFF, b"", b"", id_len=0xFFFFFFFF),
        "max-size": add_payload(1, b"id", b"d" * (32768 - 10)),
    }
    for k, v in cases.items():
        seeds["add_payload"][k] = v

    addresses = [
        "IP:9001", "IPv4:9001", "IP::9001", "IP:127.0.0.1:9001", "IPv4:10.0.0.1:0",
        "IP:localhost:80", "IP:cache.example.net:9001", "IP:0.0.0.0:1",
        "IPv6:9001", "IPv6:[::1]:9001", "IPv6:[::ffff:1.2.3.4]:1", "IPv6:[fe80::1]:65535",
        "UNIX:/tmp/x.sock", "UNIX:relative", "UNIX:/a//b/", "UNIX:/" + "a" * 106,
        "UNIX:/" + "a" * 107, "IP:70000", "IP:1.2.3.4:", "IPv6:[::1]", "IPv6:", "UNIX:",
        "ip:1", "TCP:1", "", ":", "IP:+1", "IP:0009001", "IPv6:[::1]:9001x", "UNIX:/a\0b",
    ]
    for i, a in enumerate(addresses):
        seeds["address"]["addr-%02d" % i] = a.encode()

    # Plug scripts: (kind << 1 | side) op bytes and their arguments.
    def write(side, uid, op, n, resume=0):
        return bytes([0 << 1 | side, resume]) + struct.pack(">I", uid) + bytes([op]) + struct.pack(">H", n)

    def simple(kind, side, *args):
        return bytes([kind << 1 | side]) + bytes(args)

    def transfer(side, n):
        return bytes([5 << 1 | side]) + struct.pack(">H", n)

    exchange = (write(0, 1, HAVE, 10) + simple(2, 0) + transfer(0, 0) + simple(6, 1, 0)
                + simple(7, 1, 0) + simple(6, 1, 1) + write(1, 1, HAVE, 1) + simple(2, 1)
                + transfer(1, 0) + simple(6, 0, 0) + simple(7, 0, 0) + simple(6, 0, 1))
    seeds["plug"]["exchange"] = bytes([0b1111]) + exchange
    seeds["plug"]["multiframe-small-buffers"] = bytes([0b0101]) + (
        write(0, 7, ADD, 5000) + bytes([1 << 1]) + struct.pack(">H", 20000) + simple(2, 0)
        + (transfer(0, 3) + simple(6, 1, 0) + simple(4, 0)) * 40)
    seeds["plug"]["rollback-resume"] = bytes([0b1010]) + (
        write(0, 1, GET, 3) + write(0, 2, GET, 4, resume=1) + simple(3, 0) + simple(3, 0)
        + write(0, 3, ADD, 32768) + bytes([1 << 1]) + struct.pack(">H", 1) + simple(2, 0)
        + simple(2, 0) + write(0, 4, GET, 32769))
    seeds["plug"]["junk"] = bytes([0b1111]) + (
        write(0, 1, HAVE, 10) + simple(2, 0) + transfer(0, 7) + bytes([8 << 1 | 1, 5]) + b"GET /"
        + transfer(0, 0) + simple(6, 1, 0) + simple(7, 1, 0))

    # The server with every buffer size and reading pattern on one exchange.
    exchange = (message(0, 1, ADD, add_payload(60000, b"k1", b"v" * 3000))
                + message(0, 2, GET, b"k1") + message(0, 3, HAVE, b"k1")
                + message(0, 4, REMOVE, b"k1") + message(0, 5, GET, b"k1"))
    for flags in [0x00, 0x05, 0x0A, 0x0F, 0x13, 0x26, 0x39, 0x40, 0x5D, 0x7F]:
        seeds["server"]["exchange-%02x" % flags] = split_stream(flags, exchange, [5, 14, 900, 3040, 3100])
    seeds["server"]["many-adds-evict"] = split_stream(0x0F, b"".join(
        message(0, i, ADD, add_payload(1000 * i, b"id%02d" % i, b"x" * 40)) for i in range(20)), [])

    for target, files in seeds.items():
        d = os.path.join(OUT, target)
        os.makedirs(d, exist_ok=True)
        for old in os.listdir(d):
            if old.startswith("seed-"):
                os.remove(os.path.join(d, old))
        for k, v in files.items():
            with open(os.path.join(d, "seed-" + k), "wb") as f:
                f.write(v)
        print("%-12s %d seeds" % (target, len(files)), file=sys.stderr)


main()
