"""Audit records end to end, through a real rsyslogd (issue 3).

egressd sends its records to the imuxsock socket of an rsyslogd the harness
starts (harness/rsyslog.py: rate limit off, the message alone written one per
line, as packaging/rsyslog/egressd-audit.conf does it); every check reads
rsyslog's output file, so what is checked is what the security team's SIEM would
get.  Every record seen is validated against audit/record.schema.json by the
small validator below (no jsonschema dependency).

Covered: every field with its type for tunnels and requests, allowed and denied
(403, 400, 502, 504, internal destination), exact bytes_up/bytes_down for tunnels
of known, different sizes each way and for requests; one record per request on a
keep-alive connection; idle timeout and shutdown closes; start and stop records;
2,000 records sent quickly all arriving (sent vs received measured); no
credential anywhere in rsyslog's files or egressd's stderr; rsyslogd stopped
and restarted mid-run with audit_on_failure allow (served, queued records
delivered, overflow counted exactly by audit_loss) and deny (503
audit_unavailable while down, served again after).
"""

import base64
import json
import os
import re
import signal
import socket
import threading
import time

import pytest

from harness.client import Conn, connect_bytes, echo_through, request_bytes
from harness.gateway import Gateway
from harness.rsyslog import Rsyslogd
from harness.servers import _ServerBase, pattern_bytes
from harness.util import fmt_records
from harness.proxytls import LISTENER_KINDS

# Every test here runs through a plain and a tls listener.
pytestmark = LISTENER_KINDS

SCHEMA_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "audit", "record.schema.json")

USER = "audituser"
PASSWORD = "SECRETPASSWORD-q7Zx"
AUTHZ_B64 = base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
AUTHZ = "Basic " + AUTHZ_B64

QUEUE_RECORDS = 10000          # AUDIT_QUEUE_RECORDS in audit/audit.h


# ---------------------------------------------------------------- the schema

_ANNOTATIONS = {"$schema", "$id", "title", "description"}
_KNOWN = _ANNOTATIONS | {"type", "enum", "const", "pattern", "minLength", "minimum", "maximum",
                         "required", "properties", "additionalProperties", "allOf", "anyOf",
                         "not", "if", "then", "else"}


def _is_type(v, t):
    if isinstance(t, list):
        return any(_is_type(v, x) for x in t)
    return {
        "string": lambda: isinstance(v, str),
        "integer": lambda: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda: isinstance(v, (int, float)) and not isinstance(v, bool),
        "null": lambda: v is None,
        "object": lambda: isinstance(v, dict),
        "array": lambda: isinstance(v, list),
        "boolean": lambda: isinstance(v, bool),
    }[t]()


def _same(a, b):
    return type(a) is type(b) and a == b


def schema_errors(v, s, path="$"):
    """The draft 2020-12 keywords record.schema.json uses; an unknown keyword is an
    error of the test (so that the validator never passes a record silently)."""
    unknown = set(s) - _KNOWN
    assert not unknown, "the validator does not know schema keywords %r (at %s)" % (unknown, path)
    errs = []
    if "type" in s and not _is_type(v, s["type"]):
        return ["%s: %r is not of type %r" % (path, v, s["type"])]
    if "enum" in s and not any(_same(v, e) for e in s["enum"]):
        errs.append("%s: %r not in %r" % (path, v, s["enum"]))
    if "const" in s and not _same(v, s["const"]):
        errs.append("%s: %r is not %r" % (path, v, s["const"]))
    if isinstance(v, str):
        if "pattern" in s and not re.search(s["pattern"], v):
            errs.append("%s: %r does not match %r" % (path, v, s["pattern"]))
        if "minLength" in s and len(v) < s["minLength"]:
            errs.append("%s: %r shorter than %d" % (path, v, s["minLength"]))
    if _is_type(v, "number"):
        if "minimum" in s and v < s["minimum"]:
            errs.append("%s: %r < %r" % (path, v, s["minimum"]))
        if "maximum" in s and v > s["maximum"]:
            errs.append("%s: %r > %r" % (path, v, s["maximum"]))
    if isinstance(v, dict):
        for k in s.get("required", []):
            if k not in v:
                errs.append("%s: required field %r absent" % (path, k))
        props = s.get("properties", {})
        for k, sub in props.items():
            if k in v:
                errs += schema_errors(v[k], sub, "%s.%s" % (path, k))
        if s.get("additionalProperties") is False:
            extra = sorted(set(v) - set(props))
            if extra:
                errs.append("%s: fields not in the schema: %r" % (path, extra))
    for i, sub in enumerate(s.get("allOf", [])):
        errs += schema_errors(v, sub, "%s/allOf[%d]" % (path, i))
    if "anyOf" in s and not any(not schema_errors(v, sub, path) for sub in s["anyOf"]):
        errs.append("%s: matches none of anyOf" % path)
    if "not" in s and not schema_errors(v, s["not"], path):
        errs.append("%s: matches a `not` schema %s" % (path, json.dumps(s["not"])))
    if "if" in s:
        branch = "then" if not schema_errors(v, s["if"], path) else "else"
        if branch in s:
            errs += schema_errors(v, s[branch], "%s/%s" % (path, branch))
    return errs


