"""Every error status, as data: the bytes a client sends, the configuration it
meets, the status it must get and the audit reason that must be recorded.

Common checks on every error response: the expected status line, a
`Connection: close` header, a short text body that never echoes request bytes,
the connection closed afterwards, and nothing sent after a rejected CONNECT head
processed (RFC 9931).  Destinations that must not be reached have a recording
listener on them (127.0.0.3, left out of allow_internal)."""

import socket
import threading
import time

import pytest

from harness.client import Closed, Conn, request_bytes
from harness.gateway import free_port
from harness.servers import RecordingListener
from harness.util import expect_one_record, fmt_records

MARK = "ZQXMARKQZ"   # a string placed in requests; it must never come back in an error body


@pytest.fixture(scope="module")
def internal():
    s = RecordingListener("127.0.0.3").start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def ctx(origin, echo, internal):
    return {"origin": origin.port, "echo": echo.port, "internal": internal.port,
            "closed": free_port("127.0.0.2"), "mark": MARK}


def C(authority, extra_headers=""):
    """A CONNECT request template."""
    return ("CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (authority, authority, extra_headers))


# id, request template (format with ctx), expected status, expected audit reason
# (None = not checked), audit event (None = don't require a record)
CASES = [
    # ---- 400: malformed requests
    ("garbage", "GARBAGE {mark}\r\n\r\n", 400, None, None),
    ("no-version", "GET http://origin.test:{origin}/{mark}\r\n\r\n", 400, None, None),
    ("bare-lf", "GET http://origin.test:{origin}/{mark} HTTP/1.1\nHost: origin.test\n\n", 400, None, None),
    ("space-before-colon", "GET http://origin.test:{origin}/{mark} HTTP/1.1\r\nHost : origin.test\r\n\r\n", 400, "bad_request", None),
    ("obs-fold", "GET http://origin.test:{origin}/{mark} HTTP/1.1\r\nHost: origin.test\r\nX-A: a\r\n b\r\n\r\n", 400, "bad_request", None),
    ("two-hosts", "GET http://origin.test:{origin}/{mark} HTTP/1.1\r\nHost: origin.test\r\nHost: other.test\r\n\r\n", 400, "bad_request", None),
    ("hash-in-target", "GET http://origin.test:{origin}/{mark}#frag HTTP/1.1\r\nHost: origin.test\r\n\r\n", 400, "bad_request", None),
    ("origin-form-to-gateway", "GET /{mark} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400, None, None),
    ("userinfo-in-url", "GET http://user:pw@origin.test:{origin}/{mark} HTTP/1.1\r\nHost: origin.test:{origin}\r\n\r\n", 400, "bad_request", "request"),
    ("cl-and-te", "POST http://origin.test:{origin}/echo?{mark} HTTP/1.1\r\nHost: origin.test:{origin}\r\n"
     "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "bad_request", "request"),
    ("two-different-cl", "POST http://origin.test:{origin}/echo?{mark} HTTP/1.1\r\nHost: origin.test:{origin}\r\n"
     "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400, "bad_request", "request"),
    ("te-gzip-chunked", "POST http://origin.test:{origin}/echo?{mark} HTTP/1.1\r\nHost: origin.test:{origin}\r\n"
     "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400, "bad_request", "request"),
    ("te-identity", "POST http://origin.test:{origin}/echo?{mark} HTTP/1.1\r\nHost: origin.test:{origin}\r\n"
     "Transfer-Encoding: identity\r\nContent-Length: 2\r\n\r\nhi", 400, "bad_request", "request"),
    ("connect-127.1", C("127.1:80"), 400, "bad_request", "tunnel"),
    ("connect-hex", C("0x7f.0.0.1:80"), 400, "bad_request", "tunnel"),
    ("connect-decimal", C("2130706433:80"), 400, "bad_request", "tunnel"),
    ("connect-octal", C("0177.0.0.1:80"), 400, "bad_request", "tunnel"),
    ("connect-port-0", C("echo.test:0"), 400, "bad_request", "tunnel"),
    ("connect-port-65536", C("echo.test:65536"), 400, "bad_request", "tunnel"),
    ("connect-port-123456", C("echo.test:123456"), 400, "bad_request", "tunnel"),
    ("connect-port-6digits", C("echo.test:000080"), 400, "bad_request", "tunnel"),
    ("connect-no-port", C("echo.test"), 400, "bad_request", "tunnel"),
    ("connect-plus", C("+127.0.0.2:{echo}"), 400, "bad_request", "tunnel"),
    ("connect-zone-id", C("[fe80::1%25lo]:80"), 400, "bad_request", "tunnel"),
    ("connect-origin-form", "CONNECT /{mark} HTTP/1.1\r\nHost: echo.test:{echo}\r\n\r\n", 400, "bad_request", "tunnel"),
    ("connect-userinfo", C("user@echo.test:{echo}"), 400, "bad_request", "tunnel"),
    # ---- 403: internal destinations (127.0.0.3 is not in allow_internal)
    ("internal-ip", C("127.0.0.3:{internal}"), 403, "internal_destination", "tunnel"),
    ("internal-name", C("internal.test:{internal}"), 403, "internal_destination", "tunnel"),
    ("internal-mapped-v6", C("[::ffff:127.0.0.3]:{internal}"), 403, "internal_destination", "tunnel"),
    ("internal-absolute-form", "GET http://internal.test:{internal}/{mark} HTTP/1.1\r\nHost: internal.test:{internal}\r\n\r\n",
     403, "internal_destination", "request"),
    ("gateway-itself", C("127.0.0.1:{gwport}"), 403, "internal_destination", "tunnel"),
    ("internal-mapped-hex", C("[::ffff:7f00:3]:{internal}"), 403, "internal_destination", "tunnel"),
    ("unspecified-v4", C("0.0.0.0:{internal}"), 403, "internal_destination", "tunnel"),
    ("unspecified-v6", C("[::]:{internal}"), 403, "internal_destination", "tunnel"),
    ("connect-leading-zero", C("127.0.0.02:{echo}"), 400, "bad_request", "tunnel"),
    ("connect-double-space", C("echo.test:{echo} "), 400, "bad_request", None),
    # ---- 502: DNS failure, connection refused
    ("dns-failure-connect", C("nosuch.test:80"), 502, "dns_failure", "tunnel"),
    ("dns-failure-get", "GET http://nosuch.test/{mark} HTTP/1.1\r\nHost: nosuch.test\r\n\r\n", 502, "dns_failure", "request"),
    ("refused-connect", C("127.0.0.2:{closed}"), 502, "connect_failed", "tunnel"),
    ("refused-get", "GET http://origin.test:{closed}/{mark} HTTP/1.1\r\nHost: origin.test:{closed}\r\n\r\n", 502, "connect_failed", "request"),
]


def check_error_response(c, resp, status, sent):
    assert resp.status == status, "expected %d, got %s\nrequest: %r" % (status, resp.describe(), sent[:300])
    conn = (resp.header("Connection") or "").lower()
    assert conn == "close", "error response lacks Connection: close: %s" % resp.describe()
    assert resp.complete, "error response body incomplete: %s" % resp.describe()
    assert 0 < len(resp.body) <= 512, "error body should be a short text, got %d bytes: %r" % (
        len(resp.body), resp.body[:200])
    assert MARK.encode() not in resp.body and MARK.encode() not in resp.raw_head, \
        "error response echoes request bytes: %s" % resp.describe()
    ctype = (resp.header("Content-Type") or "text/plain").lower()
    assert ctype.startswith("text/"), "error body type %r" % ctype
    assert c.wait_closed(3), "connection still open 3 s after a %d error response" % status


def run_case(g, ctx, template, status, reason, event, pipelined=b""):
    sent = template.format(gwport=g.port, **ctx).encode("latin-1")
    with Conn(g.port) as c:
        port = c.local_port
        c.send(sent + pipelined)
        try:
            resp = c.read_response(timeout=8)
        except Closed as e:
            pytest.fail("expected %d, the gateway closed without a response (%s)\nrequest: %r"
                        % (status, e, sent[:300]))
        check_error_response(c, resp, status, sent)
        after = c.buf
    if event is not None:
        expect_one_record(g, lambda r: r.get("client_port") == port, "%d response" % status,
                          event=event, status=status, decision="deny",
                          **({"reason": reason} if reason else {}))
    else:
        recs = g.wait_audit(lambda r: r.get("client_port") == port, timeout=1)
        assert len(recs) <= 1, "more than one record for one rejected request:\n%s" % fmt_records(recs)
        for r in recs:
            assert r.get("status") == status and (reason is None or r.get("reason") == reason), fmt_records(recs)
    return after


@pytest.mark.parametrize("name,template,status,reason,event", CASES, ids=[c[0] for c in CASES])
def test_error_status(gw, ctx, origin, internal, name, template, status, reason, event):
    before = len(origin.requests)
    run_case(gw, ctx, template, status, reason, event)
    if "{mark}" in template and status != 502:
        assert not origin.requests_for(MARK), "a rejected request reached the origin: %r" % [
            r.target for r in origin.requests_for(MARK)]
    assert internal.accepted == 0 and internal.received == b"", \
        "something reached the internal listener on 127.0.0.3 (%d connections)" % internal.accepted


@pytest.mark.parametrize("name,template,status", [
    ("bad-authority", C("127.1:80"), 400),
    ("internal", C("127.0.0.3:{internal}"), 403),
    ("dns-failure", C("nosuch.test:80"), 502),
    ("refused", C("127.0.0.2:{closed}"), 502),
], ids=["bad-authority", "internal", "dns-failure", "refused"])
def test_nothing_after_rejected_connect_is_processed(gw, ctx, origin, name, template, status):
    tag = "after-rejected-%s" % name
    follow = request_bytes("GET", "http://origin.test:%d/echo?%s" % (origin.port, tag),
                           [("Host", "origin.test:%d" % origin.port)])
    after = run_case(gw, ctx, template, status, None, "tunnel", pipelined=follow)
    assert b"HTTP/1.1" not in after, "a second response came after the rejected CONNECT: %r" % after[:300]
    time.sleep(0.2)
    assert not origin.requests_for(tag), "the request pipelined after a rejected CONNECT reached the origin"


@pytest.fixture(scope="module")
def restricted_gateway(dns, rule_opts, origin):
    """Only the test names and loopback literals are allowed; anything else is a
    default deny.  Uses only `allow any REGEX PORTS` lines."""
    from harness.gateway import Gateway
    g = Gateway(dns.port, policy=["allow any (origin|echo|internal|nosuch)\\.test *" + rule_opts,
                                  "allow any 127\\.0\\.0\\.[0-9]+ *" + rule_opts])
    g.start()
    yield g
    g.cleanup()


def test_403_gateway_own_address_even_if_allowed(make_gateway, ctx):
    """allow_internal 127.0.0.1/32 covers the gateway's own address, which is
    still refused (a self-connection loop)."""
    g = make_gateway(conf={"allow_internal": ["127.0.0.1/32", "127.0.0.2/32"]},
                     hosts={"self.test": "127.0.0.1"}, proxy_listener=True)
    run_case(g, ctx, C("127.0.0.1:{gwport}"), 403, "internal_destination", "tunnel")
    run_case(g, ctx, C("self.test:{gwport}"), 403, "internal_destination", "tunnel")
    run_case(g, ctx, C("[::ffff:127.0.0.1]:{gwport}"), 403, "internal_destination", "tunnel")
    run_case(g, dict(ctx, pport=g.proxy_port), C("127.0.0.1:{pport}"), 403, "internal_destination", "tunnel")
    run_case(g, ctx, "GET http://127.0.0.1:{gwport}/{mark} HTTP/1.1\r\nHost: 127.0.0.1:{gwport}\r\n\r\n",
             403, "internal_destination", "request")


def test_403_default_deny(restricted_gateway, ctx, origin):
    g = restricted_gateway
    tag = "after-default-deny"
    follow = request_bytes("GET", "http://origin.test:%d/echo?%s" % (origin.port, tag),
                           [("Host", "origin.test:%d" % origin.port)])
    after = run_case(g, ctx, C("elsewhere.test:443"), 403, "default_deny", "tunnel", pipelined=follow)
    assert b"HTTP/1.1" not in after
    assert not origin.requests_for(tag), "request pipelined after a denied CONNECT reached the origin"


def test_403_default_deny_absolute_form(restricted_gateway, ctx, origin):
    run_case(restricted_gateway, ctx,
             "GET http://elsewhere.test/{mark} HTTP/1.1\r\nHost: elsewhere.test\r\n\r\n",
             403, "default_deny", "request")


def test_403_default_deny_record_rule_null(restricted_gateway, ctx):
    with Conn(restricted_gateway.port) as c:
        port = c.local_port
        c.send(C("elsewhere.test:80").encode())
        resp = c.read_response()
        assert resp.status == 403, resp.describe()
    expect_one_record(restricted_gateway, lambda r: r.get("client_port") == port, "default deny",
                      rule=None, reason="default_deny", host="elsewhere.test", port=80, dst_ip=None)


def test_403_policy_deny_rule(make_gateway, ctx, origin, rule_opts):
    """A `deny` rule (full policy grammar) wins over a later allow."""
    g = make_gateway(policy=["# first line is a comment",
                             "deny any forbidden\\.test *",
                             "allow any .* *" + rule_opts])
    run_case(g, ctx, C("forbidden.test:{origin}"), 403, "policy", "tunnel")
    with Conn(g.port) as c:
        port = c.local_port
        c.send(C("FORBIDDEN.test.:%d" % origin.port).encode())
        resp = c.read_response()
        assert resp.status == 403, "deny rule must match the normalized host: %s" % resp.describe()
    expect_one_record(g, lambda r: r.get("client_port") == port, "deny rule",
                      reason="policy", rule="policy.rules:2", host="forbidden.test")


def test_407_authenticated_rule_without_credentials(make_gateway, ctx, rule_opts):
    ldap_port = free_port("127.0.0.1")    # nothing listens there; no credentials are sent anyway
    g = make_gateway(conf={"auth": "ldap", "ldap_uri": "ldap://127.0.0.1:%d" % ldap_port,
                           "ldap_user_base": "ou=people,dc=example,dc=test",
                           "ldap_group_base": "ou=groups,dc=example,dc=test",
                           "auth_realm": "Egress test realm"},
                     policy=["allow authenticated .* *" + rule_opts])
    for req, event in ((C("echo.test:{echo}"), "tunnel"),
                       ("GET http://origin.test:{origin}/{mark} HTTP/1.1\r\nHost: origin.test:{origin}\r\n\r\n", "request")):
        sent = req.format(gwport=g.port, **ctx).encode()
        with Conn(g.port) as c:
            port = c.local_port
            c.send(sent)
            resp = c.read_response()
            check_error_response(c, resp, 407, sent)
            pa = resp.header("Proxy-Authenticate") or ""
            assert pa.startswith("Basic realm="), "407 needs Proxy-Authenticate: Basic realm=..., got %r" % pa
            assert "Egress test realm" in pa, "realm from auth_realm expected in %r" % pa
        expect_one_record(g, lambda r: r.get("client_port") == port, "407", event=event,
                          status=407, reason="auth_required", user=None)


def test_431_head_over_64k(gw, ctx):
    big = "X-Big: " + "a" * (70 * 1024)
    sent = ("GET http://origin.test:%d/%s HTTP/1.1\r\nHost: origin.test\r\n%s\r\n\r\n"
            % (ctx["origin"], MARK, big)).encode()
    with Conn(gw.port) as c:
        port = c.local_port
        t = threading.Thread(target=lambda: _send_quietly(c, sent), daemon=True)
        t.start()
        try:
            resp = c.read_response(timeout=8)
        except Closed as e:
            pytest.fail("expected 431, connection closed without a response (%s)" % e)
        check_error_response(c, resp, 431, sent)
        t.join(5)
    recs = gw.wait_audit(lambda r: r.get("client_port") == port)
    assert len(recs) <= 1 and all(r["status"] == 431 for r in recs), fmt_records(recs)


def test_431_many_small_headers(gw, ctx):
    hdrs = "".join("X-H%d: %s\r\n" % (i, "v" * 60) for i in range(1200))   # ~80 KiB
    sent = ("CONNECT echo.test:%d HTTP/1.1\r\nHost: echo.test\r\n%s\r\n" % (ctx["echo"], hdrs)).encode()
    with Conn(gw.port) as c:
        t = threading.Thread(target=lambda: _send_quietly(c, sent), daemon=True)
        t.start()
        resp = c.read_response(timeout=8)
        check_error_response(c, resp, 431, sent)
        t.join(5)


def test_head_just_under_64k_accepted(gw, ctx):
    pad = "X-Pad: " + "p" * (60 * 1024)
    sent = ("GET http://origin.test:%d/bytes/3 HTTP/1.1\r\nHost: origin.test:%d\r\n%s\r\n\r\n"
            % (ctx["origin"], ctx["origin"], pad)).encode()
    with Conn(gw.port) as c:
        c.send(sent)
        resp = c.read_response()
    assert resp.status == 200, "a 60 KiB head is within the 64 KiB limit: %s" % resp.describe()


def _send_quietly(c, data):
    try:
        c.sock.sendall(data)
    except OSError:
        pass


def test_503_over_max_connections(make_gateway, ctx, echo):
    """max_connections 2: a third client gets 503 (or waits in the backlog and is
    served once a slot frees; the contract allows both)."""
    g = make_gateway(conf={"max_connections": "2"})
    time.sleep(0.3)   # the readiness probe's connection is gone
    held = []
    try:
        for _ in range(2):
            c = Conn(g.port)
            c.send(C("echo.test:%d" % echo.port).encode())
            r = c.read_head()
            assert r.status == 200, "tunnel %d of 2 within max_connections: %s" % (len(held) + 1, r.describe())
            held.append(c)
        third = Conn(g.port, timeout=5)
        held.append(third)
        port = third.local_port
        third.send(C("echo.test:%d" % echo.port).encode())
        try:
            resp = third.read_response(timeout=2)
        except socket.timeout:
            resp = None
        except Closed as e:
            pytest.fail("over max_connections: connection closed without 503 (%s)" % e)
        if resp is not None:
            check_error_response(third, resp, 503, b"")
            expect_one_record(g, lambda r: r.get("client_port") == port, "503", status=503,
                              reason="over_capacity", decision="deny")
        else:
            # Waiting in the backlog: freeing a slot must let it through.
            held[0].close()
            r = third.read_head(timeout=5)
            assert r.status == 200, "queued connection after a slot freed: %s" % r.describe()
    finally:
        for c in held:
            c.close()


def test_504_connect_timeout(make_gateway, ctx, blackhole):
    g = make_gateway(conf={"connect_timeout": "1"})
    t0 = time.monotonic()
    run_case(g, dict(ctx, bh=blackhole.port), C("127.0.0.4:{bh}"), 504, "connect_timeout", "tunnel")
    took = time.monotonic() - t0
    assert took < 4, "connect_timeout 1 but the 504 took %.1f s" % took
    run_case(g, dict(ctx, bh=blackhole.port),
             "GET http://blackhole.test:{bh}/x HTTP/1.1\r\nHost: blackhole.test:{bh}\r\n\r\n",
             504, "connect_timeout", "request")
