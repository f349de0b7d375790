"""Resilience and dialing: out of file descriptors (the listener pauses instead
of spinning and recovers), IPv6 destinations, the next resolved address tried
when one refuses."""

import socket
import time

import pytest

from harness.client import Conn, connect_bytes, echo_through
from harness.servers import EchoServer
from harness.util import expect_one_record


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = __import__("os").sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks     # utime + stime


def test_emfile_does_not_spin_and_recovers(make_gateway, echo):
    g = make_gateway(nofile=64, conf={"header_timeout": "30"})
    held = []
    try:
        for _ in range(120):                 # more than the gateway has descriptors for
            held.append(socket.create_connection(("127.0.0.1", g.port), timeout=5))
        time.sleep(0.5)
        c0 = cpu_seconds(g.proc.pid)
        time.sleep(2.0)
        used = cpu_seconds(g.proc.pid) - c0
        assert g.alive(), "egressd died when out of descriptors:\n%s" % g.stderr()[-2000:]
        assert used < 0.6, "egressd used %.2f s of CPU in 2 s while out of descriptors " \
            "(accept loop spinning on EMFILE?)" % used
    finally:
        for s in held:
            s.close()
    # Once descriptors are free again, new clients are served.
    deadline = time.monotonic() + 10
    last = None
    while time.monotonic() < deadline:
        try:
            with Conn(g.port, timeout=5) as c:
                c.send(connect_bytes("echo.test:%d" % echo.port))
                r = c.read_head(timeout=5)
                if r.status == 200 and echo_through(c, b"back") == b"back":
                    return
                last = r.describe()
        except (OSError, Exception) as e:   # retried until the deadline
            last = repr(e)
        time.sleep(0.3)
    pytest.fail("egressd did not recover after descriptors were freed; last attempt: %s" % last)


@pytest.fixture
def echo6():
    try:
        s = EchoServer("::1").start()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    yield s
    s.stop()


def test_ipv6_destination(make_gateway, echo6):
    g = make_gateway(conf={"allow_internal": ["127.0.0.2/32", "::1/128"]},
                     hosts={"v6.test": "::1"})
    for authority in ("[::1]:%d" % echo6.port, "v6.test:%d" % echo6.port):
        with Conn(g.port) as c:
            port = c.local_port
            c.send(connect_bytes(authority))
            r = c.read_head()
            assert r.status == 200, "CONNECT %s: %s" % (authority, r.describe())
            assert echo_through(c, b"six") == b"six"
        expect_one_record(g, lambda x: x.get("client_port") == port, "tunnel to %s" % authority,
                          dst_ip="::1", status=200)


def test_ipv6_loopback_denied_unless_allowed(gw, echo6):
    with Conn(gw.port) as c:
        c.send(connect_bytes("[::1]:%d" % echo6.port))
        r = c.read_response()
    assert r.status == 403, "::1 is not in allow_internal: %s" % r.describe()
    assert echo6.accepted == 0, "a connection reached the ::1 listener"


def test_next_address_tried_when_one_refuses(make_gateway, echo):
    """multi.test resolves to 127.0.0.5 (nothing listens) then 127.0.0.2 (the echo)."""
    g = make_gateway(conf={"allow_internal": ["127.0.0.2/32", "127.0.0.5/32"]},
                     hosts={"multi.test": ["127.0.0.5", "127.0.0.2"]})
    with Conn(g.port) as c:
        port = c.local_port
        c.send(connect_bytes("multi.test:%d" % echo.port))
        r = c.read_head()
        assert r.status == 200, "first address refused, second listening: %s" % r.describe()
        assert echo_through(c, b"second") == b"second"
    expect_one_record(g, lambda x: x.get("client_port") == port, "multi-address tunnel",
                      dst_ip="127.0.0.2", status=200)


def test_internal_address_among_several_never_dialed(make_gateway, echo):
    """mixed.test resolves to 127.0.0.3 (internal, not allowed) and 127.0.0.2: the
    internal one is never connected to, whatever the outcome."""
    from harness.servers import RecordingListener
    lst = RecordingListener("127.0.0.3").start()
    try:
        g = make_gateway(hosts={"mixed.test": ["127.0.0.3", "127.0.0.2"]})
        # Point both at the same port number: use the recording listener's port
        # on 127.0.0.3 and check nothing arrives there.
        with Conn(g.port) as c:
            c.send(connect_bytes("mixed.test:%d" % lst.port))
            r = c.read_response()
        assert r.status in (403, 502), "mixed internal/external answer: %s" % r.describe()
        time.sleep(0.2)
        assert lst.accepted == 0, "the gateway connected to the internal address 127.0.0.3"
    finally:
        lst.stop()


@pytest.fixture
def dns_names(dns):
    dns.answers.update({"dns-echo.test": "127.0.0.2", "dns-internal.test": "127.0.0.3"})
    yield dns
    dns.answers.pop("dns-echo.test", None)
    dns.answers.pop("dns-internal.test", None)


def test_name_resolved_through_dns(gw, dns_names, echo):
    """A name not in the hosts file, answered by the DNS stub (loopback)."""
    with Conn(gw.port) as c:
        port = c.local_port
        c.send(connect_bytes("dns-echo.test:%d" % echo.port))
        r = c.read_head()
        assert r.status == 200, "name answered by DNS: %s" % r.describe()
        assert echo_through(c, b"dns") == b"dns"
    expect_one_record(gw, lambda x: x.get("client_port") == port, "DNS-resolved tunnel",
                      dst_ip="127.0.0.2", host="dns-echo.test")
    assert "dns-echo.test" in [q.lower() for q in dns_names.queries]


def test_dns_answer_internal_denied(gw, dns_names):
    from harness.servers import RecordingListener
    lst = RecordingListener("127.0.0.3").start()
    try:
        with Conn(gw.port) as c:
            port = c.local_port
            c.send(connect_bytes("dns-internal.test:%d" % lst.port))
            r = c.read_response()
        assert r.status == 403, "DNS answer 127.0.0.3 is internal: %s" % r.describe()
        expect_one_record(gw, lambda x: x.get("client_port") == port, "internal DNS answer",
                          reason="internal_destination", dst_ip="127.0.0.3")
        assert lst.accepted == 0
    finally:
        lst.stop()
