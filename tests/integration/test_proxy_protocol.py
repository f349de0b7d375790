"""`listen ... proxy_protocol`: PROXY v1 and v2 headers carry the client address
that the audit records; a malformed or missing header closes the connection
unanswered; the header is bounded in time.  The carried addresses are only
data in the header (127.0.0.9 etc.): no traffic goes to them."""

import socket
import struct
import time

import pytest

from harness.client import Conn, connect_bytes, echo_through
from harness.util import expect_one_record, fmt_records

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


@pytest.fixture(scope="module")
def pgw(dns, allow_all):
    from harness.gateway import Gateway
    g = Gateway(dns.port, policy=allow_all, proxy_listener=True, conf={"header_timeout": "2"})
    g.start()
    yield g
    g.cleanup()


def v1(src, dst, sport, dport, fam="TCP4"):
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


def v2(src, dst, sport, dport, command=0x21, tlvs=b""):
    if ":" in src:
        fam = 0x21
        addr = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
    else:
        fam = 0x11
        addr = socket.inet_aton(src) + socket.inet_aton(dst)
    body = addr + struct.pack("!HH", sport, dport) + tlvs
    return V2_SIG + bytes([command, fam]) + struct.pack("!H", len(body)) + body


def v2_local():
    return V2_SIG + bytes([0x20, 0x00]) + struct.pack("!H", 0)


def tunnel_via_proxy_header(g, echo, header, split=False):
    c = Conn(g.proxy_port)
    req = connect_bytes("echo.test:%d" % echo.port)
    if split:
        c.send(header[:7])
        time.sleep(0.1)
        c.send(header[7:])
        time.sleep(0.1)
        c.send(req)
    else:
        c.send(header + req)
    resp = c.read_head(timeout=5)
    return c, resp


# name, header maker (gateway port, carried client port), carried client address,
# carried client port (None: the socket's own peer is audited)
GOOD = [
    ("v1-tcp4", lambda p, cp: v1("127.0.0.9", "127.0.0.1", cp, p), "127.0.0.9", 40001),
    ("v1-tcp6", lambda p, cp: v1("::1", "::1", cp, p, "TCP6"), "::1", 40002),
    ("v1-unknown", lambda p, cp: b"PROXY UNKNOWN\r\n", "127.0.0.1", None),
    ("v2-tcp4", lambda p, cp: v2("127.0.0.10", "127.0.0.1", cp, p), "127.0.0.10", 40003),
    ("v2-tcp6", lambda p, cp: v2("::1", "::1", cp, p), "::1", 40004),
    ("v2-tcp4-tlvs", lambda p, cp: v2("127.0.0.11", "127.0.0.1", cp, p,
                                      tlvs=b"\x04\x00\x03abc" + b"\x02\x00\x09authority"), "127.0.0.11", 40005),
    ("v2-local", lambda p, cp: v2_local(), "127.0.0.1", None),
]


@pytest.mark.parametrize("name,make,client_ip,client_port", GOOD, ids=[g[0] for g in GOOD])
@pytest.mark.parametrize("split", [False, True], ids=["one-write", "split"])
def test_proxy_header_carries_client_address(pgw, echo, name, make, client_ip, client_port, split):
    if client_port is not None and split:
        client_port += 100            # each variant carries its own port: records stay apart
    header = make(pgw.proxy_port, client_port)
    c, resp = tunnel_via_proxy_header(pgw, echo, header, split)
    with c:
        assert resp.status == 200, "CONNECT after a %s PROXY header: %s" % (name, resp.describe())
        assert echo_through(c, b"proxied") == b"proxied"
        local = c.local_port
    want_port = client_port if client_port is not None else local
    expect_one_record(pgw, lambda r: r.get("event") == "tunnel" and r.get("client_port") == want_port
                      and r.get("client_ip") == client_ip,
                      "tunnel behind a %s header (expected client %s:%s)" % (name, client_ip, want_port),
                      status=200, bytes_up=7, bytes_down=7)


