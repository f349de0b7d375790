"""Absolute-form proxying: real curl GET/POST with Content-Length and chunked
bodies, response framings (Content-Length, chunked with trailers, close-delimited,
HEAD/204/304), 100-continue, keep-alive, pipelining, header hygiene (hop-by-hop
and Proxy-Authorization removed, Via added, Host made consistent), and the
request audit record."""

import hashlib
import json
import time

import pytest

from harness.client import Conn, request_bytes
from harness.servers import pattern_bytes
from harness.util import check_record_shape, curl, expect_one_record, fmt_records


def url(origin, path, host="origin.test"):
    return "http://%s:%d%s" % (host, origin.port, path)


def get(gw_port, origin, path, headers=None, method="GET"):
    hdrs = headers if headers is not None else [("Host", "origin.test:%d" % origin.port)]
    return request_bytes(method, url(origin, path), hdrs)


@pytest.mark.parametrize("size", [0, 1, 1024 * 1024, 16 * 1024 * 1024], ids=lambda n: "%dB" % n)
def test_curl_get_content_length(gw, origin, size, tmp_path):
    out = tmp_path / "body"
    r = curl(["-x", "http://127.0.0.1:%d" % gw.port, "-o", str(out), "-w", "%{http_code}",
              url(origin, "/bytes/%d" % size)])
    assert r.returncode == 0, "curl failed (%d): %s" % (r.returncode, r.stderr.decode()[-500:])
    assert r.stdout == b"200", "expected 200, got %r" % r.stdout
    body = out.read_bytes()
    assert len(body) == size and body == pattern_bytes(size), \
        "GET /bytes/%d through the gateway returned %d bytes" % (size, len(body))


def test_curl_get_chunked_response(gw, origin, tmp_path):
    out = tmp_path / "body"
    n = 200 * 1024
    r = curl(["-x", "http://127.0.0.1:%d" % gw.port, "-o", str(out), "-w", "%{http_code}",
              url(origin, "/chunked/%d" % n)])
    assert r.returncode == 0 and r.stdout == b"200", (r.returncode, r.stdout, r.stderr[-300:])
    assert out.read_bytes() == pattern_bytes(n)


def test_chunked_response_trailers_forwarded(gw, origin):
    n = 50000
    with Conn(gw.port) as c:
        c.send(get(gw.port, origin, "/chunked/%d" % n))
        resp = c.read_response()
    assert resp.status == 200 and resp.body == pattern_bytes(n), resp.describe()
    assert resp.complete, "chunked response not complete: %s" % resp.describe()
    if (resp.header("Transfer-Encoding") or "").lower() == "chunked":
        want = hashlib.sha256(pattern_bytes(n)).hexdigest()
        assert ("X-Checksum", want) in resp.trailers, \
            "origin trailer X-Checksum not forwarded; trailers seen: %r" % resp.trailers


@pytest.mark.parametrize("size", [0, 10, 1024 * 1024, 16 * 1024 * 1024], ids=lambda n: "%dB" % n)
@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_curl_post(gw, origin, tmp_path, size, framing):
    if framing == "chunked" and size == 0:
        pytest.skip("curl sends no chunked body for empty data")
    data = pattern_bytes(size, seed=3)
    src = tmp_path / "upload"
    src.write_bytes(data)
    out = tmp_path / "body"
    args = ["-x", "http://127.0.0.1:%d" % gw.port, "-o", str(out), "-w", "%{http_code}",
            "-H", "Content-Type: application/octet-stream", "-H", "Expect:",
            "--data-binary", "@%s" % src]
    if framing == "chunked":
        args += ["-H", "Transfer-Encoding: chunked"]
    r = curl(args + [url(origin, "/echo?post=%s-%d" % (framing, size))])
    assert r.returncode == 0 and r.stdout == b"200", (r.returncode, r.stdout, r.stderr[-300:])
    echo = json.loads(out.read_bytes())
    assert echo["method"] == "POST"
    assert echo["body_len"] == size and echo["body_sha256"] == hashlib.sha256(data).hexdigest(), \
        "origin received %d bytes (sha %s), sent %d" % (echo["body_len"], echo["body_sha256"][:12], size)


def test_expect_100_continue(gw, origin):
    body = pattern_bytes(100000, seed=9)
    with Conn(gw.port) as c:
        c.send(request_bytes("POST", url(origin, "/echo?expect"), [
            ("Host", "origin.test:%d" % origin.port), ("Content-Length", str(len(body))),
            ("Expect", "100-continue")]))
        interim = c.read_head(timeout=5)
        assert interim.status == 100, "expected an interim 100 Continue before the body, got %s" % interim.describe()
        c.send(body)
        resp = c.read_response()
    assert resp.status == 200, resp.describe()
    echo = json.loads(resp.body)
    assert echo["body_len"] == len(body) and echo["body_sha256"] == hashlib.sha256(body).hexdigest()


