"""A fleet behind HAProxy, run for real: packaging/haproxy/egressd-lb.cfg in front
of two egressd instances on loopback.

The shipped configuration is used as it is, with only its addresses replaced
(and its syslog lines dropped, plus a stats socket for the test to read the
servers' states).  A bounded mixed load (tunnels and GETs, from 127.0.0.9 so
the real client differs from the balancer's 127.0.0.1) runs through it while

  1. one instance is SIGTERMed mid-run, and
  2. both are restarted one after the other (a rolling restart),

and each phase checks: no established tunnel on the surviving instance is cut,
the clients see no failure at all (HAProxy retries a refused connect on the
other instance), the records of all instances together are exactly the
requests and tunnels the clients made (matched by client port), and every
record's client_ip is the client's, carried by PROXY v2.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter

import pytest

from harness.client import Conn, connect_bytes, echo_through, request_bytes
from harness.gateway import Gateway, free_port, stop_process
from harness.util import read_to_eof

HERE = os.path.dirname(os.path.abspath(__file__))
LB_CFG = os.path.join(HERE, "..", "..", "packaging", "haproxy", "egressd-lb.cfg")
CLIENT_IP = "127.0.0.9"
LOAD_THREADS = 4
PHASE_SECONDS = 6.0        # load before and after each fault, bounded
MAX_OPS = 20000            # and bounded in count
PACE = 0.01                # seconds between one thread's operations

pytestmark = pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy not installed")


class Haproxy:
    def __init__(self, servers, tmpdir):
        """servers: [(name, proxy_port, metrics_port)]."""
        self.dir = tmpdir
        self.port = free_port()
        self.sock = os.path.join(tmpdir, "haproxy.sock")
        with open(LB_CFG) as f:
            text = f.read()
        text = re.sub(r"(?m)^\s*log .*\n", "", text)
        # The test machine's descriptor limit, not a production one.
        text = re.sub(r"(?m)^(\s*maxconn )\d+", r"\g<1>1000", text)
        text = re.sub(r"(?m)^(global\n)", r"\1    stats socket %s level admin\n" % self.sock, text)
        text = re.sub(r"(?m)^(\s*bind )\S+", r"\g<1>127.0.0.1:%d" % self.port, text)
        names = re.findall(r"(?m)^\s*server (\S+) \S+", text)
        assert len(names) == len(servers), "the shipped config should name %d servers" % len(servers)
        for (name, pport, mport), shipped in zip(servers, names):
            text = re.sub(r"(?m)^(\s*)server %s \S+.*$" % re.escape(shipped),
                          r"\1server %s 127.0.0.1:%d port %d" % (name, pport, mport), text)
        self.cfg = os.path.join(tmpdir, "haproxy.cfg")
        with open(self.cfg, "w") as f:
            f.write(text)
        self.log = open(os.path.join(tmpdir, "haproxy.log"), "wb")
        self.proc = subprocess.Popen(["haproxy", "-db", "-f", self.cfg], stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log)

    def states(self):
        """{server name: 'UP'|'DOWN'|...} from the stats socket."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(2)
        try:
            s.connect(self.sock)
            s.sendall(b"show stat\n")
        except OSError:
            s.close()
            raise
        data = read_to_eof(s)
        lines = data.decode().splitlines()
        cols = lines[0].lstrip("# ").split(",")
        out = {}
        for line in lines[1:]:
            f = dict(zip(cols, line.split(",")))
            if f.get("pxname") == "egressd" and f.get("svname") not in ("BACKEND", "FRONTEND"):
                out[f["svname"]] = f["status"]
        return out

    def wait_states(self, want, timeout=15.0):
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            try:
                got = self.states()
                if all(got.get(k, "").startswith(v) for k, v in want.items()):
                    return got
            except OSError:
                pass
            time.sleep(0.1)
        raise AssertionError("haproxy servers %r, wanted %r" % (got, want))

    def stop(self):
        stop_process(self.proc)
        self.log.close()


