"""CONNECT tunnels: byte-exact echo of many sizes, real curl through a tunnel,
200 concurrent tunnels, bytes sent with the CONNECT head, half-close, hosts-file
names, and the tunnel audit record (status, reason, exact byte counts)."""

import hashlib
import os
import socket
import threading
import time

import pytest

from harness.client import Closed, Conn, connect_bytes, echo_through, open_tunnel
from harness.servers import pattern_bytes
from harness.util import check_record_shape, curl, expect_one_record, fmt_records

SIZES = [1, 1024, 64 * 1024, 1024 * 1024, 16 * 1024 * 1024]


def tunnel_ok(gw, authority, extra=b""):
    c, resp = open_tunnel(gw.port, authority, extra)
    assert resp.status == 200, "CONNECT %s: expected 200, got %s" % (authority, resp.describe())
    return c


@pytest.mark.parametrize("size", SIZES, ids=lambda n: "%dB" % n)
def test_connect_echo_byte_exact(gw, echo, size):
    data = pattern_bytes(size, seed=size)
    c = tunnel_ok(gw, "echo.test:%d" % echo.port)
    with c:
        port = c.local_port
        got = echo_through(c, data, timeout=60)
        assert len(got) == size
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest(), \
            "echoed bytes differ from the bytes sent (%d bytes)" % size
        c.shutdown_write()
        rest = c.read_to_eof(timeout=10)
        assert rest == b"", "unexpected %d extra bytes after the echo" % len(rest)
    rec = expect_one_record(gw, lambda r: r.get("client_port") == port and r.get("event") == "tunnel",
                            "echo tunnel of %d bytes" % size, timeout=10,
                            status=200, decision="allow", reason="ok", method="CONNECT",
                            host="echo.test", port=echo.port, dst_ip="127.0.0.2",
                            bytes_up=size, bytes_down=size, client_ip="127.0.0.1")
    check_record_shape(rec)
    assert rec.get("close") in ("client", "server"), "close should be client/server: %s" % fmt_records([rec])


@pytest.mark.parametrize("size", [1, 64 * 1024, 16 * 1024 * 1024], ids=lambda n: "%dB" % n)
def test_curl_proxytunnel_to_http_origin(gw, origin, size, tmp_path):
    out = tmp_path / "body"
    r = curl(["-x", "http://127.0.0.1:%d" % gw.port, "--proxytunnel", "-o", str(out),
              "-w", "%{http_code} %{http_connect}",
              "http://origin.test:%d/bytes/%d" % (origin.port, size)])
    assert r.returncode == 0, "curl failed (%d): %s" % (r.returncode, r.stderr.decode()[-500:])
    assert r.stdout.decode() == "200 200", "expected origin 200 and CONNECT 200, got %r" % r.stdout
    body = out.read_bytes()
    assert len(body) == size and body == pattern_bytes(size), \
        "body through the tunnel: %d bytes, expected %d (content equal: %s)" % (
            len(body), size, body == pattern_bytes(size))
    recs = gw.wait_audit(lambda r: r.get("event") == "tunnel" and r.get("port") == origin.port
                         and r.get("host") == "origin.test" and (r.get("bytes_down") or 0) > size)
    assert recs, "no tunnel audit record for curl's tunnel:\n%s" % fmt_records(gw.audit()[-10:])


def test_200_concurrent_tunnels(gw, echo):
    n = 200
    barrier = threading.Barrier(n, timeout=60)
    results = [None] * n
    ports = [None] * n

    def one(i):
        c = None
        try:
            c, resp = open_tunnel(gw.port, "echo.test:%d" % echo.port, timeout=30)
            ports[i] = c.local_port
            if resp.status != 200:
                results[i] = "CONNECT: %s" % resp.describe()
                barrier.abort()
                return
            data = pattern_bytes(4096, seed=i)
            barrier.wait()            # all 200 tunnels open at once
            got = echo_through(c, data, timeout=30)
            results[i] = "ok" if got == data else "echo mismatch"
        except Exception as e:   # collected and reported below
            results[i] = repr(e)
            try:
                barrier.abort()
            except Exception:
                pass
        finally:
            if c:
                c.close()

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 90
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    bad = [(i, r) for i, r in enumerate(results) if r != "ok"]
    assert not bad, "%d of %d tunnels failed; first: %r" % (len(bad), n, bad[:5])
    want = set(ports)
    recs = gw.wait_audit(lambda r: r.get("event") == "tunnel" and r.get("client_port") in want,
                         count=n, timeout=15)
    assert len(recs) == n, "expected %d tunnel records, got %d" % (n, len(recs))
    assert all(r.get("bytes_up") == 4096 and r.get("bytes_down") == 4096 for r in recs), \
        fmt_records([r for r in recs if r.get("bytes_up") != 4096 or r.get("bytes_down") != 4096][:5])


def test_bytes_with_connect_head_are_first_tunnel_bytes(gw, echo):
    early = b"EARLY-BYTES\r\nGET / HTTP/1.1\r\n\r\n"
    c = tunnel_ok(gw, "echo.test:%d" % echo.port, extra=early)
    with c:
        port = c.local_port
        got = c.read_exact(len(early), timeout=5)
        assert got == early, "expected the bytes sent with the CONNECT head echoed first, got %r" % got
        more = echo_through(c, b"after")
        assert more == b"after"
    expect_one_record(gw, lambda r: r.get("client_port") == port, "early-bytes tunnel",
                      status=200, bytes_up=len(early) + 5, bytes_down=len(early) + 5)