def test_curl_expect_100_continue(gw, origin, tmp_path):
    data = pattern_bytes(2 * 1024 * 1024, seed=4)
    src = tmp_path / "upload"
    src.write_bytes(data)
    out = tmp_path / "body"
    r = curl(["-x", "http://127.0.0.1:%d" % gw.port, "-o", str(out), "-w", "%{http_code}",
              "-H", "Expect: 100-continue", "--data-binary", "@%s" % src, url(origin, "/echo?c100")])
    assert r.returncode == 0 and r.stdout == b"200", (r.returncode, r.stdout, r.stderr[-300:])
    assert json.loads(out.read_bytes())["body_len"] == len(data)


def test_close_delimited_response(gw, origin):
    n = 123456
    with Conn(gw.port) as c:
        c.send(get(gw.port, origin, "/close/%d" % n))
        resp = c.read_response(timeout=15)
    assert resp.status == 200 and resp.complete, resp.describe()
    assert resp.body == pattern_bytes(n), "close-delimited body: got %d bytes, expected %d" % (len(resp.body), n)


def test_head_204_304_keep_framing(gw, origin):
    """Bodiless responses must not make the gateway wait for a body: the next
    request on the same connection is answered."""
    with Conn(gw.port) as c:
        c.send(get(gw.port, origin, "/bytes/100", method="HEAD"))
        r1 = c.read_response(method="HEAD")
        assert r1.status == 200 and r1.header("Content-Length") == "100", r1.describe()
        c.send(get(gw.port, origin, "/status/204"))
        r2 = c.read_response()
        assert r2.status == 204, r2.describe()
        c.send(get(gw.port, origin, "/status/304"))
        r3 = c.read_response()
        assert r3.status == 304, r3.describe()
        c.send(get(gw.port, origin, "/bytes/5"))
        r4 = c.read_response()
        assert r4.status == 200 and r4.body == pattern_bytes(5), \
            "after HEAD/204/304 the next response is out of step: %s" % r4.describe()
        assert c.buf == b"", "stray bytes after the responses: %r" % c.buf[:200]


def test_keep_alive_several_requests(gw, origin):
    with Conn(gw.port) as c:
        port = c.local_port
        for i in range(5):
            c.send(get(gw.port, origin, "/bytes/%d" % (100 + i)))
            resp = c.read_response()
            assert resp.status == 200 and resp.body == pattern_bytes(100 + i), \
                "request %d on a kept-alive connection: %s" % (i + 1, resp.describe())
            assert (resp.header("Connection") or "").lower() != "close", \
                "gateway closes a keep-alive connection after request %d: %s" % (i + 1, resp.describe())
    recs = gw.wait_audit(lambda r: r.get("client_port") == port, count=5)
    assert len(recs) == 5, "expected 5 request records for 5 requests:\n%s" % fmt_records(recs)
    for r in recs:
        check_record_shape(r)
    assert all(r["event"] == "request" and r["status"] == 200 and r["method"] == "GET"
               and r["host"] == "origin.test" and r["port"] == origin.port for r in recs), fmt_records(recs)
    assert sorted(r["url"] for r in recs) == sorted(url(origin, "/bytes/%d" % (100 + i)) for i in range(5)), \
        fmt_records(recs)
    ids = [r["id"] for r in recs]
    assert len(set(ids)) == 5, "record ids are not unique: %r" % ids
    import os.path
    prefix = os.path.commonprefix(ids)
    assert len(prefix) >= 4, "the requests of one connection should share an id plus a suffix: %r" % ids


def test_pipelined_requests_answered_in_order(gw, origin):
    sizes = [7, 70000, 1, 3000, 0, 12]
    batch = b"".join(get(gw.port, origin, "/bytes/%d" % n) for n in sizes)
    batch += get(gw.port, origin, "/echo?last")
    with Conn(gw.port) as c:
        c.send(batch)
        for i, n in enumerate(sizes):
            resp = c.read_response()
            assert resp.status == 200 and resp.body == pattern_bytes(n), \
                "pipelined response %d: expected 200 with %d bytes, got %s" % (i + 1, n, resp.describe())
        last = c.read_response()
        assert last.status == 200 and json.loads(last.body)["path"].endswith("/echo?last"), last.describe()


HOP_HEADERS = [
    ("Connection", "keep-alive, X-Private-Hop"),
    ("X-Private-Hop", "secret-hop"),
    ("Keep-Alive", "timeout=5"),
    ("Proxy-Authorization", "Basic dXNlcjpwYXNz"),
    ("Proxy-Connection", "keep-alive"),
    ("Upgrade", "websocket"),
    ("X-End-To-End", "kept"),
]


