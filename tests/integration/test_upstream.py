"""Reaching the destination: several addresses, one of them dead.

A name whose first address drops SYNs (the blackhole: a full accept queue on
127.0.0.4) and whose second address works must be reached through the second
well inside connect_timeout: the next address starts early (a simple Happy
Eyeballs), connect_timeout caps all attempts together.  Before, the first
address used up the whole connect_timeout and the client got 504.
"""

import pytest

from harness.client import echo_through, open_tunnel
from harness.servers import Blackhole, EchoServer


@pytest.fixture
def dead_then_alive():
    """A blackhole on 127.0.0.4:P and an echo server on 127.0.0.2:P (same port)."""
    for _ in range(5):
        bh = Blackhole("127.0.0.4").start()
        try:
            alive = EchoServer("127.0.0.2", port=bh.port).start()
        except OSError:
            bh.stop()
            continue
        yield bh, alive
        alive.stop()
        bh.stop()
        return
    pytest.fail("no port free on both 127.0.0.4 and 127.0.0.2")


def test_dead_first_address_falls_through_to_the_next(make_gateway, dead_then_alive):
    bh, alive = dead_then_alive
    g = make_gateway(conf={"connect_timeout": "3"},
                     hosts={"twoaddr.test": ["127.0.0.4", "127.0.0.2"]})
    c, resp = open_tunnel(g.port, "twoaddr.test:%d" % bh.port)
    with c:
        assert resp.status == 200, "dead first address: %s (want 200 through 127.0.0.2)" % (
            resp.describe())
        port = c.local_port
        assert echo_through(c, b"through the second address") == b"through the second address"
    recs = g.audit_for_client(port, event="tunnel")
    assert len(recs) == 1, recs
    assert recs[0]["dst_ip"] == "127.0.0.2" and recs[0]["reason"] == "ok", recs[0]


def test_every_address_dead_is_504_within_connect_timeout(make_gateway, blackhole):
    g = make_gateway(conf={"connect_timeout": "2"},
                     hosts={"alldead.test": ["127.0.0.4", "127.0.0.4"]})
    c, resp = open_tunnel(g.port, "alldead.test:%d" % blackhole.port, timeout=10)
    with c:
        assert resp.status == 504, resp.describe()
        port = c.local_port
    recs = g.audit_for_client(port, event="tunnel")
    assert len(recs) == 1 and recs[0]["reason"] == "connect_timeout", recs


def test_refused_first_address_tries_the_next_at_once(make_gateway, echo):
    # 127.0.0.5 has nothing listening on the echo port: refused at once.
    g = make_gateway(conf={"allow_internal": ["127.0.0.2/32", "127.0.0.5/32"]},
                     hosts={"refusedfirst.test": ["127.0.0.5", "127.0.0.2"]})
    c, resp = open_tunnel(g.port, "refusedfirst.test:%d" % echo.port)
    with c:
        assert resp.status == 200, resp.describe()
        assert echo_through(c, b"x" * 1000) == b"x" * 1000
