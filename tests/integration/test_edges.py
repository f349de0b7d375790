"""Edge cases around the main paths: resolver search list, many pipelined
requests, clients that vanish at awkward moments (each still gets exactly one
audit record), strict request-body framing, URL normalization."""

import json
import socket
import time

import pytest

from harness.client import Closed, Conn, connect_bytes, echo_through, request_bytes
from harness.servers import pattern_bytes
from harness.util import expect_one_record, fmt_records


def absget(origin, path, host="origin.test"):
    return request_bytes("GET", "http://%s:%d%s" % (host, origin.port, path),
                         [("Host", "%s:%d" % (host, origin.port))])


def test_single_label_name_not_searched(make_gateway, dns):
    """evdns applies the resolv.conf search list to single-label names by
    default; the gateway must resolve names as given."""
    g = make_gateway(resolv_extra="search corp.test\n")
    before = len(dns.queries)
    with Conn(g.port) as c:
        c.send(connect_bytes("intranet:80"))
        r = c.read_response()
    assert r.status == 502, "single-label name with no answer: %s" % r.describe()
    queries = dns.queries[before:]
    assert queries, "the DNS stub saw no query at all"
    searched = [q for q in queries if q.lower().endswith("corp.test")]
    assert not searched, "the search list was applied: queries %r" % queries


def test_hundred_pipelined_requests(gw, origin):
    n = 100
    with Conn(gw.port, timeout=20) as c:
        c.send(b"".join(absget(origin, "/bytes/%d" % (i % 17)) for i in range(n)))
        for i in range(n):
            r = c.read_response()
            assert r.status == 200 and r.body == pattern_bytes(i % 17), \
                "pipelined response %d of %d: %s" % (i + 1, n, r.describe())


def test_pipelined_posts_with_bodies(gw, origin):
    reqs = []
    for i in range(5):
        body = pattern_bytes(1000 * i + 1, seed=i)
        if i % 2:
            chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
            reqs.append(request_bytes("POST", "http://origin.test:%d/echo?p%d" % (origin.port, i),
                                      [("Host", "origin.test:%d" % origin.port),
                                       ("Transfer-Encoding", "chunked")], chunked))
        else:
            reqs.append(request_bytes("POST", "http://origin.test:%d/echo?p%d" % (origin.port, i),
                                      [("Host", "origin.test:%d" % origin.port),
                                       ("Content-Length", str(len(body)))], body))
    with Conn(gw.port) as c:
        c.send(b"".join(reqs))
        for i in range(5):
            r = c.read_response()
            assert r.status == 200, r.describe()
            e = json.loads(r.body)
            assert e["path"].endswith("/echo?p%d" % i) and e["body_len"] == 1000 * i + 1, \
                "pipelined POST %d: origin saw %r with %d bytes" % (i, e["path"], e["body_len"])


def test_chunked_request_trailers(gw, origin):
    body = b"5\r\nhello\r\n0\r\nX-Trailer: t1\r\n\r\n"
    with Conn(gw.port) as c:
        c.send(request_bytes("POST", "http://origin.test:%d/echo?trailers" % origin.port,
                             [("Host", "origin.test:%d" % origin.port),
                              ("Transfer-Encoding", "chunked")], body))
        r = c.read_response()
    assert r.status == 200, r.describe()
    e = json.loads(r.body)
    assert e["body_len"] == 5, e


