"""The datagram path is honest: records the syslog daemon had not read when
it went away are counted as possibly lost in the next audit_loss record, so
sent - possibly lost <= delivered <= sent holds (sent counts every message
the socket accepted, loss records included; delivered is every line rsyslogd
wrote).  Before, they were counted as sent and were in no loss record."""

import os
import signal
import threading
import time

from harness.rsyslog import Rsyslogd
from test_audit import _pipelined, check_file, fresh, policy, schema  # noqa: F401 (fixtures)
from test_audit_relp import status, wait_distinct


def _admin(conf=None):
    c = {"admin_socket": "admin.sock", "audit_on_failure": "allow"}
    c.update(conf or {})
    return c


def _losses(rs):
    return [r for r in rs.records() if r.get("event") == "audit_loss"]


def _invariant(rs, gw):
    st = status(gw)
    delivered = len(rs.lines())
    assert st["transport"] == "datagram", st
    assert st["sent"] - st["possibly_lost_total"] <= delivered <= st["sent"], \
        "sent %d, possibly lost %d, delivered %d" % (st["sent"], st["possibly_lost_total"],
                                                     delivered)
    return st, delivered


def test_unread_at_the_readers_death_are_counted_exactly(fresh, origin, schema):
    """rsyslogd frozen (it reads nothing), 60 requests, then killed: what sat
    in its socket is counted possibly lost, exactly; the rest (queued by us
    when the socket was full) is delivered after the restart."""
    rs, gw = fresh(conf=_admin())
    served, other = _pipelined(gw, origin, "pre", 20, threads=1)
    assert served == 20 and len(wait_distinct(rs, "pre", 20, 5)) == 20
    time.sleep(0.2)                    # the thread proves them read
    os.kill(rs.proc.pid, signal.SIGSTOP)
    try:
        served, other = _pipelined(gw, origin, "frozen", 60, threads=1, per_conn=60, batch=5)
        assert served == 60 and not other, other[:3]
        time.sleep(0.3)
    finally:
        os.kill(rs.proc.pid, signal.SIGKILL)
        rs.proc.wait(10)
    rs.start()
    served2, _ = _pipelined(gw, origin, "after", 10, threads=1)
    assert served2 == 10 and len(wait_distinct(rs, "after", 10, 10)) == 10
    delivered = len(set(wait_distinct(rs, "frozen", 1, 2)))
    losses = _losses(rs)
    lost = sum(r["lost"] for r in losses)
    st, lines = _invariant(rs, gw)
    print("\nrsyslogd frozen then killed: 60 sent while frozen, %d delivered after the restart, "
          "audit_loss lost=%r, message %r; sent %d, possibly lost %d, lines %d" % (
              delivered, [r["lost"] for r in losses], [r.get("message") for r in losses],
              st["sent"], st["possibly_lost_total"], lines))
    assert losses and lost == 60 - delivered, (lost, delivered)
    assert st["possibly_lost_total"] == lost
    assert all("possibly lost" in r.get("message", "") for r in losses), losses
    check_file(rs, schema)


def test_restarts_under_load_every_record_accounted(fresh, origin, schema):
    """rsyslogd stopped (SIGTERM) and started twice under load: every served
    request is delivered or inside a loss record's count, and the kernel's
    view bounds what arrived."""
    rs, gw = fresh(conf=_admin())
    stop = threading.Event()
    served, tags, lock = [0], [], threading.Lock()

    def load():
        for b in range(400):
            if stop.is_set():
                return
            n, o = _pipelined(gw, origin, "u%d" % b, 40, threads=1, per_conn=40, batch=10)
            with lock:
                served[0] += n
                tags.append("u%d" % b)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    for _ in range(2):
        time.sleep(0.8)
        rs.stop()
        time.sleep(0.6)
        rs.start()
    time.sleep(0.5)
    stop.set()
    t.join(60)
    tagset = set(tags)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        got = {r["id"] for r in rs.records() if r.get("event") == "request" and
               (r.get("url") or "").rsplit("?", 1)[-1].split("=")[0] in tagset}
        if len(got) + sum(r["lost"] for r in _losses(rs)) >= served[0]:
            break
        time.sleep(0.3)
    lost = sum(r["lost"] for r in _losses(rs))
    st, lines = _invariant(rs, gw)
    print("\ndatagram, rsyslogd restarted twice under load: %d served, %d delivered, %d in "
          "loss records (%d possibly lost); sent %d, lines %d" % (
              served[0], len(got), lost, st["possibly_lost_total"], st["sent"], lines))
    assert len(got) + lost >= served[0], "%d served, %d delivered, %d counted lost" % (
        served[0], len(got), lost)
    assert len(got) <= served[0]
    check_file(rs, schema)
