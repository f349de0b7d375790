"""Audit trouble is never silent: the operational log says when delivery
stops and resumes (with what was lost or refused meanwhile), and what was
still queued at exit.  Before, egressd logged nothing at all in each case."""

import os
import time

import pytest

from harness.client import Conn, request_bytes
from harness.gateway import Gateway, SyslogCollector
from harness.proxytls import LISTENER_KINDS

# Every test here runs through a plain and a tls listener.
pytestmark = LISTENER_KINDS


def _wait_log(g, text, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in g.stderr():
            return True
        time.sleep(0.05)
    return False


def _get(g, origin):
    authority = "origin.test:%d" % origin.port
    with Conn(g.port) as c:
        c.send(request_bytes("GET", "http://%s/bytes/3" % authority, [("Host", authority)]))
        return c.read_response().status


@pytest.fixture
def no_syslog_gateway(dns, allow_all):
    made = []

    def make(**conf):
        g = Gateway(dns.port, conf=conf, policy=allow_all, syslog_collector=False)
        made.append(g)
        g.start()
        return g
    yield make
    for g in made:
        g.cleanup()


def test_outage_start_and_end_are_logged_with_the_loss(no_syslog_gateway, origin):
    g = no_syslog_gateway()
    assert _wait_log(g, "audit: records cannot be delivered"), g.stderr()[-2000:]
    for _ in range(3):
        assert _get(g, origin) == 200
    collector = SyslogCollector(os.path.join(g.dir, "audit.sock"))
    try:
        assert _wait_log(g, "audit: delivery to"), g.stderr()[-2000:]
        line = [l for l in g.stderr().splitlines() if "audit: delivery to" in l][-1]
        assert "resumed after" in line and "0 records lost" in line, line
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and len(collector.records()) < 4:
            time.sleep(0.05)
        assert len([r for r in collector.records() if r.get("event") == "request"]) == 3
    finally:
        collector.stop()


def test_deny_mode_explains_its_503s(no_syslog_gateway, origin):
    g = no_syslog_gateway(audit_on_failure="deny")
    assert _wait_log(g, "audit: records cannot be delivered"), g.stderr()[-2000:]
    assert "refused with 503" in g.stderr()
    assert _get(g, origin) == 503
    assert _get(g, origin) == 503
    collector = SyslogCollector(os.path.join(g.dir, "audit.sock"))
    try:
        assert _wait_log(g, "audit: delivery to"), g.stderr()[-2000:]
        line = [l for l in g.stderr().splitlines() if "audit: delivery to" in l][-1]
        assert "2 tunnels/requests refused" in line, line
        assert _get(g, origin) == 200
    finally:
        collector.stop()


def test_records_queued_at_exit_are_counted_in_a_last_line(no_syslog_gateway, origin):
    g = no_syslog_gateway()
    for _ in range(3):
        assert _get(g, origin) == 200
    assert g.stop() == 0
    lines = [l for l in g.stderr().splitlines() if "still queued at exit" in l]
    assert lines, g.stderr()[-2000:]
    # start + 3 requests + stop at least; the count is in the line
    count = int(lines[0].split("audit: ")[1].split(" ")[0])
    assert count >= 4, lines[0]