@pytest.mark.parametrize("body", [
    b"zz\r\nhello\r\n0\r\n\r\n",
    b"10000000000000005\r\nhello\r\n0\r\n\r\n",
    b"-5\r\nhello\r\n0\r\n\r\n",
    b"5\r\nhelloXX0\r\n\r\n",
    b"5 \r\nhello\r\n0\r\n\r\n",
], ids=["non-hex", "overflow", "negative", "no-crlf-after-data", "space-after-size"])
def test_bad_request_chunk_size(gw, origin, body):
    tag = "badchunk-%d" % (abs(hash(body)) % 100000)
    with Conn(gw.port) as c:
        port = c.local_port
        c.send(request_bytes("POST", "http://origin.test:%d/echo?%s" % (origin.port, tag),
                             [("Host", "origin.test:%d" % origin.port),
                              ("Transfer-Encoding", "chunked")], body))
        try:
            r = c.read_response(timeout=5)
        except Closed:
            r = None
        if r is not None:
            assert r.status == 400, "bad request chunk %r: expected 400 or a closed connection, got %s" % (
                body[:20], r.describe())
        assert c.wait_closed(3), "connection still open after a bad request chunk"
    done = [q for q in origin.requests_for(tag) if q.body]
    assert not done, "the origin received a complete request from a malformed chunked body: %r" % [
        q.body[:40] for q in done]
    recs = gw.wait_audit(lambda r: r.get("client_port") == port)
    assert len(recs) == 1, "expected one record:\n%s" % fmt_records(recs)


def test_client_gone_before_connect_answer(gw, blackhole):
    """The client closes while the gateway is still connecting: one record."""
    c = Conn(gw.port)
    port = c.local_port
    c.send(connect_bytes("127.0.0.4:%d" % blackhole.port))   # connect_timeout is 2 in the shared gateway
    time.sleep(0.3)
    c.close()
    recs = gw.wait_audit(lambda r: r.get("client_port") == port, timeout=5)
    assert len(recs) == 1, "a CONNECT abandoned by its client needs one record:\n%s" % fmt_records(recs)
    assert recs[0].get("event") == "tunnel"


def test_client_gone_mid_download(gw, origin):
    c = Conn(gw.port)
    port = c.local_port
    c.send(absget(origin, "/stream/%d" % (64 * 1024 * 1024)))
    r = c.read_head()
    assert r.status == 200
    c.read_exact(1024 * 1024)
    c.close()
    recs = gw.wait_audit(lambda r: r.get("client_port") == port, timeout=5)
    assert len(recs) == 1, fmt_records(recs)
    assert recs[0].get("close") == "client", "client abort should be close=client: %s" % fmt_records(recs)
    # still serving
    with Conn(gw.port) as c2:
        c2.send(absget(origin, "/bytes/3"))
        assert c2.read_response().status == 200


def test_server_closes_tunnel_first(gw, origin):
    with Conn(gw.port) as c:
        port = c.local_port
        c.send(connect_bytes("origin.test:%d" % origin.port))
        assert c.read_head().status == 200
        c.send(b"GET /close/10 HTTP/1.1\r\nHost: origin.test\r\n\r\n")
        data = c.read_to_eof(timeout=5)
        assert data.endswith(pattern_bytes(10)), data[:200]
    rec = expect_one_record(gw, lambda r: r.get("client_port") == port, "tunnel the server ended")
    assert rec.get("close") in ("server", "client"), fmt_records([rec])


@pytest.mark.parametrize("req", [
    b"GET http://origin.test:%(p)d/ HTTP/1.1\r\nHost: origin.test\r\nContent-Length: +5\r\n\r\nhello",
    b"GET http://origin.test:%(p)d/ HTTP/1.1\r\nHost: origin.test\r\nContent-Length: 0x5\r\n\r\nhello",
    b"GET http://origin.test:%(p)d/ HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    b"GET http://origin.test:%(p)d/ HTTP/1.1\r\nHost: origin.test\r\nX-A: a\rb\r\n\r\n",
    b"GET http://origin.test:%(p)d/ HTTP/1.1\r\n: empty-name\r\nHost: origin.test\r\n\r\n",
    b"GET http://origin.test:%(p)d/ HTTP/1.1\r\nHost: origin.test\r\nX-A\x00: b\r\n\r\n",
    b"GET http://origin.test:%(p)d/ HTTP/1.2\r\nHost: origin.test\r\n\r\n",
    b"GET http://origin.test:%(p)d/ http/1.1\r\nHost: origin.test\r\n\r\n",
    b"GET\thttp://origin.test:%(p)d/ HTTP/1.1\r\nHost: origin.test\r\n\r\n",
    b"GET http://origin.test:%(p)d/ HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n",
    b"GET http://origin.test:%(p)d/ HTTP/1.1\r\nHost: origin.test\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET ftp://origin.test:%(p)d/ HTTP/1.1\r\nHost: origin.test\r\n\r\n",
    b"GET http:///path HTTP/1.1\r\nHost: origin.test\r\n\r\n",
    b"GET http://origin.test:%(p)d:1/ HTTP/1.1\r\nHost: origin.test\r\n\r\n",
], ids=["cl-plus", "cl-hex", "te-chunked-twice-list", "bare-cr", "empty-name",
        "nul-in-name", "http-1.2", "lowercase-version", "tab-separator", "te-quoted", "te-twice",
        "ftp-scheme", "empty-host", "double-port"])
