"""GET /healthz on the metrics listener, for load-balancer health checks.

200 "ok" while the gateway accepts and can serve; 503 with a one-line reason
while it drains after SIGTERM (at once, and until it exits) and while
`audit_on_failure deny` refuses requests.  A health check writes no audit
record and no log line.
"""

import os
import signal
import time

import pytest

from harness.client import Conn, connect_bytes, echo_through, request_bytes
from harness.gateway import Gateway, SyslogCollector, free_port
from harness.util import http_get as _get


def http_get(port, path="/healthz", method="GET", timeout=3.0):
    return _get(port, path, method, timeout)


@pytest.fixture
def health_gateway(make_gateway):
    def make(conf=None, **kw):
        mport = free_port()
        c = {"metrics_listen": "127.0.0.1:%d" % mport}
        c.update(conf or {})
        g = make_gateway(conf=c, **kw)
        g.metrics_port = mport
        return g
    return make


def test_healthy_gateway_answers_200_ok(health_gateway):
    g = health_gateway()
    assert http_get(g.metrics_port) == (200, b"ok\n")
    status, body = http_get(g.metrics_port, method="HEAD")
    assert (status, body) == (200, b"")
    # /metrics is still there beside it.
    status, body = http_get(g.metrics_port, "/metrics")
    assert status == 200 and b"egressd_" in body


def test_health_checks_write_no_record_and_no_log_line(health_gateway, origin):
    g = health_gateway()
    c = Conn(g.port)
    c.send(request_bytes("GET", "http://origin.test:%d/echo" % origin.port,
                         [("Host", "origin.test:%d" % origin.port)]))
    assert c.read_response().status == 200
    c.close()
    g.wait_audit(lambda r: r.get("event") == "request")
    records_before = len(g.audit())
    log_before = g.stderr()
    for _ in range(25):
        assert http_get(g.metrics_port)[0] == 200
    time.sleep(0.5)
    assert len(g.audit()) == records_before, "a health check wrote an audit record"
    assert g.stderr() == log_before, "a health check wrote a log line:\n" + \
        g.stderr()[len(log_before):][:500]


def test_sigterm_turns_healthz_503_at_once_and_it_answers_until_exit(health_gateway, echo):
    g = health_gateway(conf={"shutdown_grace": "4"})
    g._expect_exit = True
    c = Conn(g.port)
    c.send(connect_bytes("echo.test:%d" % echo.port))
    assert c.read_head().status == 200
    assert echo_through(c, b"before") == b"before"
    assert http_get(g.metrics_port)[0] == 200

    g.signal(signal.SIGTERM)
    deadline = time.monotonic() + 1.0
    answers = []
    while time.monotonic() < deadline:
        answers.append(http_get(g.metrics_port))
        if answers[-1][0] == 503:
            break
        time.sleep(0.02)
    status, body = answers[-1]
    assert status == 503, "still %r a second after SIGTERM" % (answers[-1],)
    assert body.endswith(b"\n") and body.count(b"\n") == 1 and b"draining" in body, body
    # The drain goes on: the open tunnel still relays, /healthz keeps answering 503.
    assert echo_through(c, b"during") == b"during", "the tunnel was cut by the drain"
    for _ in range(5):
        assert http_get(g.metrics_port)[0] == 503
        time.sleep(0.1)
    c.close()
    rc = g.wait_exit(5)
    assert rc == 0, "egressd exit status %r after the drain" % rc
    # Gone with the process, not before.
    with pytest.raises(OSError):
        http_get(g.metrics_port, timeout=1.0)
    rec = [r for r in g.audit() if r.get("event") == "tunnel"]
    assert len(rec) == 1 and rec[0]["bytes_up"] == len(b"before") + len(b"during"), rec


def test_audit_deny_mode_is_unhealthy_while_it_refuses(dns, allow_all, origin):
    mport = free_port()
    g = Gateway(dns.port, conf={"metrics_listen": "127.0.0.1:%d" % mport,
                                "audit_on_failure": "deny"},
                policy=allow_all, syslog_collector=False)
    collector = None
    try:
        g.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and http_get(mport)[0] != 503:
            time.sleep(0.05)
        status, body = http_get(mport)
        assert status == 503 and b"audit" in body and body.count(b"\n") == 1, (status, body)
        collector = SyslogCollector(os.path.join(g.dir, "audit.sock"))
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and http_get(mport)[0] != 200:
            time.sleep(0.1)
        assert http_get(mport) == (200, b"ok\n"), "still unhealthy once the audit sink is back"
    finally:
        if collector is not None:
            collector.stop()
        g.cleanup()
