"""The daemon as an operator meets it: `-t` and `-V`, configuration errors as
FILE:LINE, an IPv6 listener, SIGHUP reload keeping established tunnels."""

import os
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from harness import gateway as gwmod
from harness.client import Conn, connect_bytes, echo_through
from harness.util import fmt_records


def run(args, timeout=10):
    return subprocess.run([gwmod.BINARY] + args, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout)


@pytest.fixture
def confdir():
    d = tempfile.mkdtemp(prefix="egw-conf-")
    yield d
    import shutil
    shutil.rmtree(d, ignore_errors=True)


def write(d, name, text):
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(text)
    return p


def test_version():
    r = run(["-V"])
    assert r.returncode == 0 and r.stdout.strip(), (r.returncode, r.stdout, r.stderr)


def test_check_ok(confdir):
    write(confdir, "policy.rules", "# comment\nallow any .* 80,443\n\nallow any example\\.com *\n")
    conf = write(confdir, "egressd.conf", "listen 127.0.0.1:3128\npolicy_file policy.rules\n")
    r = run(["-t", "-c", conf])
    assert r.returncode == 0, r
    out = (r.stdout + r.stderr).decode()
    assert "%s: ok (2 rules)" % conf in out, "expected `%s: ok (2 rules)`, got %r" % (conf, out)


@pytest.mark.parametrize("text,line", [
    ("listen 127.0.0.1:3128\npolicy_file policy.rules\nno_such_key 1\n", 3),
    ("listen 127.0.0.1:3128\npolicy_file policy.rules\nworkers\n", 3),
    ("listen 127.0.0.1:3128\npolicy_file policy.rules\n\nmax_connections -5\n", 4),
    ("listen 127.0.0.1:99999\npolicy_file policy.rules\n", 1),
    ("listen 127.0.0.1:3128\npolicy_file policy.rules\nallow_internal 127.0.0.1/33\n", 3),
], ids=["unknown-key", "missing-value", "out-of-range", "bad-port", "bad-cidr"])
def test_config_errors_name_file_and_line(confdir, text, line):
    write(confdir, "policy.rules", "allow any .* *\n")
    conf = write(confdir, "egressd.conf", text)
    for args in (["-t", "-c", conf], ["-c", conf]):
        r = run(args, timeout=10)
        out = (r.stdout + r.stderr).decode()
        assert r.returncode != 0, "%s accepted a bad configuration: %r" % (args, out)
        assert "%s:%d:" % (conf, line) in out, "expected `%s:%d: ...` in %r" % (conf, line, out)


def test_policy_error_refused(confdir):
    write(confdir, "policy.rules", "allow any .* *\nallow any ([ *\n")
    conf = write(confdir, "egressd.conf", "listen 127.0.0.1:3128\npolicy_file policy.rules\n")
    r = run(["-t", "-c", conf])
    out = (r.stdout + r.stderr).decode()
    assert r.returncode == 1, (r.returncode, out)
    assert "policy.rules:2:" in out, "expected the policy error at policy.rules:2, got %r" % out


def test_ipv6_listener(make_gateway, echo):
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        probe.bind(("::1", 0))
        port6 = probe.getsockname()[1]
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    g = make_gateway(conf={"listen": "[::1]:%d" % port6})
    s = socket.create_connection(("::1", port6), timeout=5)
    c = Conn.__new__(Conn)
    c.sock, c.buf, c.eof, c.reset = s, b"", False, False
    with c:
        local = s.getsockname()[1]
        c.send(connect_bytes("echo.test:%d" % echo.port))
        r = c.read_head()
        assert r.status == 200, "CONNECT on the [::1] listener: %s" % r.describe()
        assert echo_through(c, b"v6") == b"v6"
    recs = g.wait_audit(lambda r: r.get("client_port") == local)
    assert recs and recs[0].get("client_ip") == "::1", fmt_records(recs)


def test_sighup_reload_keeps_tunnels(make_gateway, echo, rule_opts):
    g = make_gateway(policy=["allow any echo\\.test *" + rule_opts])
    with Conn(g.port) as c:
        c.send(connect_bytes("echo.test:%d" % echo.port))
        assert c.read_head().status == 200
        assert echo_through(c, b"one") == b"one"
        with open(os.path.join(g.dir, "policy.rules"), "w") as f:
            f.write("allow any origin\\.test *%s\n" % rule_opts)
        g.signal(signal.SIGHUP)
        time.sleep(0.5)
        assert g.alive(), "egressd died on SIGHUP:\n%s" % g.stderr()[-2000:]
        assert echo_through(c, b"two") == b"two", "an established tunnel was affected by a reload"
    with Conn(g.port) as c2:
        c2.send(connect_bytes("echo.test:%d" % echo.port))
        r = c2.read_head()
        assert r.status == 403, "after the reload echo.test is no longer allowed: %s" % r.describe()
    reloads = g.wait_audit(lambda r: r.get("event") == "reload", timeout=2)
    assert reloads, "no `reload` audit record:\n%s" % fmt_records(g.audit())