@pytest.fixture(scope="module")
def schema():
    with open(SCHEMA_PATH) as f:
        return json.load(f)


def check(rec, schema, **fields):
    """The record validates against the schema and carries these field values."""
    errs = schema_errors(rec, schema)
    assert not errs, "record does not validate against record.schema.json:\n  %s\nrecord: %s" % (
        "\n  ".join(errs), fmt_records([rec]))
    wrong = {k: (v, rec.get(k, "<absent>")) for k, v in fields.items()
             if not _same(rec.get(k, "<absent>"), v)}
    assert not wrong, "fields (expected, got): %r\nrecord: %s" % (wrong, fmt_records([rec]))
    return rec


def check_file(rs, schema):
    """Every line of rsyslog's audit file is one JSON object valid against the schema,
    and came with programname egressd, facility local5, severity info."""
    recs = rs.records()
    bad = [r for r in recs if "_unparsable" in r]
    assert not bad, "lines of rsyslog's file that are not one JSON object: %r" % bad[:3]
    for r in recs:
        check(r, schema)
    meta = rs.meta()
    assert len(meta) == len(recs) and all(m == "egressd local5 info" for m in meta), \
        "programname/facility/severity of %d messages (expected %d of 'egressd local5 info'): %r" % (
            len(meta), len(recs), sorted(set(meta)))
    ids = [r["id"] for r in recs]
    dup = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    assert not dup, "ids not unique in the run: %r" % dup[:5]
    return recs


def assert_no_secret(rs, gw):
    """Neither the password nor the base64 credentials (whole, or their first 12
    characters) appear anywhere."""
    places = {"rsyslog audit.log": rs.raw(), "rsyslog internal.log": rs.internal().encode(),
              "egressd stderr": gw.stderr().encode()}
    needles = [PASSWORD.encode(), PASSWORD[:8].encode(), AUTHZ_B64.encode(),
               AUTHZ_B64[:12].encode(), AUTHZ_B64[-16:].encode()]
    found = [(where, n) for where, data in places.items() for n in needles if n in data]
    assert not found, "credentials found: %r" % found


# ---------------------------------------------------------------- servers and clients

class SizedServer(_ServerBase):
    """Reads until the client's EOF, then answers with as many pattern bytes as the
    first 8 bytes it received ask for (ASCII decimal), then half-closes: a tunnel of
    known, different sizes each way."""

    def handle(self, conn, peer):
        got = b""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(got) < (64 << 20):
            data = conn.recv(256 * 1024)
            if not data:
                break
            got += data
        want = int(got[:8])
        conn.sendall(pattern_bytes(want, seed=7))
        conn.shutdown(socket.SHUT_WR)
        try:
            conn.settimeout(2)
            conn.recv(1)
        except OSError:
            pass


@pytest.fixture(scope="module")
def sized():
    s = SizedServer("127.0.0.2").start()
    yield s
    s.stop()


def absreq(origin, path, method="GET", body=b"", host="origin.test", authz=True, extra=()):
    hdrs = [("Host", "%s:%d" % (host, origin.port))]
    if authz:
        hdrs.append(("Proxy-Authorization", AUTHZ))
    if body or method == "POST":
        hdrs.append(("Content-Length", str(len(body))))
    hdrs += list(extra)
    return request_bytes(method, "http://%s:%d%s" % (host, origin.port, path), hdrs, body)


def connect_req(authority, authz=True):
    hdrs = [("Host", authority)]
    if authz:
        hdrs.append(("Proxy-Authorization", AUTHZ))
    return connect_bytes(authority, hdrs)