def test_more_malformed_requests_400(gw, origin, req):
    data = req % {b"p": origin.port}
    before = len(origin.requests)
    with Conn(gw.port) as c:
        c.send(data)
        try:
            r = c.read_response(timeout=5)
        except Closed as e:
            pytest.fail("expected 400, connection closed without a response (%s); request %r" % (e, data[:120]))
        assert r.status in (400, 501, 505), "malformed request %r: expected 400, got %s" % (data[:120], r.describe())
        assert c.wait_closed(3)
    time.sleep(0.1)
    assert len(origin.requests) == before, "a malformed request reached the origin: %r" % (
        [q.target for q in origin.requests[before:]])


def test_url_host_normalized(gw, origin):
    with Conn(gw.port) as c:
        port = c.local_port
        c.send(b"GET HTTP://ORIGIN.Test.:%d/echo?norm HTTP/1.1\r\nHost: x\r\n\r\n" % origin.port)
        r = c.read_response()
    if r.status == 400:
        pytest.skip("upper-case scheme refused with 400 (acceptable)")
    assert r.status == 200, r.describe()
    recs = gw.wait_audit(lambda r: r.get("client_port") == port)
    assert recs and recs[0]["host"] == "origin.test", fmt_records(recs)


def test_ipv6_literal_url_internal(gw):
    with Conn(gw.port) as c:
        c.send(b"GET http://[::1]:80/ HTTP/1.1\r\nHost: [::1]\r\n\r\n")
        r = c.read_response()
    assert r.status == 403, "[::1] is internal and not allowed: %s" % r.describe()


def test_denied_connect_port_not_in_rule(make_gateway, echo, rule_opts):
    g = make_gateway(policy=["allow any echo\\.test 1-1023,2000" + rule_opts])
    with Conn(g.port) as c:
        port = c.local_port
        c.send(connect_bytes("echo.test:%d" % echo.port))
        r = c.read_response()
    assert r.status == 403, r.describe()
    expect_one_record(g, lambda r: r.get("client_port") == port, "port outside the rule",
                      reason="default_deny", status=403)


