"""The SNI check of CONNECT tunnels, end to end (issue 6).

A TLS origin on 127.0.0.5 (harness/tls.py) counts every raw byte each accepted
connection brings; allowed.test, other.test, denied.test and unlisted.test all
resolve to it through the gateway's hosts file.  Each test starts its own
egressd with `sni_timeout 2` and this policy (PORT = the TLS origin's port,
MODE = require / optional / off as the test says):

    1  allow any allowed\\.test    PORT sni=MODE
    2  allow any other\\.test      PORT sni=MODE
    3  deny  any denied\\.test     *
    4  allow any 127\\.0\\.0\\.5     PORT sni=MODE

The contract (INTERFACE.md, "Policy file", SNI): after `200 Connection
established` nothing reaches the destination until the client's first bytes are
judged; on failure the tunnel closes with close="sni_check", one of the reasons
not_tls / sni_missing / sni_mismatch / sni_denied / sni_invalid, and the
destination has received zero bytes.  Refused tunnels are checked from all three
sides: the client sees EOF right after the 200 and no other byte, the origin
counted zero bytes on its connection, and the one audit record says why.
"""

import os
import select
import socket
import subprocess
import threading
import time

import pytest

from harness.client import Conn, connect_bytes, open_tunnel
from harness.tls import BODY, TlsClient, TlsOrigin, make_cert
from harness.util import check_record_shape, curl, fmt_records
from harness.proxytls import LISTENER_KINDS, proxy_addr

# Every test here runs through a plain and a tls listener.
pytestmark = LISTENER_KINDS

ORIGIN_IP = "127.0.0.5"
NAMES = ("allowed.test", "other.test", "denied.test", "unlisted.test")
OPENSSL = "openssl"
TIMEOUT = 10.0
SNI_TIMEOUT = 2


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    return make_cert(str(d))


@pytest.fixture(scope="session")
def tls_origin(tls_cert):
    s = TlsOrigin(ORIGIN_IP, *tls_cert).start()
    yield s
    s.stop()


@pytest.fixture
def cafile(tls_cert):
    return tls_cert[0]


def policy_for(port, mode):
    return [
        "allow any allowed\\.test %d sni=%s" % (port, mode),
        "allow any other\\.test %d sni=%s" % (port, mode),
        "deny any denied\\.test *",
        "allow any 127\\.0\\.0\\.5 %d sni=%s" % (port, mode),
    ]


@pytest.fixture
def sni_gateway(make_gateway, tls_origin):
    """sni_gateway(mode) -> a started egressd with the policy above."""
    def start(mode):
        return make_gateway(
            conf={"sni_timeout": str(SNI_TIMEOUT),
                  "allow_internal": ["127.0.0.2/32", "127.0.0.4/32", "%s/32" % ORIGIN_IP]},
            policy=policy_for(tls_origin.port, mode),
            hosts={n: ORIGIN_IP for n in NAMES})
    return start


# ------------------------------------------------------------------ helpers


def tunnel(gw, host, port, extra=b""):
    c, resp = open_tunnel(gw.port, "%s:%d" % (host, port), extra=extra, timeout=TIMEOUT)
    assert resp.status == 200, "CONNECT %s:%d: expected 200, got %s" % (host, port, resp.describe())
    c.cport = c.local_port           # for the audit record, after the socket is closed
    return c


