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


def _unread_in_kernel(local_port, remote_port):
    """Bytes queued unread on the IPv4 socket local_port <-> remote_port (/proc/net/tcp)."""
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if (int(fields[1].split(":")[1], 16) == local_port and
                    int(fields[2].split(":")[1], 16) == remote_port):
                return int(fields[4].split(":")[1], 16)
    raise AssertionError("no socket %d <-> %d in /proc/net/tcp" % (local_port, remote_port))


def test_bytes_pipelined_behind_a_pending_response_stay_in_the_kernel(make_gateway, origin):
    """While a request waits for its response, whatever the client sends next
    is not read without bound: the gateway stops reading the client, the bytes
    queue in the kernel (and then in the client), and the response still comes
    out whole.  The pipelined bytes are a head that never ends: the gateway answers 431
    once it reads them."""
    g = make_gateway()
    with Conn(g.port, timeout=10) as c:
        c.send(b"GET http://origin.test:%d/slow/1500/10 HTTP/1.1\r\nHost: origin.test:%d\r\n\r\n"
               % (origin.port, origin.port))
        time.sleep(0.2)
        c.sock.setblocking(False)
        sent, block = 0, b"x" * 65536
        while sent < BIG:
            try:
                sent += c.sock.send(block)
            except BlockingIOError:
                break
        c.sock.setblocking(True)
        time.sleep(0.3)
        unread = _unread_in_kernel(g.port, c.local_port)
        assert sent < BIG and unread > 0, \
            "the client pushed %d bytes behind a pending response; %d of them wait unread in " \
            "the gateway's socket: it kept reading" % (sent, unread)
        r = c.read_response()
        assert r.status == 200 and len(r.body) == 10, r.describe()
        nxt = c.read_head(timeout=5)
        assert nxt.status == 431, nxt.describe()
