"""audit_relp: records to rsyslog's imrelp over RELP, each held until the
receiver acknowledged it, the unacknowledged ones sent again after a
reconnect (a consumer drops the duplicate by id), the queue bounded like the
datagram one, with the same audit_on_failure behaviour and loss records.

The receiver is a real rsyslogd (imrelp, package rsyslog-relp) on a loopback
port; it is stopped and started under load."""

import json
import os
import signal
import subprocess
import threading
import time

import pytest

from harness import gateway as gwmod
from harness.gateway import Gateway
from harness.rsyslog import Rsyslogd
from harness.util import fmt_records
from test_audit import (QUEUE_RECORDS, _pipelined, absreq, check, connect_req,
                        exchange_to_eof, policy, schema)  # noqa: F401 (schema is a fixture)

EGRESSCTL = os.environ.get("EGRESSCTL", os.path.join(gwmod.REPO, "build", "egressctl"))
RELP_WINDOW = 4                 # RELP_WINDOW in audit/relp.h


def status(gw):
    r = subprocess.run([EGRESSCTL, "-c", os.path.join(gw.dir, "egressd.conf"), "status",
                        "--json"], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                       timeout=15)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["audit"]


@pytest.fixture
def relp(dns, rule_opts, request):
    """relp(conf) -> (rsyslogd with imrelp, gateway sending to it over RELP)."""
    made = []

    def make(conf=None, workers=2):
        r = Rsyslogd(relp=True)
        made.append(r)
        r.start()
        c = {"audit_relp": "127.0.0.1:%d" % r.relp_port, "admin_socket": "admin.sock"}
        c.update(conf or {})
        gw = Gateway(dns.port, conf=c, policy=policy(rule_opts), workers=workers,
                     syslog_collector=False)
        made.append(gw)
        request.node._gateways = [gw]
        gw.start()
        return r, gw

    yield make
    for x in reversed(made):
        x.cleanup()


def urls(rs, tag):
    """ids of the request records whose URL carries ?tag= (a resend repeats an id)."""
    return [r["id"] for r in rs.records()
            if r.get("event") == "request" and ("?%s=" % tag) in (r.get("url") or "")]


def wait_distinct(rs, tag, n, timeout):
    deadline = time.monotonic() + timeout
    needle = ("?%s=" % tag).encode()
    while time.monotonic() < deadline:
        if rs.raw().count(needle) >= n and len(set(urls(rs, tag))) >= n:
            break
        time.sleep(0.3)
    time.sleep(0.3)
    return urls(rs, tag)


def check_relp_file(rs, schema):
    """Every line valid, from egressd local5 info; ids unique once duplicates
    (same id, same record: a resend) are dropped."""
    recs = rs.records()
    assert not [r for r in recs if "_unparsable" in r]
    for r in recs:
        check(r, schema)
    meta = rs.meta()
    assert len(meta) == len(recs) and all(m == "egressd local5 info" for m in meta), \
        sorted(set(meta))
    by_id = {}
    for r in recs:
        if r["id"] in by_id:
            assert by_id[r["id"]] == r, "two different records with id %s" % r["id"]
        by_id[r["id"]] = r
    return len(recs) - len(by_id)


def test_relp_delivers_every_record_once(relp, origin, schema):
    rs, gw = relp()
    served, other = _pipelined(gw, origin, "r1", 300)
    assert served == 300 and not other, other[:3]
    got = wait_distinct(rs, "r1", 300, 10)
    assert len(set(got)) == 300 and len(got) == 300, (len(set(got)), len(got))
    assert check_relp_file(rs, schema) == 0
    st = status(gw)
    assert st["transport"] == "relp" and st["connected"] and st["resent"] == 0, st
    # All but the newest RELP_WINDOW are known acknowledged; those wait in the queue.
    assert st["acked"] + st["unacked"] == st["sent"] and st["unacked"] <= RELP_WINDOW, st
    assert st["queued"] == st["unacked"] and st["lost_total"] == 0, st