def send_bytewise(sock, data, pause=0.001):
    """One send() per byte, Nagle off, so the gateway sees many small segments."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for i in range(len(data)):
        sock.sendall(data[i:i + 1])
        if pause:
            time.sleep(pause)


def record_for(gw, conn_port, what):
    recs = gw.audit_for_client(conn_port, event="tunnel", timeout=TIMEOUT)
    assert len(recs) == 1, "expected exactly one tunnel record for %s, got %d:\n%s\nall:\n%s" % (
        what, len(recs), fmt_records(recs), fmt_records(gw.audit()))
    check_record_shape(recs[0])
    return recs[0]


def only_tunnel_record(gw, what):
    recs = gw.wait_audit(lambda r: r.get("event") == "tunnel", timeout=TIMEOUT)
    assert len(recs) == 1, "expected exactly one tunnel record for %s, got %d:\n%s" % (
        what, len(recs), fmt_records(gw.audit()))
    check_record_shape(recs[0])
    return recs[0]


def check_fields(rec, what, **fields):
    wrong = {k: (v, rec.get(k, "<absent>")) for k, v in fields.items()
             if rec.get(k, "<absent>") != v}
    assert not wrong, "audit record for %s: fields (expected, got) %r\nrecord: %s" % (
        what, wrong, fmt_records([rec]))


def check_refused_record(rec, what, reason, sni):
    check_fields(rec, what, decision="deny", reason=reason, close="sni_check", sni=sni,
                 status=200, bytes_up=0, bytes_down=0)


def assert_closed_after_200(c, what, timeout=SNI_TIMEOUT + 3):
    closed = c.wait_closed(timeout)
    assert closed, "%s: the gateway kept the tunnel open for %ss after 200 (got %r)" % (
        what, timeout, c.buf[:200])
    assert c.buf == b"", "%s: bytes came back through a refused tunnel: %r" % (what, c.buf[:200])


def assert_origin_zero(origin, mark, what):
    conns = origin.wait_conns(mark, count=1, timeout=TIMEOUT)
    assert len(conns) == 1, "%s: expected the gateway's one connection to the origin, got %r" % (
        what, conns)
    assert conns[0].done.is_set(), "%s: the gateway did not close its origin connection: %r" % (
        what, conns[0])
    assert conns[0].nbytes == 0, "%s: the origin received %d bytes through a refused tunnel: %r" % (
        what, conns[0].nbytes, conns[0])


def origin_conn(origin, mark, what, ended=True):
    conns = origin.wait_conns(mark, count=1, timeout=TIMEOUT, ended=ended)
    assert len(conns) == 1, "%s: expected one origin connection, got %r" % (what, conns)
    return conns[0]


def s_client(args, stdin=b"", timeout=20):
    return subprocess.run([OPENSSL, "s_client"] + args, input=stdin, capture_output=True,
                          timeout=timeout)


def tls_get_through(c, sni, cafile, host_header="allowed.test", hello_sent=False,
                    check_hostname=None):
    """Complete a TLS handshake and a GET through tunnel c; returns the response."""
    t = TlsClient(c.sock, sni, cafile, check_hostname=check_hostname)
    if not hello_sent:
        c.send(t.hello())
    t.pending, c.buf = c.buf, b""
    t.finish(TIMEOUT)
    return t.get(host_header, timeout=TIMEOUT)


# ------------------------------------------------------------------ real clients


def test_curl_proxytunnel_require(sni_gateway, tls_origin, cafile):
    gw = sni_gateway("require")
    mark = tls_origin.mark()
    r = curl(["--proxytunnel", *gw.curl_proxy(), "--cacert", cafile,
              "https://allowed.test:%d/" % tls_origin.port], timeout=20)
    assert r.returncode == 0, "curl failed (%d): %s" % (r.returncode, r.stderr.decode()[-500:])
    assert r.stdout == BODY
    oc = origin_conn(tls_origin, mark, "curl")
    assert oc.sni == "allowed.test" and oc.handshake_ok, oc
    rec = only_tunnel_record(gw, "curl --proxytunnel")
    check_fields(rec, "curl", decision="allow", reason="ok", sni="allowed.test",
                 host="allowed.test", port=tls_origin.port, status=200, dst_ip=ORIGIN_IP,
                 rule="policy.rules:1")
    assert rec["close"] in ("client", "server"), fmt_records([rec])
    assert rec["bytes_up"] == oc.nbytes, "bytes_up %d, origin received %d" % (
        rec["bytes_up"], oc.nbytes)
    assert rec["bytes_down"] > len(BODY)


def test_openssl_s_client_proxy_require(sni_gateway, tls_origin, cafile):
    gw = sni_gateway("require")
    r = s_client(["-proxy", proxy_addr(gw),
                  "-connect", "allowed.test:%d" % tls_origin.port,
                  "-servername", "allowed.test", "-CAfile", cafile, "-verify_return_error",
                  "-quiet"],
                 stdin=b"GET / HTTP/1.1\r\nHost: allowed.test\r\nConnection: close\r\n\r\n")
    assert BODY in r.stdout, "s_client -proxy: rc %d, stdout %r, stderr %r" % (
        r.returncode, r.stdout[-300:], r.stderr[-500:])
    rec = only_tunnel_record(gw, "openssl s_client -proxy")
    check_fields(rec, "s_client", decision="allow", reason="ok", sni="allowed.test",
                 host="allowed.test")


def test_openssl_s_client_noservername_require_is_sni_missing(sni_gateway, tls_origin, cafile):
    gw = sni_gateway("require")
    mark = tls_origin.mark()
    r = s_client(["-proxy", proxy_addr(gw),
                  "-connect", "allowed.test:%d" % tls_origin.port, "-noservername",
                  "-CAfile", cafile, "-quiet"],
                 stdin=b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
    assert BODY not in r.stdout
    assert r.returncode != 0, "s_client without SNI succeeded: %r" % r.stdout[-300:]
    rec = only_tunnel_record(gw, "s_client -noservername")
    check_refused_record(rec, "s_client -noservername", "sni_missing", None)
    assert_origin_zero(tls_origin, mark, "s_client -noservername")


def test_openssl_s_client_ip_literal_servername_is_sni_invalid(sni_gateway, tls_origin, cafile):
    gw = sni_gateway("require")
    mark = tls_origin.mark()
    r = s_client(["-proxy", proxy_addr(gw),
                  "-connect", "%s:%d" % (ORIGIN_IP, tls_origin.port),
                  "-servername", ORIGIN_IP, "-CAfile", cafile, "-quiet"],
                 stdin=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert BODY not in r.stdout
    rec = only_tunnel_record(gw, "s_client -servername IP")
    check_refused_record(rec, "SNI = IP literal", "sni_invalid", None)
    assert_origin_zero(tls_origin, mark, "SNI = IP literal")


# ------------------------------------------------------------------ verdicts


@pytest.mark.parametrize("mode", ["require", "optional"])
def test_matching_name_works(sni_gateway, tls_origin, cafile, mode):
    gw = sni_gateway(mode)
    mark = tls_origin.mark()
    c = tunnel(gw, "allowed.test", tls_origin.port)
    with c:
        resp = tls_get_through(c, "allowed.test", cafile)
    assert resp.endswith(BODY), resp[-300:]
    oc = origin_conn(tls_origin, mark, "matching name")
    assert oc.sni == "allowed.test", oc
    rec = record_for(gw, c.cport, "matching name")
    check_fields(rec, "matching name", decision="allow", reason="ok", sni="allowed.test")


@pytest.mark.parametrize("mode", ["require", "optional"])
def test_mismatching_name_refused(sni_gateway, tls_origin, cafile, mode):
    """CONNECT allowed.test, TLS to other.test (also allowed by the policy on its own)."""
    gw = sni_gateway(mode)
    mark = tls_origin.mark()
    c = tunnel(gw, "allowed.test", tls_origin.port)
    with c:
        c.send(TlsClient(c.sock, "other.test", cafile).hello())
        assert_closed_after_200(c, "SNI other.test in a tunnel to allowed.test")
    rec = record_for(gw, c.cport, "mismatch")
    check_refused_record(rec, "mismatch", "sni_mismatch", "other.test")
    check_fields(rec, "mismatch", host="allowed.test")
    assert_origin_zero(tls_origin, mark, "mismatch (%s)" % mode)


@pytest.mark.parametrize("name,rule", [("denied.test", "policy.rules:3"),
                                       ("unlisted.test", None)])
def test_ip_literal_with_denied_name_refused(sni_gateway, tls_origin, cafile, name, rule):
    """CONNECT 127.0.0.5 (allowed by rule 4) carrying TLS to a name the policy denies."""
    gw = sni_gateway("require")
    mark = tls_origin.mark()
    c = tunnel(gw, ORIGIN_IP, tls_origin.port)
    with c:
        c.send(TlsClient(c.sock, name, cafile).hello())
        assert_closed_after_200(c, "IP literal with SNI %s" % name)
    rec = record_for(gw, c.cport, "IP literal, SNI %s" % name)
    check_refused_record(rec, "IP literal, SNI %s" % name, "sni_denied", name)
    check_fields(rec, "IP literal, SNI %s" % name, host=ORIGIN_IP, rule=rule)
    assert_origin_zero(tls_origin, mark, "IP literal with SNI %s" % name)


def test_ip_literal_with_allowed_name_works(sni_gateway, tls_origin, cafile):
    gw = sni_gateway("require")
    c = tunnel(gw, ORIGIN_IP, tls_origin.port)
    with c:
        resp = tls_get_through(c, "allowed.test", cafile)
    assert resp.endswith(BODY), resp[-300:]
    rec = record_for(gw, c.cport, "IP literal, SNI allowed.test")
    check_fields(rec, "IP literal, allowed SNI", decision="allow", reason="ok",
                 sni="allowed.test", host=ORIGIN_IP, rule="policy.rules:4")


def test_missing_name_require_refused_raw(sni_gateway, tls_origin, cafile):
    gw = sni_gateway("require")
    mark = tls_origin.mark()
    c = tunnel(gw, "allowed.test", tls_origin.port)
    with c:
        c.send(TlsClient(c.sock, None, cafile).hello())
        assert_closed_after_200(c, "ClientHello without SNI")
    check_refused_record(record_for(gw, c.cport, "no SNI"), "no SNI", "sni_missing", None)
    assert_origin_zero(tls_origin, mark, "no SNI under require")


def test_plain_bytes_require_not_tls(sni_gateway, tls_origin):
    gw = sni_gateway("require")
    mark = tls_origin.mark()
    c = tunnel(gw, "allowed.test", tls_origin.port)
    with c:
        c.send(b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n")
        t0 = time.monotonic()
        assert_closed_after_200(c, "plain HTTP in a require tunnel")
        took = time.monotonic() - t0
    assert took < SNI_TIMEOUT - 0.5, "plain bytes were judged only after %.2fs (a timeout?)" % took
    check_refused_record(record_for(gw, c.cport, "plain bytes"), "plain bytes", "not_tls", None)
    assert_origin_zero(tls_origin, mark, "plain bytes under require")


def test_silence_require_not_tls_after_sni_timeout(sni_gateway, tls_origin):
    gw = sni_gateway("require")
    mark = tls_origin.mark()
    c = tunnel(gw, "allowed.test", tls_origin.port)
    with c:
        t0 = time.monotonic()
        assert_closed_after_200(c, "silent client", timeout=SNI_TIMEOUT + 4)
        took = time.monotonic() - t0
    assert SNI_TIMEOUT - 0.3 <= took <= SNI_TIMEOUT + 1.5, \
        "silent client closed after %.2fs, sni_timeout is %ds" % (took, SNI_TIMEOUT)
    check_refused_record(record_for(gw, c.cport, "silence"), "silence", "not_tls", None)
    assert_origin_zero(tls_origin, mark, "silence under require")


def test_partial_hello_require_not_tls_after_sni_timeout(sni_gateway, tls_origin, cafile):
    """Half a ClientHello, then nothing: the reader must not wait past sni_timeout."""
    gw = sni_gateway("require")
    mark = tls_origin.mark()
    c = tunnel(gw, "allowed.test", tls_origin.port)
    with c:
        hello = TlsClient(c.sock, "allowed.test", cafile).hello()
        c.send(hello[:len(hello) // 2])
        t0 = time.monotonic()
        assert_closed_after_200(c, "half a hello", timeout=SNI_TIMEOUT + 4)
        took = time.monotonic() - t0
    assert took <= SNI_TIMEOUT + 1.5, "closed after %.2fs" % took
    check_refused_record(record_for(gw, c.cport, "half hello"), "half hello", "not_tls", None)
    assert_origin_zero(tls_origin, mark, "half a hello")


# ------------------------------------------------------------------ optional and off


def test_optional_no_name_goes_on(sni_gateway, tls_origin, cafile):
    gw = sni_gateway("optional")
    mark = tls_origin.mark()
    c = tunnel(gw, "allowed.test", tls_origin.port)
    with c:
        resp = tls_get_through(c, None, cafile, check_hostname=False)
    assert resp.endswith(BODY), resp[-300:]
    oc = origin_conn(tls_origin, mark, "optional, no SNI")
    assert oc.nbytes > 0 and oc.sni is None and oc.handshake_ok, oc
    rec = record_for(gw, c.cport, "optional, no SNI")
    check_fields(rec, "optional, no SNI", decision="allow", reason="ok", sni=None,
                 bytes_up=oc.nbytes)


def test_optional_plain_bytes_go_on(sni_gateway, tls_origin):
    gw = sni_gateway("optional")
    mark = tls_origin.mark()
    plain = b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
    c = tunnel(gw, "allowed.test", tls_origin.port)
    with c:
        c.send(plain)
        oc = origin_conn(tls_origin, mark, "optional, plain bytes", ended=False)
        deadline = time.monotonic() + TIMEOUT
        while oc.nbytes < len(plain) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert bytes(oc.raw[:len(plain)]) == plain, oc
        c.wait_closed(TIMEOUT)
    rec = record_for(gw, c.cport, "optional, plain bytes")
    check_fields(rec, "optional, plain bytes", decision="allow", reason="ok", sni=None,
                 bytes_up=len(plain))


def test_optional_silence_goes_on_after_sni_timeout(sni_gateway, tls_origin):
    gw = sni_gateway("optional")
    mark = tls_origin.mark()
    plain = b"after the timeout\r\n"
    c = tunnel(gw, "allowed.test", tls_origin.port)
    with c:
        time.sleep(SNI_TIMEOUT + 0.5)
        c.send(plain)
        oc = origin_conn(tls_origin, mark, "optional, silence", ended=False)
        deadline = time.monotonic() + TIMEOUT
        while oc.nbytes < len(plain) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert bytes(oc.raw) == plain, "expected %r at the origin, got %r" % (plain, oc)
    rec = record_for(gw, c.cport, "optional, silence")
    check_fields(rec, "optional, silence", decision="allow", reason="ok", sni=None)


def test_off_plain_bytes_relayed_at_once(sni_gateway, tls_origin):
    gw = sni_gateway("off")
    mark = tls_origin.mark()
    plain = b"GET / HTTP/1.1\r\nHost: allowed.test\r\n\r\n"
    c = tunnel(gw, "allowed.test", tls_origin.port)
    with c:
        t0 = time.monotonic()
        c.send(plain)
        oc = origin_conn(tls_origin, mark, "off, plain bytes", ended=False)
        deadline = time.monotonic() + TIMEOUT
        while oc.nbytes < len(plain) and time.monotonic() < deadline:
            time.sleep(0.005)
        took = time.monotonic() - t0
        assert bytes(oc.raw[:len(plain)]) == plain, oc
        assert took < 1.0, "sni=off: plain bytes reached the origin only after %.2fs" % took
        c.wait_closed(TIMEOUT)
    rec = record_for(gw, c.cport, "off, plain bytes")
    check_fields(rec, "off, plain bytes", decision="allow", reason="ok", sni=None,
                 bytes_up=len(plain))


def test_off_does_not_read_the_hello(sni_gateway, tls_origin, cafile):
    """sni=off skips the reader: another name goes through and the record's sni is null."""
    gw = sni_gateway("off")
    c = tunnel(gw, "allowed.test", tls_origin.port)
    with c:
        resp = tls_get_through(c, "other.test", cafile)
    assert resp.endswith(BODY), resp[-300:]
    rec = record_for(gw, c.cport, "off, other name")
    check_fields(rec, "off, other name", decision="allow", reason="ok", sni=None)


