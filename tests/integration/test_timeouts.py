"""header_timeout is a total deadline: a client trickling its request head is
closed after it (trickling does not extend it), a silent client too, and other
clients are served meanwhile."""

import threading
import time

import pytest

from harness.client import Conn, connect_bytes, echo_through
from harness.servers import pattern_bytes

HEADER_TIMEOUT = 2


@pytest.fixture
def slow_gw(make_gateway):
    return make_gateway(conf={"header_timeout": str(HEADER_TIMEOUT)})


class Trickler:
    """Sends data one byte every interval seconds from a thread until told to
    stop or the peer closes; records when sending failed."""

    def __init__(self, conn, data, interval):
        self.conn, self.data, self.interval = conn, data, interval
        self.stop = threading.Event()
        self.sent = 0
        self.t = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.t.start()
        return self

    def _run(self):
        for b in self.data:
            if self.stop.wait(self.interval):
                return
            try:
                self.conn.sock.send(bytes([b]))
                self.sent += 1
            except OSError:
                return


def _closed_within(c, seconds):
    t0 = time.monotonic()
    closed = c.wait_closed(seconds)
    return closed, time.monotonic() - t0


def check_timeout_response(c):
    """The close may carry a 408; any other bytes are wrong."""
    if c.buf:
        assert c.buf.startswith(b"HTTP/1.1 408 "), "slow client got %r instead of a 408 or a plain close" % c.buf[:200]


def test_trickled_head_closed_at_total_deadline_while_others_served(slow_gw, echo):
    head = connect_bytes("echo.test:%d" % echo.port) * 4     # long enough to outlast the deadline
    slow = Conn(slow_gw.port, timeout=15)
    t0 = time.monotonic()
    tr = Trickler(slow, head, 0.5).start()
    try:
        # Another client is served while the slow one trickles.
        time.sleep(0.8)
        fast = Conn(slow_gw.port)
        with fast:
            fast.send(connect_bytes("echo.test:%d" % echo.port))
            r = fast.read_head(timeout=3)
            assert r.status == 200, "a normal client during a slow one: %s" % r.describe()
            assert echo_through(fast, pattern_bytes(50000)) == pattern_bytes(50000)
        served_at = time.monotonic() - t0
        assert served_at < HEADER_TIMEOUT + 0.5, "the normal client took until %.1f s" % served_at
        closed = slow.wait_closed(HEADER_TIMEOUT + 6 - (time.monotonic() - t0))
        took = time.monotonic() - t0
    finally:
        tr.stop.set()
        slow.close()
    assert closed, "a client trickling one byte every 0.5 s was still connected after %.1f s " \
        "(header_timeout %d must be a total deadline, not an idle timer); %d bytes sent" % (
            took, HEADER_TIMEOUT, tr.sent)
    assert took < HEADER_TIMEOUT + 1.5, "slow client closed only after %.1f s (header_timeout %d)" % (took, HEADER_TIMEOUT)
    assert took > HEADER_TIMEOUT - 0.6, "slow client closed after %.1f s, before header_timeout %d" % (took, HEADER_TIMEOUT)
    check_timeout_response(slow)


def test_silent_client_closed_after_header_timeout(slow_gw):
    with Conn(slow_gw.port, timeout=15) as c:
        closed, took = _closed_within(c, HEADER_TIMEOUT + 5)
        assert closed, "a client that sends nothing is still connected after %.1f s" % took
        assert took < HEADER_TIMEOUT + 1.5, "silent client closed after %.1f s" % took
        check_timeout_response(c)


def test_trickled_keepalive_second_head(slow_gw, origin):
    """After a first request on a kept-alive connection, the next head is bounded too."""
    with Conn(slow_gw.port, timeout=15) as c:
        c.send(b"GET http://origin.test:%d/bytes/3 HTTP/1.1\r\nHost: origin.test:%d\r\n\r\n"
               % (origin.port, origin.port))
        r = c.read_response()
        assert r.status == 200, r.describe()
        t0 = time.monotonic()
        tr = Trickler(c, b"GET http://origin.test/ HTTP/1.1\r\nHost: origin.test\r\n" * 3, 0.5).start()
        try:
            closed = c.wait_closed(HEADER_TIMEOUT + 4)
        finally:
            tr.stop.set()
        took = time.monotonic() - t0
        assert closed, "second head on a kept-alive connection trickled for %.1f s without being cut " \
            "(header_timeout %d)" % (took, HEADER_TIMEOUT)