def test_sighup_bad_policy_keeps_old(make_gateway, echo, rule_opts):
    g = make_gateway(policy=["allow any echo\\.test *" + rule_opts])
    with open(os.path.join(g.dir, "policy.rules"), "w") as f:
        f.write("allow any echo\\.test *\nfrobnicate any .* *\n")
    g.signal(signal.SIGHUP)
    time.sleep(0.5)
    assert g.alive()
    with Conn(g.port) as c:
        c.send(connect_bytes("echo.test:%d" % echo.port))
        r = c.read_head()
        assert r.status == 200, "a refused reload must keep the old policy: %s" % r.describe()
    assert "policy.rules:2:" in g.stderr(), "the refused policy's error is not logged:\n%s" % g.stderr()[-2000:]


def test_reloads_under_load(make_gateway, echo, origin, rule_opts):
    """SIGHUP every 0.15 s while clients open tunnels and send requests: every
    answer is a normal one and the daemon survives (reload = build, then swap)."""
    import threading
    policies = ["allow any (echo|origin)\\.test *" + rule_opts,
                "# reloaded\nallow any echo\\.test *%s\nallow any origin\\.test *%s" % (rule_opts, rule_opts)]
    g = make_gateway(policy=[policies[0]])
    stop = threading.Event()
    errors, done = [], [0]

    def tunnels():
        while not stop.is_set() and len(errors) < 5:
            try:
                with Conn(g.port, timeout=5) as c:
                    c.send(connect_bytes("echo.test:%d" % echo.port))
                    r = c.read_head(timeout=5)
                    if r.status != 200 or echo_through(c, b"reload", timeout=5) != b"reload":
                        errors.append(r.describe())
                    done[0] += 1
            except Exception as e:   # reported below
                errors.append(repr(e))

    def requests():
        while not stop.is_set() and len(errors) < 5:
            try:
                with Conn(g.port, timeout=5) as c:
                    for _ in range(5):
                        c.send(b"GET http://origin.test:%d/bytes/64 HTTP/1.1\r\nHost: origin.test:%d\r\n\r\n"
                               % (origin.port, origin.port))
                        r = c.read_response(timeout=5)
                        if r.status != 200:
                            errors.append(r.describe())
                        done[0] += 1
            except Exception as e:   # reported below
                errors.append(repr(e))

    threads = [threading.Thread(target=f, daemon=True) for f in (tunnels, tunnels, requests, requests)]
    for t in threads:
        t.start()
    try:
        for i in range(20):
            with open(os.path.join(g.dir, "policy.rules"), "w") as f:
                f.write(policies[i % 2] + "\n")
            g.signal(signal.SIGHUP)
            time.sleep(0.15)
            assert g.alive(), "egressd died during reload %d:\n%s" % (i, g.stderr()[-2000:])
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    assert not errors, "%d failures during reloads (of %d exchanges); first: %r" % (len(errors), done[0], errors[:3])
    assert done[0] > 20, "only %d exchanges completed in 3 s of reloads" % done[0]
    reloads = g.audit(event="reload")
    assert len(reloads) >= 15, "expected a reload record per SIGHUP (20 sent), got %d" % len(reloads)


def test_audit_syslog_facility_and_tag(make_gateway, echo):
    g = make_gateway(conf={"audit_facility": "local3", "audit_tag": "egtest"})
    with Conn(g.port) as c:
        port = c.local_port
        c.send(connect_bytes("echo.test:%d" % echo.port))
        assert c.read_head().status == 200
    g.wait_audit(lambda r: r.get("client_port") == port)
    msgs = [m for m in g.syslog.messages if b'"client_port":%d' % port in m.replace(b" ", b"")]
    if not msgs:
        pytest.skip("audit records are not on the syslog socket in this build")
    m = msgs[0]
    assert m.startswith(b"<") and b">" in m[:5], m[:80]
    pri = int(m[1:m.index(b">")])
    assert pri >> 3 == 19, "facility local3 (19) expected, PRI %d in %r" % (pri, m[:80])
    assert b" egtest[" in m[:80] or b" egtest:" in m[:80], "tag egtest expected in %r" % m[:80]


def test_audit_unavailable_deny_and_allow(make_gateway, echo):
    """audit_on_failure deny: with nobody on the syslog socket, new tunnels are
    refused 503; allow: they go on."""
    results = {}
    for mode in ("deny", "allow"):
        g = make_gateway(conf={"audit_on_failure": mode})
        g.syslog.stop()                              # nobody reads the socket any more
        os.unlink(g.audit_sock_path)
        statuses = []
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            with Conn(g.port) as c:
                c.send(connect_bytes("echo.test:%d" % echo.port))
                statuses.append(c.read_head().status)
            if mode == "deny" and statuses[-1] == 503:
                break
            if mode == "allow" and len(statuses) >= 5:
                break
            time.sleep(0.2)
        results[mode] = statuses
    assert results["deny"] and results["deny"][-1] == 503, \
        "audit_on_failure deny with the syslog socket gone: statuses %r" % results["deny"]
    assert all(s == 200 for s in results["allow"]), \
        "audit_on_failure allow must keep serving: statuses %r" % results["allow"]