def exchange_to_eof(port, data, timeout=8.0):
    """Send data, read everything until the gateway closes; (client port, bytes)."""
    with Conn(port, timeout=timeout) as c:
        lport = c.local_port
        c.send(data)
        got = c.read_to_eof(timeout=timeout)
    return lport, got


def by_port(rs, port, count=1, timeout=8.0, event=None):
    return rs.wait_records(lambda r: r.get("client_port") == port and
                           (event is None or r.get("event") == event), count=count, timeout=timeout)


def one_for(rs, port, what, timeout=8.0):
    recs = by_port(rs, port, timeout=timeout)
    assert len(recs) == 1, "expected exactly one record for %s (client port %d), got %d:\n%s" % (
        what, port, len(recs), fmt_records(recs))
    return recs[0]


# ---------------------------------------------------------------- gateways on rsyslog

def policy(rule_opts):
    return ["deny any forbidden\\.test *", "allow any .* *" + rule_opts]


def _gateway(dns, rule_opts, rs, conf=None, workers=2):
    c = {"audit_syslog_socket": rs.sock_path}
    c.update(conf or {})
    return Gateway(dns.port, conf=c, policy=policy(rule_opts), workers=workers,
                   syslog_collector=False)


@pytest.fixture(scope="module")
def rs(client_tls):
    """One rsyslogd per listener kind: each run reads only its gateway's records."""
    r = Rsyslogd()
    r.start()
    yield r
    r.cleanup()


@pytest.fixture(scope="module")
def module_gw(dns, rule_opts, rs, client_tls):   # one per listener kind
    with _gateway(dns, rule_opts, rs, conf={"connect_timeout": "1", "idle_timeout": "2",
                                            "header_timeout": "2"}).running() as g:
        yield g


@pytest.fixture
def g(module_gw, rs, request):
    request.node._gateways = [module_gw]
    assert module_gw.alive(), "egressd is not running:\n%s" % module_gw.stderr()[-3000:]
    yield module_gw
    assert module_gw.alive(), "egressd died during the test:\n%s" % module_gw.stderr()[-3000:]


@pytest.fixture
def fresh(dns, rule_opts, request):
    """fresh(conf) -> (rsyslogd, gateway), both new, the gateway's records going to
    that rsyslogd only; both stopped (by PID) after the test."""
    made = []

    def make(conf=None, workers=2):
        r = Rsyslogd()
        made.append(r)
        r.start()
        gw = _gateway(dns, rule_opts, r, conf=conf, workers=workers)
        made.append(gw)
        request.node._gateways = [x for x in made if isinstance(x, Gateway)]
        gw.start()
        return r, gw

    yield make
    crashed = [x for x in made if isinstance(x, Gateway) and x.proc is not None
               and x.proc.poll() not in (None, 0)]
    for x in reversed(made):
        x.cleanup()
    assert not crashed, "egressd exited with %r" % [x.proc.returncode for x in crashed]


# ================================================================ the schema validator

def test_schema_validator_rejects_what_it_should(schema):
    good = {"ts": "2024-01-02T03:04:05.678Z", "event": "tunnel", "id": "a-1",
            "client_ip": "127.0.0.1", "client_port": 5, "user": None, "method": "CONNECT",
            "host": "h", "port": 1, "url": None, "dst_ip": None, "sni": None,
            "decision": "allow", "reason": "ok", "rule": None, "status": 200, "bytes_up": 0,
            "bytes_down": 0, "duration_ms": 0, "close": "client", "target": None,
            "report": None, "client_tls": False}
    assert schema_errors(good, schema) == []
    bad = [dict(good, status="200"), dict(good, bytes_up=True), dict(good, reason="nope"),
           dict(good, extra=1), dict(good, url="http://x/"), dict(good, lost=3),
           dict(good, ts="2024-01-02 03:04:05"), dict(good, decision=None),
           dict(good, event="audit_loss"), dict(good, bytes_down=-1),
           dict(good, client_tls=None), dict(good, client_tls="no")]
    bad.append({k: v for k, v in good.items() if k != "sni"})
    for b in bad:
        assert schema_errors(b, schema), "validator accepted %r" % b


# ================================================================ one gateway, one rsyslogd

def test_start_record_and_every_line_valid(g, rs, schema):
    recs = rs.wait_records(lambda r: r.get("event") == "start", timeout=5)
    assert len(recs) == 1, "expected one start record:\n%s" % fmt_records(rs.records())
    # What concerns a connection is null (decision/reason/status are the gateway's
    # to fill for start/stop/reload; the schema allows either).
    check(recs[0], schema, event="start", client_ip=None, client_port=None, method=None,
          host=None, port=None, url=None, bytes_up=None, bytes_down=None, close=None)
    check_file(rs, schema)


