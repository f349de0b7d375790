"""Defects the connection's side doors hid (each failed before its fix).

- a non-idempotent request is never sent twice when a kept origin connection
  closes under it; a safe one is retried on a new connection;
- a broken chunked response is recorded as what it was (close "error"), with
  bytes_down exactly what the client received;
- a malformed response head is answered 502 at once, not when the origin closes;
- a connection over max_connections gets its 503 before any directory exchange;
- authentication and DNS waits have deadlines of their own.
"""

import base64
import socket
import threading
import time

import pytest

from harness.client import Conn, request_bytes
from harness.gateway import Gateway


def _get(c, authority, path, method="GET", headers=(), timeout=10.0):
    c.send(request_bytes(method, "http://%s%s" % (authority, path),
                         [("Host", authority)] + list(headers)))
    return c.read_response(method=method, timeout=timeout)


# ------------------------------------------------------------ retries

def _drop_route(origin, name):
    """origin.routes[name]: read the request, answer nothing, close."""
    def drop(req, conn):
        return False
    origin.routes[name] = drop


@pytest.mark.parametrize("method,expect_sent,expect_status", [
    ("DELETE", 1, 502), ("POST", 1, 502), ("GET", 2, 502)])
def test_only_safe_requests_are_retried_on_a_new_connection(make_gateway, origin, method,
                                                            expect_sent, expect_status):
    path = "/drop-%s" % method.lower()
    _drop_route(origin, path)
    g = make_gateway()
    authority = "origin.test:%d" % origin.port
    with Conn(g.port) as c:
        r = _get(c, authority, "/bytes/10")          # leaves a kept origin connection
        assert r.status == 200, r.describe()
        before = len([q for q in origin.requests if q.target.endswith(path)])
        c.send(request_bytes(method, "http://%s%s" % (authority, path),
                             [("Host", authority)]))
        r = c.read_response(method=method)
        assert r.status == expect_status, r.describe()
    time.sleep(0.3)
    sent = len([q for q in origin.requests if q.target.endswith(path)]) - before
    assert sent == expect_sent, "%s reached the origin %d times (want %d)" % (
        method, sent, expect_sent)


# ------------------------------------------------------------ broken responses

def test_broken_chunked_response_is_recorded_as_an_error(make_gateway, origin):
    origin.raw["brokenchunk"] = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 b"5\r\nhello\r\nzz")
    g = make_gateway()
    authority = "origin.test:%d" % origin.port
    with Conn(g.port) as c:
        port = c.local_port
        c.send(request_bytes("GET", "http://%s/raw/brokenchunk" % authority,
                             [("Host", authority)]))
        got = c.read_to_eof(timeout=5)
    assert got.startswith(b"HTTP/1.1 200"), got
    assert b"hello" in got
    recs = g.audit_for_client(port, event="request")
    assert len(recs) == 1, recs
    rec = recs[0]
    assert rec["close"] == "error", rec
    assert rec["status"] == 200, rec
    assert rec["bytes_down"] == len(got), "record bytes_down %d, client received %d" % (
        rec["bytes_down"], len(got))
    assert "event=bad-response-body" in g.stderr()