def test_half_close_reply_arrives_then_eof(gw, echo):
    data = pattern_bytes(300 * 1024, seed=7)
    c = tunnel_ok(gw, "echo.test:%d" % echo.port)
    with c:
        port = c.local_port
        c.send(data)
        c.shutdown_write()             # client is done sending; reply still expected
        got = c.read_to_eof(timeout=15)
        assert got == data, "after half-close: expected %d echoed bytes then EOF, got %d bytes (equal prefix: %s)" % (
            len(data), len(got), data.startswith(got))
    expect_one_record(gw, lambda r: r.get("client_port") == port, "half-closed tunnel",
                      status=200, bytes_up=len(data), bytes_down=len(data))


def test_half_close_server_side_first(gw, origin):
    """The origin ends a close-delimited response; the client still may send."""
    c = tunnel_ok(gw, "origin.test:%d" % origin.port)
    with c:
        c.send(b"GET /close/5000 HTTP/1.1\r\nHost: origin.test\r\n\r\n")
        resp = c.read_response()
        assert resp.status == 200 and resp.body == pattern_bytes(5000), resp.describe()


@pytest.mark.parametrize("name,host", [("origin.test", "origin.test"),
                                       ("ORIGIN.Test.", "origin.test")])
def test_hosts_file_names_resolve(gw, origin, name, host):
    c = tunnel_ok(gw, "%s:%d" % (name, origin.port))
    with c:
        port = c.local_port
        c.send(b"GET /bytes/10 HTTP/1.1\r\nHost: origin.test\r\n\r\n")
        resp = c.read_response()
        assert resp.status == 200 and resp.body == pattern_bytes(10), resp.describe()
    expect_one_record(gw, lambda r: r.get("client_port") == port, "tunnel to %s" % name,
                      host=host, dst_ip="127.0.0.2", status=200, reason="ok")


def test_ip_literal_connect(gw, echo):
    c = tunnel_ok(gw, "127.0.0.2:%d" % echo.port)
    with c:
        assert echo_through(c, b"x" * 100) == b"x" * 100


def test_idle_tunnel_closed_after_idle_timeout(make_gateway, echo, allow_all):
    g = make_gateway(conf={"idle_timeout": "1"})
    c = tunnel_ok(g, "echo.test:%d" % echo.port)
    with c:
        port = c.local_port
        assert echo_through(c, b"ping") == b"ping"
        t0 = time.monotonic()
        closed = c.wait_closed(6)
        took = time.monotonic() - t0
    assert closed, "idle tunnel still open 6 s after idle_timeout 1"
    assert took < 4, "idle tunnel closed after %.1f s, idle_timeout is 1" % took
    expect_one_record(g, lambda r: r.get("client_port") == port, "idle tunnel",
                      close="idle_timeout", bytes_up=4, bytes_down=4)


def test_server_speaks_first(gw):
    from harness.servers import BannerServer
    srv = BannerServer().start()
    try:
        c = tunnel_ok(gw, "127.0.0.2:%d" % srv.port)
        with c:
            got = c.read_exact(len(srv.banner), timeout=5)
            assert got == srv.banner, "the destination's first bytes: %r" % got
            assert echo_through(c, b"EHLO x\r\n") == b"EHLO x\r\n"
    finally:
        srv.stop()


def test_one_way_traffic_is_not_idle(make_gateway):
    """idle_timeout 1: an upload that never gets an answer but keeps flowing is
    not idle."""
    from harness.servers import SinkServer
    srv = SinkServer().start()
    try:
        g = make_gateway(conf={"idle_timeout": "1"})
        c = tunnel_ok(g, "127.0.0.2:%d" % srv.port)
        with c:
            for i in range(8):             # 3.2 s of one-way traffic
                c.send(b"x" * 100)
                time.sleep(0.4)
            assert not c.wait_closed(0.1), "a tunnel with steady upload was closed as idle"
        time.sleep(0.3)
        assert srv.bytes_in == 800, "the destination got %d of 800 bytes" % srv.bytes_in
    finally:
        srv.stop()


def test_destination_reset(gw):
    from harness.servers import RstServer
    srv = RstServer("127.0.0.2").start()
    try:
        c = tunnel_ok(gw, "127.0.0.2:%d" % srv.port)
        with c:
            port = c.local_port
            c.send(b"hello")
            assert c.wait_closed(5), "the client side stayed open after the destination reset"
        recs = gw.wait_audit(lambda r: r.get("client_port") == port)
        assert len(recs) == 1 and recs[0].get("close") in ("server", "error"), fmt_records(recs)
    finally:
        srv.stop()


@pytest.mark.parametrize("workers", ["1", "auto", "4"])
def test_workers_setting(make_gateway, echo, workers):
    g = make_gateway(conf={"workers": workers})
    conns = []
    try:
        for i in range(8):
            c = tunnel_ok(g, "echo.test:%d" % echo.port)
            conns.append(c)
        for i, c in enumerate(conns):
            assert echo_through(c, b"w%d" % i) == b"w%d" % i
    finally:
        for c in conns:
            c.close()
