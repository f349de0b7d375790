"""Small helpers shared by the test modules: curl, assertions with readable messages."""

import os
import socket
import subprocess

CURL = "/usr/bin/curl"


def curl(args, timeout=60):
    """Run real curl with no proxy environment; returns CompletedProcess (bytes)."""
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")}
    return subprocess.run([CURL, "-sS", "--max-time", str(timeout)] + list(args),
                          stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout + 10,
                          env=env)


def fmt_records(recs):
    import json
    if not recs:
        return "(no audit records)"
    return "\n".join("  " + json.dumps(r, sort_keys=True) for r in recs)


def expect_one_record(gw, pred, what, timeout=5.0, **fields):
    """Wait for exactly one audit record matching pred and check fields on it."""
    recs = gw.wait_audit(pred, timeout=timeout)
    assert len(recs) == 1, "expected exactly one audit record for %s, got %d:\n%s\n(all records:\n%s)" % (
        what, len(recs), fmt_records(recs), fmt_records(gw.audit()[-20:]))
    rec = recs[0]
    wrong = {k: (v, rec.get(k, "<absent>")) for k, v in fields.items() if rec.get(k, "<absent>") != v}
    assert not wrong, "audit record for %s: fields (expected, got) %r\nrecord: %s" % (
        what, wrong, fmt_records([rec]))
    return rec


REQUIRED_FIELDS = ["ts", "event", "id", "client_ip", "client_port", "user", "method", "host",
                   "port", "url", "dst_ip", "sni", "decision", "reason", "rule", "status",
                   "bytes_up", "bytes_down", "duration_ms", "close"]


TS_RE = __import__("re").compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def check_record_shape(rec):
    missing = [f for f in REQUIRED_FIELDS if f not in rec]
    assert not missing, "audit record lacks fields %r (null is required, not absent): %s" % (
        missing, fmt_records([rec]))
    assert isinstance(rec["ts"], str) and TS_RE.match(rec["ts"]), \
        "ts must be RFC 3339 UTC with milliseconds: %r" % rec["ts"]
    assert rec["decision"] in ("allow", "deny"), fmt_records([rec])
    for f in ("status", "bytes_up", "bytes_down", "duration_ms", "port", "client_port"):
        assert rec[f] is None or (isinstance(rec[f], int) and rec[f] >= 0), "%s: %r" % (f, rec[f])


def read_to_eof(sock, limit=16 << 20):
    """Everything sock sends until it closes (at most limit bytes), then close it."""
    data = b""
    try:
        while len(data) < limit:
            d = sock.recv(65536)
            if not d:
                break
            data += d
    finally:
        sock.close()
    return data


def http_get(port, path="/metrics", method="GET", timeout=3.0):
    """One HTTP/1.1 exchange with a plain listener on 127.0.0.1 (the metrics
    one: /metrics, /healthz); returns (status, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(("%s %s HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n"
               % (method, path)).encode())
    head, _, body = read_to_eof(s).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body