# ------------------------------------------------------------------ how the hello arrives


def test_hello_in_one_byte_writes(sni_gateway, tls_origin, cafile):
    gw = sni_gateway("require")
    mark = tls_origin.mark()
    c = tunnel(gw, "allowed.test", tls_origin.port)
    with c:
        t = TlsClient(c.sock, "allowed.test", cafile)
        hello = t.hello()
        send_bytewise(c.sock, hello)
        t.finish(TIMEOUT)
        resp = t.get("allowed.test", timeout=TIMEOUT)
    assert resp.endswith(BODY), resp[-300:]
    oc = origin_conn(tls_origin, mark, "1-byte writes")
    assert bytes(oc.raw[:len(hello)]) == hello, "the origin did not get the hello first: %r" % oc
    rec = record_for(gw, c.cport, "1-byte writes")
    check_fields(rec, "1-byte writes", decision="allow", reason="ok", sni="allowed.test")


def test_mismatching_hello_in_one_byte_writes_refused(sni_gateway, tls_origin, cafile):
    gw = sni_gateway("optional")
    mark = tls_origin.mark()
    c = tunnel(gw, "allowed.test", tls_origin.port)
    with c:
        send_bytewise(c.sock, TlsClient(c.sock, "other.test", cafile).hello())
        assert_closed_after_200(c, "1-byte writes, other.test")
    check_refused_record(record_for(gw, c.cport, "1-byte mismatch"), "1-byte mismatch",
                         "sni_mismatch", "other.test")
    assert_origin_zero(tls_origin, mark, "1-byte writes, other.test")


