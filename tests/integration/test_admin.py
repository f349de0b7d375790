"""Operating the running gateway: the admin socket (`egressctl status`, `tunnels`,
`reload`) and `/metrics`.

- a tunnel is listed (with live, byte-exact counters) while open, and not after;
- counters move by exactly the expected amounts after a scripted set of requests;
- `reload` good and bad: output and exit status;
- `/metrics` parses with a small parser of the text exposition format 0.0.4 written
  here, and its counters agree with `status --json`; anything else is 404;
- admin socket abuse (a 1 MiB line, a slow client, garbage, 50 connections at
  once) does not disturb an open tunnel, and the daemon still answers after;
- egressctl against a stopped daemon or a configuration without admin_socket;
- socket safety: a planted symlink stops the start, a stale socket is replaced,
  a live one (another daemon) is refused; the socket's mode is 0660.
"""

import json
import math
import os
import random
import re
import socket
import stat
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from harness import gateway as gwmod
from harness.client import Conn, echo_through, open_tunnel, request_bytes
from harness.gateway import GatewayError, free_port
from harness.servers import pattern_bytes
from harness.util import read_to_eof

EGRESSCTL = os.environ.get("EGRESSCTL", os.path.join(gwmod.REPO, "build", "egressctl"))


# ------------------------------------------------------------------ helpers

def admin_conf():
    return {"admin_socket": "admin.sock", "metrics_listen": "127.0.0.1:%d" % free_port()}


@pytest.fixture
def agw(make_gateway, rule_opts):
    """A gateway with admin_socket and metrics_listen; forbidden.test is denied
    by policy (line 1), everything else allowed (line 2)."""
    conf = admin_conf()
    g = make_gateway(conf=conf, policy=["deny any forbidden\\.test *",
                                        "allow any .* *" + rule_opts])
    g.metrics_port = int(conf["metrics_listen"].rsplit(":", 1)[1])
    return g


def conf_path(gw):
    return os.path.join(gw.dir, "egressd.conf")


def sock_path(gw):
    return os.path.join(gw.dir, "admin.sock")


def ctl(gw, *args, conf=None, timeout=15):
    return subprocess.run([EGRESSCTL, "-c", conf or conf_path(gw)] + list(args),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout)


