"""Framing-like fields never pass: trailers of chunked requests and responses are
filtered like header fields (hop-by-hop, framing, Proxy-Authorization and what
RFC 9110 6.5.1 forbids in a trailer are dropped), and a field whose name is a
framing or hop-by-hop name once `_` is read as `-` (`Transfer_Encoding`, which
a CGI/WSGI origin reads as HTTP_TRANSFER_ENCODING) is refused 400 in a request
head and dropped from a response head."""

import pytest

from harness.client import Conn, request_bytes
from harness.servers import pattern_bytes
from harness.util import expect_one_record

# Trailers no hop may pass on, in both directions.
BAD_TRAILERS = [
    ("Proxy-Authorization", "Basic YWxpY2U6c2VjcmV0"),
    ("Content-Length", "999"),
    ("Transfer-Encoding", "chunked"),
    ("Transfer_Encoding", "chunked"),
    ("Content_Length", "5"),
    ("Connection", "close"),
    ("Trailer", "X-Ok"),
    ("Host", "elsewhere.test"),
    ("Authorization", "Bearer t"),
    ("Set-Cookie", "sid=1"),
    ("Content-Type", "text/html"),
]


def trailer_bytes(fields):
    return b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in fields)


def names(fields):
    return sorted(k.lower() for k, _ in fields)


def test_request_trailers_filtered(gw, origin):
    mark = "/echo?req-trailers-filtered"
    body = b"5\r\nhello\r\n0\r\n" + trailer_bytes(BAD_TRAILERS + [("X-Ok", "1")]) + b"\r\n"
    with Conn(gw.port) as c:
        c.send(request_bytes("POST", "http://origin.test:%d%s" % (origin.port, mark),
                             [("Host", "origin.test:%d" % origin.port),
                              ("Transfer-Encoding", "chunked")], body))
        r = c.read_response()
    assert r.status == 200, r.describe()
    seen = origin.requests_for(mark)
    assert len(seen) == 1 and seen[0].body == b"hello", seen
    assert seen[0].trailers == [("X-Ok", "1")], \
        "origin received trailers %r; only X-Ok may pass" % seen[0].trailers


def test_response_trailers_filtered(gw, origin):
    data = pattern_bytes(1000)

    def route(req, conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
                     b"%x\r\n%s\r\n0\r\n" % (len(data), data) +
                     trailer_bytes(BAD_TRAILERS + [("X-Ok", "2"), ("X-Checksum", "abc")]) +
                     b"\r\n")
        return True

    origin.routes["/badtrailers"] = route
    try:
        with Conn(gw.port) as c:
            hdrs = [("Host", "origin.test:%d" % origin.port)]
            c.send(request_bytes("GET", "http://origin.test:%d/badtrailers/1" % origin.port, hdrs) +
                   request_bytes("GET", "http://origin.test:%d/bytes/9" % origin.port, hdrs))
            r = c.read_response()
            assert r.status == 200 and r.complete and r.body == data, r.describe()
            assert (r.header("Transfer-Encoding") or "").lower() == "chunked", r.describe()
            assert names(r.trailers) == ["x-checksum", "x-ok"], \
                "client received trailers %r; only X-Ok and X-Checksum may pass" % r.trailers
            second = c.read_response()
            assert second.status == 200 and second.body == pattern_bytes(9), second.describe()
    finally:
        del origin.routes["/badtrailers"]


@pytest.mark.parametrize("field", [
    ("Transfer_Encoding", "chunked"),
    ("Content_Length", "5"),
    ("transfer_encoding", "chunked"),
    ("Proxy_Authorization", "Basic YWxpY2U6c2VjcmV0"),
    ("Keep_Alive", "timeout=5"),
], ids=lambda f: f[0])
def test_lookalike_request_header_is_400(gw, origin, field):
    mark = "/echo?lookalike-%s" % field[0]
    with Conn(gw.port) as c:
        port = c.local_port
        c.send(request_bytes("POST", "http://origin.test:%d%s" % (origin.port, mark),
                             [("Host", "origin.test:%d" % origin.port), field,
                              ("Content-Length", "5")], b"hello"))
        r = c.read_response()
    assert r.status == 400, "request with %s: %s" % (field[0], r.describe())
    expect_one_record(gw, lambda rec: rec.get("client_port") == port, field[0],
                      status=400, reason="bad_request", decision="deny")
    assert origin.requests_for(mark) == [], "the origin received a request with %s" % field[0]


def test_underscore_in_other_names_passes(gw, origin):
    mark = "/echo?underscore-ok"
    with Conn(gw.port) as c:
        c.send(request_bytes("GET", "http://origin.test:%d%s" % (origin.port, mark),
                             [("Host", "origin.test:%d" % origin.port), ("X_Custom", "v")]))
        r = c.read_response()
    assert r.status == 200, r.describe()
    seen = origin.requests_for(mark)
    assert len(seen) == 1 and seen[0].header("X_Custom") == "v", seen


def test_lookalike_response_header_dropped(gw, origin):
    data = pattern_bytes(20)

    def route(req, conn):
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nTransfer_Encoding: chunked\r\n"
                     b"Content_Length: 3\r\nKeep_Alive: timeout=1\r\nX_Fine: yes\r\n\r\n"
                     % len(data) + data)
        return True

    origin.routes["/lookalike"] = route
    try:
        with Conn(gw.port) as c:
            hdrs = [("Host", "origin.test:%d" % origin.port)]
            c.send(request_bytes("GET", "http://origin.test:%d/lookalike/1" % origin.port, hdrs))
            r = c.read_response()
    finally:
        del origin.routes["/lookalike"]
    assert r.status == 200 and r.body == data, r.describe()
    got = [k.lower() for k, _ in r.headers]
    for bad in ("transfer_encoding", "content_length", "keep_alive"):
        assert bad not in got, "origin's %s forwarded: %r" % (bad, r.headers)
    assert r.header("X_Fine") == "yes", "an ordinary underscore field was dropped: %r" % r.headers
