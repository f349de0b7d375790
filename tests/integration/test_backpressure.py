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


def test_upload_to_stalled_destination_bounded_memory(make_gateway):
    """The destination never reads: the client's upload must back up to the
    client instead of piling up in the gateway."""
    import threading
    from harness.servers import StallServer
    srv = StallServer("127.0.0.2").start()
    g = make_gateway()
    try:
        with Conn(g.port, timeout=10) as c:
            c.send(connect_bytes("127.0.0.2:%d" % srv.port))
            r = c.read_head()
            assert r.status == 200, r.describe()
            stop = threading.Event()
            sent = [0]

            def pump():
                block = b"u" * 65536
                c.sock.settimeout(0.5)
                while not stop.is_set() and sent[0] < BIG:
                    try:
                        sent[0] += c.sock.send(block)
                    except OSError:
                        continue

            t = threading.Thread(target=pump, daemon=True)
            base = rss_kb(g.proc.pid)
            t.start()
            peak = base
            for _ in range(30):
                time.sleep(0.1)
                peak = max(peak, rss_kb(g.proc.pid))
            stop.set()
            t.join(5)
            assert peak - base < MAX_GROWTH_KB, \
                "gateway RSS grew from %d to %d KiB while the destination read nothing " \
                "(client pushed %d MiB)" % (base, peak, sent[0] >> 20)
            assert sent[0] < 128 * 1024 * 1024, \
                "the client could push %d MiB into a tunnel whose destination reads nothing" % (sent[0] >> 20)
    finally:
        srv.stop()
