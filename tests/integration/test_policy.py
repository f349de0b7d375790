"""The policy file end to end: 403 and 407 per rule with the deciding rule
FILE:LINE in the audit record, first match, methods= and port ranges; SIGHUP
reloads (good ones change decisions for new requests, bad ones keep the old
policy and say where the file is wrong); a tunnel that stays up and byte-exact
across 20 reloads; and the offline tools (`egressd -t`, `egressctl check`,
`egressctl explain`) as an admin sees them."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from harness import gateway as gwmod
from harness.client import Conn, connect_bytes, echo_through, request_bytes
from harness.servers import pattern_bytes
from harness.util import expect_one_record, fmt_records

EGRESSCTL = os.environ.get("EGRESSCTL", os.path.join(gwmod.REPO, "build", "egressctl"))

# A configuration in which identity rules exist: "auth none" would skip them
# (no 407 is possible there).  Requests carry no credentials, so the 407 is the
# policy's answer before any directory is asked.
LDAP_CONF = {"auth": "ldap", "ldap_uri": "ldap://127.0.0.1:9",
             "ldap_user_base": "ou=people,dc=example,dc=test"}

EXTRA_HOSTS = {"secret.test": "127.0.0.2", "range.test": "127.0.0.2", "v1.test": "127.0.0.2",
               "v2.test": "127.0.0.2"}


# ------------------------------------------------------------------ helpers

def ask(gw, method, target, timeout=10):
    """One request on its own connection: (response head, client port)."""
    with Conn(gw.port, timeout=timeout) as c:
        port = c.local_port
        if method == "CONNECT":
            c.send(connect_bytes(target))
            return c.read_head(timeout), port
        host = target.split("/")[2]
        c.send(request_bytes(method, target, [("Host", host), ("Connection", "close")]))
        return c.read_response(method=method, timeout=timeout), port


def write_policy(gw, lines):
    gw.policy = list(lines)
    with open(os.path.join(gw.dir, "policy.rules"), "w") as f:
        f.write("\n".join(lines) + "\n")


def reload(gw, lines, expect_reason):
    """Write the policy, SIGHUP, and wait for the new `reload` audit record."""
    before = len(gw.audit("reload"))
    write_policy(gw, lines)
    gw.signal(signal.SIGHUP)
    recs = gw.wait_audit(lambda r: r.get("event") == "reload", count=before + 1, timeout=5,
                         settle=0.05)
    assert len(recs) >= before + 1, "no `reload` audit record after SIGHUP:\n%s" % fmt_records(
        gw.audit()[-10:])
    rec = recs[before]
    assert rec.get("reason") == expect_reason, "reload record: expected reason %s: %s" % (
        expect_reason, fmt_records([rec]))
    return rec


def run(argv, timeout=10):
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)


@pytest.fixture
def confdir():
    d = tempfile.mkdtemp(prefix="egw-policy-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def write_conf(d, policy_lines, extra=""):
    conf = os.path.join(d, "egressd.conf")
    with open(conf, "w") as f:
        f.write("listen 127.0.0.1:1\npolicy_file policy.rules\n" + extra)
    with open(os.path.join(d, "policy.rules"), "w") as f:
        f.write("\n".join(policy_lines) + "\n")
    return conf


# ------------------------------------------------------------------ decisions

def rules_for(origin, echo, rule_opts):
    o = origin.port
    return [
        "# line 1: a comment, so rule numbers are not line numbers",
        "deny  any       forbidden\\.test        *",                                   # 2
        "allow group:eng secret\\.test           *",                                   # 3
        "allow any       origin\\.test           %d methods=GET,HEAD" % o,             # 4
        "deny  any       origin\\.test           *",                                   # 5
        "allow any       (.+\\.)?origin\\.test   *",                                   # 6 never reached for origin.test
        "allow any       echo\\.test             1-65535%s" % rule_opts,               # 7
        "allow any       range\\.test            1-9,%d-%d,65535" % (o - 1, o + 1),    # 8
    ]


# id, method, target template, status, reason, rule line (None: default deny)
CASES = [
    ("deny-rule", "GET", "http://forbidden.test:{o}/bytes/1", 403, "policy", 2),
    ("deny-rule-connect", "CONNECT", "forbidden.test:{e}", 403, "policy", 2),
    ("identity-rule-407", "GET", "http://secret.test:{o}/bytes/1", 407, "auth_required", 3),
    ("identity-rule-407-connect", "CONNECT", "secret.test:{e}", 407, "auth_required", 3),
    ("first-match-allow", "GET", "http://origin.test:{o}/bytes/5", 200, "ok", 4),
    ("methods-head", "HEAD", "http://origin.test:{o}/bytes/5", 200, "ok", 4),
    ("methods-post-falls-through", "POST", "http://origin.test:{o}/bytes/5", 403, "policy", 5),
    ("first-match-deny-before-allow", "GET", "http://www.origin.test:{o}/bytes/1", 200, "ok", 6),
    ("port-any", "CONNECT", "echo.test:{e}", 200, "ok", 7),
    ("port-range-inside", "GET", "http://range.test:{o}/bytes/3", 200, "ok", 8),
    ("port-range-outside", "GET", "http://range.test:{o2}/bytes/3", 403, "default_deny", None),
    ("port-list-single", "GET", "http://range.test:65534/bytes/3", 403, "default_deny", None),
    ("default-deny", "GET", "http://nowhere.test:{o}/bytes/1", 403, "default_deny", None),
]


@pytest.fixture(scope="module")
def policy_gw(dns, origin, echo, rule_opts):
    g = gwmod.Gateway(dns.port, conf=LDAP_CONF, policy=rules_for(origin, echo, rule_opts),
                      hosts=dict(EXTRA_HOSTS, **{"www.origin.test": "127.0.0.2",
                                                 "nowhere.test": "127.0.0.2"}))
    try:
        g.start()
    except gwmod.GatewayError:
        g.cleanup()
        raise
    yield g
    g.cleanup()


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_decision_per_rule(policy_gw, origin, echo, request, case):
    request.node._gateways = [policy_gw]
    _id, method, tmpl, status, reason, line = case
    target = tmpl.format(o=origin.port, o2=origin.port + 2, e=echo.port)
    resp, port = ask(policy_gw, method, target)
    assert resp.status == status, "%s %s: expected %d, got %s" % (method, target, status,
                                                                  resp.describe())
    if status == 407:
        pa = resp.header("Proxy-Authenticate") or ""
        assert pa.startswith("Basic realm="), "407 without a Basic challenge: %s" % resp.describe()
    rule = "policy.rules:%d" % line if line else None
    expect_one_record(policy_gw, lambda r: r.get("client_port") == port,
                      "%s %s" % (method, target), timeout=5, status=status, reason=reason,
                      rule=rule, decision="allow" if status == 200 else "deny")


# ------------------------------------------------------------------ reloads

def test_reload_good_then_bad(make_gateway, origin):
    o = origin.port
    g = make_gateway(hosts=EXTRA_HOSTS, policy=[
        "allow any v1\\.test %d" % o,
        "deny  any v2\\.test %d" % o,
    ])
    v1 = "http://v1.test:%d/bytes/2" % o
    v2 = "http://v2.test:%d/bytes/2" % o
    assert ask(g, "GET", v1)[0].status == 200
    assert ask(g, "GET", v2)[0].status == 403

    # A good reload: new requests meet the new rules, named by their new lines.
    reload(g, ["# swapped", "deny  any v1\\.test %d" % o, "allow any v2\\.test %d" % o], "ok")
    r, port = ask(g, "GET", v1)
    assert r.status == 403, "after the reload v1.test is denied: %s" % r.describe()
    expect_one_record(g, lambda x: x.get("client_port") == port, "v1 after reload",
                      reason="policy", rule="policy.rules:2")
    r, port = ask(g, "GET", v2)
    assert r.status == 200, "after the reload v2.test is allowed: %s" % r.describe()
    expect_one_record(g, lambda x: x.get("client_port") == port, "v2 after reload",
                      reason="ok", rule="policy.rules:3")

    # A bad reload: the old (swapped) policy stays, the error names FILE:LINE.
    rec = reload(g, ["allow any v1\\.test %d" % o, "allow any v2\\.test 0", "allow any ( *"],
                 "policy_error")
    assert "policy.rules:2:" in (rec.get("message") or "") or "policy.rules:2:" in g.stderr()
    err = g.stderr()
    assert "policy.rules:2: port 0" in err, "the refused file's error is not on stderr:\n%s" % (
        err[-2000:])
    assert "policy.rules:3: bad host pattern" in err, "every error is reported:\n%s" % err[-2000:]
    assert ask(g, "GET", v1)[0].status == 403, "a refused reload must keep the old policy"
    assert ask(g, "GET", v2)[0].status == 200, "a refused reload must keep the old policy"
    assert g.alive()


def test_tunnel_survives_20_reloads(make_gateway, echo, rule_opts):
    g = make_gateway(hosts=EXTRA_HOSTS, policy=["allow any echo\\.test *" + rule_opts])
    sent = 0
    with Conn(g.port, timeout=10) as c:
        port = c.local_port
        c.send(connect_bytes("echo.test:%d" % echo.port))
        assert c.read_head().status == 200
        for i in range(20):
            data = pattern_bytes(1000 + 997 * i, seed=i)
            got = echo_through(c, data, timeout=10)
            assert got == data, "echo %d differs after %d reloads" % (i, i)
            sent += len(data)
            if i % 5 == 4:
                # Every fifth reload is refused: that must not disturb anything either.
                reload(g, ["allow any echo\\.test *%s" % rule_opts, "allow any ( *"],
                       "policy_error")
            else:
                # The new policy no longer allows echo.test at all; the tunnel stays.
                reload(g, ["# generation %d" % i, "allow any v%d\\.test *%s" % (i % 2 + 1, rule_opts)],
                       "ok")
        data = pattern_bytes(64 * 1024, seed=99)
        assert echo_through(c, data, timeout=10) == data, "tunnel broken after 20 reloads"
        sent += len(data)
        c.shutdown_write()
        assert c.read_to_eof(timeout=10) == b""
    expect_one_record(g, lambda r: r.get("client_port") == port and r.get("event") == "tunnel",
                      "tunnel across 20 reloads", timeout=10, status=200, reason="ok",
                      rule="policy.rules:1", bytes_up=sent, bytes_down=sent)
    r, _ = ask(g, "CONNECT", "echo.test:%d" % echo.port)
    assert r.status == 403, "new tunnels meet the last good policy: %s" % r.describe()
    assert len(g.audit("reload")) == 20


# ------------------------------------------------------------------ offline tools

def test_check_ok_and_errors(confdir):
    conf = write_conf(confdir, ["# three rules", "allow any a\\.test 443", "",
                                "deny any .* 25", "allow authenticated (.+\\.)?b\\.test 80,443"])
    for argv in ([gwmod.BINARY, "-t", "-c", conf], [EGRESSCTL, "-c", conf, "check"],
                 [EGRESSCTL, "check", "-c", conf]):
        r = run(argv)
        assert r.returncode == 0, "%s: exit %d, stderr %r" % (argv, r.returncode, r.stderr)
        assert r.stdout.decode() == "%s: ok (3 rules)\n" % conf, "%s: %r" % (argv, r.stdout)

    write_conf(confdir, ["allow any a\\.test 443", "allow anyone b\\.test 443",
                         "allow any c\\.test 0-5", "allow any (d 80 methods=GET sni=off"])
    want = ['policy.rules:2: unknown principal "anyone"', "policy.rules:3: port 0",
            'policy.rules:4: bad host pattern "(d"',
            "policy.rules:4: option \"sni=\" applies to CONNECT only"]
    for argv in ([gwmod.BINARY, "-t", "-c", conf], [EGRESSCTL, "-c", conf, "check"]):
        r = run(argv)
        err = r.stderr.decode()
        assert r.returncode == 1, "%s: exit %d for a bad policy" % (argv, r.returncode)
        assert r.stdout == b"", "%s: nothing on stdout for a bad policy: %r" % (argv, r.stdout)
        for w in want:
            assert w in err, "%s: want %r in:\n%s" % (argv, w, err)
        assert "policy.rules:1:" not in err


def explain(conf, *args):
    r = run([EGRESSCTL, "-c", conf, "explain"] + list(args))
    assert r.returncode == 0, "explain %s: exit %d: %s" % (args, r.returncode, r.stderr.decode())
    return r.stdout.decode()


def test_explain_outputs(confdir):
    conf = write_conf(confdir, [
        "allow any deb\\.debian\\.org 80 methods=GET,HEAD",
        "deny any (.+\\.)?evil\\.test *",
        "allow group:eng (.+\\.)?github\\.com 443",
        "allow any (.+\\.)?example\\.com 443 sni=optional",
        "allow any 192\\.0\\.2\\.1 443",
    ], extra="auth ldap\nldap_uri ldap://127.0.0.1:9\nldap_user_base dc=example,dc=test\n")

    out = explain(conf, "--method", "GET", "--host", "DEB.debian.org.", "--port", "80")
    assert out == ("decision: allow (ok)\n"
                   "rule: policy.rules:1: allow any deb\\.debian\\.org 80 methods=GET,HEAD\n"), out

    out = explain(conf, "--method", "CONNECT", "--host", "www.evil.test", "--port", "443")
    assert out.startswith("decision: deny (policy)\n"
                          "rule: policy.rules:2: deny any (.+\\.)?evil\\.test *\n"), out

    out = explain(conf, "--method", "CONNECT", "--host", "nothing.test", "--port", "443")
    assert out.startswith("decision: deny (default_deny)\nrule: default deny"), out

    out = explain(conf, "--method", "CONNECT", "--host", "github.com", "--port", "443")
    assert "decision: deny (auth_required)\n" in out and "policy.rules:3" in out, out
    assert "credentials: required" in out, out
    out = explain(conf, "--user", "bob", "--group", "ENG", "--method", "CONNECT",
                  "--host", "api.github.com", "--port", "443")
    assert out.startswith("decision: allow (ok)\nrule: policy.rules:3: "), out

    # SNI: mismatch with a name host; re-decided with the SNI for an IP host.
    out = explain(conf, "--method", "CONNECT", "--host", "www.example.com", "--port", "443",
                  "--sni", "other.example.com")
    assert "sni: optional\n" in out, out
    assert "sni verdict: sni_mismatch (" in out, out
    out = explain(conf, "--method", "CONNECT", "--host", "www.example.com", "--port", "443",
                  "--sni", "WWW.Example.com")
    assert "sni verdict: ok (" in out and "sni rule: policy.rules:4: " in out, out
    out = explain(conf, "--method", "CONNECT", "--host", "192.0.2.1", "--port", "443",
                  "--sni", "x.evil.test")
    # (The contract: the first line is the final outcome, the CONNECT's rule follows.)
    assert out.startswith("decision: deny (sni_denied)\nwhy: "), out
    assert "\nrule: policy.rules:5: " in out, out
    assert "sni verdict: sni_denied (" in out and "sni rule: policy.rules:2: " in out, out

    j = json.loads(explain(conf, "--json", "--method", "CONNECT", "--host", "www.example.com",
                           "--port", "443", "--sni", "other.example.com"))
    assert j["decision"] == "allow" and j["rule"] == "policy.rules:4", j
    assert j["sni_verdict"] == "sni_mismatch" and j["sni_mode"] == "optional", j
    j = json.loads(explain(conf, "--json", "--method", "GET", "--host", "x.test", "--port", "80"))
    assert j["decision"] == "deny" and j["reason"] == "default_deny" and j["rule"] is None, j

    # Under "auth none" identity rules do not exist: no 407, the next rule decides.
    conf = write_conf(confdir, ["allow group:eng (.+\\.)?github\\.com 443",
                                "deny any .* 443"])
    out = explain(conf, "--method", "CONNECT", "--host", "github.com", "--port", "443")
    assert out.startswith("decision: deny (policy)\nrule: policy.rules:2: "), out

    # Usage errors and a bad configuration.
    r = run([EGRESSCTL, "-c", conf, "explain", "--method", "GET", "--host", "x"])
    assert r.returncode == 2 and b"usage" in r.stderr
    write_conf(confdir, ["allow any ( 80"])
    r = run([EGRESSCTL, "-c", conf, "explain", "--method", "GET", "--host", "x", "--port", "80"])
    assert r.returncode == 1 and b"policy.rules:1: bad host pattern" in r.stderr, r
