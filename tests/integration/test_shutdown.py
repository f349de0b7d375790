"""SIGTERM drain: open tunnels and requests keep working during shutdown_grace,
new connections are refused, the process exits 0 when the last one ends or the
grace runs out (closing the rest, each with its audit record)."""

import os
import signal
import socket
import time

import pytest

from harness.client import Conn, connect_bytes, echo_through, request_bytes
from harness.servers import pattern_bytes
from harness.util import expect_one_record, fmt_records


def open_echo_tunnel(g, echo):
    c = Conn(g.port)
    c.send(connect_bytes("echo.test:%d" % echo.port))
    r = c.read_head()
    assert r.status == 200, r.describe()
    return c


def assert_refused(g):
    try:
        s = socket.create_connection(("127.0.0.1", g.port), timeout=2)
    except ConnectionRefusedError:
        return
    except OSError as e:
        pytest.fail("new connection during drain: expected ECONNREFUSED, got %r" % e)
    # Accepted: it must at least not be served.
    try:
        s.settimeout(3)
        s.sendall(b"GET http://origin.test/ HTTP/1.1\r\nHost: origin.test\r\n\r\n")
        data = s.recv(100)
    except OSError:
        data = b""
    finally:
        s.close()
    pytest.fail("a new connection was accepted during the drain (got %r); the listener should be closed" % data[:80])


def test_sigterm_tunnel_works_during_grace_then_exit_when_closed(make_gateway, echo):
    g = make_gateway(conf={"shutdown_grace": "6"})
    g._expect_exit = True
    c = open_echo_tunnel(g, echo)
    port = c.local_port
    assert echo_through(c, b"before") == b"before"
    t0 = time.monotonic()
    g.signal(signal.SIGTERM)
    time.sleep(0.5)
    assert g.alive(), "egressd exited at once on SIGTERM with a tunnel open (exit %s)" % g.proc.returncode
    assert_refused(g)
    data = pattern_bytes(256 * 1024, seed=5)
    assert echo_through(c, data) == data, "tunnel stopped relaying during shutdown_grace"
    c.close()
    rc = g.wait_exit(4)
    took = time.monotonic() - t0
    assert rc is not None, "egressd still running 4 s after its last tunnel closed (grace 6)"
    assert rc == 0, "egressd exit status %s after SIGTERM" % rc
    assert took < 5.5, "exit took %.1f s, the tunnel had closed long before the grace ended" % took
    expect_one_record(g, lambda r: r.get("client_port") == port, "tunnel closed during drain",
                      bytes_up=6 + len(data), bytes_down=6 + len(data), close="client")


def test_sigterm_grace_ends_closes_tunnel(make_gateway, echo):
    g = make_gateway(conf={"shutdown_grace": "2"})
    g._expect_exit = True
    c = open_echo_tunnel(g, echo)
    port = c.local_port
    assert echo_through(c, b"x" * 10) == b"x" * 10
    t0 = time.monotonic()
    g.signal(signal.SIGTERM)
    with c:
        closed = c.wait_closed(6)
        took_close = time.monotonic() - t0
    rc = g.wait_exit(4)
    assert closed, "tunnel still open 6 s after SIGTERM with shutdown_grace 2"
    assert 1.5 < took_close < 4, "tunnel closed %.1f s after SIGTERM, shutdown_grace is 2" % took_close
    assert rc == 0, "egressd exit status %r after the grace (None = still running)" % rc
    expect_one_record(g, lambda r: r.get("client_port") == port, "tunnel cut at the end of the grace",
                      close="shutdown", bytes_up=10, bytes_down=10)


def test_sigterm_inflight_request_finishes(make_gateway, origin):
    g = make_gateway(conf={"shutdown_grace": "5"})
    g._expect_exit = True
    with Conn(g.port) as c:
        c.send(b"GET http://origin.test:%d/slow/1200/5000 HTTP/1.1\r\nHost: origin.test:%d\r\n\r\n"
               % (origin.port, origin.port))
        time.sleep(0.3)
        g.signal(signal.SIGTERM)
        resp = c.read_response(timeout=6)
        assert resp.status == 200 and resp.complete and resp.body == pattern_bytes(5000), \
            "in-flight request during drain: %s" % resp.describe()
    rc = g.wait_exit(5)
    assert rc == 0, "egressd exit status %r (None = still running 5 s after the request ended)" % rc


def test_sigterm_idle_exits_promptly(make_gateway):
    g = make_gateway(conf={"shutdown_grace": "10"})
    g._expect_exit = True
    t0 = time.monotonic()
    g.signal(signal.SIGTERM)
    rc = g.wait_exit(5)
    assert rc == 0, "idle egressd: exit status %r within 5 s of SIGTERM (None = still running)" % rc
    assert time.monotonic() - t0 < 3
    stops = g.wait_audit(lambda r: r.get("event") == "stop", timeout=1, settle=0)
    assert stops, "no `stop` audit record:\n%s" % fmt_records(g.audit())


def test_connections_queued_at_sigterm_are_served_not_reset(make_gateway, origin):
    """Connections the kernel completed before the listeners close (in the
    accept queue while the process was stopped) are served, not reset."""
    g = make_gateway(conf={"shutdown_grace": "5"}, workers=1)
    g._expect_exit = True
    os.kill(g.proc.pid, signal.SIGSTOP)
    conns = []
    try:
        for i in range(20):
            c = Conn(g.port)
            c.send(request_bytes("GET", "http://origin.test:%d/echo?q=%d" % (origin.port, i),
                                 [("Host", "origin.test:%d" % origin.port), ("Connection", "close")]))
            conns.append(c)
        os.kill(g.proc.pid, signal.SIGTERM)
    finally:
        os.kill(g.proc.pid, signal.SIGCONT)
    statuses = []
    for c in conns:
        try:
            statuses.append(c.read_response().status)
        except Exception as e:  # noqa: BLE001 - a reset or EOF is the failure counted
            statuses.append(repr(e))
        c.close()
    assert statuses == [200] * 20, statuses
    assert g.wait_exit(8) == 0
    recs = g.wait_audit(lambda r: r.get("event") == "request", count=20)
    assert len(recs) == 20 and all(r["status"] == 200 for r in recs), fmt_records(recs)
