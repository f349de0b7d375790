"""Address forms: an IPv4-mapped IPv6 literal or answer is the IPv4 address, and
no address form reaches the gateway's own listeners.

- `[::ffff:a.b.c.d]` in any spelling is `a.b.c.d` for the policy (an IPv4 deny
  rule matches it), the internal-address check and the record (`host`, `dst_ip`).
- A hosts-file answer that is IPv4-mapped is checked, connected to and recorded
  as the IPv4 address.
- The gateway's listeners (`listen`, `metrics_listen`) are refused 403
  `internal_destination` whatever names them: the IPv4-mapped form, and for a
  wildcard listener any of this host's addresses on its port.  The gateways
  here allow all of 127.0.0.0/8, so the internal-address check cannot hide a
  hole in the own-address check.

Every address used is on 127.0.0.0/8 or ::1.  NAT64, 6to4 and Teredo forms are
only classified, in tests/unit/test_netaddr.c, never connected to.
"""

import socket
import time

import pytest

from harness.client import Closed, Conn, connect_bytes, echo_through, request_bytes
from harness.gateway import free_port
from harness.servers import RecordingListener
from harness.util import expect_one_record, fmt_records, http_get

MAPPED_127_0_0_2 = ["::ffff:127.0.0.2", "::FFFF:127.0.0.2", "::ffff:7f00:2",
                    "0:0:0:0:0:ffff:127.0.0.2", "0000:0000:0000:0000:0000:FFFF:7F00:0002",
                    "0::ffff:7f00:2"]


def ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def free_port6():
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.bind(("::1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def send_and_read(g, data, timeout=8):
    """Send data on a new client connection; return (client port, response)."""
    with Conn(g.port) as c:
        port = c.local_port
        c.send(data)
        try:
            resp = c.read_response(timeout=timeout)
        except Closed as e:
            pytest.fail("the gateway closed without a response (%s) to %r" % (e, data[:200]))
        return port, resp


def expect_refused(g, data, event, dst_ip, what):
    port, resp = send_and_read(g, data)
    assert resp.status == 403, "%s: expected 403, got %s" % (what, resp.describe())
    return expect_one_record(g, lambda r: r.get("client_port") == port, what, event=event,
                             status=403, decision="deny", reason="internal_destination",
                             dst_ip=dst_ip)


# ------------------------------------------------------------ point 1: mapped literals


@pytest.fixture(scope="module")
def internal():
    s = RecordingListener("127.0.0.3").start()
    yield s
    s.stop()


@pytest.mark.parametrize("spelling", MAPPED_127_0_0_2)
def test_mapped_literal_meets_ipv4_deny_rule(make_gateway, echo, rule_opts, spelling):
    """`deny any 127\\.0\\.0\\.2 PORT` denies every IPv4-mapped spelling of it."""
    g = make_gateway(policy=["deny any 127\\.0\\.0\\.2 %d" % echo.port,
                             "allow any .* *" + rule_opts])
    before = echo.accepted
    authority = "[%s]:%d" % (spelling, echo.port)
    port, resp = send_and_read(g, connect_bytes(authority))
    assert resp.status == 403, "CONNECT %s must meet the IPv4 deny rule: %s" % (
        authority, resp.describe())
    expect_one_record(g, lambda r: r.get("client_port") == port, "mapped literal denied",
                      event="tunnel", reason="policy", rule="policy.rules:1",
                      host="127.0.0.2", port=echo.port, dst_ip=None)
    time.sleep(0.2)
    assert echo.accepted == before, "the denied tunnel reached 127.0.0.2"


def test_mapped_literal_absolute_form_meets_ipv4_deny_rule(make_gateway, origin, rule_opts):
    g = make_gateway(policy=["deny any 127\\.0\\.0\\.2 %d" % origin.port,
                             "allow any .* *" + rule_opts])
    tag = "mapped-denied-%d" % time.monotonic_ns()
    url = "http://[::ffff:127.0.0.2]:%d/echo?%s" % (origin.port, tag)
    port, resp = send_and_read(g, request_bytes("GET", url, [("Host", "[::ffff:127.0.0.2]:%d"
                                                              % origin.port)]))
    assert resp.status == 403, resp.describe()
    expect_one_record(g, lambda r: r.get("client_port") == port, "mapped absolute-form denied",
                      event="request", reason="policy", host="127.0.0.2")
    assert not origin.requests_for(tag), "the denied request reached the origin"


def test_mapped_literal_allowed_is_recorded_as_ipv4(gw, echo):
    """Allowed (127.0.0.2 is in allow_internal): the tunnel works and the record
    names the IPv4 address, host and dst_ip alike."""
    with Conn(gw.port) as c:
        port = c.local_port
        c.send(connect_bytes("[::FFFF:7F00:2]:%d" % echo.port))
        head = c.read_head(8)
        assert head.status == 200, head.describe()
        assert echo_through(c, b"mapped\n") == b"mapped\n"
    expect_one_record(gw, lambda r: r.get("client_port") == port, "mapped tunnel",
                      event="tunnel", decision="allow", host="127.0.0.2", port=echo.port,
                      dst_ip="127.0.0.2")


def test_mapped_literal_absolute_form_recorded_as_ipv4(gw, origin):
    tag = "mapped-fwd-%d" % time.monotonic_ns()
    url = "http://[0:0:0:0:0:ffff:127.0.0.2]:%d/echo?%s" % (origin.port, tag)
    port, resp = send_and_read(gw, request_bytes("GET", url, [
        ("Host", "[0:0:0:0:0:ffff:127.0.0.2]:%d" % origin.port), ("Connection", "close")]))
    assert resp.status == 200, resp.describe()
    expect_one_record(gw, lambda r: r.get("client_port") == port, "mapped request",
                      event="request", decision="allow", host="127.0.0.2", dst_ip="127.0.0.2")
    reqs = origin.requests_for(tag)
    assert len(reqs) == 1, "the request did not reach the origin once"
    # Host is rebuilt from what the policy saw.
    assert reqs[0].header("Host") == "127.0.0.2:%d" % origin.port, reqs[0].headers


def test_mapped_internal_literal_refused_as_ipv4(gw, internal):
    """127.0.0.3 is not in allow_internal: its mapped form is refused and the
    record names 127.0.0.3."""
    for spelling in ("::ffff:127.0.0.3", "::ffff:7F00:3", "0:0:0:0:0:ffff:7f00:3"):
        rec = expect_refused(gw, connect_bytes("[%s]:%d" % (spelling, internal.port)),
                             "tunnel", "127.0.0.3", "CONNECT [%s]" % spelling)
        assert rec["host"] == "127.0.0.3", fmt_records([rec])
    assert internal.accepted == 0, "a connection reached 127.0.0.3"


def test_mapped_hosts_answer_is_ipv4(make_gateway, echo, internal):
    """A hosts-file answer ::ffff:a.b.c.d is checked, connected to and recorded
    as a.b.c.d."""
    g = make_gateway(hosts={"mapped.test": "::ffff:127.0.0.2",
                            "mapped-internal.test": "::ffff:127.0.0.3"})
    with Conn(g.port) as c:
        port = c.local_port
        c.send(connect_bytes("mapped.test:%d" % echo.port))
        head = c.read_head(8)
        assert head.status == 200, head.describe()
        assert echo_through(c, b"answer\n") == b"answer\n"
    expect_one_record(g, lambda r: r.get("client_port") == port, "mapped answer",
                      decision="allow", host="mapped.test", dst_ip="127.0.0.2")
    expect_refused(g, connect_bytes("mapped-internal.test:%d" % internal.port), "tunnel",
                   "127.0.0.3", "mapped internal answer")
    assert internal.accepted == 0, "a connection reached 127.0.0.3"


# ------------------------------------------------------------ point 5: own listeners


@pytest.fixture
def own_gateway(make_gateway, rule_opts):
    """allow_internal covers all of 127.0.0.0/8; metrics on 127.0.0.1."""
    mport = free_port()
    g = make_gateway(conf={"allow_internal": ["127.0.0.0/8"],
                           "metrics_listen": "127.0.0.1:%d" % mport},
                     hosts={"self.test": "127.0.0.1", "self-mapped.test": "::ffff:127.0.0.1"})
    g.metrics_port = mport
    return g


def metrics_up(port):
    return http_get(port, "/metrics", timeout=2)[0] == 200


def test_metrics_listener_unreachable_in_any_form(own_gateway):
    g = own_gateway
    m = g.metrics_port
    assert metrics_up(m), "the metrics listener does not answer directly"
    for authority in ("[::ffff:127.0.0.1]:%d" % m, "127.0.0.1:%d" % m,
                      "[::FFFF:7F00:1]:%d" % m, "self.test:%d" % m, "self-mapped.test:%d" % m):
        expect_refused(g, connect_bytes(authority), "tunnel", "127.0.0.1", "CONNECT %s" % authority)
    for host in ("[::ffff:127.0.0.1]", "127.0.0.1"):
        url = "http://%s:%d/metrics" % (host, m)
        expect_refused(g, request_bytes("GET", url, [("Host", "%s:%d" % (host, m))]), "request",
                       "127.0.0.1", "GET %s" % url)


def test_proxy_listener_unreachable_mapped(own_gateway):
    g = own_gateway
    for authority in ("[::ffff:127.0.0.1]:%d" % g.port, "self-mapped.test:%d" % g.port):
        expect_refused(g, connect_bytes(authority), "tunnel", "127.0.0.1", "CONNECT %s" % authority)


@pytest.mark.parametrize("key", ["listen", "metrics_listen"])
def test_wildcard_listener_unreachable_through_host_addresses(make_gateway, key):
    """listen 0.0.0.0:P (or metrics_listen 0.0.0.0:P) is reached through every
    address of the host: 127.0.0.5 as well as 127.0.0.1, in any form."""
    p = free_port()
    g = make_gateway(conf={"allow_internal": ["127.0.0.0/8"], key: "0.0.0.0:%d" % p})
    if key == "metrics_listen":
        assert metrics_up(p)
    for host, dst in (("127.0.0.5", "127.0.0.5"), ("127.0.0.1", "127.0.0.1"),
                      ("[::ffff:127.0.0.5]", "127.0.0.5"), ("[::ffff:7f00:1]", "127.0.0.1")):
        authority = "%s:%d" % (host, p)
        expect_refused(g, connect_bytes(authority), "tunnel", dst, "CONNECT %s" % authority)
    url = "http://127.0.0.9:%d/metrics" % p
    expect_refused(g, request_bytes("GET", url, [("Host", "127.0.0.9:%d" % p)]), "request",
                   "127.0.0.9", "GET %s" % url)


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this host")
def test_ipv6_wildcard_listener_unreachable(make_gateway):
    """listen [::]:Q (dual-stack) is reached through ::1 and every IPv4 address
    of the host."""
    q = free_port6()
    g = make_gateway(conf={"allow_internal": ["127.0.0.0/8", "::1/128"], "listen": "[::]:%d" % q})
    for host, dst in (("[::1]", "::1"), ("127.0.0.5", "127.0.0.5"),
                      ("[::ffff:127.0.0.1]", "127.0.0.1"), ("[0:0:0:0:0:0:0:1]", "::1")):
        authority = "%s:%d" % (host, q)
        expect_refused(g, connect_bytes(authority), "tunnel", dst, "CONNECT %s" % authority)


def test_other_port_on_loopback_still_reachable(make_gateway, echo):
    """Only the listeners' ports are refused: with a wildcard listener, a tunnel
    to another port of a local address still works (nothing over-refused)."""
    p = free_port()
    g = make_gateway(conf={"allow_internal": ["127.0.0.0/8"], "listen": "0.0.0.0:%d" % p})
    with Conn(g.port) as c:
        c.send(connect_bytes("[::ffff:127.0.0.2]:%d" % echo.port))
        head = c.read_head(8)
        assert head.status == 200, head.describe()
        assert echo_through(c, b"ok\n") == b"ok\n"