def test_tunnel_echo_exact_bytes(g, rs, echo, schema):
    data = pattern_bytes(1000, seed=1)
    with Conn(g.port) as c:
        port = c.local_port
        c.send(connect_req("echo.test:%d" % echo.port))
        resp = c.read_head()
        assert resp.status == 200, resp.describe()
        assert echo_through(c, data) == data
        c.shutdown_write()
        assert c.read_to_eof(timeout=5) == b""
    rec = one_for(rs, port, "an echo tunnel of 1000 bytes")
    check(rec, schema, event="tunnel", client_ip="127.0.0.1", client_port=port, user=None,
          method="CONNECT", host="echo.test", port=echo.port, url=None, dst_ip="127.0.0.2",
          sni=None, decision="allow", reason="ok", rule="policy.rules:2", status=200,
          bytes_up=1000, bytes_down=1000)
    assert rec["close"] in ("client", "server"), fmt_records([rec])


@pytest.mark.parametrize("up,down", [(1000, 3000), (300000, 8), (8, 700000)],
                         ids=lambda n: str(n))
def test_tunnel_exact_bytes_each_direction(g, rs, sized, schema, up, down):
    payload = (b"%08d" % down) + pattern_bytes(up - 8, seed=up)
    with Conn(g.port) as c:
        port = c.local_port
        c.send(connect_req("echo.test:%d" % sized.port))
        resp = c.read_head()
        assert resp.status == 200, resp.describe()
        c.send(payload)
        c.shutdown_write()
        got = c.read_to_eof(timeout=10)
    assert got == pattern_bytes(down, seed=7), "tunnel returned %d bytes, expected %d" % (len(got), down)
    rec = one_for(rs, port, "a tunnel of %d up / %d down" % (up, down))
    check(rec, schema, event="tunnel", method="CONNECT", host="echo.test", port=sized.port,
          dst_ip="127.0.0.2", decision="allow", reason="ok", status=200,
          bytes_up=up, bytes_down=down)


def test_keepalive_three_requests_three_records_exact_bytes(g, rs, origin, schema):
    reqs = [absreq(origin, "/bytes/100?a=1"),
            absreq(origin, "/echo", method="POST", body=pattern_bytes(500, seed=3)),
            absreq(origin, "/status/204")]
    received = []
    with Conn(g.port) as c:
        port = c.local_port
        for rq in reqs:
            c.send(rq)
            r = c.read_response()
            assert r.complete and r.status in (200, 204), r.describe()
            received.append(len(r.raw_head) + len(r.body))
        assert c.buf == b""
    recs = by_port(rs, port, count=3)
    time.sleep(0.3)                      # nothing more may come for this connection
    recs = by_port(rs, port, count=3, timeout=0.1, event=None)
    assert len(recs) == 3, "3 requests on one connection, expected 3 records:\n%s" % fmt_records(recs)
    urls = ["http://origin.test:%d%s" % (origin.port, p) for p in ("/bytes/100?a=1", "/echo", "/status/204")]
    for rec, rq, got, url, method, status in zip(recs, reqs, received, urls,
                                                  ("GET", "POST", "GET"), (200, 200, 204)):
        check(rec, schema, event="request", client_ip="127.0.0.1", client_port=port, user=None,
              method=method, host="origin.test", port=origin.port, url=url, dst_ip="127.0.0.2",
              sni=None, decision="allow", reason="ok", rule="policy.rules:2", status=status,
              bytes_up=len(rq), bytes_down=got)
    ids = [r["id"] for r in recs]
    prefixes = {i.rsplit("-", 1)[0] for i in ids}
    suffixes = [i.rsplit("-", 1)[1] for i in ids if "-" in i]
    assert len(prefixes) == 1 and len(set(suffixes)) == 3, \
        "ids of one connection's requests must share a prefix and differ by a suffix: %r" % ids
    # Proxy-Authorization is never forwarded (auth none: simply dropped).
    seen = origin.requests_for("/bytes/100?a=1")
    assert seen and seen[-1].header("Proxy-Authorization") is None


