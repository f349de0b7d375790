"""What one instance costs the directory under a mixed load, for sizing a fleet.

    python3 tests/bench/fleet_sizing.py [SECONDS] [USERS] [THREADS]

A slapd (the integration harness's directory plus USERS bench users) and one
egressd with `auth ldap` and the default caches (auth_cache_ttl 300,
auth_negative_ttl 5), policy `allow authenticated`.  THREADS clients make
CONNECT tunnels and absolute-form GETs for SECONDS, each with the
credentials of a user drawn from a skewed distribution (a few users make most
of the requests, as in an office: user i is drawn with weight 1/(i+1)), and a
few wrong passwords.  Reported: requests/s, the cache hit rate read from
/metrics, directory exchanges per second, and what N instances behind a
balancer put on the directory (each has its own cache, and a balancer spreads
each user over all of them, so the exchanges multiply by N until every
instance has every active user cached).

Everything runs on 127.0.0.1; every process is stopped by PID on exit; the
load is bounded in time.  Standard library only (plus tests/integration's
harness).
"""

import base64
import os
import random
import re
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)

from harness import slapd as hs  # noqa: E402
from harness.client import Conn, connect_bytes, echo_through, request_bytes  # noqa: E402
from harness.gateway import Gateway, free_port  # noqa: E402
from harness.servers import DnsStub, EchoServer, HttpOrigin  # noqa: E402
from harness.util import http_get  # noqa: E402
import auth_bench  # noqa: E402

import subprocess  # noqa: E402


def metric(port, name):
    _, data = http_get(port, "/metrics", timeout=5)
    m = re.search(rb"(?m)^%s (\d+)" % name.encode(), data)
    return int(m.group(1)) if m else 0


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 30
    users = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 8
    tmp = tempfile.mkdtemp(prefix="egressd-sizing-")
    slapd = hs.Slapd()
    dns = DnsStub().start()
    echo = EchoServer("127.0.0.2").start()
    origin = HttpOrigin("127.0.0.2").start()
    g = None
    try:
        slapd.start()
        ldif = os.path.join(tmp, "bench.ldif")
        with open(ldif, "w") as f:
            f.write(auth_bench.bench_ldif(users))
        subprocess.run(["ldapadd", "-x", "-H", slapd.uri, "-D", hs.ROOT_DN, "-w",
                        hs.ROOT_PASSWORD, "-f", ldif], check=True, capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=300)
        mport = free_port()
        g = Gateway(dns.port, policy=["allow authenticated .* * sni=off"], workers=1,
                    conf={"metrics_listen": "127.0.0.1:%d" % mport})
        g.conf_overrides.update(slapd.gateway_conf(g.dir))
        g.start()
        weights = [1.0 / (i + 1) for i in range(users)]
        stop = time.monotonic() + seconds
        done = [0]
        lock = threading.Lock()

        def client(seed):
            rnd = random.Random(seed)
            while time.monotonic() < stop:
                uid = "bench%d" % rnd.choices(range(users), weights)[0]
                pw = auth_bench.PASSWORD if rnd.random() > 0.01 else "wrong"
                cred = base64.b64encode(("%s:%s" % (uid, pw)).encode()).decode()
                hdr = ("Proxy-Authorization", "Basic " + cred)
                try:
                    c = Conn(g.port, timeout=10)
                    if rnd.random() < 0.5:
                        c.send(connect_bytes("echo.test:%d" % echo.port,
                                             [("Host", "echo.test:%d" % echo.port), hdr]))
                        if c.read_head().status == 200:
                            echo_through(c, b"sizing", timeout=10)
                    else:
                        c.send(request_bytes("GET", "http://origin.test:%d/echo" % origin.port,
                                             [("Host", "origin.test:%d" % origin.port), hdr,
                                              ("Connection", "close")]))
                        c.read_response()
                    c.close()
                except Exception:  # noqa: BLE001 - counted as done all the same
                    pass
                with lock:
                    done[0] += 1

        t0 = time.monotonic()
        ts = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(seconds + 60)
        took = time.monotonic() - t0
        hits = metric(mport, "egressd_auth_cache_hits_total")
        misses = metric(mport, "egressd_auth_cache_misses_total")
        entries = metric(mport, "egressd_auth_cache_entries")
        rate = done[0] / took
        hit = hits / max(1, hits + misses)
        print("sizing: %d users (weights 1/(i+1)), %d client threads, %.0f s" % (users, threads, took))
        print("sizing: %.0f authenticated requests/s; cache hits %d, misses %d (hit rate %.1f%%), "
              "%d entries" % (rate, hits, misses, 100 * hit, entries))
        print("sizing: directory exchanges (search + bind + group search each): %.1f/s for one "
              "instance over the whole run (%.2f per request)" % (misses / took, misses / max(1, done[0])))
        print("sizing: steady state per instance: at most one exchange per active user per "
              "auth_cache_ttl (300 s) = %.1f/s for %d users; N instances: N x that" %
              (users / 300.0, users))
    finally:
        if g is not None:
            g.cleanup()
        origin.stop()
        echo.stop()
        dns.stop()
        slapd.cleanup()


if __name__ == "__main__":
    main()