def test_hello_in_the_connect_write(sni_gateway, tls_origin, cafile):
    """CONNECT head and ClientHello in one write: checked, then relayed first."""
    gw = sni_gateway("require")
    mark = tls_origin.mark()
    with Conn(gw.port, timeout=TIMEOUT) as c:
        t = TlsClient(c.sock, "allowed.test", cafile)
        hello = t.hello()
        c.send(connect_bytes("allowed.test:%d" % tls_origin.port) + hello)
        resp = c.read_head(TIMEOUT)
        assert resp.status == 200, resp.describe()
        t.pending, c.buf = c.buf, b""
        t.finish(TIMEOUT)
        body = t.get("allowed.test", timeout=TIMEOUT)
        port = c.local_port
    assert body.endswith(BODY), body[-300:]
    oc = origin_conn(tls_origin, mark, "hello with CONNECT")
    assert bytes(oc.raw[:len(hello)]) == hello, \
        "the origin's first bytes are not the hello: %r" % bytes(oc.raw[:60])
    rec = record_for(gw, port, "hello with CONNECT")
    check_fields(rec, "hello with CONNECT", decision="allow", reason="ok", sni="allowed.test",
                 bytes_up=oc.nbytes)


@pytest.mark.parametrize("mode", ["require", "optional"])
def test_mismatching_hello_in_the_connect_write_refused(sni_gateway, tls_origin, cafile, mode):
    gw = sni_gateway(mode)
    mark = tls_origin.mark()
    with Conn(gw.port, timeout=TIMEOUT) as c:
        hello = TlsClient(c.sock, "other.test", cafile).hello()
        c.send(connect_bytes("allowed.test:%d" % tls_origin.port) + hello)
        resp = c.read_head(TIMEOUT)
        assert resp.status == 200, resp.describe()
        assert_closed_after_200(c, "other.test hello with the CONNECT head")
        port = c.local_port
    check_refused_record(record_for(gw, port, "hello with CONNECT, mismatch"),
                         "hello with CONNECT, mismatch", "sni_mismatch", "other.test")
    assert_origin_zero(tls_origin, mark, "other.test hello with the CONNECT head")