# The denials: (name, bytes to send, extra fixture, expected fields).  Status is
# read from the response; a request's bytes_up is what was sent and bytes_down
# what came back (the error response); a tunnel's bytes are those relayed (none).
DENIALS = [
    ("tunnel_policy_403", lambda x: connect_req("forbidden.test:443"),
     dict(event="tunnel", status=403, reason="policy", close="denied", host="forbidden.test",
          port=443, rule="policy.rules:1", method="CONNECT")),
    ("request_policy_403", lambda x: absreq(x["origin"], "/bytes/5", host="forbidden.test"),
     dict(event="request", status=403, reason="policy", close="denied", host="forbidden.test",
          rule="policy.rules:1", method="GET")),
    ("tunnel_internal_403", lambda x: connect_req("internal.test:80"),
     dict(event="tunnel", status=403, reason="internal_destination", close="denied",
          host="internal.test", port=80, dst_ip="127.0.0.3")),
    ("request_origin_form_400", lambda x: b"GET /x HTTP/1.1\r\nHost: a\r\nProxy-Authorization: "
     + AUTHZ.encode() + b"\r\n\r\n",
     dict(event="request", status=400, reason="bad_request", close="error", method="GET")),
    ("tunnel_bad_authority_400", lambda x: b"CONNECT nocolon HTTP/1.1\r\nHost: nocolon\r\n"
     b"Proxy-Authorization: " + AUTHZ.encode() + b"\r\n\r\n",
     dict(event="tunnel", status=400, reason="bad_request", close="error", method="CONNECT")),
    ("tunnel_dns_502", lambda x: connect_req("nx.test:443"),
     dict(event="tunnel", status=502, reason="dns_failure", close="error", host="nx.test",
          port=443, dst_ip=None)),
    ("request_dns_502", lambda x: absreq(x["origin"], "/", host="nx.test"),
     dict(event="request", status=502, reason="dns_failure", close="error", host="nx.test",
          dst_ip=None)),
    ("tunnel_connect_timeout_504", lambda x: connect_req("blackhole.test:%d" % x["blackhole"].port),
     dict(event="tunnel", status=504, reason="connect_timeout", close="error",
          host="blackhole.test", dst_ip="127.0.0.4")),
]


@pytest.mark.parametrize("name,make,want", DENIALS, ids=[d[0] for d in DENIALS])
def test_denied_and_failed_records(g, rs, origin, schema, request, name, make, want):
    x = {"origin": origin}
    if "timeout" in name:
        x["blackhole"] = request.getfixturevalue("blackhole")
    data = make(x)
    port, got = exchange_to_eof(g.port, data)
    status = int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.") else None
    assert status == want["status"], "expected %d, got %r" % (want["status"], got[:200])
    rec = one_for(rs, port, name)
    check(rec, schema, client_ip="127.0.0.1", client_port=port, user=None, decision="deny",
          **want)
    if rec["event"] == "request":
        assert (rec["bytes_up"], rec["bytes_down"]) == (len(data), len(got)), \
            "request bytes (up, down): expected %r, got %r" % (
                (len(data), len(got)), (rec["bytes_up"], rec["bytes_down"]))
    else:
        assert rec["bytes_up"] == 0, "nothing was relayed up: %s" % fmt_records([rec])


def test_denied_tunnel_relays_no_bytes(g, rs, schema):
    port, got = exchange_to_eof(g.port, connect_req("forbidden.test:443"))
    assert got.startswith(b"HTTP/1.1 403")
    rec = one_for(rs, port, "a refused CONNECT")
    check(rec, schema, event="tunnel", status=403, bytes_up=0, bytes_down=0)


def test_bad_origin_response_502_reason_in_contract(fresh, origin, schema):
    rs, gw = fresh()            # its own rsyslogd: the record fails the schema
    origin.raw["audit-garbage"] = b"NOT HTTP AT ALL\r\n\r\n"
    port, got = exchange_to_eof(gw.port, absreq(origin, "/raw/audit-garbage"))
    assert got.startswith(b"HTTP/1.1 502"), got[:100]
    rec = one_for(rs, port, "a malformed origin response")
    check(rec, schema, event="request", status=502, decision="deny", close="error")


def test_header_timeout_partial_request(g, rs, origin, schema):
    """A head that never ends (header_timeout 2): one record, closed by the timer."""
    part = b"GET http://origin.test:%d/ HTTP/1.1\r\nProxy-Authorization: %s\r\n" % (
        origin.port, AUTHZ.encode())
    port, got = exchange_to_eof(g.port, part, timeout=6)
    rec = one_for(rs, port, "a partial request head")
    check(rec, schema, event="request", decision="deny", reason="bad_request",
          close="idle_timeout", status=0, bytes_down=len(got))