def test_hop_by_hop_and_proxy_authorization_not_forwarded(gw, origin):
    with Conn(gw.port) as c:
        c.send(request_bytes("GET", url(origin, "/echo?hop"),
                             [("Host", "origin.test:%d" % origin.port)] + HOP_HEADERS))
        resp = c.read_response()
    assert resp.status == 200, resp.describe()
    seen = json.loads(resp.body)["headers"]
    names = [k.lower() for k, _ in seen]
    leaked = [h for h in ("x-private-hop", "keep-alive", "proxy-authorization", "proxy-connection", "upgrade")
              if h in names]
    assert not leaked, "hop-by-hop headers reached the origin: %r (origin saw %r)" % (leaked, seen)
    assert ("x-end-to-end", "kept") in [(k.lower(), v) for k, v in seen], \
        "an end-to-end header was dropped: origin saw %r" % seen
    conn_vals = [v.lower() for k, v in seen if k.lower() == "connection"]
    assert all("x-private-hop" not in v for v in conn_vals), "Connection forwarded as is: %r" % conn_vals
    assert not any("dXNlcjpwYXNz" in json.dumps(r) for r in gw.audit()), \
        "a Proxy-Authorization value appears in an audit record"
    assert "dXNlcjpwYXNz" not in gw.stderr(), "a Proxy-Authorization value appears in the log"


def test_via_added(gw, origin):
    with Conn(gw.port) as c:
        c.send(get(gw.port, origin, "/echo?via"))
        resp = c.read_response()
    seen = json.loads(resp.body)["headers"]
    via = [v for k, v in seen if k.lower() == "via"]
    assert via and via[-1].startswith("1.1 "), "expected a Via: 1.1 ... header at the origin, got %r" % seen


@pytest.mark.parametrize("given", [None, "wrong.example:80", "ORIGIN.test"])
def test_host_consistent_with_url(gw, origin, given):
    hdrs = [("Host", given)] if given else []
    with Conn(gw.port) as c:
        c.send(request_bytes("GET", url(origin, "/echo?host"), hdrs))
        resp = c.read_response()
    if given is None:
        # RFC 9112 3.2: an HTTP/1.1 request without Host is answered 400.
        assert resp.status == 400, "HTTP/1.1 request without Host: %s" % resp.describe()
        return
    assert resp.status == 200, "Host %r: %s" % (given, resp.describe())
    seen = json.loads(resp.body)["headers"]
    hosts = [v for k, v in seen if k.lower() == "host"]
    assert hosts in (["origin.test:%d" % origin.port],), \
        "request target origin.test:%d with Host %r: origin saw Host %r" % (origin.port, given, hosts)


def test_slow_origin_response(gw, origin):
    with Conn(gw.port) as c:
        t0 = time.monotonic()
        c.send(get(gw.port, origin, "/slow/1500/100"))
        resp = c.read_response(timeout=10)
    assert resp.status == 200 and resp.body == pattern_bytes(100), resp.describe()
    assert time.monotonic() - t0 >= 1.4


def test_request_audit_record(gw, origin):
    with Conn(gw.port) as c:
        port = c.local_port
        c.send(get(gw.port, origin, "/bytes/1000"))
        resp = c.read_response()
        assert resp.status == 200
    rec = expect_one_record(gw, lambda r: r.get("client_port") == port, "GET /bytes/1000",
                            event="request", method="GET", host="origin.test", port=origin.port,
                            url=url(origin, "/bytes/1000"), status=200, decision="allow",
                            reason="ok", dst_ip="127.0.0.2", client_ip="127.0.0.1", user=None)
    check_record_shape(rec)
    assert rec["bytes_down"] >= 1000, "bytes_down counts the bytes sent to the client: %s" % fmt_records([rec])
    assert rec["bytes_up"] > 0


def test_policy_evaluated_per_request(make_gateway, origin):
    g = make_gateway(policy=["allow any origin\\.test *"])
    with Conn(g.port) as c:
        port = c.local_port
        c.send(get(g.port, origin, "/bytes/3"))
        r1 = c.read_response()
        assert r1.status == 200, r1.describe()
        c.send(request_bytes("GET", url(origin, "/echo?denied", host="forbidden.test"),
                             [("Host", "forbidden.test:%d" % origin.port)]))
        r2 = c.read_response()
        assert r2.status == 403, "second request on the connection to a host no rule allows: %s" % r2.describe()
    assert not origin.requests_for("/echo?denied"), "the denied request reached the origin"
    recs = g.wait_audit(lambda r: r.get("client_port") == port, count=2)
    statuses = sorted((r.get("status"), r.get("reason")) for r in recs)
    assert statuses == [(200, "ok"), (403, "default_deny")], fmt_records(recs)
