#!/usr/bin/env python3
"""
make_variants.py -- derive large ClientHellos from the captured ones.

The .bin files beside this script are real ClientHellos, captured on
127.0.0.1 from openssl s_client, curl and Python's ssl module by a listener
that saved the first bytes each client sent.  This OpenSSL (3.0) has no
post-quantum key share, so the big hellos a modern client sends (ML-KEM key
shares, ECH) are made here instead: take a captured hello, grow (or add) its
padding extension (type 0x0015, RFC 7685) and fix every length that contains
it, then cut the handshake message into TLS records of at most 2^14 bytes as a
real TLS stack would.

    python3 make_variants.py        # rewrites padded_*.bin in this folder

Outputs:
    padded_4k.bin    curl's hello grown to a 4,000-byte handshake body, one record
    padded_20k.bin   openssl's hello grown past 2^14: two records
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PADDING = 0x0015
MAX_RECORD = 1 << 14


def handshake_message(wire):
    """Concatenate the payloads of the handshake records in wire."""
    msg = b""
    while wire:
        ctype, _ver, length = struct.unpack(">BHH", wire[:5])
        assert ctype == 22, "not a handshake record"
        msg += wire[5:5 + length]
        wire = wire[5 + length:]
    return msg


def split_hello(msg):
    """Body of a ClientHello message -> (fixed part, [(type, data)])."""
    assert msg[0] == 1 and int.from_bytes(msg[1:4], "big") == len(msg) - 4
    body = msg[4:]
    p = 2 + 32
    p += 1 + body[p]                                        # session id
    p += 2 + int.from_bytes(body[p:p + 2], "big")          # cipher suites
    p += 1 + body[p]                                        # compression methods
    fixed = body[:p]
    ext_len = int.from_bytes(body[p:p + 2], "big")
    assert p + 2 + ext_len == len(body)
    exts, q = [], p + 2
    while q < len(body):
        t, n = struct.unpack(">HH", body[q:q + 4])
        exts.append((t, body[q + 4:q + 4 + n]))
        q += 4 + n
    return fixed, exts


def join_hello(fixed, exts):
    blob = b"".join(struct.pack(">HH", t, len(d)) + d for t, d in exts)
    body = fixed + struct.pack(">H", len(blob)) + blob
    return b"\x01" + len(body).to_bytes(3, "big") + body


def records(msg, version=0x0301):
    out = b""
    for i in range(0, len(msg), MAX_RECORD):
        frag = msg[i:i + MAX_RECORD]
        out += struct.pack(">BHH", 22, version, len(frag)) + frag
    return out


def padded(src, body_len):
    """src's hello with its padding extension sized so the body is body_len."""
    with open(os.path.join(HERE, src), "rb") as f:
        fixed, exts = split_hello(handshake_message(f.read()))
    exts = [(t, d) for t, d in exts if t != PADDING]
    # pre_shared_key must stay last (RFC 8446 4.2.11): pad just before it.
    at = len(exts) - 1 if exts and exts[-1][0] == 41 else len(exts)
    exts.insert(at, (PADDING, b""))
    grow = body_len - (len(join_hello(fixed, exts)) - 4)
    assert grow >= 0
    exts[at] = (PADDING, b"\0" * grow)
    msg = join_hello(fixed, exts)
    assert len(msg) - 4 == body_len
    return records(msg)


def main():
    outs = {
        "padded_4k.bin": padded("curl.bin", 4000),
        "padded_20k.bin": padded("openssl_s_client.bin", 20000),
    }
    for name, data in outs.items():
        with open(os.path.join(HERE, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