UNPARSED = [
    ("garbage_400", b"\x01\x02garbage\r\n", 5),
    ("bad_field_400", b"GET http://a.test/ HTTP/1.1\r\nX: \x01\r\n\r\n", 5),
    ("partial_head_timeout", b"GET http://a.test/ HTTP/1.1\r\nX-A: b\r\n", 6),
]


@pytest.mark.parametrize("name,data,timeout", UNPARSED, ids=[u[0] for u in UNPARSED])
def test_unparsed_head_bytes_counted(g, rs, schema, name, data, timeout):
    port, got = exchange_to_eof(g.port, data, timeout=timeout)
    rec = one_for(rs, port, name)
    check(rec, schema, event="request", reason="bad_request", bytes_down=len(got))
    assert rec["bytes_up"] == len(data), \
        "bytes received from the client: sent %d, recorded %r" % (len(data), rec["bytes_up"])


def test_idle_timeout_tunnel(g, rs, echo, schema):
    with Conn(g.port) as c:
        port = c.local_port
        c.send(connect_req("echo.test:%d" % echo.port))
        assert c.read_head().status == 200
        assert echo_through(c, b"ping") == b"ping"
        t0 = time.monotonic()
        assert c.wait_closed(6), "idle tunnel not closed within 6 s (idle_timeout 2)"
        waited = time.monotonic() - t0
    assert 1.5 <= waited <= 5, "closed after %.1f s, idle_timeout is 2" % waited
    rec = one_for(rs, port, "an idle tunnel")
    check(rec, schema, event="tunnel", decision="allow", reason="ok", status=200,
          close="idle_timeout", bytes_up=4, bytes_down=4)
    assert rec["duration_ms"] >= 1500, fmt_records([rec])


def test_no_credentials_in_audit_or_stderr(g, rs, origin, echo, schema):
    for _ in range(3):
        with Conn(g.port) as c:
            c.send(absreq(origin, "/bytes/10"))
            assert c.read_response().status == 200
    exchange_to_eof(g.port, absreq(origin, "/", host="forbidden.test"))
    exchange_to_eof(g.port, connect_req("forbidden.test:443"))
    with Conn(g.port) as c:
        port = c.local_port
        c.send(connect_req("echo.test:%d" % echo.port))
        assert c.read_head().status == 200
    one_for(rs, port, "a last tunnel")
    check_file(rs, schema)
    assert_no_secret(rs, g)


# ================================================================ shutdown

def test_shutdown_close_and_stop_record(fresh, echo, schema):
    rs, gw = fresh()
    rs.wait_records(lambda r: r.get("event") == "start", timeout=5, settle=0)
    c = Conn(gw.port)
    port = c.local_port
    c.send(connect_req("echo.test:%d" % echo.port))
    assert c.read_head().status == 200
    assert echo_through(c, b"0123456789") == b"0123456789"
    gw.signal(signal.SIGTERM)
    assert c.wait_closed(6), "tunnel not closed within shutdown_grace (2 s) + margin"
    c.close()
    assert gw.wait_exit(8) == 0, "egressd exit status %r after SIGTERM" % gw.proc.returncode
    recs = rs.wait_records(lambda r: r.get("event") in ("start", "stop") or
                           r.get("client_port") == port, count=3, timeout=5)
    events = [r.get("event") for r in recs]
    assert events == ["start", "tunnel", "stop"], \
        "expected start, the drained tunnel, stop; got:\n%s" % fmt_records(recs)
    check(recs[1], schema, close="shutdown", bytes_up=10, bytes_down=10, status=200,
          decision="allow", reason="ok")
    check(recs[2], schema, event="stop")
    check_file(rs, schema)
    assert_no_secret(rs, gw)


# ================================================================ volume