BAD_PORT = 45999        # carried by the malformed headers; no accepted record may have it
BAD = [
    ("no-header", lambda p: b""),
    ("v1-bad-address", lambda p: v1("999.0.0.1", "127.0.0.1", BAD_PORT, p)),
    ("v1-noncanonical-address", lambda p: v1("127.000.0.9", "127.0.0.1", BAD_PORT, p)),
    ("v1-missing-port", lambda p: b"PROXY TCP4 127.0.0.9 127.0.0.1 45999\r\n"),
    ("v1-port-too-big", lambda p: v1("127.0.0.9", "127.0.0.1", 70000, p)),
    ("v1-family-mismatch", lambda p: v1("::1", "127.0.0.1", BAD_PORT, p, "TCP4")),
    ("v1-lf-only", lambda p: v1("127.0.0.9", "127.0.0.1", BAD_PORT, p)[:-2] + b"\n"),
    ("v1-too-long", lambda p: b"PROXY TCP4 " + b"1" * 120 + b"\r\n"),
    ("v2-bad-version", lambda p: V2_SIG + bytes([0x11, 0x11]) + struct.pack("!H", 12) + b"\x00" * 12),
    ("v2-bad-command", lambda p: V2_SIG + bytes([0x2f, 0x11]) + struct.pack("!H", 12) + b"\x00" * 12),
    ("v2-short-address", lambda p: V2_SIG + bytes([0x21, 0x11]) + struct.pack("!H", 4) + b"\x7f\x00\x00\x09"),
    ("v2-huge-length", lambda p: V2_SIG + bytes([0x21, 0x11]) + struct.pack("!H", 65535) + b"\x00" * 2000),
]


@pytest.mark.parametrize("name,make", BAD, ids=[b[0] for b in BAD])
def test_malformed_proxy_header_closes_connection(pgw, echo, origin, name, make):
    tag = "after-bad-proxy-%s" % name
    header = make(pgw.proxy_port)
    req = connect_bytes("echo.test:%d" % echo.port)
    with Conn(pgw.proxy_port) as c:
        try:
            c.send(header + req)
        except OSError:
            pass
        closed = c.wait_closed(4)
        got = c.buf
    assert closed, "a %s PROXY header left the connection open for 4 s" % name
    assert not got.startswith(b"HTTP/1.1 200"), "a %s PROXY header was accepted: %r" % (name, got[:200])
    assert got == b"", "a malformed PROXY header should close the connection unanswered, got %r" % got[:200]
    accepted = [r for r in pgw.audit() if r.get("status") == 200 and r.get("client_port") == BAD_PORT]
    assert not accepted, "a tunnel was opened behind a malformed PROXY header:\n%s" % fmt_records(accepted)


def test_proxy_header_trickled_is_timed_out(pgw):
    header = v1("127.0.0.9", "127.0.0.1", 40009, pgw.proxy_port)   # never completed
    with Conn(pgw.proxy_port, timeout=15) as c:
        t0 = time.monotonic()
        closed = False
        for b in header[:-2]:       # never complete it; one byte every 0.4 s
            try:
                c.sock.send(bytes([b]))
            except OSError:
                closed = True
                break
            if c.wait_closed(0.4):
                closed = True
                break
            if time.monotonic() - t0 > 8:
                break
        took = time.monotonic() - t0
    assert closed, "a trickled PROXY header was not cut within %.1f s (header_timeout 2)" % took
    assert took < 4, "trickled PROXY header cut only after %.1f s" % took


def test_plain_listener_does_not_take_proxy_header(pgw, echo):
    """On the ordinary listener a PROXY line is just a bad request."""
    with Conn(pgw.port) as c:
        c.send(v1("127.0.0.9", "127.0.0.1", 40001, pgw.port) + connect_bytes("echo.test:%d" % echo.port))
        c.wait_closed(4)
        got = c.buf
    assert not got.startswith(b"HTTP/1.1 200"), "a PROXY header was honoured on a plain listener: %r" % got[:200]
    assert got == b"" or got.startswith(b"HTTP/1.1 400"), got[:200]


# ------------------------------------------------------------------ proxy_protocol_from

