"""The record fields the second wave added: target, report, client_tls.

A bad request leaves a trace of what was tried: `target` is the
request-target as the client sent it (bounded, escaped), `host` stays null
when it was not a host.  Every other record has `target` null; `report` is
null without report rules; `client_tls` is false on a plain listener.
"""

import pytest

from harness.client import Conn, request_bytes
from harness.proxytls import LISTENER_KINDS

# Every test here runs through a plain and a tls listener.
pytestmark = LISTENER_KINDS


@pytest.mark.parametrize("target", ["0x7f.0.0.1:443", "2130706433:443", "127.1:80"])
def test_bad_request_records_the_target(gw, target):
    with Conn(gw.port) as c:
        port = c.local_port
        c.send(request_bytes("CONNECT", target, [("Host", target)]))
        r = c.read_response(method="CONNECT")
        assert r.status == 400, r.describe()
    recs = gw.audit_for_client(port)
    assert len(recs) == 1, recs
    rec = recs[0]
    assert rec["reason"] == "bad_request" and rec["host"] is None, rec
    assert rec["target"] == target, rec
    assert rec["client_tls"] is gw.client_tls and rec["report"] is None, rec


def test_unparsable_head_records_the_target_bounded(gw):
    target = "http://x/" + "A" * 400 + "\x01"
    with Conn(gw.port) as c:
        port = c.local_port
        c.send(b"GET " + target.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 400, r.describe()
    recs = gw.audit_for_client(port)
    assert len(recs) == 1, recs
    assert recs[0]["target"] == target[:256], recs[0]


def test_ordinary_records_have_null_target(gw, origin):
    authority = "origin.test:%d" % origin.port
    with Conn(gw.port) as c:
        port = c.local_port
        c.send(request_bytes("GET", "http://%s/bytes/3" % authority, [("Host", authority)]))
        r = c.read_response()
        assert r.status == 200, r.describe()
    recs = gw.audit_for_client(port)
    assert len(recs) == 1, recs
    assert recs[0]["target"] is None and recs[0]["report"] is None, recs[0]
    assert recs[0]["client_tls"] is gw.client_tls, recs[0]