def _burst(gw, origin, echo, n_requests, n_tunnels, tag, threads=4, per_conn=10):
    """n_requests absolute-form requests (per_conn per keep-alive connection) and
    n_tunnels one-byte echo tunnels, from several threads; returns the count of
    exchanges completed and the errors."""
    done, errors = [0], []
    lock = threading.Lock()
    jobs = ([("req", min(per_conn, n_requests - i)) for i in range(0, n_requests, per_conn)] +
            [("tun", 1)] * n_tunnels)
    jobs.reverse()

    def worker():
        for _ in range(len(jobs) + 1):
            with lock:
                if not jobs:
                    return
                kind, n = jobs.pop()
            try:
                with Conn(gw.port, timeout=10) as c:
                    if kind == "req":
                        for i in range(n):
                            c.send(absreq(origin, "/status/204?%s=%d" % (tag, i)))
                            r = c.read_response()
                            if r.status != 204:
                                raise AssertionError(r.describe())
                            with lock:
                                done[0] += 1
                    else:
                        c.send(connect_req("echo.test:%d" % echo.port))
                        r = c.read_head()
                        if r.status != 200:
                            raise AssertionError(r.describe())
                        if echo_through(c, b"x") != b"x":
                            raise AssertionError("echo")
                        with lock:
                            done[0] += 1
            except Exception as e:     # reported by the caller
                with lock:
                    errors.append(repr(e))

    ts = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    return done[0], errors


def test_2000_records_sent_2000_received(fresh, origin, echo, schema):
    rs, gw = fresh()
    t0 = time.monotonic()
    sent, errors = _burst(gw, origin, echo, 1600, 400, "burst")
    elapsed = time.monotonic() - t0
    assert not errors and sent == 2000, "%d of 2000 exchanges done; errors %r" % (sent, errors[:3])
    want = lambda r: r.get("event") in ("request", "tunnel")
    deadline = time.monotonic() + 15
    got = []
    while time.monotonic() < deadline:
        got = [r for r in rs.records() if want(r)]
        if len(got) >= sent:
            break
        time.sleep(0.1)
    time.sleep(0.5)
    recs = check_file(rs, schema)
    got = [r for r in recs if want(r)]
    print("\naudit volume: %d records sent in %.2f s (%.0f/s), %d received by rsyslogd, "
          "audit_loss records %d" % (sent, elapsed, sent / elapsed, len(got),
                                     sum(1 for r in recs if r["event"] == "audit_loss")))
    assert len(got) == sent, "rsyslog's file has %d tunnel/request records, %d were made" % (
        len(got), sent)
    assert sum(1 for r in got if r["event"] == "tunnel") == 400
    assert not [r for r in recs if r["event"] == "audit_loss"], "audit_loss while rsyslogd was up"
    assert "drop" not in rs.internal().lower(), rs.internal()[-2000:]
    assert_no_secret(rs, gw)


# ================================================================ rsyslogd restarted

def _pipelined(gw, origin, tag, total, threads=4, per_conn=400, batch=25):
    """total requests in pipelined batches on keep-alive connections; returns
    (served, statuses other than 204)."""
    served, other = [0], []
    lock = threading.Lock()
    conns = [min(per_conn, total - i) for i in range(0, total, per_conn)]

    def worker():
        for _ in range(len(conns) + 1):
            with lock:
                if not conns:
                    return
                n = conns.pop()
            try:
                with Conn(gw.port, timeout=15) as c:
                    i = 0
                    while i < n:
                        k = min(batch, n - i)
                        c.send(b"".join(absreq(origin, "/status/204?%s=%d" % (tag, i + j))
                                        for j in range(k)))
                        for _ in range(k):
                            r = c.read_response()
                            with lock:
                                if r.status == 204:
                                    served[0] += 1
                                else:
                                    other.append(r.status)
                        i += k
            except Exception as e:
                with lock:
                    other.append(repr(e))

    ts = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    return served[0], other


def _tagged(rs, tag):
    return [r for r in rs.records() if r.get("event") == "request" and
            ("?%s=" % tag) in (r.get("url") or "")]


