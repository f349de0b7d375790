"""A hostile origin: malformed status lines, headers and chunk sizes, ambiguous
framing, truncated bodies.  The client gets a 502 or a closed connection, never
the bad bytes passed off as a good response; the gateway never crashes and keeps
serving."""

import pytest

from harness.client import Closed, Conn
from harness.servers import pattern_bytes
from harness.util import fmt_records

# name -> raw bytes the origin writes (then it closes); "head_ok" means the head
# is valid and the gateway may already have forwarded it when the body goes bad.
RAW = {
    "bad-status-code": (b"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nhi", False),
    "status-999x": (b"HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nhi", False),
    "not-http": (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", False),
    "http-0.9-body": (b"<html>hello</html>\n", False),
    "bad-version": (b"HTTP/7.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", False),
    "cl-and-te": (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", False),
    "two-cl": (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi!", False),
    "negative-cl": (b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhi", False),
    "obs-fold": (b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 2\r\n\r\nhi", False),
    "space-before-colon": (b"HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nhi", False),
    "nul-in-header": (b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nhi", False),
    "te-gzip": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhi", False),
    "huge-head": (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * (80 * 1024) + b"\r\nContent-Length: 2\r\n\r\nhi", False),
    "bad-chunk-size": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", True),
    "chunk-size-overflow": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"10000000000000005\r\nhello\r\n0\r\n\r\n", True),
    "chunk-no-crlf": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", True),
    "truncated-cl": (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-ten!!", True),
    "truncated-chunked": (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel", True),
}


@pytest.fixture(scope="module", autouse=True)
def register_raw(origin):
    for name, (data, _) in RAW.items():
        origin.raw[name] = data


@pytest.mark.parametrize("name", list(RAW))
def test_hostile_origin(gw, origin, name):
    data, head_ok = RAW[name]
    target = "http://origin.test:%d/raw/%s" % (origin.port, name)
    with Conn(gw.port) as c:
        port = c.local_port
        c.send(b"GET %s HTTP/1.1\r\nHost: origin.test:%d\r\n\r\n" % (target.encode(), origin.port))
        try:
            resp = c.read_response(timeout=8)
        except Closed:
            resp = None
        except ValueError as e:   # unparsable framing reached the client
            pytest.fail("origin %s: the client received a malformed response: %s" % (name, e))
        if resp is not None and resp.status == 502:
            assert (resp.header("Connection") or "").lower() == "close", resp.describe()
        elif resp is not None:
            assert head_ok, "origin sent %s: expected 502 or a closed connection, got %s" % (name, resp.describe())
            # The head was valid and may have been forwarded; the body must then
            # end with a closed connection, not as a complete response.
            closed = resp.complete is False or c.wait_closed(3)
            assert closed, "after a %s body the client connection stayed open: %s" % (name, resp.describe())
            assert not (resp.complete and resp.body in (b"hello", b"only-ten!!")), \
                "a %s body was passed off as a complete response: %s" % (name, resp.describe())
    assert gw.alive(), "egressd died on a %s origin response" % name
    recs = gw.wait_audit(lambda r: r.get("client_port") == port)
    assert len(recs) == 1, "expected one record for the request:\n%s" % fmt_records(recs)
    rec = recs[0]
    assert rec.get("status") in (502, 200) and (rec.get("status") == 502 or rec.get("close") in ("error", "server")), \
        fmt_records([rec])
    # The gateway still serves.
    with Conn(gw.port) as c:
        c.send(b"GET http://origin.test:%d/bytes/10 HTTP/1.1\r\nHost: origin.test:%d\r\n\r\n"
               % (origin.port, origin.port))
        r = c.read_response()
        assert r.status == 200 and r.body == pattern_bytes(10), r.describe()


def test_upgrade_in_200_is_not_a_switch(gw, origin):
    """A 200 carrying Upgrade is an ordinary response: what follows its body on the
    connection is not relayed as a raw stream."""
    origin.raw["upgrade200"] = (b"HTTP/1.1 200 OK\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                b"Content-Length: 2\r\n\r\nhiHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!")
    with Conn(gw.port) as c:
        c.send(b"GET http://origin.test:%d/raw/upgrade200 HTTP/1.1\r\nHost: origin.test:%d\r\n\r\n"
               % (origin.port, origin.port))
        resp = c.read_response()
        assert resp.status in (200, 502), resp.describe()
        if resp.status == 200:
            assert resp.body == b"hi", resp.describe()
            assert resp.header("Upgrade") is None, "Upgrade forwarded on a 200: %s" % resp.describe()
            c.send(b"GET http://origin.test:%d/bytes/4 HTTP/1.1\r\nHost: origin.test:%d\r\n\r\n"
                   % (origin.port, origin.port))
            try:
                r2 = c.read_response()
            except Closed:
                return
            assert r2.body != b"evil!", "the origin's extra bytes were served as the next response"
            assert r2.body == pattern_bytes(4), r2.describe()


def test_extra_bytes_after_response_never_served(gw, origin):
    """The origin writes a second, unrequested response right after the first and
    keeps the connection open.  If the gateway reused that upstream connection,
    the next client would be served the planted bytes."""
    def planted(req, conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"
                     b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nPLANTED")
        return True          # keep reading requests on this connection
    origin.routes["/planted"] = planted
    with Conn(gw.port) as c:
        c.send(b"GET http://origin.test:%d/planted HTTP/1.1\r\nHost: origin.test:%d\r\n\r\n"
               % (origin.port, origin.port))
        r1 = c.read_response()
        assert r1.status in (200, 502), r1.describe()
        if r1.status == 200:
            assert r1.body == b"hi", r1.describe()
            try:
                c.send(b"GET http://origin.test:%d/bytes/7 HTTP/1.1\r\nHost: origin.test:%d\r\n\r\n"
                       % (origin.port, origin.port))
                r2 = c.read_response()
                assert r2.body != b"PLANTED", "the planted response was served on the same client connection"
                assert r2.body == pattern_bytes(7), r2.describe()
            except (Closed, OSError):
                pass
    for _ in range(3):
        with Conn(gw.port) as c:
            c.send(b"GET http://origin.test:%d/bytes/7 HTTP/1.1\r\nHost: origin.test:%d\r\n\r\n"
                   % (origin.port, origin.port))
            r = c.read_response()
            assert r.body != b"PLANTED", "the planted response was served to another client"
            assert r.status == 200 and r.body == pattern_bytes(7), r.describe()
