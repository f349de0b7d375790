"""Backpressure: a client that stops reading never makes the gateway buffer
without bound.  The origin streams 256 MiB; the client reads nothing for a few
seconds; the gateway's resident memory must stay small (loopback kernel
buffers absorb a few MiB, the gateway itself must stop reading the origin)."""

import time

import pytest

from harness.client import Conn, connect_bytes

BIG = 256 * 1024 * 1024
MAX_GROWTH_KB = 48 * 1024


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def _stall(g, c):
    """Read nothing for 3 s while sampling the gateway's RSS; returns the peak growth."""
    base = rss_kb(g.proc.pid)
    peak = base
    for _ in range(30):
        time.sleep(0.1)
        peak = max(peak, rss_kb(g.proc.pid))
    return base, peak


@pytest.mark.parametrize("mode", ["tunnel", "absolute-form"])
def test_slow_reader_bounded_memory(make_gateway, origin, mode):
    g = make_gateway()
    with Conn(g.port, timeout=10) as c:
        if mode == "tunnel":
            c.send(connect_bytes("origin.test:%d" % origin.port))
            r = c.read_head()
            assert r.status == 200, r.describe()
            c.send(b"GET /stream/%d HTTP/1.1\r\nHost: origin.test\r\n\r\n" % BIG)
        else:
            c.send(b"GET http://origin.test:%d/stream/%d HTTP/1.1\r\nHost: origin.test:%d\r\n\r\n"
                   % (origin.port, BIG, origin.port))
        first = c.read_head(timeout=5)
        assert first.status == 200, first.describe()
        base, peak = _stall(g, c)
        assert peak - base < MAX_GROWTH_KB, \
            "%s: gateway RSS grew from %d KiB to %d KiB while the client read nothing " \
            "(the origin offers %d MiB): no backpressure" % (mode, base, peak, BIG >> 20)
        # The stream resumes when the client reads again.
        got = c.read_exact(4 * 1024 * 1024, timeout=10)
        assert len(got) == 4 * 1024 * 1024
        assert g.alive()