@pytest.mark.parametrize("mode", ["require", "optional"])
def test_plain_bytes_in_the_connect_write(sni_gateway, tls_origin, mode):
    """Plain bytes with the head: not_tls under require, relayed under optional."""
    gw = sni_gateway(mode)
    mark = tls_origin.mark()
    plain = b"PLAIN TEXT, NOT TLS\r\n"
    with Conn(gw.port, timeout=TIMEOUT) as c:
        c.send(connect_bytes("allowed.test:%d" % tls_origin.port) + plain)
        resp = c.read_head(TIMEOUT)
        assert resp.status == 200, resp.describe()
        if mode == "require":
            assert_closed_after_200(c, "plain bytes with the CONNECT head")
        else:
            oc = origin_conn(tls_origin, mark, "plain with CONNECT", ended=False)
            deadline = time.monotonic() + TIMEOUT
            while oc.nbytes < len(plain) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert bytes(oc.raw[:len(plain)]) == plain, oc
        port = c.local_port
    rec = record_for(gw, port, "plain bytes with CONNECT (%s)" % mode)
    if mode == "require":
        check_refused_record(rec, "plain with CONNECT", "not_tls", None)
        assert_origin_zero(tls_origin, mark, "plain bytes with the CONNECT head")
    else:
        check_fields(rec, "plain with CONNECT", decision="allow", reason="ok", sni=None)


# ------------------------------------------------------------------ normalization


@pytest.mark.parametrize("sni,connect_host", [
    ("ALLOWED.TEST", "allowed.test"),
    ("Allowed.Test.", "allowed.test"),
    ("allowed.test.", "ALLOWED.Test."),
])
def test_server_name_normalized(sni_gateway, tls_origin, cafile, sni, connect_host):
    gw = sni_gateway("require")
    c = tunnel(gw, connect_host, tls_origin.port)
    with c:
        resp = tls_get_through(c, sni, cafile, check_hostname=False)
    assert resp.endswith(BODY), resp[-300:]
    rec = record_for(gw, c.cport, "SNI %r" % sni)
    check_fields(rec, "SNI %r" % sni, decision="allow", reason="ok", sni="allowed.test",
                 host="allowed.test")


def test_upper_case_mismatch_still_refused(sni_gateway, tls_origin, cafile):
    gw = sni_gateway("require")
    mark = tls_origin.mark()
    c = tunnel(gw, "allowed.test", tls_origin.port)
    with c:
        c.send(TlsClient(c.sock, "OTHER.Test.", cafile).hello())
        assert_closed_after_200(c, "OTHER.Test. in a tunnel to allowed.test")
    check_refused_record(record_for(gw, c.cport, "upper-case mismatch"),
                         "upper-case mismatch", "sni_mismatch", "other.test")
    assert_origin_zero(tls_origin, mark, "upper-case mismatch")


# ------------------------------------------------------------------ captured hellos


DATA = os.path.join(os.path.dirname(__file__), "..", "unit", "data", "clienthello")


@pytest.mark.parametrize("fname,name", [("curl.bin", "example.com"),
                                        ("padded_20k.bin", "example.com"),
                                        ("openssl_upper_dot.bin", "mixed.example.com")])
