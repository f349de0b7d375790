"""The harness itself: a test sees only its own audit records on a gateway or an
rsyslogd that the tests of a module share, even when the kernel gives it the
client port an earlier test had (tests pick their records by client_port)."""

import socket

import pytest

from harness.client import connect_bytes
from harness.gateway import Gateway
from harness.rsyslog import Rsyslogd
from harness.util import fmt_records, read_to_eof


@pytest.fixture(scope="module")
def client_port():
    """One client port for every test below, as the kernel may hand one out twice."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def rsyslogd():
    r = Rsyslogd()
    r.start()
    yield r
    r.cleanup()


@pytest.fixture(scope="module")
def gw_to_rsyslogd(dns, allow_all, rsyslogd):
    with Gateway(dns.port, policy=allow_all, conf={"audit_syslog_socket": rsyslogd.sock_path},
                 syslog_collector=False).running() as g:
        yield g


def denied_connect_from(gw, port):
    """CONNECT to the internal 127.0.0.3 (403, no connection made) from port;
    the gateway closes first, so the port is free again at once."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.settimeout(5)
    s.bind(("127.0.0.1", port))
    s.connect(("127.0.0.1", gw.port))
    s.sendall(connect_bytes("127.0.0.3:80"))
    got = read_to_eof(s)
    assert got.startswith(b"HTTP/1.1 403 "), got[:200]


def expect_one(recs, what, port):
    assert len(recs) == 1, "%s, client port %d: %d records:\n%s" % (
        what, port, len(recs), fmt_records(recs))


@pytest.mark.parametrize("turn", ["first", "second"])
def test_gateway_shows_one_record_per_test_from_a_reused_port(gw, client_port, turn):
    denied_connect_from(gw, client_port)
    expect_one(gw.wait_audit(lambda r: r.get("client_port") == client_port),
               "%s test, the gateway's collector" % turn, client_port)


@pytest.mark.parametrize("turn", ["first", "second"])
def test_rsyslogd_shows_one_record_per_test_from_a_reused_port(gw_to_rsyslogd, rsyslogd,
                                                               client_port, turn):
    denied_connect_from(gw_to_rsyslogd, client_port)
    expect_one(rsyslogd.wait_records(lambda r: r.get("client_port") == client_port),
               "%s test, rsyslogd" % turn, client_port)
