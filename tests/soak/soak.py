#!/usr/bin/python3
"""soak — mixed load with faults against a real egressd, real slapd and real
rsyslogd on loopback, and an exact account of the audit trail afterwards.

    /usr/bin/python3 tests/soak/soak.py --transport relp|datagram --seconds N
                                        [--binary build/asan/egressd] [--sanitizer]

Load (2 workers): keep-alive GETs as alice and bob (LDAP, auth_cache_ttl 1 so
the directory is asked often), requests without or with wrong credentials,
denied requests, short CONNECT tunnels to an echo server with exact byte
counts, and long tunnels that live through the whole run.  Faults, in phases
scaled to the duration (every phase occurs in every run):

  warmup        load only
  rsyslog_down  rsyslogd stopped (20 s in a 10-minute run, 8 s at 75 s)
  ldap_frozen   slapd SIGSTOPped (accepts TCP, answers nothing), then SIGCONT
  ldap_killed   slapd SIGKILLed, restarted after a while
  burst         more simultaneous CONNECTs than max_connections, with
                RLIMIT_NOFILE below what they need (fd pressure)
  cooldown      load only
  (all along)   SIGHUP every 2 s, every third one with a broken policy

Then it checks, and exits 1 on any failure:
  - every request and tunnel the driver made has exactly one record (a resent
    duplicate with the same id is counted, not an error), or is inside the
    count of an audit_loss record; over RELP nothing may be lost at all;
  - the record's status equals the status the client saw; bytes_up/bytes_down
    of every completed request and tunnel equal what the client sent and got;
  - no long tunnel broke (reloads never drop tunnels);
  - RSS and open descriptors, sampled every second, are flat after warm-up;
  - with --sanitizer, no AddressSanitizer/UBSan/LeakSanitizer report.
and prints a table: phases x outcomes, records expected/received/lost/
duplicated, RSS and fds.
"""

import argparse
import base64
import collections
import json
import os
import random
import signal
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

ap = argparse.ArgumentParser()
ap.add_argument("--transport", choices=["relp", "datagram"], required=True)
ap.add_argument("--seconds", type=float, default=75)
ap.add_argument("--binary", default=None)
ap.add_argument("--sanitizer", action="store_true")
ap.add_argument("--seed", type=int, default=1)
ARGS = ap.parse_args()
if ARGS.binary:
    os.environ["EGRESSD"] = os.path.abspath(ARGS.binary)

from harness.gateway import Gateway                      # noqa: E402
from harness.rsyslog import Rsyslogd                     # noqa: E402
from harness.servers import DnsStub, HttpOrigin, _ServerBase  # noqa: E402
from harness.slapd import Slapd                          # noqa: E402

MAX_CONNECTIONS = 300
NOFILE = 512                   # below 2 x MAX_CONNECTIONS: a burst of tunnels runs out of fds
BURST = 340
LONG_TUNNELS = 4
random.seed(ARGS.seed)


class Echo(_ServerBase):
    """Byte-exact echo without a lifetime bound (the long tunnels live for the run)."""

    def handle(self, conn, peer):
        while True:
            try:
                data = conn.recv(65536)
            except OSError:
                return
            if not data:
                break
            conn.sendall(data)
        try:
            conn.shutdown(socket.SHUT_WR)
            conn.settimeout(2)
            conn.recv(1)
        except OSError:
            pass


def authz(user, pw):
    return "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()


# ------------------------------------------------------------------ ledger