def status(gw):
    r = ctl(gw, "status", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def tunnels(gw):
    r = ctl(gw, "tunnels", "--json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def wait_for(pred, timeout=5.0, step=0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() > deadline:
            return v
        time.sleep(step)


def raw_admin(gw, line, timeout=5.0):
    """One exchange on the admin socket, the protocol spoken directly."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(sock_path(gw))
    s.sendall(line)
    return read_to_eof(s)


def scrape(gw, path="/metrics", method="GET"):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (gw.metrics_port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def get(gw, url, host_header):
    """One absolute-form request on its own connection; returns the status."""
    with Conn(gw.port) as c:
        c.send(request_bytes("GET", url, [("Host", host_header), ("Connection", "close")]))
        return c.read_response().status


# ------------------------------------------------------------------ exposition parser

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE_RE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)$" % _NAME)
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
_TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


def parse_exposition(text):
    """Check the text exposition format 0.0.4 and return (types, samples):
    samples maps (name, ((label, value), ...)) to a float.  Every line is a
    comment, blank, or `name{labels} value`; a family's TYPE precedes its
    samples; counters end in _total; histogram buckets are cumulative with
    le="+Inf" equal to _count."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    types, helps, samples, seen_families = {}, {}, {}, set()
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d: %r" % (n, line)
        if line == "":
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                assert re.fullmatch(_NAME, name), where
                if parts[1] == "TYPE":
                    assert name not in types, "second TYPE: " + where
                    assert name not in seen_families, "TYPE after samples: " + where
                    assert len(parts) == 4 and parts[3] in _TYPES, where
                    types[name] = parts[3]
                else:
                    assert name not in helps, "second HELP: " + where
                    helps[name] = parts[3] if len(parts) == 4 else ""
            continue
        m = _SAMPLE_RE.match(line)
        assert m, "not a sample: " + where
        name, label_text, value = m.group(1), m.group(2), m.group(3)
        labels = []
        if label_text:
            pos = 0
            while pos < len(label_text):
                lm = _LABEL_RE.match(label_text, pos)
                assert lm, "bad labels: " + where
                labels.append((lm.group(1), lm.group(2)))
                pos = lm.end()
        fam = name
        for suffix in ("_bucket", "_sum", "_count"):
            if name.endswith(suffix) and types.get(name[:-len(suffix)]) == "histogram":
                fam = name[:-len(suffix)]
        assert fam in types, "sample before its TYPE: " + where
        if types[fam] == "counter":
            assert name.endswith("_total"), "counter without _total: " + where
        v = float(value)        # also accepts +Inf/NaN spelled the Prometheus way
        key = (name, tuple(sorted(labels)))
        assert key not in samples, "duplicate sample: " + where
        samples[key] = v
        seen_families.add(fam)
    for fam, t in types.items():
        if t != "histogram":
            continue
        buckets = sorted(((float(dict(l)["le"]), v) for (nm, l), v in samples.items()
                          if nm == fam + "_bucket"), key=lambda x: x[0])
        assert buckets and math.isinf(buckets[-1][0]), fam + ": no +Inf bucket"
        counts = [v for _, v in buckets]
        assert counts == sorted(counts), fam + ": buckets not cumulative"
        assert buckets[-1][1] == samples[(fam + "_count", ())], fam + ": +Inf != _count"
        assert (fam + "_sum", ()) in samples, fam + ": no _sum"
    return types, samples


def metric(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


# ------------------------------------------------------------------ tests

def test_tunnel_listed_while_open_and_not_after(agw, echo):
    c, resp = open_tunnel(agw.port, "echo.test:%d" % echo.port)
    assert resp.status == 200
    data = pattern_bytes(100000, seed=7)
    assert echo_through(c, data) == data
    port = c.local_port         # read now: the socket is closed before the last look
    mine = lambda: [t for t in tunnels(agw) if t["client_port"] == port]
    got = wait_for(lambda: mine() and mine()[0]["bytes_down"] == len(data) and mine())
    assert got, tunnels(agw)
    t = got[0]
    assert t["host"] == "echo.test" and t["port"] == echo.port
    assert t["client_ip"] == "127.0.0.1" and t["dst_ip"] == "127.0.0.2"
    assert t["user"] is None and t["sni"] is None
    assert t["bytes_up"] == len(data) and t["bytes_down"] == len(data)
    assert t["age_seconds"] >= 0 and re.fullmatch(r"[0-9a-f]{16}-1", t["id"])
    s = status(agw)
    assert s["tunnels"]["open"] == 1 and s["connections"]["open"] >= 1
    text = ctl(agw, "tunnels")
    assert text.returncode == 0 and t["id"] in text.stdout and "echo.test:%d" % echo.port in text.stdout
    for key in ("age", "bytes"):
        r = ctl(agw, "tunnels", "--sort", key)
        assert r.returncode == 0 and t["id"] in r.stdout
    assert ctl(agw, "tunnels", "--sort", "color").returncode == 2
    human = ctl(agw, "status")
    assert human.returncode == 0 and "1 open" in human.stdout and "policy.rules" in human.stdout
    c.close()
    assert wait_for(lambda: not mine()), tunnels(agw)
    s = status(agw)
    assert s["tunnels"]["open"] == 0 and s["tunnels"]["total"] == 1
    assert s["requests"]["tunnel"] == 1 and s["decisions"]["ok"] == 1
    # The record's bytes moved into the totals when the tunnel ended.
    assert s["bytes"]["up"] == len(data) and s["bytes"]["down"] == len(data)


def test_counters_move_by_exact_amounts(agw, origin):
    before = status(agw)
    for _ in range(3):
        assert get(agw, "http://origin.test:%d/bytes/100" % origin.port, "origin.test") == 200
    for _ in range(2):
        assert get(agw, "http://forbidden.test:%d/bytes/10" % origin.port, "forbidden.test") == 403
    with Conn(agw.port) as c:
        c.send(b"THIS IS NOT HTTP\r\n\r\n")
        assert c.read_response().status == 400
    want = before["requests"]["total"] + 6
    after = wait_for(lambda: (lambda s: s["requests"]["total"] >= want and s)(status(agw)))
    assert after, status(agw)
    time.sleep(0.2)
    after = status(agw)
    delta = {k: after["decisions"][k] - before["decisions"][k] for k in after["decisions"]}
    assert delta == dict({k: 0 for k in delta}, ok=3, policy=2, bad_request=1), delta
    assert after["requests"]["request"] - before["requests"]["request"] == 6
    assert after["requests"]["tunnel"] == before["requests"]["tunnel"]
    assert after["connections"]["accepted"] - before["connections"]["accepted"] == 6
    assert after["allowed"] - before["allowed"] == 3 and after["denied"] - before["denied"] == 3
    assert after["connections"]["open"] == 0
    assert after["workers"] == 2 and after["policy"]["rules"] == 2
    assert after["audit"]["lost_total"] == 0


def test_reload_good_and_bad(agw, origin):
    gen = status(agw)["policy"]["generation"]
    r = ctl(agw, "reload")
    assert (r.returncode, r.stdout) == (0, "ok (2 rules)\n"), r
    assert status(agw)["policy"]["generation"] == gen + 1
    # A bad file: every error with FILE:LINE, exit 1, the old policy stays.
    with open(os.path.join(agw.dir, "policy.rules"), "w") as f:
        f.write("allow any origin\\.test *\nallow bogus .* *\npermit any .* 80\n")
    r = ctl(agw, "reload")
    assert r.returncode == 1, r
    out = r.stdout + r.stderr
    assert "policy.rules:2:" in out and "policy.rules:3:" in out, out
    assert "ok" not in r.stdout
    s = status(agw)
    assert s["policy"]["generation"] == gen + 1 and s["policy"]["rules"] == 2
    assert get(agw, "http://forbidden.test:%d/bytes/10" % origin.port, "forbidden.test") == 403
    rj = ctl(agw, "reload", "--json")
    assert rj.returncode == 1 and len(json.loads(rj.stdout)["errors"]) == 2
    # Fixed: one rule now, and the decision follows it.
    with open(os.path.join(agw.dir, "policy.rules"), "w") as f:
        f.write("allow any .* *\n")
    r = ctl(agw, "reload")
    assert (r.returncode, r.stdout) == (0, "ok (1 rules)\n"), r
    assert get(agw, "http://forbidden.test:%d/bytes/10" % origin.port, "forbidden.test") == 200
    # The protocol itself: status line, payload, "." terminator.
    assert raw_admin(agw, b"reload\n") == b"ok\nok (1 rules)\n.\n"
    assert raw_admin(agw, b"frobnicate\n").startswith(b"error\n")


def test_metrics_parse_and_agree_with_status(agw, origin, echo):
    assert get(agw, "http://origin.test:%d/bytes/1000" % origin.port, "origin.test") == 200
    assert get(agw, "http://forbidden.test:%d/bytes/10" % origin.port, "forbidden.test") == 403
    c, resp = open_tunnel(agw.port, "echo.test:%d" % echo.port)
    assert resp.status == 200
    data = pattern_bytes(5000, seed=3)
    assert echo_through(c, data) == data
    c.close()
    assert wait_for(lambda: status(agw)["requests"]["total"] == 3)
    time.sleep(0.2)

    code, ctype, text = scrape(agw)
    assert code == 200 and ctype.startswith("text/plain") and "version=0.0.4" in ctype
    types, samples = parse_exposition(text)
    s = status(agw)
    assert metric(samples, "egressd_build_info", version=s["version"]) == 1
    assert types["egressd_tunnel_setup_seconds"] == "histogram"
    assert types["egressd_auth_ldap_seconds"] == "histogram"
    assert metric(samples, "egressd_tunnel_setup_seconds_count") == 1
    assert metric(samples, "egressd_requests_total", kind="tunnel") == s["requests"]["tunnel"] == 1
    assert metric(samples, "egressd_requests_total", kind="request") == s["requests"]["request"] == 2
    for reason, n in s["decisions"].items():
        decision = "allow" if reason == "ok" else "deny"
        assert metric(samples, "egressd_decisions_total", decision=decision, reason=reason) == n
    assert metric(samples, "egressd_bytes_total", direction="up") == s["bytes"]["up"]
    assert metric(samples, "egressd_bytes_total", direction="down") == s["bytes"]["down"]
    # (the harness's readiness probe is an accepted connection too)
    assert metric(samples, "egressd_connections_accepted_total") == s["connections"]["accepted"] >= 3
    assert metric(samples, "egressd_tunnels_total") == s["tunnels"]["total"] == 1
    assert metric(samples, "egressd_tunnels_open") == 0
    assert metric(samples, "egressd_policy_generation") == s["policy"]["generation"]
    assert metric(samples, "egressd_policy_rules") == 2
    assert metric(samples, "egressd_audit_records_sent_total") >= 0
    assert metric(samples, "egressd_workers") == 2
    for must in ("egressd_dns_failures_total", "egressd_policy_errors_total",
                 "egressd_auth_cache_hits_total", "egressd_auth_cache_misses_total",
                 "egressd_audit_records_lost_total", "egressd_audit_queue_records",
                 "egressd_connections_open", "egressd_policy_loaded_timestamp_seconds"):
        assert must in types, must
    # Anything else is 404.
    assert scrape(agw, "/")[0] == 404
    assert scrape(agw, "/metrics/x")[0] == 404
    assert scrape(agw, "/metrics", method="POST")[0] == 404


def test_admin_abuse_does_not_disturb_a_tunnel(agw, echo):
    c, resp = open_tunnel(agw.port, "echo.test:%d" % echo.port)
    assert resp.status == 200
    stop = threading.Event()
    errors, rounds = [], [0]

    def pump():
        i = 0
        try:
            while not stop.is_set():
                data = pattern_bytes(64 * 1024, seed=i)
                if echo_through(c, data, timeout=10) != data:
                    errors.append("round %d not byte-exact" % i)
                    return
                i += 1
                rounds[0] = i
        except Exception as e:     # reported below
            errors.append(repr(e))

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    abusers = []

    def huge_line():
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(sock_path(agw))
        got = b""
        try:
            s.sendall(b"s" * (1 << 20))
        except OSError:
            pass                      # the daemon stops reading and closes
        try:
            while True:
                d = s.recv(4096)
                if not d:
                    break
                got += d
        except OSError:
            pass
        s.close()
        return got

    def slow_client(result):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(10)
        s.connect(sock_path(agw))
        t0 = time.monotonic()
        try:
            for ch in b"status json\n" * 2:
                s.send(bytes([ch]))
                time.sleep(1)
                if time.monotonic() - t0 > 8:
                    break
        except OSError:
            pass
        result.append(time.monotonic() - t0)
        s.close()

    slow = []
    slow_t = threading.Thread(target=slow_client, args=(slow,), daemon=True)
    slow_t.start()
    got = huge_line()
    assert got == b"" or got.startswith(b"error\n"), got[:100]
    rnd = random.Random(7)
    for _ in range(20):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(sock_path(agw))
        try:
            s.sendall(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 3000))))
        except OSError:
            pass
        abusers.append(s)
    for _ in range(50):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        try:
            s.connect(sock_path(agw))
        except OSError:
            pass
        abusers.append(s)
    time.sleep(1.0)
    busy_rounds = rounds[0]
    for s in abusers:
        s.close()
    slow_t.join(15)
    # The slow client was cut off by the 5 s deadline (its sends then fail).
    assert slow and slow[0] < 8.5, slow
    stop.set()
    t.join(20)
    assert not errors, errors
    assert busy_rounds > 0 and rounds[0] > busy_rounds, rounds
    # The tunnel still works and the daemon still answers.
    data = pattern_bytes(200000, seed=99)
    assert echo_through(c, data) == data
    assert status(agw)["tunnels"]["open"] == 1
    c.close()
    assert agw.alive()