def test_early_hints_then_final(gw, origin):
    def handler(req, conn):
        conn.sendall(b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
                     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        return True
    origin.routes["/hints"] = handler
    with Conn(gw.port) as c:
        c.send(absget(origin, "/hints"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"ok", r.describe()
        c.send(absget(origin, "/bytes/2"))
        r2 = c.read_response()
        assert r2.status == 200 and r2.body == pattern_bytes(2), r2.describe()


def test_head_of_chunked_and_304_with_length_keep_framing(gw, origin):
    def not_modified(req, conn):
        conn.sendall(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\nETag: \"x\"\r\n\r\n")
        return True
    origin.routes["/nm"] = not_modified
    with Conn(gw.port) as c:
        c.send(request_bytes("HEAD", "http://origin.test:%d/chunked/100" % origin.port,
                             [("Host", "origin.test:%d" % origin.port)]))
        r = c.read_response(method="HEAD")
        assert r.status == 200, r.describe()
        c.send(absget(origin, "/nm"))
        r = c.read_response()
        assert r.status == 304, r.describe()
        c.send(absget(origin, "/bytes/5"))
        r = c.read_response(timeout=5)
        assert r.status == 200 and r.body == pattern_bytes(5), \
            "after HEAD of a chunked resource and a 304 with Content-Length: %s" % r.describe()


def test_request_record_counts_client_bytes_exactly(gw, origin):
    req = absget(origin, "/bytes/777")
    with Conn(gw.port) as c:
        port = c.local_port
        c.send(req)
        r = c.read_response()
        assert r.status == 200 and r.complete
        received = len(r.raw_head) + len(r.body)
    rec = expect_one_record(gw, lambda x: x.get("client_port") == port, "GET /bytes/777")
    assert rec["bytes_up"] == len(req) and rec["bytes_down"] == received, \
        "requests count bytes from/to the client: expected up %d down %d, got up %r down %r" % (
            len(req), received, rec["bytes_up"], rec["bytes_down"])


def test_duration_ms(gw, origin):
    with Conn(gw.port) as c:
        port = c.local_port
        c.send(absget(origin, "/slow/800/10"))
        assert c.read_response().status == 200
    rec = expect_one_record(gw, lambda x: x.get("client_port") == port, "slow request")
    assert 750 <= rec["duration_ms"] < 5000, "duration_ms %r for an 800 ms response" % rec["duration_ms"]


@pytest.mark.parametrize("raw", [
    b"GET http://origin.test:%(p)d/\xff\xfe\xc0\x80?q=\x01 HTTP/1.1\r\nHost: origin.test\r\n\r\n",
    b"GET http://origin.test:%(p)d/%%22%%5c%%00\"\\ HTTP/1.1\r\nHost: origin.test\r\n\r\n",
    b"CONNECT \xe2\x80\xae.test:443 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"CONNECT a\"b\\c.test:443 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\xff\xfe GET\x00 / HTTP/1.1\r\n\r\n",
], ids=["invalid-utf8-path", "quotes-backslash-path", "rtl-override-host", "quote-host", "binary-garbage"])
def test_audit_json_valid_for_hostile_strings(gw, origin, raw):
    data = raw % {b"p": origin.port}
    with Conn(gw.port) as c:
        port = c.local_port
        c.send(data)
        try:
            c.read_response(timeout=5)
        except (Closed, ValueError):
            pass
    gw.wait_audit(lambda r: r.get("client_port") == port, timeout=2)
    for line in gw.audit_raw():
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            pytest.fail("an audit record is not valid UTF-8: %r" % line[:300])
        js = text[text.index("{"):].strip()
        try:
            json.loads(js)
        except ValueError as e:
            pytest.fail("an audit record is not valid JSON (%s): %r" % (e, js[:300]))
    for line in gw.stderr().splitlines():
        assert "\x00" not in line and "\u202e" not in line and "\ufffd" not in line, \
            "an untrusted string reached the log unescaped: %r" % line[:300]


def test_methods_option(make_gateway, origin, rule_opts):
    g = make_gateway(policy=["allow any origin\\.test * methods=GET,HEAD"])
    with Conn(g.port) as c:
        c.send(absget(origin, "/bytes/1"))
        assert c.read_response().status == 200
        c.send(request_bytes("POST", "http://origin.test:%d/echo?m" % origin.port,
                             [("Host", "origin.test:%d" % origin.port), ("Content-Length", "0")]))
        r = c.read_response()
        assert r.status == 403, "POST under a methods=GET,HEAD rule: %s" % r.describe()
    with Conn(g.port) as c:
        c.send(connect_bytes("origin.test:%d" % origin.port))
        r = c.read_response()
        assert r.status == 403, "CONNECT under a methods=GET,HEAD rule: %s" % r.describe()


def test_concurrent_keepalive_clients(gw, origin):
    import threading
    n, per = 40, 15
    errors = []

    def client(i):
        try:
            with Conn(gw.port, timeout=20) as c:
                for j in range(per):
                    size = (i * per + j) % 3000
                    c.send(absget(origin, "/bytes/%d" % size))
                    r = c.read_response(timeout=20)
                    if r.status != 200 or r.body != pattern_bytes(size):
                        errors.append((i, j, r.describe()))
                        return
        except Exception as e:   # reported below
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    assert not errors, "%d clients failed; first: %r" % (len(errors), errors[:3])


def test_random_garbage_never_crashes(gw):
    import random
    rnd = random.Random(20261124)
    prefixes = [b"", b"GET ", b"CONNECT ", b"GET http://", b"POST http://origin.test/ HTTP/1.1\r\n",
                b"CONNECT echo.test:1 HTTP/1.1\r\n", b"PROXY TCP4 "]
    for i in range(150):
        blob = rnd.choice(prefixes) + bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 300)))
        if rnd.random() < 0.5:
            blob += b"\r\n\r\n"
        try:
            with Conn(gw.port, timeout=3) as c:
                c.send(blob)
                c.wait_closed(0.5 if i % 10 else 3)
        except OSError:
            pass
        assert gw.alive(), "egressd died on input %r:\n%s" % (blob[:100], gw.stderr()[-2000:])