class Load:
    """Client threads doing short tunnels and GETs through the balancer until
    stopped (bounded in time and count); every outcome is kept."""

    def __init__(self, lb_port, echo_port, origin_port):
        self.lb_port, self.echo_port, self.origin_port = lb_port, echo_port, origin_port
        self.done = []          # (kind, client_port, bytes sent)
        self.failures = []      # (kind, what)
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.threads = []
        self.n = 0
        self.last_done = 0.0

    def one(self, i):
        kind = "tunnel" if i % 2 == 0 else "request"
        port = None
        try:
            c = Conn(self.lb_port, timeout=10, src=CLIENT_IP)
            port = c.local_port
            try:
                if kind == "tunnel":
                    c.send(connect_bytes("echo.test:%d" % self.echo_port))
                    r = c.read_head()
                    if r.status != 200:
                        raise AssertionError("CONNECT answered %d" % r.status)
                    payload = b"x" * (100 + i % 900)
                    if echo_through(c, payload, timeout=10) != payload:
                        raise AssertionError("echo differs")
                    sent = len(payload)
                else:
                    c.send(request_bytes("GET", "http://origin.test:%d/echo?n=%d" % (self.origin_port, i),
                                         [("Host", "origin.test:%d" % self.origin_port),
                                          ("Connection", "close")]))
                    r = c.read_response()
                    if r.status != 200:
                        raise AssertionError("GET answered %d" % r.status)
                    sent = 0
            finally:
                c.close()
            with self.lock:
                self.done.append((kind, port, sent))
                self.last_done = time.monotonic()
        except (OSError, AssertionError, ValueError) as e:
            with self.lock:
                self.failures.append((kind, port, repr(e)))

    def run(self, deadline):
        while not self.stop_ev.is_set() and time.monotonic() < deadline:
            with self.lock:
                if self.n >= MAX_OPS:
                    return
                i = self.n
                self.n += 1
            self.one(i)
            time.sleep(PACE)

    def start(self, seconds):
        deadline = time.monotonic() + seconds
        self.threads = [threading.Thread(target=self.run, args=(deadline,), daemon=True)
                        for _ in range(LOAD_THREADS)]
        for t in self.threads:
            t.start()

    def finish(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(30)


@pytest.fixture
def fleet(dns, allow_all, tmp_path):
    made = []

    def instance():
        mport = free_port()
        g = Gateway(dns.port, policy=allow_all, proxy_listener=True, workers=1,
                    conf={"metrics_listen": "127.0.0.1:%d" % mport,
                          "proxy_protocol_from": "127.0.0.1/32",
                          "shutdown_grace": "3"})
        g.metrics_port = mport
        made.append(g)
        g.start()
        return g

    a, b = instance(), instance()
    lb = Haproxy([("egressd1", a.proxy_port, a.metrics_port),
                  ("egressd2", b.proxy_port, b.metrics_port)], str(tmp_path))
    try:
        lb.wait_states({"egressd1": "UP", "egressd2": "UP"})
        yield a, b, lb
    finally:
        lb.stop()
        for g in made:
            g.cleanup()


def long_tunnel(lb, echo):
    c = Conn(lb.port, timeout=10, src=CLIENT_IP)
    c.send(connect_bytes("echo.test:%d" % echo.port))
    assert c.read_head().status == 200
    assert echo_through(c, b"hello") == b"hello"
    return c


def records_of(gateways):
    recs = []
    for g in gateways:
        recs += [r for r in g.audit() if r.get("event") in ("tunnel", "request")]
    return recs


def check_accounting(load, gateways, extra=()):
    """Every client operation has exactly one record, no record is extra, and
    every record names the real client."""
    assert not load.failures, "client-visible failures (%d of %d): %r" % (
        len(load.failures), len(load.failures) + len(load.done), load.failures[:5])
    expected = Counter((k, p) for k, p, _ in load.done)
    for k, p in extra:
        expected[(k, p)] += 1
    # Records may trail the clients by a moment.
    deadline = time.monotonic() + 10
    while True:
        recs = records_of(gateways)
        got = Counter((r["event"], r["client_port"]) for r in recs)
        if got == expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    missing = expected - got
    surplus = got - expected
    assert not missing and not surplus, "records missing %r, extra %r" % (
        list(missing.items())[:5], list(surplus.items())[:5])
    wrong_ip = [r for r in recs if r.get("client_ip") != CLIENT_IP]
    assert not wrong_ip, "records with the balancer's address, not the client's: %r" % wrong_ip[:3]
    by_port = {(k, p): s for k, p, s in load.done}
    for r in recs:
        if r["event"] == "tunnel" and (r["event"], r["client_port"]) in by_port:
            assert r["bytes_up"] == by_port[(r["event"], r["client_port"])], r
    return recs


def ping_held(held, until, failed):
    """Echo through each held tunnel about once a second until `until` (the
    harness's echo server drops a connection idle for 10 s); a tunnel that
    fails is noted in failed {port: error} and left alone from then on."""
    while time.monotonic() < until:
        for c in held:
            if c.local_port in failed:
                continue
            try:
                if echo_through(c, b"ping", timeout=5) != b"ping":
                    failed[c.local_port] = "echo differs"
            except Exception as e:  # noqa: BLE001 - Closed, OSError: noted
                failed[c.local_port] = repr(e)
        time.sleep(min(1.0, max(0.0, until - time.monotonic())))


def test_sigterm_one_instance_under_load(fleet, echo, origin):
    a, b, lb = fleet
    # Tunnels established before the fault (leastconn spreads them over both).
    held = [long_tunnel(lb, echo) for _ in range(4)]
    held_set = {c.local_port for c in held}
    failed = {}
    load = Load(lb.port, echo.port, origin.port)
    load.start(PHASE_SECONDS * 2)
    ping_held(held, time.monotonic() + PHASE_SECONDS, failed)
    assert not failed, "held tunnels failed before any fault: %r" % failed
    a._expect_exit = True
    a.signal(signal.SIGTERM)
    signalled = time.monotonic()
    ping_held(held, signalled + PHASE_SECONDS, failed)
    for t in load.threads:          # they stop at their deadline
        t.join(PHASE_SECONDS + 30)
    load.finish()
    assert load.last_done > signalled + 1, "the load did not go on after the SIGTERM"
    lb.wait_states({"egressd1": "DOWN", "egressd2": "UP"})
    assert a.wait_exit(10) == 0, a.stderr()[-2000:]
    # The drained instance closed its held tunnels at the end of its grace
    # (with records, which reach the collector a moment after it exits).
    a.wait_audit(lambda r: r.get("event") == "stop", timeout=5)
    on_a = {r["client_port"] for r in a.audit() if r.get("event") == "tunnel"} & held_set
    survivors = [c for c in held if c.local_port not in on_a]
    assert survivors, "no held tunnel landed on the surviving instance"
    ping_held(survivors, time.monotonic() + 0.1, failed)
    cut = {p: e for p, e in failed.items() if p not in on_a}
    assert not cut, "tunnels on the surviving instance were cut by the other's drain: %r" % cut
    for c in held:
        c.close()
    check_accounting(load, [a, b], extra=[("tunnel", p) for p in held_set])
    print("fleet sigterm: %d operations, %d client failures, records a=%d b=%d, "
          "%d held tunnels (%d on the survivor, none cut)" % (
              len(load.done), len(load.failures), len(records_of([a])), len(records_of([b])),
              len(held), len(survivors)))
    assert len(load.done) >= 20, "the load made too few operations to mean anything"


def test_rolling_restart_under_load(fleet, echo, origin):
    a, b, lb = fleet
    load = Load(lb.port, echo.port, origin.port)
    load.start(PHASE_SECONDS * 6)
    try:
        for g, name, other in ((a, "egressd1", "egressd2"), (b, "egressd2", "egressd1")):
            time.sleep(PHASE_SECONDS / 2)
            g._expect_exit = True
            g.signal(signal.SIGTERM)
            assert g.wait_exit(15) == 0, g.stderr()[-2000:]
            lb.wait_states({name: "DOWN", other: "UP"})
            g.start(same_ports=True)
            g._expect_exit = False
            lb.wait_states({name: "UP", other: "UP"})
        restarted = time.monotonic()
        time.sleep(PHASE_SECONDS / 2)
    finally:
        load.finish()
    assert load.last_done > restarted, "the load ended before the restarts did"
    check_accounting(load, [a, b])
    print("fleet rolling restart: %d operations, %d client failures, records a=%d b=%d"
          % (len(load.done), len(load.failures), len(records_of([a])), len(records_of([b]))))
    assert len(load.done) >= 20