ALLOWED_LB = "127.0.0.9"         # the only source allowed to send PROXY headers below


def proxy_refused(g):
    """egressd_proxy_protocol_refused_total from /metrics."""
    import re
    import urllib.request
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % g.metrics_port, timeout=5) as r:
        text = r.read().decode()
    m = re.search(r"^egressd_proxy_protocol_refused_total (\d+)$", text, re.M)
    assert m, "no egressd_proxy_protocol_refused_total in /metrics"
    return int(m.group(1))


@pytest.fixture(scope="module")
def fgw(dns, allow_all):
    """proxy_protocol_from 127.0.0.9/32: only that source may send a PROXY header."""
    from harness.gateway import Gateway, free_port
    mport = free_port()
    g = Gateway(dns.port, policy=allow_all, proxy_listener=True,
                conf={"header_timeout": "2", "proxy_protocol_from": ALLOWED_LB + "/32",
                      "metrics_listen": "127.0.0.1:%d" % mport, "admin_socket": "admin.sock"})
    g.metrics_port = mport
    g.start()
    yield g
    g.cleanup()


def test_proxy_from_elsewhere_is_closed_unanswered_and_counted(fgw, echo):
    """A PROXY header from 127.0.0.1 (not in proxy_protocol_from): closed before a
    byte is read, nothing answered, no tunnel, no record, counted once."""
    before = proxy_refused(fgw)
    carried_port = 45801
    with Conn(fgw.proxy_port) as c:
        try:
            c.send(v1("127.0.0.12", "127.0.0.1", carried_port, fgw.proxy_port)
                   + connect_bytes("echo.test:%d" % echo.port))
        except OSError:
            pass
        closed = c.wait_closed(4)
        got = c.buf
        local = c.local_port
    assert closed, "a PROXY header from outside proxy_protocol_from left the connection open"
    assert got == b"", "refused PROXY connection was answered: %r" % got[:200]
    deadline = time.monotonic() + 3
    while proxy_refused(fgw) - before < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proxy_refused(fgw) - before == 1
    time.sleep(0.3)
    recs = [r for r in fgw.audit() if r.get("client_port") in (carried_port, local)
            or r.get("client_ip") == "127.0.0.12"]
    assert not recs, "a refused PROXY connection left records:\n%s" % fmt_records(recs)
    assert "event=proxy-refused" in fgw.stderr()


def test_proxy_from_listed_source_is_honoured(fgw, echo):
    """From 127.0.0.9 the header is honoured: the audited client is the carried one."""
    before = proxy_refused(fgw)
    c = Conn(fgw.proxy_port, src=ALLOWED_LB)
    with c:
        c.send(v1("127.0.0.12", "127.0.0.1", 45802, fgw.proxy_port)
               + connect_bytes("echo.test:%d" % echo.port))
        resp = c.read_head(timeout=5)
        assert resp.status == 200, resp.describe()
        assert echo_through(c, b"lb") == b"lb"
    expect_one_record(fgw, lambda r: r.get("event") == "tunnel" and r.get("client_port") == 45802,
                      "tunnel behind a PROXY header from the allowed balancer",
                      client_ip="127.0.0.12", status=200)
    assert proxy_refused(fgw) == before


def test_proxy_from_leaves_plain_listener_alone(fgw, echo):
    """proxy_protocol_from guards only proxy_protocol listeners."""
    with Conn(fgw.port) as c:
        c.send(connect_bytes("echo.test:%d" % echo.port))
        resp = c.read_head(timeout=5)
        assert resp.status == 200, resp.describe()


def test_proxy_refused_in_status(fgw):
    import json
    import subprocess
    from harness import gateway as gwmod
    import os
    ctl = os.path.join(gwmod.REPO, "build", "egressctl")
    out = subprocess.run([ctl, "-c", os.path.join(fgw.dir, "egressd.conf"), "status", "--json"],
                         capture_output=True, timeout=15, text=True)
    assert out.returncode == 0, out.stderr
    s = json.loads(out.stdout)
    assert s["connections"]["proxy_refused"] == proxy_refused(fgw) >= 1