def test_relp_restarts_under_load_lose_nothing(relp, origin, schema):
    """rsyslogd stopped and started three times while requests flow: every
    served request has its record, the only extra lines are resends (counted)."""
    rs, gw = relp(conf={"audit_on_failure": "allow"})
    stop = threading.Event()
    served, other, tags = [0], [], []
    lock = threading.Lock()

    def load(prefix):
        for b in range(300):
            if stop.is_set():
                return
            tag = "%s%d" % (prefix, b)
            n, o = _pipelined(gw, origin, tag, 40, threads=1, per_conn=40, batch=10)
            with lock:
                served[0] += n
                other.extend(o)
                tags.append(tag)

    ts = [threading.Thread(target=load, args=(p,), daemon=True) for p in ("a", "b")]
    for t in ts:
        t.start()
    for _ in range(3):
        time.sleep(0.7)
        rs.stop()
        time.sleep(0.8)
        rs.start()
    time.sleep(0.5)
    stop.set()
    for t in ts:
        t.join(60)
    assert not other, other[:3]
    want = served[0]
    deadline = time.monotonic() + 20
    tagset = set(tags)
    while time.monotonic() < deadline:
        got = set(r["id"] for r in rs.records() if r.get("event") == "request" and
                  (r.get("url") or "").rsplit("?", 1)[-1].split("=")[0] in tagset)
        if len(got) >= want:
            break
        time.sleep(0.3)
    time.sleep(0.3)
    dups = check_relp_file(rs, schema)
    losses = [r for r in rs.records() if r.get("event") == "audit_loss"]
    st = status(gw)
    print("\nRELP, rsyslogd restarted 3 times under load: %d requests served, %d distinct "
          "records received, %d duplicate lines, %d resent, audit_loss %r" % (
              want, len(got), dups, st["resent"], [r.get("lost") for r in losses]))
    assert len(got) == want, "%d requests served, %d distinct records" % (want, len(got))
    assert not losses, fmt_records(losses)
    assert st["lost_total"] == 0, st
    assert dups <= st["resent"], "duplicates (%d) come only from resends (%d)" % (
        dups, st["resent"])