def test_captured_hello_bytewise(make_gateway, tls_origin, fname, name):
    """Captured hellos (tests/unit/data/clienthello), cut into 1-byte writes after the
    first 64 bytes: the whole hello reaches the origin first, and sni is the normalized
    name.  padded_20k spans two TLS records."""
    path = os.path.join(DATA, fname)
    if not os.path.exists(path):
        pytest.skip("%s not present" % path)
    with open(path, "rb") as f:
        hello = f.read()
    gw = make_gateway(
        conf={"sni_timeout": str(SNI_TIMEOUT),
              "allow_internal": ["127.0.0.2/32", "127.0.0.4/32", "%s/32" % ORIGIN_IP]},
        policy=["allow any %s %d sni=require" % (name.replace(".", "\\."), tls_origin.port)],
        hosts={name: ORIGIN_IP})
    mark = tls_origin.mark()
    c = tunnel(gw, name, tls_origin.port)
    with c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        head, tail = hello[:64], hello[64:]
        c.send(head)
        # 1-byte writes for the bytes around the record header and the name; bigger
        # pieces for the rest of a big hello, so the test stays short.
        step = 1 if len(hello) < 2000 else 97
        for i in range(0, len(tail), step):
            c.sock.sendall(tail[i:i + step])
            time.sleep(0.0005)
        oc = origin_conn(tls_origin, mark, fname, ended=False)
        deadline = time.monotonic() + TIMEOUT
        while oc.nbytes < len(hello) and time.monotonic() < deadline and not oc.done.is_set():
            time.sleep(0.02)
        assert bytes(oc.raw[:len(hello)]) == hello, \
            "%s: the origin got %d bytes, not the hello first: %r" % (fname, oc.nbytes, oc)
    rec = record_for(gw, c.cport, fname)
    check_fields(rec, fname, decision="allow", reason="ok", sni=name)


# ------------------------------------------------------------------ records, bounds, trailing bytes


def recut(wire, size):
    """Re-cut the handshake records of wire into records of at most size bytes."""
    msg, rest = b"", wire
    while rest:
        assert rest[0] == 22, "not a handshake record"
        n = int.from_bytes(rest[3:5], "big")
        msg += rest[5:5 + n]
        rest = rest[5 + n:]
    out = b""
    for i in range(0, len(msg), size):
        piece = msg[i:i + size]
        out += b"\x16" + wire[1:3] + len(piece).to_bytes(2, "big") + piece
    return out


def test_hello_recut_into_small_records_works(sni_gateway, tls_origin, cafile):
    """A real handshake whose ClientHello spans many 40-byte TLS records."""
    gw = sni_gateway("require")
    c = tunnel(gw, "allowed.test", tls_origin.port)
    with c:
        t = TlsClient(c.sock, "allowed.test", cafile)
        c.send(recut(t.hello(), 40))
        t.finish(TIMEOUT)
        resp = t.get("allowed.test", timeout=TIMEOUT)
    assert resp.endswith(BODY), resp[-300:]
    check_fields(record_for(gw, c.cport, "recut"), "recut", decision="allow", reason="ok",
                 sni="allowed.test")


@pytest.mark.parametrize("mode", ["require", "optional"])
def test_mismatching_hello_recut_into_records_refused(sni_gateway, tls_origin, cafile, mode):
    """Record splitting (the server name in a later record) does not escape the check."""
    gw = sni_gateway(mode)
    mark = tls_origin.mark()
    c = tunnel(gw, "allowed.test", tls_origin.port)
    with c:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wire = recut(TlsClient(c.sock, "other.test", cafile).hello(), 17)
        for i in range(0, len(wire), 22):          # one record per write
            c.sock.sendall(wire[i:i + 22])
            time.sleep(0.001)
        assert_closed_after_200(c, "recut other.test hello")
    check_refused_record(record_for(gw, c.cport, "recut mismatch"), "recut mismatch",
                         "sni_mismatch", "other.test")
    assert_origin_zero(tls_origin, mark, "recut other.test hello (%s)" % mode)


def test_hello_over_the_bound_is_not_tls_at_once(sni_gateway, tls_origin):
    """A handshake message that claims 64 KiB: not_tls as soon as the bound is passed,
    not after sni_timeout, and nothing reaches the origin."""
    gw = sni_gateway("require")
    mark = tls_origin.mark()
    body_len = 65536
    msg = b"\x01" + body_len.to_bytes(3, "big") + b"\x03\x03" + b"\x00" * (body_len - 2)
    wire = b""
    for i in range(0, len(msg), 16384):
        piece = msg[i:i + 16384]
        wire += b"\x16\x03\x01" + len(piece).to_bytes(2, "big") + piece
    c = tunnel(gw, "allowed.test", tls_origin.port)
    with c:
        t0 = time.monotonic()
        try:
            c.sock.sendall(wire)
        except OSError:
            pass                        # closed while we were still writing: fine
        closed = c.wait_closed(SNI_TIMEOUT + 3)
        took = time.monotonic() - t0
    assert closed, "over-bound hello: tunnel still open"
    assert took < SNI_TIMEOUT - 0.5, "over-bound hello judged only after %.2fs" % took
    check_refused_record(record_for(gw, c.cport, "over-bound"), "over-bound", "not_tls", None)
    assert_origin_zero(tls_origin, mark, "over-bound hello")


def test_bytes_after_the_hello_relayed_exactly(sni_gateway, tls_origin, cafile):
    """Hello plus 100 KiB more in one write (past the reader's 32 KiB bound): after the
    check every byte reaches the origin, in order, hello first."""
    from harness.servers import pattern_bytes
    gw = sni_gateway("require")
    mark = tls_origin.mark()
    c = tunnel(gw, "allowed.test", tls_origin.port)
    with c:
        hello = TlsClient(c.sock, "allowed.test", cafile).hello()
        extra = pattern_bytes(100 * 1024, seed=6)
        c.sock.sendall(hello + extra)
        oc = origin_conn(tls_origin, mark, "hello + 100 KiB", ended=False)
        want = hello + extra
        deadline = time.monotonic() + TIMEOUT
        while oc.nbytes < len(want) and time.monotonic() < deadline and not oc.done.is_set():
            time.sleep(0.02)
        assert oc.nbytes == len(want) and bytes(oc.raw) == want, \
            "origin got %d of %d bytes (prefix ok: %s): %r" % (
                oc.nbytes, len(want), bytes(oc.raw[:len(hello)]) == hello, oc)
    rec = record_for(gw, c.cport, "hello + 100 KiB")
    check_fields(rec, "hello + 100 KiB", decision="allow", reason="ok", sni="allowed.test",
                 bytes_up=len(want))