def _wait_tagged(rs, tag, n, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(_tagged(rs, tag)) < n:
        time.sleep(0.1)
    time.sleep(0.3)
    return _tagged(rs, tag)


def test_rsyslog_restart_allow_queued_delivered_and_loss_counted(fresh, origin, schema):
    rs, gw = fresh(conf={"audit_on_failure": "allow"})
    served, other = _pipelined(gw, origin, "up1", 50)
    assert served == 50 and not other, other[:3]
    assert len(_wait_tagged(rs, "up1", 50, 5)) == 50

    # 1. Down briefly: requests are served, their records wait and arrive after.
    rs.stop()
    served, other = _pipelined(gw, origin, "down1", 300)
    assert served == 300 and not other, "audit_on_failure allow, rsyslogd down: %r" % other[:3]
    rs.start()
    got = _wait_tagged(rs, "down1", 300, 10)
    losses = [r for r in rs.records() if r.get("event") == "audit_loss"]
    print("\nrsyslogd down #1: %d requests served, %d records delivered after restart, "
          "audit_loss %r" % (served, len(got), [r.get("lost") for r in losses]))
    assert len(got) == 300 and not losses, \
        "300 records queued while rsyslogd was down: %d arrived, losses %s" % (
            len(got), fmt_records(losses))

    # 2. Down longer than the queue holds: what overflows is counted exactly.
    rs.stop()
    total = QUEUE_RECORDS + 200
    t0 = time.monotonic()
    served, other = _pipelined(gw, origin, "down2", total)
    elapsed = time.monotonic() - t0
    assert served == total and not other, \
        "audit_on_failure allow, queue full: %d of %d served, %r" % (served, total, other[:3])
    rs.start()
    got = _wait_tagged(rs, "down2", QUEUE_RECORDS, 20)
    losses = [r for r in rs.records() if r.get("event") == "audit_loss"]
    lost = sum(r.get("lost", 0) for r in losses)
    print("rsyslogd down #2: %d requests served in %.1f s, %d records delivered after restart, "
          "audit_loss lost=%r (sum %d), missing %d" % (served, elapsed, len(got),
                                                      [r.get("lost") for r in losses], lost,
                                                      served - len(got)))
    assert losses, "the queue (%d) overflowed by %d, and no audit_loss record came" % (
        QUEUE_RECORDS, total - QUEUE_RECORDS)
    assert len(got) + lost == served, \
        "records delivered (%d) + lost reported (%d) must equal requests served (%d)" % (
            len(got), lost, served)
    assert len(got) == QUEUE_RECORDS, "the queue holds %d records; %d delivered" % (
        QUEUE_RECORDS, len(got))
    # Once back, records flow again without loss.
    served, other = _pipelined(gw, origin, "up2", 20)
    assert served == 20 and len(_wait_tagged(rs, "up2", 20, 5)) == 20
    check_file(rs, schema)
    assert_no_secret(rs, gw)


def test_rsyslog_restart_deny_503_then_served(fresh, origin, echo, schema):
    rs, gw = fresh(conf={"audit_on_failure": "deny"})
    port0, got = exchange_to_eof(gw.port, absreq(origin, "/bytes/3", extra=[("Connection", "close")]))
    assert got.startswith(b"HTTP/1.1 200"), got[:100]
    one_for(rs, port0, "a request before the stop")

    rs.stop()
    tried = []                                        # (client port, status, bytes)
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline and sum(1 for t in tried if t[1] == 503) < 3:
        p, got = exchange_to_eof(gw.port, absreq(origin, "/bytes/3", extra=[("Connection", "close")]))
        tried.append((p, int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.") else None, got))
        time.sleep(0.05)
    # A tunnel is refused the same way.
    p, got = exchange_to_eof(gw.port, connect_req("echo.test:%d" % echo.port))
    tried.append((p, int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.") else None, got))
    statuses = [t[1] for t in tried]
    first503 = statuses.index(503) if 503 in statuses else None
    assert first503 is not None and first503 <= 2 and all(s == 503 for s in statuses[first503:]), \
        "audit_on_failure deny with rsyslogd down: statuses %r" % statuses
    for _, st, got in tried[first503:]:
        assert b"\r\nConnection: close\r\n" in got, got[:300]

    rs.start()
    after = []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        p, got = exchange_to_eof(gw.port, absreq(origin, "/bytes/3", extra=[("Connection", "close")]))
        st = int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.") else None
        after.append((p, st, got))
        if st == 200:
            break
        time.sleep(0.1)
    assert after and after[-1][1] == 200, "not served again after rsyslogd came back: %r" % (
        [a[1] for a in after])

    # Every exchange, refused or served, has its one record (the 503s' were queued).
    for p, st, got in tried + after:
        rec = one_for(rs, p, "an exchange with status %s around the restart" % st)
        if st == 503:
            check(rec, schema, decision="deny", reason="audit_unavailable", status=503,
                  close="denied")
            if rec["event"] == "request":
                assert rec["bytes_down"] == len(got), fmt_records([rec])
        else:
            check(rec, schema, decision="allow", reason="ok", status=st)
    assert not [r for r in rs.records() if r.get("event") == "audit_loss"]
    print("\naudit_on_failure deny: statuses while down %r, after restart %r" % (
        statuses, [a[1] for a in after]))
    check_file(rs, schema)
    assert_no_secret(rs, gw)