def test_egressctl_without_a_daemon(agw, tmp_path):
    assert ctl(agw, "status").returncode == 0
    agw.stop()
    for cmd in ("status", "tunnels", "reload"):
        r = ctl(agw, cmd)
        assert r.returncode != 0
        assert "egressd is not running (no socket at %s)" % sock_path(agw) in r.stderr, r.stderr
    # A configuration without admin_socket says so.
    conf = tmp_path / "egressd.conf"
    (tmp_path / "policy.rules").write_text("allow any .* *\n")
    conf.write_text("listen 127.0.0.1:1\npolicy_file policy.rules\n")
    r = ctl(agw, "status", conf=str(conf))
    assert r.returncode != 0 and "has no admin_socket" in r.stderr, r.stderr
    # "-c" after the command works too.
    r = subprocess.run([EGRESSCTL, "status", "-c", str(conf)], capture_output=True, text=True)
    assert r.returncode != 0 and "has no admin_socket" in r.stderr


def test_socket_mode_and_stale_socket_replaced(make_gateway):
    conf = admin_conf()
    g = make_gateway(conf=conf, start=False)
    path = sock_path(g)
    # A socket file left by a daemon that died: nothing listens on it.
    s = socket.socket(socket.AF_UNIX)
    s.bind(path)
    s.close()
    assert stat.S_ISSOCK(os.lstat(path).st_mode)
    g.start()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    assert ctl(g, "status").returncode == 0
    assert "stale" in g.stderr()
    g.stop()
    assert not os.path.exists(path), "the socket is removed at exit"


def test_planted_symlink_refused(make_gateway, tmp_path):
    g = make_gateway(conf=admin_conf(), start=False)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    os.symlink(str(victim), sock_path(g))
    g._expect_exit = True
    with pytest.raises(GatewayError):
        g.start()
    assert g.wait_exit(5) not in (None, 0)
    assert "exists and is not a socket" in g.stderr(), g.stderr()
    assert victim.read_text() == "precious\n" and os.path.islink(sock_path(g))


def test_live_socket_refused(make_gateway):
    g = make_gateway(conf=admin_conf(), start=False)
    other = socket.socket(socket.AF_UNIX)
    other.bind(sock_path(g))
    other.listen(1)
    try:
        g._expect_exit = True
        with pytest.raises(GatewayError):
            g.start()
        assert "another process is listening" in g.stderr(), g.stderr()
        assert os.path.exists(sock_path(g))
    finally:
        other.close()