def test_optional_stalled_hello_for_another_name_not_relayed(sni_gateway, tls_origin, cafile):
    gw = sni_gateway("optional")
    mark = tls_origin.mark()
    c = tunnel(gw, "allowed.test", tls_origin.port)
    with c:
        hello = TlsClient(c.sock, "other.test", cafile).hello()
        c.send(hello[:-1])
        time.sleep(SNI_TIMEOUT + 0.5)
        try:
            c.send(hello[-1:])
        except OSError:
            pass
        assert_closed_after_200(c, "stalled other.test hello under optional", timeout=3)
    rec = record_for(gw, c.cport, "stalled hello, optional")
    check_fields(rec, "stalled hello, optional", decision="deny", close="sni_check", bytes_up=0)
    assert_origin_zero(tls_origin, mark, "stalled other.test hello under optional")


# ------------------------------------------------------------------ reshaped hellos (issue: point 2)

from harness import hello as H  # noqa: E402
from harness.servers import _ServerBase  # noqa: E402


def curl_hello_named(name):
    with open(os.path.join(DATA, "curl.bin"), "rb") as f:
        return H.with_name(H.message(f.read()), name)


@pytest.mark.parametrize("shape", ["empty_first_record", "empty_records_between",
                                   "record_version_3_9", "hello_version_3_9",
                                   "100_extensions_first", "padded_past_32k"])
def test_optional_reshaped_hello_with_denied_name_refused(sni_gateway, tls_origin, shape):
    """Forms OpenSSL reads (tests/fuzz/fuzz_sni_openssl.c): under optional, a hello naming
    denied.test in a tunnel to 127.0.0.5 is judged, never let through as "not TLS"."""
    gw = sni_gateway("optional")
    mark = tls_origin.mark()
    msg = curl_hello_named("denied.test")
    wire = H.reshapes(H.records(msg))[shape]
    c = tunnel(gw, ORIGIN_IP, tls_origin.port)
    with c:
        try:
            c.sock.sendall(wire)
        except OSError:
            pass
        assert_closed_after_200(c, "reshaped hello (%s)" % shape)
    rec = record_for(gw, c.cport, shape)
    if shape == "padded_past_32k":
        check_refused_record(rec, shape, "not_tls", None)
    else:
        check_refused_record(rec, shape, "sni_denied", "denied.test")
    assert_origin_zero(tls_origin, mark, "reshaped hello (%s)" % shape)


def test_require_ech_hello_is_sni_invalid(sni_gateway, tls_origin):
    gw = sni_gateway("require")
    mark = tls_origin.mark()
    c = tunnel(gw, "allowed.test", tls_origin.port)
    with c:
        c.send(H.records(H.with_ech(curl_hello_named("allowed.test"))))
        assert_closed_after_200(c, "ECH hello under require")
    check_refused_record(record_for(gw, c.cport, "ECH"), "ECH", "sni_invalid", None)
    assert_origin_zero(tls_origin, mark, "ECH hello under require")


def test_optional_ech_hello_judged_on_outer_name(sni_gateway, tls_origin):
    gw = sni_gateway("optional")
    mark = tls_origin.mark()
    wire = H.records(H.with_ech(curl_hello_named("allowed.test")))
    c = tunnel(gw, "allowed.test", tls_origin.port)
    with c:
        c.send(wire)
        oc = origin_conn(tls_origin, mark, "ECH under optional", ended=False)
        deadline = time.monotonic() + TIMEOUT
        while oc.nbytes < len(wire) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert bytes(oc.raw[:len(wire)]) == wire, oc


# ------------------------------------------------------------------ HelloRetryRequest (point 3)


class HrrOrigin(_ServerBase):
    """A fake TLS origin: reads one ClientHello, answers with a HelloRetryRequest, then
    keeps everything else it receives (a refused second hello must bring nothing)."""

    def __init__(self, host):
        super().__init__(host)
        self.got = []               # per connection: [first hello bytes, later bytes]
        self.hrr = H.server_hello_hrr()

    def handle(self, s, peer):
        rec = [b"", b"", threading.Event()]
        with self._lock:
            self.got.append(rec)
        s.settimeout(5)
        try:
            while True:
                m = H.message(rec[0])
                if len(m) >= 4 and len(m) >= 4 + int.from_bytes(m[1:4], "big"):
                    break
                d = s.recv(65536)
                if not d:
                    return
                rec[0] += d
            s.sendall(self.hrr)
            while True:
                d = s.recv(65536)
                if not d:
                    break
                rec[1] += d
        except OSError:
            pass
        finally:
            rec[2].set()


@pytest.fixture
def hrr_origin():
    s = HrrOrigin("127.0.0.6").start()
    yield s
    s.stop()


def hrr_gateway(make_gateway, port, mode="require"):
    return make_gateway(
        conf={"sni_timeout": str(SNI_TIMEOUT), "allow_internal": ["127.0.0.6/32"]},
        policy=["allow any allowed\\.test %d sni=%s" % (port, mode),
                "allow any other\\.test %d sni=%s" % (port, mode),
                "deny any denied\\.test *"],
        hosts={n: "127.0.0.6" for n in NAMES})