class Ledger:
    """What the clients did and saw, keyed like the records will be."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ops = {}              # key -> dict(kind, phase, status, up, down, complete)
        self.phase = "warmup"
        self.outcomes = collections.defaultdict(collections.Counter)

    def add(self, key, kind, status, up, down, complete, note=""):
        with self.lock:
            self.ops[key] = dict(kind=kind, phase=self.phase, status=status, up=up,
                                 down=down, complete=complete)
            label = "%s %s%s" % (kind, status if status else "none", note)
            self.outcomes[self.phase][label] += 1


L = Ledger()
STOP = threading.Event()
SRC_LOCK = threading.Lock()
SRC_N = [0]


def next_src():
    """A source address of its own for each tunnel: (client_ip, client_port) names
    exactly one tunnel for the whole run."""
    with SRC_LOCK:
        SRC_N[0] += 1
        n = SRC_N[0]
    return "127.%d.%d.%d" % (20 + (n >> 16) % 200, (n >> 8) & 255, n & 255 or 1)


def read_head(sock, buf, deadline):
    while b"\r\n\r\n" not in buf:
        sock.settimeout(max(0.05, deadline - time.monotonic()))
        d = sock.recv(65536)
        if not d:
            raise EOFError("closed before the head")
        buf += d
    i = buf.index(b"\r\n\r\n") + 4
    return buf[:i], buf[i:]


def status_of(head):
    return int(head.split(b" ", 2)[1])


def content_length(head):
    for line in head.split(b"\r\n")[1:]:
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


# ------------------------------------------------------------------ load

def request_loop(gw, origin, tid):
    """Keep-alive connections of up to 20 requests: mostly allowed GETs as alice
    or bob, some without credentials (407), some denied by policy (403)."""
    n = 0
    src = "127.10.0.%d" % (tid + 1)
    while not STOP.is_set():
        try:
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=10,
                                         source_address=(src, 0))
        except OSError:
            time.sleep(0.05)
            continue
        buf = b""
        try:
            for _ in range(20):
                if STOP.is_set():
                    break
                n += 1
                r = random.random()
                host, kind = "origin.test", "req"
                user = random.choice([("alice", "alice-pw"), ("bob", "bob-pw")])
                size = random.choice([0, 10, 1000, 20000])
                if r < 0.08:
                    user, kind = None, "req-noauth"
                elif r < 0.16:
                    host, kind = "forbidden.test", "req-denied"
                url = "http://%s:%d/bytes/%d?s%d=%d" % (host, origin.port, size, tid, n)
                hdr = "GET %s HTTP/1.1\r\nHost: %s:%d\r\n" % (url, host, origin.port)
                if user:
                    hdr += "Proxy-Authorization: %s\r\n" % authz(*user)
                req = (hdr + "\r\n").encode()
                s.sendall(req)
                deadline = time.monotonic() + 15
                try:
                    head, buf = read_head(s, buf, deadline)
                except (OSError, EOFError) as e:
                    L.add(url, kind, 0, len(req), None, False, " (%s)" % type(e).__name__)
                    raise
                st = status_of(head)
                cl = content_length(head)
                while len(buf) < cl:
                    s.settimeout(max(0.05, deadline - time.monotonic()))
                    d = s.recv(65536)
                    if not d:
                        break
                    buf += d
                body, buf = buf[:cl], buf[cl:]
                complete = len(body) == cl
                L.add(url, kind, st, len(req), len(head) + len(body), complete)
                if b"connection: close" in head.lower() or not complete:
                    break
                time.sleep(0.004)
        except (OSError, EOFError):
            pass
        finally:
            s.close()
        time.sleep(0.01)       # a refusing gateway is not hammered


def tunnel_once(gw, echo, kind="tunnel", size=None, hold=None):
    """One CONNECT through to the echo server with exact bytes; returns the socket
    and its ledger key when hold is a list (the burst keeps them open)."""
    src = next_src()
    try:
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=10,
                                     source_address=(src, 0))
    except OSError:
        return None
    key = (src, s.getsockname()[1])
    auth = authz("alice", "alice-pw")
    s.sendall(("CONNECT echo.test:%d HTTP/1.1\r\nHost: echo.test:%d\r\n"
               "Proxy-Authorization: %s\r\n\r\n" % (echo.port, echo.port, auth)).encode())
    return s, key


def tunnel_finish(s, key, kind, size, deadline):
    try:
        head, rest = read_head(s, b"", deadline)
    except (OSError, EOFError) as e:
        L.add(key, kind, 0, None, None, False, " (%s)" % type(e).__name__)
        s.close()
        return
    st = status_of(head)
    if st != 200:
        L.add(key, kind, st, None, None, False)
        s.close()
        return
    data = os.urandom(size)
    got = rest
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        while True:
            s.settimeout(max(0.05, deadline - time.monotonic()))
            d = s.recv(65536)
            if not d:
                break
            got += d
    except OSError:
        pass
    s.close()
    ok = got == data
    L.add(key, kind, 200, size, len(got), ok, "" if ok else " (bytes differ)")


def tunnel_loop(gw, echo):
    while not STOP.is_set():
        t = tunnel_once(gw, echo)
        if t is None:
            time.sleep(0.05)
            continue
        tunnel_finish(t[0], t[1], "tunnel", random.choice([1, 100, 5000, 70000]),
                      time.monotonic() + 15)
        time.sleep(0.01)


class LongTunnel:
    """A tunnel open for the whole run, pinged every second: a reload must never cut it."""

    def __init__(self, gw, echo):
        self.s, self.key = tunnel_once(gw, echo)
        head, rest = read_head(self.s, b"", time.monotonic() + 10)
        assert status_of(head) == 200 and not rest, head
        self.up = self.down = 0
        self.broken = None

    def ping(self):
        if self.broken:
            return
        data = os.urandom(random.randint(1, 300))
        try:
            self.s.settimeout(10)
            self.s.sendall(data)
            self.up += len(data)
            got = b""
            while len(got) < len(data):
                d = self.s.recv(len(data) - len(got))
                if not d:
                    raise EOFError("closed")
                got += d
            self.down += len(got)
            if got != data:
                raise ValueError("echo differs")
        except (OSError, EOFError, ValueError) as e:
            self.broken = "%s during %s" % (e, L.phase)

    def finish(self):
        try:
            self.s.shutdown(socket.SHUT_WR)
            self.s.settimeout(5)
            while self.s.recv(65536):
                pass
        except OSError:
            pass
        self.s.close()
        with L.lock:
            L.ops[self.key] = dict(kind="long-tunnel", phase="all", status=200, up=self.up,
                                   down=self.down, complete=not self.broken)
            L.outcomes["all"]["long-tunnel %s" % ("ok" if not self.broken else "BROKEN")] += 1


def burst(gw, echo):
    """BURST simultaneous CONNECTs, held open until every one has its answer."""
    socks = []
    for _ in range(BURST):
        t = tunnel_once(gw, echo)
        if t:
            socks.append(t)
    deadline = time.monotonic() + 20
    answered = {}
    pending = list(socks)
    released = False
    while pending and time.monotonic() < deadline:
        still = []
        for s, key in pending:
            s.settimeout(0.01)
            try:
                d = s.recv(4096)
            except socket.timeout:
                still.append((s, key))
                continue
            except OSError:
                d = b""
            answered[key] = (s, d)
        pending = still
        if not released and time.monotonic() > deadline - 15:
            # Past the wait for the first answers: let the held tunnels go so
            # connections waiting in the backlog get theirs.
            for key, (s, d) in list(answered.items()):
                if d.startswith(b"HTTP/1.1 200"):
                    finish_burst(s, key, d)
                    answered[key] = (None, d)
            released = True
    for key, (s, d) in answered.items():
        if s is not None:
            finish_burst(s, key, d)
    for s, key in pending:
        L.add(key, "burst", 0, None, None, False, " (no answer)")
        s.close()


def finish_burst(s, key, first):
    if not first:
        L.add(key, "burst", 0, None, None, False, " (closed)")
        s.close()
        return
    st = status_of(first)
    if st != 200:
        L.add(key, "burst", st, None, None, False)
        s.close()
        return
    data = b"x" * 10
    got = b""
    try:
        s.settimeout(5)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        while True:
            d = s.recv(4096)
            if not d:
                break
            got += d
    except OSError:
        pass
    s.close()
    L.add(key, "burst", 200, 10, len(got), got == data)


# ------------------------------------------------------------------ faults

GOOD = ["deny any forbidden\\.test *", "allow authenticated .* * sni=off"]
GOOD2 = ["# variant", "deny any forbidden\\.test *", "allow authenticated .* * sni=off"]
BROKEN = ["deny any forbidden\\.test *", "allow authenticated ( * sni=off"]


def reloader(gw, counts):
    n = 0
    path = os.path.join(gw.dir, "policy.rules")
    while not STOP.wait(2.0):
        n += 1
        lines = BROKEN if n % 3 == 0 else (GOOD if n % 2 else GOOD2)
        with open(path + ".tmp", "w") as f:
            f.write("\n".join(lines) + "\n")
        os.rename(path + ".tmp", path)
        gw.signal(signal.SIGHUP)
        counts["broken" if lines is BROKEN else "good"] += 1


def sampler(pid, samples):
    while not STOP.wait(1.0):
        try:
            with open("/proc/%d/status" % pid) as f:
                rss = int([l for l in f if l.startswith("VmRSS:")][0].split()[1])
            fds = len(os.listdir("/proc/%d/fd" % pid))
        except (OSError, IndexError):
            continue
        samples.append((time.monotonic(), L.phase, rss, fds))


# ------------------------------------------------------------------ run

def main():
    T = ARGS.seconds
    scale = T / 600.0
    dur = {
        "warmup": max(8.0, 60 * scale),
        "rsyslog_down": max(8.0, 20 * scale * 1.0) if T < 600 else 20.0,
        "ldap_frozen": max(5.0, 30 * scale),
        "ldap_killed": max(5.0, 30 * scale),
        "burst": max(8.0, 40 * scale),
    }
    dur["cooldown"] = max(8.0, T - sum(dur.values()))
    dns = DnsStub().start()
    origin = HttpOrigin("127.0.0.2").start()
    echo = Echo("127.0.0.2").start()
    slapd = Slapd().start()
    rs = Rsyslogd(relp=ARGS.transport == "relp")
    rs.start()
    conf = {"max_connections": str(MAX_CONNECTIONS), "auth_cache_ttl": "1",
            "idle_timeout": "60", "audit_on_failure": "allow", "connect_timeout": "3"}
    if ARGS.transport == "relp":
        conf["audit_relp"] = "127.0.0.1:%d" % rs.relp_port
    else:
        conf["audit_syslog_socket"] = rs.sock_path
    env = None
    if ARGS.sanitizer:
        env = {"ASAN_OPTIONS": "detect_leaks=1:halt_on_error=1:abort_on_error=0:quarantine_size_mb=16",
               "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1",
               "LSAN_OPTIONS": "suppressions=%s" % os.path.join(HERE, "lsan.supp")}
    gw = Gateway(dns.port, conf=conf, policy=GOOD, workers=2, nofile=NOFILE,
                 syslog_collector=False, env=env)
    gw.conf_overrides.update(slapd.gateway_conf(gw.dir))
    failures = []
    samples, reloads = [], collections.Counter()
    t_start = time.monotonic()
    try:
        gw.start()
        threads = [threading.Thread(target=request_loop, args=(gw, origin, i), daemon=True)
                   for i in range(2)]
        threads.append(threading.Thread(target=tunnel_loop, args=(gw, echo), daemon=True))
        longs = [LongTunnel(gw, echo) for _ in range(LONG_TUNNELS)]
        threads.append(threading.Thread(target=reloader, args=(gw, reloads), daemon=True))
        threads.append(threading.Thread(target=sampler, args=(gw.proc.pid, samples),
                                        daemon=True))
        for t in threads:
            t.start()

        def phase(name, seconds, begin=None, end=None):
            L.phase = name
            print("soak: %6.1f s  %s (%.0f s)" % (time.monotonic() - t_start, name, seconds),
                  flush=True)
            if begin:
                begin()
            t_end = time.monotonic() + seconds
            while time.monotonic() < t_end:
                for lt in longs:
                    lt.ping()
                time.sleep(min(1.0, max(0.0, t_end - time.monotonic())))
            if end:
                end()

        phase("warmup", dur["warmup"])
        phase("rsyslog_down", dur["rsyslog_down"], rs.stop, rs.start)
        phase("ldap_frozen", dur["ldap_frozen"], slapd.freeze, slapd.thaw)

        def kill_slapd():
            os.kill(slapd.proc.pid, signal.SIGKILL)
            slapd.proc.wait(10)
        phase("ldap_killed", dur["ldap_killed"], kill_slapd, slapd.start)
        bt = threading.Thread(target=burst, args=(gw, echo), daemon=True)
        phase("burst", dur["burst"], bt.start, lambda: bt.join(40))
        phase("cooldown", dur["cooldown"])
        STOP.set()
        for t in threads:
            t.join(30)
        for lt in longs:
            lt.finish()
        time.sleep(1.0)
        idle_fds = len(os.listdir("/proc/%d/fd" % gw.proc.pid))
        rc = gw.stop()
    finally:
        STOP.set()
    elapsed = time.monotonic() - t_start
    # Let the receiver write everything (the stop record comes last).
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(r.get("event") == "stop" for r in rs.records()):
        time.sleep(0.2)
    time.sleep(0.5)
    records = rs.records()
    stderr = gw.stderr()

    # ---------------------------------------------------------- account
    by_id, dups = {}, 0
    for r in records:
        if "_unparsable" in r:
            failures.append("unparsable line: %r" % r["_unparsable"][:200])
            continue
        if r["id"] in by_id:
            dups += 1
            if by_id[r["id"]] != r:
                failures.append("two different records share id %s" % r["id"])
            continue
        by_id[r["id"]] = r
    lost = sum(r.get("lost", 0) for r in by_id.values() if r.get("event") == "audit_loss")
    by_key = collections.defaultdict(list)
    for r in by_id.values():
        if r.get("event") == "request":
            by_key[r.get("url")].append(r)
        elif r.get("event") == "tunnel":
            by_key[(r.get("client_ip"), r.get("client_port"))].append(r)
    missing, status_bad, bytes_bad, extra = [], [], [], []
    for key, op in L.ops.items():
        recs = by_key.get(key, [])
        if not recs:
            missing.append((key, op))
            continue
        if len(recs) > 1:
            extra.append((key, [x["id"] for x in recs]))
        r = recs[0]
        if op["status"] and r["status"] != op["status"]:
            status_bad.append((key, op["status"], r["status"], r.get("reason")))
        if op["complete"]:
            if op["up"] is not None and r["bytes_up"] != op["up"]:
                bytes_bad.append((key, "up", op["up"], r["bytes_up"]))
            if op["down"] is not None and r["bytes_down"] != op["down"]:
                bytes_bad.append((key, "down", op["down"], r["bytes_down"]))
    if len(missing) > lost:
        failures.append("%d operations have no record, and loss records count only %d: %r" % (
            len(missing), lost, missing[:5]))
    if ARGS.transport == "relp" and (missing or lost):
        failures.append("RELP: %d records missing, %d in loss records (must be 0)" % (
            len(missing), lost))
    for what, lst in (("more than one record", extra), ("status differs", status_bad),
                      ("byte counts differ", bytes_bad)):
        if lst:
            failures.append("%d operations with %s: %r" % (len(lst), what, lst[:5]))
    for lt in longs:
        if lt.broken:
            failures.append("long tunnel %r broke: %s" % (lt.key, lt.broken))
    if rc not in (0, None):
        failures.append("egressd exited with %r" % rc)
    if ARGS.sanitizer:
        for needle in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "SUMMARY: UndefinedBehaviorSanitizer", "SUMMARY: AddressSanitizer"):
            if needle in stderr:
                i = stderr.index(needle)
                failures.append("sanitizer report: %s" % stderr[max(0, i - 200):i + 1500])
                break

    # RSS and fds after warm-up: the last third may not exceed the first by more
    # than what a full audit queue and allocator slack explain.
    post = [s for s in samples if s[1] != "warmup"]
    rss_note = fds_note = "n/a"
    if len(post) >= 6:
        third = max(2, len(post) // 3)
        first, last = post[:third], post[-third:]
        r0, r1 = max(s[2] for s in first), max(s[2] for s in last)
        f0 = min(s[3] for s in samples)
        rss_limit = r0 * (1.5 if ARGS.sanitizer else 1.25) + 16 * 1024
        rss_note = "first third max %d KiB, last third max %d KiB (limit %d)" % (
            r0, r1, rss_limit)
        fds_note = "min %d, max %d, idle at end %d" % (f0, max(s[3] for s in samples), idle_fds)
        if r1 > rss_limit:
            failures.append("RSS grew: %s" % rss_note)
        if idle_fds > f0 + 4:
            failures.append("descriptors not given back: %s" % fds_note)

    # ---------------------------------------------------------- table
    phases = ["warmup", "rsyslog_down", "ldap_frozen", "ldap_killed", "burst", "cooldown", "all"]
    labels = sorted({lab for p in L.outcomes.values() for lab in p})
    print("\nsoak %s%s: %.0f s, egressd pid %d, %d reloads (%d with a broken policy)" % (
        ARGS.transport, " (ASan+UBSan)" if ARGS.sanitizer else "", elapsed, gw.proc.pid,
        sum(reloads.values()), reloads["broken"]))
    w = max([len(x) for x in labels] + [10])
    print("%-*s %s" % (w, "outcome", " ".join("%12s" % p for p in phases)))
    for lab in labels:
        print("%-*s %s" % (w, lab, " ".join("%12d" % L.outcomes[p][lab] for p in phases)))
    print("%-*s %s" % (w, "total", " ".join("%12d" % sum(L.outcomes[p].values()) for p in phases)))
    print("\nrecords  expected %d  received %d (distinct, matched %d)  lost (in audit_loss) %d  "
          "missing %d  duplicated %d  audit_loss records %d" % (
              len(L.ops), len(by_id), len(L.ops) - len(missing), lost, len(missing), dups,
              sum(1 for r in by_id.values() if r.get("event") == "audit_loss")))
    print("status mismatches %d  byte mismatches %d  long tunnels %d, broken %d" % (
        len(status_bad), len(bytes_bad), len(longs), sum(1 for lt in longs if lt.broken)))
    print("RSS  %s" % rss_note)
    print("fds  %s" % fds_note)
    for line in stderr.splitlines():
        if "audit:" in line:
            print("log  " + line[:220])
    for x in (gw, rs, slapd, echo, origin, dns):
        try:
            x.cleanup() if hasattr(x, "cleanup") else x.stop()
        except Exception:
            pass
    if failures:
        print("\nsoak FAILED:")
        for f in failures:
            print("  - " + f[:3000])
        return 1
    print("\nsoak ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