def test_bare_lf_response_head_is_502_at_once(make_gateway, origin):
    done = threading.Event()

    def bare_lf(req, conn):
        conn.sendall(b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok")
        done.wait(8)            # keep the connection open: only the head tells
        return False
    origin.routes["/barelf"] = bare_lf
    g = make_gateway(conf={"idle_timeout": "30"})
    authority = "origin.test:%d" % origin.port
    try:
        with Conn(g.port, timeout=4) as c:
            port = c.local_port
            try:
                r = _get(c, authority, "/barelf", timeout=4)
            except socket.timeout:
                pytest.fail("no answer while the origin kept its malformed response open")
            assert r.status == 502, r.describe()
    finally:
        done.set()
    recs = g.audit_for_client(port, event="request")
    assert len(recs) == 1 and recs[0]["reason"] == "connect_failed", recs


def test_origin_slow_to_answer_is_504_with_its_own_log_line(make_gateway, origin):
    g = make_gateway(conf={"idle_timeout": "1"})
    authority = "origin.test:%d" % origin.port
    with Conn(g.port, timeout=6) as c:
        r = _get(c, authority, "/slow/3000/10", timeout=6)
        assert r.status == 504, r.describe()
    assert "event=origin-timeout" in g.stderr()


# ------------------------------------------------------------ deadlines and admission

class SilentTcp:
    """Accepts TCP connections and never says a word (an LDAP server that hangs)."""

    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket()
        self.sock.bind((host, 0))
        self.sock.listen(256)
        self.port = self.sock.getsockname()[1]
        self.held = []
        self._stop = threading.Event()
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
                self.held.append(c)
            except OSError:
                continue

    def stop(self):
        self._stop.set()
        self.thread.join(2)
        for c in self.held:
            c.close()
        self.sock.close()


@pytest.fixture
def silent_ldap():
    s = SilentTcp()
    yield s
    s.stop()


def _ldap_conf(port):
    return {"auth": "ldap", "ldap_uri": "ldap://127.0.0.1:%d" % port,
            "ldap_user_base": "ou=people,dc=example,dc=com", "ldap_user_filter": "(uid=%u)",
            "ldap_group_base": "ou=groups,dc=example,dc=com",
            "ldap_group_filter": "(member=%d)", "ldap_group_attr": "cn", "ldap_timeout": "1"}


def _basic(user, pw):
    return "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()


def test_authentication_wait_has_a_deadline(make_gateway, origin, silent_ldap):
    """24 distinct users at once against a directory that never answers: four
    auth threads take about 1 s (ldap_timeout) per exchange, so without a
    deadline of its own the last would wait about 6 s in the queue."""
    g = make_gateway(conf=_ldap_conf(silent_ldap.port),
                     policy=["allow authenticated .* *"])
    authority = "origin.test:%d" % origin.port
    results = [None] * 24

    def one(i):
        try:
            with Conn(g.port, timeout=5.5) as c:
                r = _get(c, authority, "/bytes/1", timeout=5.5,
                         headers=[("Proxy-Authorization", _basic("user%d" % i, "pw"))])
                results[i] = r.status
        except Exception as e:     # a timeout is the failure this test looks for
            results[i] = repr(e)
    threads = [threading.Thread(target=one, args=(i,)) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    late = [r for r in results if r != 503]
    assert not late, "answers other than a timely 503: %s" % late


def test_over_capacity_is_answered_before_the_directory(make_gateway, origin, silent_ldap):
    g = make_gateway(conf=dict(_ldap_conf(silent_ldap.port), max_connections="1"),
                     policy=["allow authenticated .* *"])
    time.sleep(0.3)     # the readiness probe's connection is gone
    authority = "origin.test:%d" % origin.port
    with Conn(g.port) as held:
        held.send(b"GET ")                      # holds the one slot
        time.sleep(0.2)
        with Conn(g.port, timeout=5) as c:
            port = c.local_port
            try:
                r = _get(c, authority, "/bytes/1", timeout=5,
                         headers=[("Proxy-Authorization", _basic("alice", "pw"))])
            except socket.timeout:
                pytest.skip("the over-capacity connection waits in the backlog here")
            assert r.status == 503, r.describe()
    recs = g.audit_for_client(port, event="request")
    assert len(recs) == 1 and recs[0]["reason"] == "over_capacity", recs
    assert len(silent_ldap.held) == 0, "the directory was contacted for an over-capacity request"


def test_dns_wait_has_a_deadline(dns, allow_all):
    """A nameserver that never answers, with resolver timeouts far longer than
    connect_timeout: the lookup is bounded by connect_timeout."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    g = Gateway(silent.getsockname()[1], conf={"connect_timeout": "2"}, policy=allow_all,
                resolv_extra="options timeout:20 attempts:3\n")
    try:
        g.start()
        with Conn(g.port, timeout=6) as c:
            port = c.local_port
            try:
                r = _get(c, "nowhere.test:80", "/", timeout=6)
            except socket.timeout:
                pytest.fail("no answer within 6 s for a lookup bounded by connect_timeout 2")
            assert r.status == 502, r.describe()
        recs = g.audit_for_client(port, event="request")
        assert len(recs) == 1 and recs[0]["reason"] == "dns_failure", recs
        assert "event=dns-timeout" in g.stderr()
    finally:
        g.cleanup()
        silent.close()
