"""Proxy-Authorization: Basic through egressd against a real slapd.

The directory is harness.slapd's seeded one (alice in engineering, bob in
sales, carol in no group, users whose names hold filter metacharacters), with
`allow bind_anon_dn` so that a gateway passing an empty password on to a bind
would be caught.  Each request is authenticated by its own header; the audit
record carries the user as the directory stores it (or, for a failure, as
given), never the password or the header.
"""

import base64
import os
import shutil
import tempfile
import time

import pytest

from harness.client import Conn, connect_bytes, echo_through, request_bytes
from harness.slapd import Slapd
from harness.util import expect_one_record
from harness.proxytls import LISTENER_KINDS

# Every test here runs through a plain and a tls listener.
pytestmark = LISTENER_KINDS

SECRETS = ["alice-pw", "bob-pw", "carol-pw", "star-pw", "wrong-pw", "proxy-secret"]


def basic(user, password):
    raw = ("%s:%s" % (user, password)).encode()
    return "Basic " + base64.b64encode(raw).decode()


@pytest.fixture(scope="module")
def slapd():
    s = Slapd().start()
    yield s
    s.cleanup()


@pytest.fixture
def secret_dir():
    d = tempfile.mkdtemp(prefix="egressd-auth-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


POLICY = [
    "allow     any                 open\\.test        *    sni=off",
    "deny      user:carol          .*                 *",
    "allow     group:engineering   eng\\.test         *    sni=off",
    "allow     group:stars         eng\\.test         *    sni=off",
    "allow     authenticated       echo\\.test        *    sni=off",
    "allow     authenticated       origin\\.test      *",
]


@pytest.fixture
def agw(make_gateway, slapd, secret_dir):
    conf = slapd.gateway_conf(secret_dir)
    conf["auth_cache_ttl"] = "300"
    conf["auth_negative_ttl"] = "5"
    return make_gateway(conf=conf, policy=POLICY,
                        hosts={"eng.test": "127.0.0.2", "open.test": "127.0.0.2"})


def tunnel(g, authority, auth=None, payload=b"ping"):
    """CONNECT with optional credentials; returns (status, client port, echoed bytes)."""
    headers = [("Host", authority)]
    if auth is not None:
        headers.append(("Proxy-Authorization", auth))
    with Conn(g.port) as c:
        port = c.local_port
        c.send(connect_bytes(authority, headers))
        resp = c.read_response(method="CONNECT")
        if resp.status != 200:
            return resp, port, None
        return resp, port, echo_through(c, payload)


def assert_no_secret(g):
    """No password, and no Proxy-Authorization value, anywhere."""
    blobs = [g.stderr()] + [r.decode("utf-8", "replace") if isinstance(r, bytes) else str(r)
                            for r in g.audit_raw()]
    text = "\n".join(blobs)
    for s in SECRETS:
        assert s not in text, "secret %r leaked into the log or the audit" % s
    assert "Basic " not in text, "a Proxy-Authorization value leaked"


def test_good_password_tunnel_and_user_as_stored(agw, echo):
    resp, port, got = tunnel(agw, "echo.test:%d" % echo.port, basic("alice", "alice-pw"))
    assert resp.status == 200, resp.describe()
    assert got == b"ping"
    expect_one_record(agw, lambda r: r.get("client_port") == port, "alice's tunnel",
                      user="alice", reason="ok", status=200)
    # A name differing only in case is the same directory user, recorded as stored.
    resp, port, _ = tunnel(agw, "echo.test:%d" % echo.port, basic("ALICE", "alice-pw"))
    assert resp.status == 200, resp.describe()
    expect_one_record(agw, lambda r: r.get("client_port") == port, "ALICE's tunnel",
                      user="alice", reason="ok")
    assert_no_secret(agw)


@pytest.mark.parametrize("user,password,why", [
    ("alice", "wrong-pw", "wrong password"),
    ("alice", "", "empty password (an anonymous bind slapd would accept)"),
    ("nosuchuser", "alice-pw", "unknown user"),
    ("*", "alice-pw", "filter wildcard"),
    ("alice)(uid=*", "alice-pw", "filter injection"),
    ("alice*", "alice-pw", "prefix wildcard"),
    ("dup", "dup-pw", "two entries share the name"),
    (" alice", "alice-pw", "leading space"),
])
def test_failures_get_407_auth_failed(agw, echo, user, password, why):
    resp, port, _ = tunnel(agw, "echo.test:%d" % echo.port, basic(user, password))
    assert resp.status == 407, "%s: expected 407, got %s" % (why, resp.describe())
    assert (resp.header("Proxy-Authenticate") or "").startswith("Basic realm=")
    expect_one_record(agw, lambda r: r.get("client_port") == port, why,
                      status=407, reason="auth_failed", decision="deny")
    assert_no_secret(agw)


@pytest.mark.parametrize("value", [
    "Basic !!!notbase64",
    "Basic " + base64.b64encode(b"alice:alice-pw").decode() + "=",
    "Bearer abc.def",
    "Digest username=\"alice\"",
    "Basic",
])
def test_malformed_headers_get_407(agw, echo, value):
    resp, port, _ = tunnel(agw, "echo.test:%d" % echo.port, value)
    assert resp.status == 407, "%r: %s" % (value, resp.describe())
    expect_one_record(agw, lambda r: r.get("client_port") == port, value,
                      status=407, reason="auth_failed")


def test_no_credentials_get_407_auth_required(agw, echo):
    resp, port, _ = tunnel(agw, "echo.test:%d" % echo.port)
    assert resp.status == 407, resp.describe()
    expect_one_record(agw, lambda r: r.get("client_port") == port, "anonymous",
                      status=407, reason="auth_required", user=None)
    # A rule for anyone needs no credentials at all.
    resp, port, got = tunnel(agw, "open.test:%d" % echo.port)
    assert resp.status == 200 and got == b"ping", resp.describe()


def test_group_rules(agw, echo):
    resp, _, got = tunnel(agw, "eng.test:%d" % echo.port, basic("alice", "alice-pw"))
    assert resp.status == 200 and got == b"ping", "alice is in engineering: %s" % resp.describe()
    resp, port, _ = tunnel(agw, "eng.test:%d" % echo.port, basic("bob", "bob-pw"))
    assert resp.status == 403, "bob is not in engineering: %s" % resp.describe()
    expect_one_record(agw, lambda r: r.get("client_port") == port, "bob to eng.test",
                      user="bob", reason="default_deny")
    # Metacharacters in the name and the DN are escaped, so the group search finds them.
    resp, _, got = tunnel(agw, "eng.test:%d" % echo.port, basic("star*user", "star-pw"))
    assert resp.status == 200, "star*user is in stars: %s" % resp.describe()
    # A user rule matches the stored name whatever case was typed.
    resp, port, _ = tunnel(agw, "echo.test:%d" % echo.port, basic("CAROL", "carol-pw"))
    assert resp.status == 403, "deny user:carol must hold for CAROL: %s" % resp.describe()
    expect_one_record(agw, lambda r: r.get("client_port") == port, "CAROL",
                      user="carol", reason="policy", rule="policy.rules:2")


def test_identity_belongs_to_each_request(agw, origin):
    """Two requests on one keep-alive connection: the second, without a
    header, is anonymous again."""
    with Conn(agw.port) as c:
        url = "http://origin.test:%d/echo" % origin.port
        hdrs = [("Host", "origin.test:%d" % origin.port)]
        c.send(request_bytes("GET", url, hdrs + [("Proxy-Authorization", basic("alice", "alice-pw"))]))
        r1 = c.read_response()
        assert r1.status == 200, r1.describe()
        c.send(request_bytes("GET", url, hdrs))
        r2 = c.read_response()
        assert r2.status == 407, "a request without credentials after an authenticated one: %s" \
            % r2.describe()
    assert_no_secret(agw)


def test_directory_down_cached_users_work_others_503(agw, slapd, echo):
    resp, _, _ = tunnel(agw, "echo.test:%d" % echo.port, basic("alice", "alice-pw"))
    assert resp.status == 200, resp.describe()
    slapd.stop()
    try:
        resp, _, got = tunnel(agw, "echo.test:%d" % echo.port, basic("alice", "alice-pw"))
        assert resp.status == 200 and got == b"ping", \
            "a cached user must keep working while the directory is down: %s" % resp.describe()
        resp, port, _ = tunnel(agw, "echo.test:%d" % echo.port, basic("bob", "bob-pw"))
        assert resp.status == 503, "uncached user, directory down: %s" % resp.describe()
        expect_one_record(agw, lambda r: r.get("client_port") == port, "bob while down",
                          status=503, reason="auth_unavailable")
    finally:
        slapd.start()
    deadline = time.time() + 15
    while True:
        resp, _, _ = tunnel(agw, "echo.test:%d" % echo.port, basic("bob", "bob-pw"))
        if resp.status == 200 or time.time() > deadline:
            break
        time.sleep(0.5)
    assert resp.status == 200, "recovery after the directory returns: %s" % resp.describe()


def test_frozen_directory_does_not_delay_cached_users(agw, slapd, echo):
    resp, _, _ = tunnel(agw, "echo.test:%d" % echo.port, basic("alice", "alice-pw"))
    assert resp.status == 200, resp.describe()
    slapd.freeze()
    try:
        # Someone uncached waits on the frozen directory meanwhile.
        waiting = Conn(agw.port, timeout=15)
        waiting.send(connect_bytes("echo.test:%d" % echo.port,
                                   [("Host", "echo.test"),
                                    ("Proxy-Authorization", basic("bob", "bob-pw"))]))
        t0 = time.time()
        resp, _, got = tunnel(agw, "echo.test:%d" % echo.port, basic("alice", "alice-pw"))
        took = time.time() - t0
        assert resp.status == 200 and got == b"ping", resp.describe()
        # Behind the directory it would take ldap_timeout (2 s) at least; the
        # bound is that, not a guess at this machine's speed.
        assert took < 2.0, "a cached user's tunnel took %.2fs behind a frozen directory" % took
        r = waiting.read_response(method="CONNECT", timeout=15)
        assert r.status == 503, "the uncached user gets 503 after ldap_timeout: %s" % r.describe()
        waiting.close()
    finally:
        slapd.thaw()


def test_compound_filter_with_user_attr(make_gateway, slapd, secret_dir, echo):
    """An Active Directory-style compound filter: the stored name comes from
    ldap_user_attr, since the filter is not the simple (ATTR=%u) shape."""
    conf = slapd.gateway_conf(secret_dir)
    conf["ldap_user_filter"] = "(&(objectClass=inetOrgPerson)(uid=%u))"
    conf["ldap_user_attr"] = "uid"
    g = make_gateway(conf=conf, policy=["allow authenticated echo\\.test * sni=off"])
    resp, port, got = tunnel(g, "echo.test:%d" % echo.port, basic("Alice", "alice-pw"))
    assert resp.status == 200 and got == b"ping", resp.describe()
    expect_one_record(g, lambda r: r.get("client_port") == port, "compound filter",
                      user="alice", reason="ok")
    resp, _, _ = tunnel(g, "echo.test:%d" % echo.port, basic("alice*", "alice-pw"))
    assert resp.status == 407, resp.describe()
