"""HTTP semantics a forward proxy must keep: HTTP/1.0 clients (no chunked
responses to them, close by default), Connection: close, request targets
forwarded byte for byte, long URLs and many headers, an expectation refused by
the origin (no smuggling through the unread body)."""

import json
import time

import pytest

from harness.client import Closed, Conn, connect_bytes, request_bytes
from harness.servers import pattern_bytes


def target(origin, path):
    return "http://origin.test:%d%s" % (origin.port, path)


def test_http10_client_gets_no_chunked_response(gw, origin):
    n = 40000
    with Conn(gw.port) as c:
        c.send(request_bytes("GET", target(origin, "/chunked/%d" % n), [], version="HTTP/1.0"))
        r = c.read_head()
        assert r.status == 200, r.describe()
        assert (r.header("Transfer-Encoding") or "") == "", \
            "an HTTP/1.0 client was sent Transfer-Encoding: %s" % r.describe()
        if r.header("Content-Length") is not None:
            body = c.read_exact(int(r.header("Content-Length")))
        else:
            body = c.read_to_eof(timeout=10)
        assert body == pattern_bytes(n), "HTTP/1.0 body: %d bytes, expected %d" % (len(body), n)
        assert c.wait_closed(3), "HTTP/1.0 without keep-alive: the connection should close after the response"


def test_http10_request_forwarded_with_host(gw, origin):
    with Conn(gw.port) as c:
        c.send(request_bytes("GET", target(origin, "/echo?h10"), [], version="HTTP/1.0"))
        r = c.read_response()
    assert r.status == 200, r.describe()
    e = json.loads(r.body)
    hosts = [v for k, v in e["headers"] if k.lower() == "host"]
    assert hosts == ["origin.test:%d" % origin.port], "Host at the origin for an HTTP/1.0 request: %r" % hosts


def test_client_connection_close(gw, origin):
    with Conn(gw.port) as c:
        c.send(request_bytes("GET", target(origin, "/bytes/10"),
                             [("Host", "origin.test:%d" % origin.port), ("Connection", "close")]))
        r = c.read_response()
        assert r.status == 200 and r.body == pattern_bytes(10), r.describe()
        assert c.wait_closed(3), "Connection: close from the client: the gateway should close after the response"


@pytest.mark.parametrize("path", [
    "/echo?a=%2F&b=c%20d&c=%zz",
    "/echo/a/../b/./c//d",
    "/echo/x;params?x=1&x=2",
    "/echo?q=" + "%41" * 10,
], ids=["percent", "dots", "params", "encoded-letters"])
def test_request_target_forwarded_byte_for_byte(gw, origin, path):
    with Conn(gw.port) as c:
        c.send(request_bytes("GET", target(origin, path), [("Host", "origin.test:%d" % origin.port)]))
        r = c.read_response()
    assert r.status == 200, r.describe()
    seen = json.loads(r.body)["path"]
    assert seen == path, "origin saw target %r, the client asked for %r" % (seen, path)


def test_long_url_and_many_headers(gw, origin):
    path = "/echo?" + "x" * 8000
    # 100 fields: egressd bounds a head at 128 fields (HTTP_HEADERS_MAX) besides 64 KiB.
    hdrs = [("Host", "origin.test:%d" % origin.port)] + [("X-H%03d" % i, "v%d" % i) for i in range(100)]
    with Conn(gw.port) as c:
        c.send(request_bytes("GET", target(origin, path), hdrs))
        r = c.read_response()
    assert r.status == 200, r.describe()
    e = json.loads(r.body)
    assert e["path"] == path
    got = {k: v for k, v in e["headers"]}
    missing = [k for k, v in hdrs[1:] if got.get(k) != v]
    assert not missing, "headers lost on the way: %r" % missing[:10]


def test_expectation_refused_no_smuggling(gw, origin):
    """The origin answers 417 without reading the body.  Whatever the client sends
    next on that connection must never reach an origin as a request of its own."""
    origin.reject_expect.add("/echo?expect-refused")
    smuggled = request_bytes("GET", target(origin, "/echo?smuggled-after-417"),
                             [("Host", "origin.test:%d" % origin.port)])
    with Conn(gw.port) as c:
        c.send(request_bytes("POST", target(origin, "/echo?expect-refused"),
                             [("Host", "origin.test:%d" % origin.port),
                              ("Content-Length", str(len(smuggled))), ("Expect", "100-continue")]))
        r = c.read_response(timeout=5)
        assert r.status == 417, "the origin's 417 should reach the client: %s" % r.describe()
        try:
            c.send(smuggled)           # the announced body, shaped like a request
            c.wait_closed(2)
        except OSError:
            pass
    time.sleep(0.3)
    assert not origin.requests_for("smuggled-after-417"), \
        "the unread body of a refused request was forwarded as a request (smuggling)"
    assert gw.alive()


def test_connect_http10(gw, echo):
    with Conn(gw.port) as c:
        c.send(b"CONNECT echo.test:%d HTTP/1.0\r\n\r\n" % echo.port)
        r = c.read_head()
        assert r.status == 200, "CONNECT with HTTP/1.0: %s" % r.describe()