def test_relp_deny_on_failure_503_then_served(relp, origin, echo, schema):
    rs, gw = relp(conf={"audit_on_failure": "deny"})
    p0, got = exchange_to_eof(gw.port, absreq(origin, "/bytes/3", extra=[("Connection", "close")]))
    assert got.startswith(b"HTTP/1.1 200")
    rs.stop()
    tried = []
    deadline = time.monotonic() + 6
    while time.monotonic() < deadline and sum(1 for t in tried if t[1] == 503) < 3:
        p, got = exchange_to_eof(gw.port, absreq(origin, "/bytes/3", extra=[("Connection", "close")]))
        tried.append((p, int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.") else None))
        time.sleep(0.05)
    p, got = exchange_to_eof(gw.port, connect_req("echo.test:%d" % echo.port))
    tried.append((p, int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.") else None))
    statuses = [t[1] for t in tried]
    assert 503 in statuses and all(s == 503 for s in statuses[statuses.index(503):]), statuses
    rs.start()
    after = None
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        p, got = exchange_to_eof(gw.port, absreq(origin, "/bytes/3", extra=[("Connection", "close")]))
        if got.startswith(b"HTTP/1.1 200"):
            after = p
            break
        tried.append((p, int(got.split(b" ", 2)[1]) if got.startswith(b"HTTP/1.") else None))
        time.sleep(0.1)
    assert after is not None, "not served again after rsyslogd came back: %r" % tried[-5:]
    deadline = time.monotonic() + 8
    ports = [p0, after] + [t[0] for t in tried]
    while time.monotonic() < deadline:
        have = {r.get("client_port") for r in rs.records()}
        if all(p in have for p in ports):
            break
        time.sleep(0.1)
    recs = rs.records()
    for p, st in tried:
        mine = {r["id"]: r for r in recs if r.get("client_port") == p}
        assert len(mine) == 1, "port %d (status %s): %s" % (p, st, fmt_records(list(mine.values())))
        rec = list(mine.values())[0]
        if st == 503:
            check(rec, schema, decision="deny", reason="audit_unavailable", status=503)
    assert not [r for r in recs if r.get("event") == "audit_loss"]
    check_relp_file(rs, schema)


def test_relp_frozen_receiver_never_blocks_a_worker(relp, origin, schema):
    """rsyslogd SIGSTOPped: it accepts TCP and answers nothing, so librelp waits
    for acknowledgements (up to its timeout) in the delivery thread; the
    workers keep answering (a blocked worker would time these requests out),
    and once rsyslogd runs again every record arrives."""
    rs, gw = relp(conf={"audit_on_failure": "allow"})
    served, other = _pipelined(gw, origin, "pre", 20, threads=1)
    assert served == 20 and len(set(wait_distinct(rs, "pre", 20, 5))) == 20
    os.kill(rs.proc.pid, signal.SIGSTOP)
    try:
        served, other = _pipelined(gw, origin, "frz", 300, threads=2, per_conn=150)
        assert served == 300 and not other, "rsyslogd frozen: %d of 300 served, %r" % (
            served, other[:3])
        st = status(gw)
    finally:
        os.kill(rs.proc.pid, signal.SIGCONT)
    got = set(wait_distinct(rs, "frz", 300, 30))
    print("\nRELP receiver frozen: 300 served meanwhile (%d queued then), %d delivered after, "
          "%d duplicate lines" % (st["queued"], len(got), check_relp_file(rs, schema)))
    assert len(got) == 300
    assert not [r for r in rs.records() if r.get("event") == "audit_loss"]


def test_relp_queue_bound_and_loss_record(relp, origin, schema):
    """While the receiver is away the queue holds AUDIT_QUEUE_RECORDS, records
    not yet acknowledged included; what overflows is counted exactly in an
    audit_loss record that itself waits for its acknowledgement."""
    rs, gw = relp(conf={"audit_on_failure": "allow"})
    served, other = _pipelined(gw, origin, "pre", 20)
    assert served == 20 and len(set(wait_distinct(rs, "pre", 20, 5))) == 20
    rs.stop()
    total = QUEUE_RECORDS + 150
    t0 = time.monotonic()
    served, other = _pipelined(gw, origin, "ovf", total)
    print("\nserved in %.1f s" % (time.monotonic() - t0))
    assert served == total and not other, other[:3]
    st = status(gw)
    assert st["queued"] == QUEUE_RECORDS, st
    t0 = time.monotonic()
    rs.start()
    # The queue held the records not yet acknowledged before the stop and the
    # loss record too: at least this many of the new ones.
    got = set(wait_distinct(rs, "ovf", QUEUE_RECORDS - RELP_WINDOW - 1, 30))
    print("\ndrained in %.1f s" % (time.monotonic() - t0))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not [
            r for r in rs.records() if r.get("event") == "audit_loss"]:
        time.sleep(0.1)
    losses = [r for r in rs.records() if r.get("event") == "audit_loss"]
    lost = sum(r["lost"] for r in {r["id"]: r for r in losses}.values())
    print("\nRELP queue overflow: %d served while rsyslogd was down, %d delivered, lost %d "
          "(%d records held for acknowledgement)" % (served, len(got), lost,
                                                     QUEUE_RECORDS - len(got)))
    assert losses, "no audit_loss record"
    assert len(got) + lost == served, (len(got), lost, served)
    assert lost - 150 <= RELP_WINDOW, lost
    check_relp_file(rs, schema)


@pytest.mark.parametrize("value,msg", [
    ("127.0.0.1", "bad address"),
    ("127.0.0.1:0", "bad port"),
    ("127.0.0.1:70000", "bad port"),
    ("::1:2514", "bad address"),
    ("ho_st:1", "bad host"),
    ("[::1]:x", "bad port"),
])
def test_relp_bad_address_is_a_config_error(tmp_path, value, msg):
    (tmp_path / "p.rules").write_text("allow any .* *\n")
    (tmp_path / "e.conf").write_text("listen 127.0.0.1:1\npolicy_file p.rules\n"
                                     "audit_relp %s\n" % value)
    r = subprocess.run([gwmod.BINARY, "-t", "-c", str(tmp_path / "e.conf")],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and ("e.conf:3: audit_relp: %s" % msg) in r.stderr, r.stderr


# ------------------------------------------------------------------ fleet

RSYSLOG_DIR = os.path.join(gwmod.REPO, "packaging", "rsyslog")


@pytest.mark.parametrize("name", ["egressd-audit-relp.conf", "egressd-forward.conf",
                                  "egressd-central-relp.conf"])
def test_shipped_relp_configurations_are_valid(name):
    r = subprocess.run(["/usr/sbin/rsyslogd", "-N1", "-f", os.path.join(RSYSLOG_DIR, name)],
                       stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stdout + r.stderr
    text = open(os.path.join(RSYSLOG_DIR, name)).read()
    if "omrelp" in text:
        # What makes the edge lose nothing while the central is away.
        for need in ('queue.saveOnShutdown="on"', 'action.resumeRetryCount="-1"',
                     'queue.filename='):
            assert need in text, need


CENTRAL_OUTAGE_SECONDS = 30


def test_edge_to_central_chain_loses_nothing(dns, rule_opts, origin, schema):
    """egressd -> RELP -> edge rsyslogd (packaging/rsyslog/egressd-forward.conf's
    queue) -> omrelp -> central rsyslogd: the central is stopped for 30 s
    while the gateway keeps serving a steady load, then started again; every
    record reaches the central exactly once (ids compared), none is lost."""
    central = Rsyslogd(relp=True)
    edge = None
    gw = None
    try:
        central.start()
        edge = Rsyslogd(relp=True, forward_relp=central.relp_port)
        edge.start()
        gw = Gateway(dns.port, conf={"audit_relp": "127.0.0.1:%d" % edge.relp_port},
                     policy=policy(rule_opts), syslog_collector=False)
        gw.start()
        served = {}
        served["before"], other = _pipelined(gw, origin, "before", 200, threads=1, per_conn=200)
        assert not other
        central.stop()
        # A steady load for the whole outage: a batch of 20 requests a second.
        served["outage"] = 0
        deadline = time.monotonic() + CENTRAL_OUTAGE_SECONDS
        batch = 0
        while time.monotonic() < deadline:
            n, other = _pipelined(gw, origin, "outage%d" % batch, 20, threads=1, per_conn=20,
                                  batch=20)
            assert not other
            served["outage"] += n
            batch += 1
            time.sleep(max(0.0, 1.0 - (time.monotonic() % 1.0)))
        central.start()
        served["after"], other = _pipelined(gw, origin, "after", 100, threads=1, per_conn=100)
        assert not other
        got = {"before": set(wait_distinct(central, "before", served["before"], 30)),
               "after": set(wait_distinct(central, "after", served["after"], 30))}
        outage = set()
        for i in range(batch):
            outage |= set(wait_distinct(central, "outage%d" % i, 20, 10))
        got["outage"] = outage
        dups = check_relp_file(central, schema)
        ids = [r["id"] for r in central.records() if r.get("event") == "request"]
        print("\nedge -> central over RELP, central stopped %d s under load: served %r, at the "
              "central %r distinct, %d duplicate lines, %d records, %d distinct ids" % (
                  CENTRAL_OUTAGE_SECONDS, served, {t: len(v) for t, v in got.items()}, dups,
                  len(ids), len(set(ids))))
        assert {t: len(v) for t, v in got.items()} == served, "records lost on the way"
        assert dups == 0 and len(ids) == len(set(ids)), "a record arrived twice"
        assert not [r for r in central.records() if r.get("event") == "audit_loss"]
    finally:
        for x in (gw, edge, central):
            if x is not None:
                x.cleanup()