@pytest.mark.parametrize("mode,second,reason,wait_hrr", [
    ("require", "denied.test", "sni_mismatch", True),
    ("optional", "other.test", "sni_mismatch", True),
    ("require", "other.test", "sni_mismatch", False),   # sent before the HRR came
    ("require", None, "sni_mismatch", True),
])
def test_second_hello_after_hrr_naming_another_server_refused(make_gateway, hrr_origin, mode,
                                                              second, reason, wait_hrr):
    gw = hrr_gateway(make_gateway, hrr_origin.port, mode)
    ch1 = H.records(curl_hello_named("allowed.test"))
    if second is None:
        fixed, exts = H.split(curl_hello_named("x.test"))
        ch2 = H.records(H.join(fixed, [(t, d) for t, d in exts if t != H.EXT_SERVER_NAME]))
    else:
        ch2 = H.records(curl_hello_named(second))
    c = tunnel(gw, "allowed.test", hrr_origin.port)
    with c:
        if wait_hrr:
            c.send(ch1)
            got = c.read_exact(len(hrr_origin.hrr), timeout=TIMEOUT)
            assert got == hrr_origin.hrr
            c.send(H.CCS + ch2)
        else:
            c.send(ch1 + H.CCS + ch2)
            got = c.read_exact(len(hrr_origin.hrr), timeout=TIMEOUT)
            assert got == hrr_origin.hrr
        assert c.wait_closed(SNI_TIMEOUT + 3), "tunnel kept open after a second hello for %s" % (
            second,)
        assert c.buf == b""
    rec = record_for(gw, c.cport, "second hello for %s" % second)
    check_fields(rec, "second hello", decision="deny", reason=reason, close="sni_check",
                 status=200, sni=second, bytes_up=len(ch1), bytes_down=len(hrr_origin.hrr))
    assert len(hrr_origin.got) == 1
    first, later, done = hrr_origin.got[0]
    assert done.wait(TIMEOUT)
    assert first == ch1, "the origin got %d bytes first, not exactly the first hello" % len(first)
    assert later == b"", "the origin received %d bytes of the refused second hello" % len(later)


def test_second_hello_after_hrr_same_name_goes_on(make_gateway, hrr_origin):
    gw = hrr_gateway(make_gateway, hrr_origin.port)
    ch1 = H.records(curl_hello_named("allowed.test"))
    ch2 = H.records(curl_hello_named("allowed.test"))
    c = tunnel(gw, "allowed.test", hrr_origin.port)
    with c:
        c.send(ch1)
        assert c.read_exact(len(hrr_origin.hrr), timeout=TIMEOUT) == hrr_origin.hrr
        c.send(H.CCS + ch2 + b"\x17\x03\x03\x00\x03abc")
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and len(hrr_origin.got[0][1]) < len(ch2) + 14:
            time.sleep(0.02)
        assert hrr_origin.got[0][1] == H.CCS + ch2 + b"\x17\x03\x03\x00\x03abc"
    rec = record_for(gw, c.cport, "second hello, same name")
    check_fields(rec, "second hello, same name", decision="allow", reason="ok",
                 sni="allowed.test", bytes_up=len(ch1) + 6 + len(ch2) + 8,
                 bytes_down=len(hrr_origin.hrr))


def test_real_hrr_through_the_gateway(make_gateway, tls_cert, tmp_path):
    """openssl s_server offering only P-256, s_client sending an X25519 key share first:
    the server asks again (HelloRetryRequest), the second hello is judged and passes, the
    handshake completes through the tunnel, and the record's byte counts are exact."""
    cert, key = tls_cert
    probe = socket.socket()
    probe.bind(("127.0.0.6", 0))
    port = probe.getsockname()[1]
    probe.close()
    srv = subprocess.Popen([OPENSSL, "s_server", "-accept", "127.0.0.6:%d" % port, "-cert", cert,
                            "-key", key, "-groups", "P-256", "-tls1_3", "-www", "-naccept", "1"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
    try:
        ready, deadline = b"", time.monotonic() + 10
        while b"ACCEPT" not in ready and time.monotonic() < deadline:
            r, _, _ = select.select([srv.stdout], [], [], 0.2)
            if r:
                chunk = os.read(srv.stdout.fileno(), 4096)
                if not chunk:
                    break
                ready += chunk
        assert b"ACCEPT" in ready, "openssl s_server did not start: %r" % ready
        gw = hrr_gateway(make_gateway, port)
        r = s_client(["-proxy", proxy_addr(gw), "-connect", "allowed.test:%d" % port,
                      "-servername", "allowed.test", "-CAfile", cert, "-tls1_3",
                      "-groups", "X25519:P-256", "-msg", "-ign_eof"],
                     stdin=b"GET / HTTP/1.0\r\n\r\n")
        out = r.stdout.decode(errors="replace")
        assert "HelloRetryRequest" in out or out.count("ClientHello") >= 2, out[-2000:]
        assert "Verify return code: 0" in out, out[-2000:]
        assert "HTTP/1.0 200 ok" in out, out[-2000:]
        rec = only_tunnel_record(gw, "real HRR")
        check_fields(rec, "real HRR", decision="allow", reason="ok", sni="allowed.test")
        assert rec["bytes_up"] > 0 and rec["bytes_down"] > 0
    finally:
        if srv.poll() is None:
            srv.kill()
        srv.wait(timeout=5)
