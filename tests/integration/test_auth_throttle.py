"""auth_fail_per_client / auth_fail_per_user against a real slapd: past either
limit, requests with credentials get 429 auth_throttled without a directory
exchange (shown by stopping slapd: an exchange would give 503), a password the
directory already confirmed (cached) keeps working, another client address is
not throttled by someone else's failures, and one address cannot hold more
than its share of the auth queue while the directory is slow."""

import base64
import shutil
import tempfile
import time

import pytest

from harness.client import Conn, connect_bytes
from harness.slapd import Slapd
from harness.util import expect_one_record
from harness.proxytls import LISTENER_KINDS

# Every test here runs through a plain and a tls listener.
pytestmark = LISTENER_KINDS

OTHER_CLIENT = "127.0.0.5"      # a second loopback source address


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


@pytest.fixture(scope="module")
def slapd():
    s = Slapd().start()
    yield s
    s.cleanup()


@pytest.fixture
def secret_dir():
    d = tempfile.mkdtemp(prefix="egressd-throttle-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


POLICY = ["allow authenticated echo\\.test * sni=off"]


def gateway(make_gateway, slapd, secret_dir, **extra):
    conf = slapd.gateway_conf(secret_dir)
    conf["auth_cache_ttl"] = "300"
    conf["auth_negative_ttl"] = "5"
    conf.update(extra)
    return make_gateway(conf=conf, policy=POLICY)


def attempt(g, echo, auth, src=None):
    """CONNECT with credentials; returns (response, client port)."""
    with Conn(g.port, src=src) as c:
        port = c.local_port
        c.send(connect_bytes("echo.test:%d" % echo.port,
                             [("Host", "echo.test:%d" % echo.port), ("Proxy-Authorization", auth)]))
        return c.read_response(method="CONNECT"), port


def assert_throttled(g, resp, port, user, what):
    assert resp.status == 429, "%s: expected 429, got %s" % (what, resp.describe())
    wait = int(resp.header("Retry-After") or "0")
    assert 1 <= wait <= 60, "%s: Retry-After %r" % (what, resp.header("Retry-After"))
    assert (resp.header("Connection") or "").lower() == "close"
    expect_one_record(g, lambda r: r.get("client_port") == port, what,
                      status=429, reason="auth_throttled", decision="deny", user=user)


def test_per_user_limit_throttles_without_the_directory(make_gateway, slapd, secret_dir, echo):
    g = gateway(make_gateway, slapd, secret_dir, auth_fail_per_user="3", auth_fail_per_client="0")
    for i in range(3):
        resp, _ = attempt(g, echo, basic("alice", "guess-%d" % i))
        assert resp.status == 407, "wrong password %d: %s" % (i, resp.describe())
    # Even the right password: it is not cached, and would need the directory.
    resp, port = attempt(g, echo, basic("alice", "alice-pw"))
    assert_throttled(g, resp, port, "alice", "alice after 3 failures")
    resp, port = attempt(g, echo, basic("ALICE", "guess-x"))
    assert_throttled(g, resp, port, "ALICE", "the same name in other case")
    slapd.stop()
    try:
        # No exchange: with the directory down an exchange would answer 503.
        resp, port = attempt(g, echo, basic("alice", "guess-y"))
        assert_throttled(g, resp, port, "alice", "alice, directory down")
        resp, _ = attempt(g, echo, basic("bob", "bob-pw"))
        assert resp.status == 503, "bob is not throttled (directory down): %s" % resp.describe()
    finally:
        slapd.start()
    resp, _ = attempt(g, echo, basic("bob", "bob-pw"))
    assert resp.status == 200, "another user from the same client: %s" % resp.describe()


def test_cached_password_still_works_while_throttled(make_gateway, slapd, secret_dir, echo):
    g = gateway(make_gateway, slapd, secret_dir, auth_fail_per_user="3", auth_fail_per_client="0")
    resp, _ = attempt(g, echo, basic("alice", "alice-pw"))
    assert resp.status == 200, resp.describe()
    for i in range(3):
        resp, _ = attempt(g, echo, basic("alice", "attack-%d" % i), src=OTHER_CLIENT)
        assert resp.status == 407, resp.describe()
    resp, port = attempt(g, echo, basic("alice", "attack-x"), src=OTHER_CLIENT)
    assert_throttled(g, resp, port, "alice", "the attacker's 4th guess")
    # The real alice, with the password the directory confirmed: not locked out.
    resp, _ = attempt(g, echo, basic("alice", "alice-pw"))
    assert resp.status == 200, "cached alice while her name is throttled: %s" % resp.describe()


def test_per_client_limit_and_other_clients(make_gateway, slapd, secret_dir, echo):
    g = gateway(make_gateway, slapd, secret_dir, auth_fail_per_client="3", auth_fail_per_user="0")
    for user in ("alice", "bob", "carol"):
        resp, _ = attempt(g, echo, basic(user, "wrong"))
        assert resp.status == 407, resp.describe()
    resp, port = attempt(g, echo, basic("bob", "bob-pw"))
    assert_throttled(g, resp, port, "bob", "4th attempt from the same client")
    slapd.stop()
    try:
        resp, port = attempt(g, echo, basic("carol", "carol-pw"))
        assert_throttled(g, resp, port, "carol", "same client, directory down")
    finally:
        slapd.start()
    # Another address is not throttled by this one's failures.
    resp, _ = attempt(g, echo, basic("bob", "bob-pw"), src=OTHER_CLIENT)
    assert resp.status == 200, "another client address: %s" % resp.describe()


def test_malformed_headers_count_per_client(make_gateway, slapd, secret_dir, echo):
    g = gateway(make_gateway, slapd, secret_dir, auth_fail_per_client="3", auth_fail_per_user="0")
    for value in ("Basic !!!", "Bearer x", basic("alice", "")):
        resp, _ = attempt(g, echo, value)
        assert resp.status == 407, "%r: %s" % (value, resp.describe())
    resp, port = attempt(g, echo, basic("alice", "alice-pw"))
    assert_throttled(g, resp, port, "alice", "after 3 malformed headers")
    resp, _ = attempt(g, echo, basic("alice", "alice-pw"), src=OTHER_CLIENT)
    assert resp.status == 200, resp.describe()


def test_limits_off_with_zero(make_gateway, slapd, secret_dir, echo):
    g = gateway(make_gateway, slapd, secret_dir, auth_fail_per_client="0", auth_fail_per_user="0")
    for i in range(8):
        resp, _ = attempt(g, echo, basic("alice", "guess-%d" % i))
        assert resp.status == 407, resp.describe()
    resp, _ = attempt(g, echo, basic("alice", "alice-pw"))
    assert resp.status == 200, resp.describe()


def test_defaults_throttle_a_user_after_five(make_gateway, slapd, secret_dir, echo):
    g = gateway(make_gateway, slapd, secret_dir)
    for i in range(5):
        resp, _ = attempt(g, echo, basic("bob", "guess-%d" % i))
        assert resp.status == 407, resp.describe()
    resp, port = attempt(g, echo, basic("bob", "bob-pw"))
    assert_throttled(g, resp, port, "bob", "bob after the default 5 failures")


SHARE = 64          # AUTH_CLIENT_QUEUE_MAX


def test_one_client_cannot_hold_the_whole_queue(make_gateway, slapd, secret_dir, echo):
    """Directory frozen: one address queues SHARE distinct new credentials; its
    next one gets 429 at once, while another address's request is still queued
    (not refused) and is answered once the directory thaws."""
    g = gateway(make_gateway, slapd, secret_dir, auth_fail_per_client="0", auth_fail_per_user="0",
                ldap_timeout="30")
    hdr = lambda auth: connect_bytes("echo.test:%d" % echo.port,
                                     [("Host", "echo.test:%d" % echo.port),
                                      ("Proxy-Authorization", auth)])
    flood = []
    slapd.freeze()
    try:
        for i in range(SHARE):
            c = Conn(g.port, timeout=40)
            c.send(hdr(basic("flood%d" % i, "pw%d" % i)))
            flood.append(c)
        time.sleep(1.0)
        with Conn(g.port) as c:
            c.send(hdr(basic("flood-extra", "pw")))
            resp = c.read_response(method="CONNECT", timeout=5)
        assert resp.status == 429, "past its share of the queue: %s" % resp.describe()
        other = Conn(g.port, src=OTHER_CLIENT, timeout=40)
        other.send(hdr(basic("bob", "bob-pw")))
        assert not other.wait_closed(1.0) and other.buf == b"", \
            "another client was answered while queued: %r" % other.buf[:200]
    finally:
        slapd.thaw()
    try:
        resp = other.read_response(method="CONNECT", timeout=30)
        assert resp.status == 200, "the other client once the directory answers: %s" % resp.describe()
    finally:
        other.close()
        for c in flood:
            c.close()
