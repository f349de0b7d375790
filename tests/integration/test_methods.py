"""Methods are case-sensitive everywhere: a `methods=GET,HEAD` rule does not
admit `get` or `Get`, a `methods=CONNECT` rule does not admit an absolute-form
`connect http://...` (which would be forwarded in clear, the SNI check never
run), CONNECT needs the authority form, and a `head` request is framed like any
method but HEAD: its response body is read by its Content-Length, so a kept
connection stays in step with the origin."""

import pytest

from harness.client import Conn, request_bytes
from harness.servers import pattern_bytes
from harness.util import expect_one_record


def target(origin, path):
    return "http://origin.test:%d%s" % (origin.port, path)


def ask(g, method, origin, path):
    """One absolute-form request on its own connection: (response, client port)."""
    with Conn(g.port) as c:
        port = c.local_port
        c.send(request_bytes(method, target(origin, path),
                             [("Host", "origin.test:%d" % origin.port), ("Connection", "close")]))
        return c.read_response(method=method), port


@pytest.mark.parametrize("method", ["get", "Get", "gET"])
def test_lowercase_get_not_admitted_by_methods_get(make_gateway, origin, method):
    g = make_gateway(policy=["allow any origin\\.test * methods=GET,HEAD"])
    mark = "/echo?case-%s" % method
    r, port = ask(g, "GET", origin, "/echo?upper-%s" % method)
    assert r.status == 200, "GET under methods=GET,HEAD: %s" % r.describe()
    r, port = ask(g, method, origin, mark)
    assert r.status == 403, "%s under a methods=GET,HEAD rule: %s" % (method, r.describe())
    expect_one_record(g, lambda rec: rec.get("client_port") == port, "%s request" % method,
                      event="request", status=403, decision="deny", reason="default_deny",
                      rule=None, method=method)
    assert origin.requests_for(mark) == [], "the origin received the refused %s" % method


def test_lowercase_connect_absolute_form_not_admitted(make_gateway, origin):
    g = make_gateway(policy=["allow any origin\\.test * methods=CONNECT"])
    mark = "/echo?connect-absolute-lower"
    r, port = ask(g, "connect", origin, mark)
    assert r.status == 403, "connect http://... under methods=CONNECT: %s" % r.describe()
    expect_one_record(g, lambda rec: rec.get("client_port") == port, "connect request",
                      event="request", status=403, reason="default_deny", method="connect")
    assert origin.requests_for(mark) == [], "a clear-text `connect` reached the origin"


def test_connect_absolute_form_is_400(make_gateway, origin):
    g = make_gateway(policy=["allow any origin\\.test * methods=CONNECT"])
    mark = "/echo?connect-absolute-upper"
    r, port = ask(g, "CONNECT", origin, mark)
    assert r.status == 400, "CONNECT with an absolute-form target: %s" % r.describe()
    expect_one_record(g, lambda rec: rec.get("client_port") == port, "CONNECT http://",
                      status=400, reason="bad_request")
    assert origin.requests_for(mark) == []


def test_lowercase_connect_authority_form_is_400(make_gateway, origin):
    g = make_gateway(policy=["allow any origin\\.test * methods=CONNECT sni=off"])
    with Conn(g.port) as c:
        port = c.local_port
        auth = "origin.test:%d" % origin.port
        c.send(request_bytes("connect", auth, [("Host", auth)]))
        r = c.read_response()
    assert r.status == 400, "`connect host:port` is no CONNECT: %s" % r.describe()
    expect_one_record(g, lambda rec: rec.get("client_port") == port, "connect host:port",
                      status=400, reason="bad_request")


def test_lowercase_head_framed_by_content_length(gw, origin):
    """The origin answers `head` (not HEAD) with its body; the gateway must
    read that body by its Content-Length, or those bytes become the next
    response on the kept connection."""
    n = 300
    body = pattern_bytes(n)
    # A body that is itself a response: if it were taken for the next head,
    # the pipelined GET would get this instead of its own answer.
    injected = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Injected: yes\r\n\r\nINJECTED"

    def route(req, conn):
        data = injected if req.method == "head" else body
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
        return True

    origin.routes["/headcase"] = route
    try:
        with Conn(gw.port) as c:
            hdrs = [("Host", "origin.test:%d" % origin.port)]
            c.send(request_bytes("head", target(origin, "/headcase/1"), hdrs) +
                   request_bytes("GET", target(origin, "/headcase/2"), hdrs))
            first = c.read_response(method="GET")
            assert first.status == 200 and first.body == injected, \
                "response to `head` not framed by its Content-Length: %s" % first.describe()
            second = c.read_response(method="GET")
            assert second.status == 200 and second.header("X-Injected") is None and \
                second.body == body, \
                "pipelined GET after `head` got another response: %s" % second.describe()
    finally:
        del origin.routes["/headcase"]