def test_ldap_unreachable_is_503(make_gateway, echo, rule_opts):
    """Credentials given while LDAP cannot be reached (nothing listens on its
    loopback port): 503 auth_unavailable; the password is never logged."""
    from harness.gateway import free_port
    import base64
    g = make_gateway(conf={"auth": "ldap", "ldap_uri": "ldap://127.0.0.1:%d" % free_port(),
                           "ldap_user_base": "ou=people,dc=example,dc=test",
                           "ldap_group_base": "ou=groups,dc=example,dc=test", "ldap_timeout": "2"},
                     policy=["allow authenticated .* *" + rule_opts])
    secret = "S3cr3t-pa55-%d" % echo.port
    cred = base64.b64encode(("alice:" + secret).encode()).decode()
    with Conn(g.port) as c:
        port = c.local_port
        c.send(connect_bytes("echo.test:%d" % echo.port,
                             [("Host", "echo.test"), ("Proxy-Authorization", "Basic " + cred)]))
        r = c.read_response(timeout=8)
    assert r.status == 503, "LDAP unreachable: expected 503, got %s" % r.describe()
    expect_one_record(g, lambda x: x.get("client_port") == port, "LDAP unreachable",
                      status=503, reason="auth_unavailable")
    everything = g.stderr() + "".join(l.decode("utf-8", "replace") for l in g.audit_raw())
    assert secret not in everything and cred not in everything, "the password or credential was logged"


def test_heads_trickled_fast_byte_by_byte(gw, origin, echo):
    """Incremental parsing: heads and chunked bodies arriving one byte per segment."""
    body = b"4\r\nwxyz\r\n3\r\nabc\r\n0\r\n\r\n"
    req = request_bytes("POST", "http://origin.test:%d/echo?bytewise" % origin.port,
                        [("Host", "origin.test:%d" % origin.port), ("Transfer-Encoding", "chunked")], body)
    with Conn(gw.port) as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for b in req:
            c.send(bytes([b]))
            time.sleep(0.001)
        r = c.read_response()
        assert r.status == 200, r.describe()
        e = json.loads(r.body)
        assert e["body_len"] == 7, e
    with Conn(gw.port) as c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for b in connect_bytes("echo.test:%d" % echo.port):
            c.send(bytes([b]))
            time.sleep(0.001)
        assert c.read_head().status == 200
        assert echo_through(c, b"ok") == b"ok"


def test_origin_response_dripped(gw, origin):
    with Conn(gw.port, timeout=20) as c:
        c.send(absget(origin, "/drip/3000"))
        r = c.read_response(timeout=20)
        assert r.status == 200 and r.body == pattern_bytes(3000), r.describe()
        c.send(absget(origin, "/bytes/3"))
        assert c.read_response().body == pattern_bytes(3)


def test_large_early_data_with_connect(gw, echo):
    early = pattern_bytes(200 * 1024, seed=11)
    with Conn(gw.port) as c:
        port = c.local_port
        t = __import__("threading").Thread(
            target=lambda: c.sock.sendall(connect_bytes("echo.test:%d" % echo.port) + early), daemon=True)
        t.start()
        r = c.read_head()
        assert r.status == 200, r.describe()
        got = c.read_exact(len(early), timeout=10)
        t.join(5)
        assert got == early, "200 KiB sent with the CONNECT head: echoed %d bytes, equal %s" % (
            len(got), got == early)
    expect_one_record(gw, lambda x: x.get("client_port") == port, "early-data tunnel",
                      bytes_up=len(early), bytes_down=len(early))
