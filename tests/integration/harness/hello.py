"""ClientHello surgery for the SNI tests: take a real hello apart, reshape it, put it back.

Every function works on wire bytes (TLS records) or on the bare handshake
message, and keeps every length that contains what it changes consistent, so
the result is a hello an OpenSSL server reads (tests/fuzz/fuzz_sni_openssl.c
checks the reshaped seeds against libssl).
"""

import struct

MAX_RECORD = 1 << 14
EXT_SERVER_NAME = 0x0000
EXT_PADDING = 0x0015
EXT_ECH = 0xFE0D
CCS = b"\x14\x03\x03\x00\x01\x01"
# RFC 8446 4.1.3: the ServerHello.random of a HelloRetryRequest.
HRR_RANDOM = bytes.fromhex("cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")


def message(wire):
    """The handshake bytes of the leading handshake records of wire."""
    out, pos = b"", 0
    while pos + 5 <= len(wire) and wire[pos] == 0x16:
        n = struct.unpack(">H", wire[pos + 3:pos + 5])[0]
        out += wire[pos + 5:pos + 5 + n]
        pos += 5 + n
    return out


def records(msg, size=MAX_RECORD, version=b"\x03\x01"):
    """msg cut into handshake records of at most size bytes."""
    out = b""
    for i in range(0, len(msg), size):
        part = msg[i:i + size]
        out += b"\x16" + version + struct.pack(">H", len(part)) + part
    return out


def split(msg):
    """(fixed part: version .. compression methods, [(type, data)...])."""
    assert msg[0] == 1
    body = msg[4:4 + int.from_bytes(msg[1:4], "big")]
    pos = 2 + 32
    pos += 1 + body[pos]
    pos += 2 + struct.unpack(">H", body[pos:pos + 2])[0]
    pos += 1 + body[pos]
    fixed, exts = body[:pos], []
    if pos < len(body):
        end = pos + 2 + struct.unpack(">H", body[pos:pos + 2])[0]
        pos += 2
        while pos < end:
            t, n = struct.unpack(">HH", body[pos:pos + 4])
            exts.append((t, body[pos + 4:pos + 4 + n]))
            pos += 4 + n
    return fixed, exts


def join(fixed, exts):
    blob = b"".join(struct.pack(">HH", t, len(d)) + d for t, d in exts)
    body = fixed + struct.pack(">H", len(blob)) + blob
    return b"\x01" + len(body).to_bytes(3, "big") + body


def server_name_data(name):
    n = name.encode()
    entry = b"\x00" + struct.pack(">H", len(n)) + n
    return struct.pack(">H", len(entry)) + entry


def with_name(msg, name):
    """msg with its server_name replaced by name."""
    fixed, exts = split(msg)
    exts = [(t, server_name_data(name) if t == EXT_SERVER_NAME else d) for t, d in exts]
    return join(fixed, exts)


def hello_version(msg, major, minor):
    fixed, exts = split(msg)
    return join(bytes([major, minor]) + fixed[2:], exts)


def many_extensions(msg, count=100):
    """count unknown empty extensions before all the others (server_name included)."""
    fixed, exts = split(msg)
    return join(fixed, [(0x5000 + i, b"") for i in range(count)] + exts)


def padded(msg, total):
    """msg grown to total bytes with a padding extension (RFC 7685) at the end."""
    fixed, exts = split(msg)
    exts = [(t, d) for t, d in exts if t != EXT_PADDING]
    size = len(join(fixed, exts)) + 4
    return join(fixed, exts + [(EXT_PADDING, b"\x00" * (total - size))])


def with_ech(msg, payload=b"\x00" + b"\x00\x01\x00\x01" + b"\x07" + b"\x00\x20" + b"\x11" * 32 +
             b"\x00\x40" + b"\x22" * 64):
    """msg offering Encrypted Client Hello (an outer extension; the payload is opaque here)."""
    fixed, exts = split(msg)
    return join(fixed, exts + [(EXT_ECH, payload)])


def reshapes(wire):
    """{label: wire bytes}: every reshaped form a ClientHello may take that OpenSSL reads."""
    msg = message(wire)
    return {
        "empty_first_record": b"\x16\x03\x01\x00\x00" + records(msg),
        "empty_records_between": (b"\x16\x03\x01\x00\x00" + records(msg[:40]) +
                                  b"\x16\x03\x01\x00\x00" * 3 + records(msg[40:])),
        "record_version_3_9": records(msg, version=b"\x03\x09"),
        "hello_version_3_9": records(hello_version(msg, 3, 9)),
        "100_extensions_first": records(many_extensions(msg, 100)),
        "padded_past_32k": records(padded(msg, 40000)),
    }


def server_hello_hrr(session_id=b"", group=0x0017):
    """A HelloRetryRequest (TLS 1.3, asking for key share group), as a record."""
    exts = (struct.pack(">HH", 0x002B, 2) + b"\x03\x04" +          # supported_versions
            struct.pack(">HHH", 0x0033, 2, group))                  # key_share: selected_group
    body = (b"\x03\x03" + HRR_RANDOM + bytes([len(session_id)]) + session_id +
            b"\x13\x01" + b"\x00" + struct.pack(">H", len(exts)) + exts)
    msg = b"\x02" + len(body).to_bytes(3, "big") + body
    return b"\x16\x03\x03" + struct.pack(">H", len(msg)) + msg
