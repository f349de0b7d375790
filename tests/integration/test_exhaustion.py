"""Exhaustion is labelled as what it is.

- The gateway out of descriptors when it dials the origin: 503 over_capacity
  with a log line, never 502 connect_failed against a healthy origin.
- Past the hard connection limit an accepted connection still gets its 503
  and its record (before: closed with no answer and no record).
- A client that leaves mid-head keeps its record but is not a denial in
  /metrics.
"""

import os
import socket
import time

import pytest

from harness.client import Conn, connect_bytes, request_bytes
from harness.util import read_to_eof


def _nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def _wait_fds(pid, want, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _nfds(pid) >= want:
            return True
        time.sleep(0.02)
    return False


def test_no_descriptor_for_the_origin_is_503_over_capacity(make_gateway, echo):
    limit = 96
    g = make_gateway(workers=1, nofile=limit, conf={"max_connections": "1000"})
    time.sleep(0.3)
    pid = g.proc.pid
    held = []
    try:
        # Fill every descriptor but one with client connections that wait
        # in their head (one descriptor each).
        for _ in range(limit):
            if _nfds(pid) >= limit - 1:
                break
            before = _nfds(pid)
            c = Conn(g.port, timeout=5)
            c.send(b"GET ")
            held.append(c)
            assert _wait_fds(pid, before + 1), "egressd did not accept a held connection"
        assert _nfds(pid) == limit - 1, "could not bring egressd to one free descriptor"
        # The next client takes the last descriptor; the origin needs another.
        with Conn(g.port, timeout=5) as c:
            port = c.local_port
            c.send(connect_bytes("echo.test:%d" % echo.port))
            r = c.read_response(method="CONNECT")
            assert r.status == 503, "out of descriptors for the origin: %s" % r.describe()
    finally:
        for c in held:
            c.close()
    recs = g.audit_for_client(port, event="tunnel")
    assert len(recs) == 1 and recs[0]["reason"] == "over_capacity", recs
    assert "event=upstream-exhausted" in g.stderr()


def test_past_the_hard_limit_a_connection_still_gets_503(make_gateway, origin):
    # max_connections 1: up to 1 + 0 + 16 = 17 are read; the 18th is past the hard limit.
    g = make_gateway(workers=1, conf={"max_connections": "1"})
    time.sleep(0.3)
    held = []
    try:
        for _ in range(17):
            c = Conn(g.port, timeout=5)
            c.send(b"GET ")
            held.append(c)
        time.sleep(0.3)
        authority = "origin.test:%d" % origin.port
        with Conn(g.port, timeout=5) as c:
            port = c.local_port
            c.send(request_bytes("GET", "http://%s/bytes/1" % authority, [("Host", authority)]))
            r = c.read_response()
            assert r.status == 503, r.describe()
    finally:
        for c in held:
            c.close()
    recs = g.audit_for_client(port, event="request")
    assert len(recs) == 1 and recs[0]["reason"] == "over_capacity", recs


def _metric(g_metrics_port, name):
    s = socket.create_connection(("127.0.0.1", g_metrics_port), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    data = read_to_eof(s)
    for line in data.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            yield line


def test_client_that_leaves_mid_head_is_not_a_denial(make_gateway):
    from harness.gateway import free_port
    mport = free_port()
    g = make_gateway(conf={"metrics_listen": "127.0.0.1:%d" % mport})
    c = Conn(g.port)
    port = c.local_port
    c.send(b"GET http://origin.test/ HT")
    time.sleep(0.2)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()       # reset
    recs = g.audit_for_client(port)
    assert len(recs) == 1 and recs[0]["reason"] == "bad_request", recs
    assert recs[0]["close"] == "client", recs[0]
    bad = [l for l in _metric(mport, "egressd_decisions_total") if 'reason="bad_request"' in l]
    assert bad and bad[0].endswith(" 0"), bad
    aborted = list(_metric(mport, "egressd_client_aborted_total"))
    assert aborted == ["egressd_client_aborted_total 1"], aborted
