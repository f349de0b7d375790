"""Domain lists (`@FILE` in the host column) and `mode=report` rules, end to end.

Lists: exact names, `.suffix` names, IP literals, decided through the running gateway with
the deciding rule in the record; a list changed on disk is picked up by a reload; a broken
list refuses the reload with `LIST:LINE` and the old policy (lists included) stays in force;
`egressd -t` counts the entries; `egressctl explain` names the entry (`via LIST:LINE`);
`egressctl check` warns about duplicate and covered entries.

Report rules: they never decide; the record's `report` names the first that matched (null
in every other record); the SNI re-check evaluates them too; `/metrics` counts them;
`explain` says "would be denied by FILE:LINE (report)"; on an allow rule they are an error.
"""

import os
import re
import signal
import subprocess
import urllib.request

from harness import gateway as gwmod
from harness import hello as H
from harness.client import Conn, connect_bytes, open_tunnel, request_bytes
from harness.gateway import free_port
from harness.util import expect_one_record, fmt_records

EGRESSCTL = os.environ.get("EGRESSCTL", os.path.join(gwmod.REPO, "build", "egressctl"))
DATA = os.path.join(gwmod.REPO, "tests", "unit", "data", "clienthello")

HOSTS = {name: "127.0.0.2" for name in (
    "listed.test", "a.b.sub.test", "sub.test", "x.blocked.test", "trial.sub.test",
    "other.test", "new.test", "www.pattern.test", "x.sni.test")}

ALLOW_LIST = ["# allowed destinations",             # 1
              "listed.test",                         # 2
              ".sub.test   # and every name under it",  # 3
              "127.0.0.2",                           # 4
              ]


def write(gw, name, lines):
    with open(os.path.join(gw.dir, name), "w") as f:
        f.write("\n".join(lines) + "\n")


def policy(echo, origin, rule_opts):
    return ["deny  any @trial.list  *  mode=report",                              # 1
            "deny  any @block.list  *",                                           # 2
            "allow any @allow.list  %d%s" % (echo.port, rule_opts),               # 3
            "allow any (.+\\.)?pattern\\.test %d" % origin.port]                  # 4


def start_list_gateway(make_gateway, echo, origin, rule_opts, conf=None):
    g = make_gateway(conf=conf, hosts=HOSTS, policy=policy(echo, origin, rule_opts),
                     start=False)
    write(g, "allow.list", ALLOW_LIST)
    write(g, "block.list", [".blocked.test"])
    write(g, "trial.list", ["trial.sub.test"])
    g.start()
    return g


def connect(gw, authority):
    with Conn(gw.port, timeout=10) as c:
        port = c.local_port
        c.send(connect_bytes(authority))
        return c.read_head(10), port


def get(gw, url):
    with Conn(gw.port, timeout=10) as c:
        port = c.local_port
        c.send(request_bytes("GET", url, [("Host", url.split("/")[2]), ("Connection", "close")]))
        return c.read_response(timeout=10), port


def reload(gw, expect_reason):
    before = len(gw.audit("reload"))
    gw.signal(signal.SIGHUP)
    recs = gw.wait_audit(lambda r: r.get("event") == "reload", count=before + 1, timeout=10,
                         settle=0.05)
    assert len(recs) >= before + 1, "no reload record:\n%s" % fmt_records(gw.audit()[-5:])
    rec = recs[before]
    assert rec.get("reason") == expect_reason, fmt_records([rec])
    return rec


def ctl(gw, *args):
    return subprocess.run([EGRESSCTL, "-c", os.path.join(gw.dir, "egressd.conf")] + list(args),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)


def test_lists_decide_and_report(make_gateway, echo, origin, rule_opts):
    mport = free_port()
    g = start_list_gateway(make_gateway, echo, origin, rule_opts,
                           conf={"metrics_listen": "127.0.0.1:%d" % mport})
    e = echo.port
    cases = [
        # authority, status, reason, rule, report
        ("listed.test:%d" % e, 200, "ok", "policy.rules:3", None),
        ("a.b.sub.test:%d" % e, 200, "ok", "policy.rules:3", None),
        ("sub.test:%d" % e, 200, "ok", "policy.rules:3", None),
        ("127.0.0.2:%d" % e, 200, "ok", "policy.rules:3", None),
        ("[::ffff:127.0.0.2]:%d" % e, 200, "ok", "policy.rules:3", None),
        ("x.blocked.test:%d" % e, 403, "policy", "policy.rules:2", None),
        ("other.test:%d" % e, 403, "default_deny", None, None),
        # The report rule matches: it does not decide (rule 3 allows), it is named.
        ("trial.sub.test:%d" % e, 200, "ok", "policy.rules:3", "policy.rules:1"),
    ]
    for authority, status, reason, rule, report in cases:
        resp, port = connect(g, authority)
        assert resp.status == status, "CONNECT %s: expected %d, got %s" % (
            authority, status, resp.describe())
        expect_one_record(g, lambda r: r.get("client_port") == port, "CONNECT " + authority,
                          timeout=5, status=status, reason=reason, rule=rule, report=report)
    # A pattern rule after the list rules still decides what the lists do not hold.
    resp, port = get(g, "http://www.pattern.test:%d/bytes/3" % origin.port)
    assert resp.status == 200, resp.describe()
    expect_one_record(g, lambda r: r.get("client_port") == port, "GET www.pattern.test",
                      rule="policy.rules:4", report=None)
    # `report` is present (null) in every record, reload and start records included.
    for rec in g.audit():
        assert "report" in rec, "record without report: %s" % fmt_records([rec])

    # /metrics counts the report rule's match, and the list entries.
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=5) as r:
        text = r.read().decode()
    assert re.search(r'^egressd_policy_report_matches_total\{rule="policy\.rules:1"\} 1$',
                     text, re.M), text
    assert re.search(r"^egressd_policy_list_entries 5$", text, re.M), text

    # egressd -t counts the entries beside the rules; explain names entry and report rule.
    conf = os.path.join(g.dir, "egressd.conf")
    r = subprocess.run([gwmod.BINARY, "-t", "-c", conf], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 0 and "%s: ok (4 rules), 5 list entries in 3 lists" % conf in r.stdout, r
    r = ctl(g, "explain", "--method", "CONNECT", "--host", "a.b.sub.test", "--port", str(e))
    assert r.returncode == 0 and "rule: policy.rules:3 via allow.list:3" in r.stdout, r
    r = ctl(g, "explain", "--method", "CONNECT", "--host", "trial.sub.test", "--port", str(e))
    assert r.stdout.startswith("decision: allow (ok)"), r
    assert "would be denied by policy.rules:1 (report) via trial.list:1" in r.stdout, r


def test_list_reload_picks_up_changes_and_refuses_broken(make_gateway, echo, origin, rule_opts):
    g = start_list_gateway(make_gateway, echo, origin, rule_opts)
    e = echo.port
    assert connect(g, "new.test:%d" % e)[0].status == 403

    # The list changes on disk: a reload reads it with the policy.
    write(g, "allow.list", ALLOW_LIST + ["new.test"])
    reload(g, "ok")
    resp, port = connect(g, "new.test:%d" % e)
    assert resp.status == 200, resp.describe()
    expect_one_record(g, lambda r: r.get("client_port") == port, "new.test after reload",
                      rule="policy.rules:3")
    assert "ok (4 rules), 6 list entries in 3 lists" in g.stderr(), g.stderr()[-2000:]

    # A broken list: the reload is refused with LIST:LINE, the old policy (and its lists) stay.
    write(g, "allow.list", ["listed.test", "also.test", "bad..entry", "*.glob.test"])
    rec = reload(g, "policy_error")
    why = " ".join(str(v) for v in rec.values())
    assert "allow.list:3:" in why and "allow.list:4:" in why, fmt_records([rec])
    assert "allow.list:3: bad entry" in g.stderr(), g.stderr()[-2000:]
    assert connect(g, "new.test:%d" % e)[0].status == 200, "the old lists must stay in force"
    assert connect(g, "also.test:%d" % e)[0].status == 403, "the refused list is not in force"

    # A list that is gone is named at the rule's line.
    os.unlink(os.path.join(g.dir, "block.list"))
    write(g, "allow.list", ALLOW_LIST)
    rec = reload(g, "policy_error")
    assert "policy.rules:2: cannot read list block.list" in " ".join(
        str(v) for v in rec.values()), fmt_records([rec])
    assert connect(g, "new.test:%d" % e)[0].status == 200


def curl_hello_named(name):
    with open(os.path.join(DATA, "curl.bin"), "rb") as f:
        return H.with_name(H.message(f.read()), name)


def test_report_rules_in_the_sni_recheck(make_gateway, echo):
    """A tunnel to an address whose ClientHello names x.sni.test: the CONNECT matches no
    report rule, the SNI re-check does, and the record names it."""
    e = echo.port
    g = make_gateway(hosts=HOSTS, start=False, policy=[
        "deny  any @trial.list * mode=report",
        "allow any 127\\.0\\.0\\.2 %d sni=require" % e,
        "allow any (.+\\.)?sni\\.test %d sni=require" % e])
    write(g, "trial.list", [".sni.test"])
    g.start()
    hello = H.records(curl_hello_named("x.sni.test"))
    c, resp = open_tunnel(g.port, "127.0.0.2:%d" % e)
    try:
        assert resp.status == 200, resp.describe()
        port = c.local_port
        c.send(hello)
        got = c.read_exact(len(hello), timeout=10)
        assert got == hello, "the echo must return the hello (the tunnel goes on)"
    finally:
        c.close()
    expect_one_record(g, lambda r: r.get("client_port") == port, "tunnel with SNI",
                      timeout=5, reason="ok", rule="policy.rules:2", sni="x.sni.test",
                      report="policy.rules:1")
    # Without a matching name nothing is reported.
    c, resp = open_tunnel(g.port, "127.0.0.2:%d" % e)
    port = c.local_port
    c.send(H.records(curl_hello_named("www.sni.test.other")))
    c.close()
    recs = g.wait_audit(lambda r: r.get("client_port") == port, timeout=5)
    assert recs and recs[0].get("report") is None, fmt_records(recs)


def test_offline_check_of_lists_and_report(tmp_path):
    d = str(tmp_path)
    conf = os.path.join(d, "egressd.conf")
    with open(conf, "w") as f:
        f.write("listen 127.0.0.1:1\npolicy_file policy.rules\n")
    with open(os.path.join(d, "policy.rules"), "w") as f:
        f.write("allow any @a.list 443\n")
    with open(os.path.join(d, "a.list"), "w") as f:
        f.write("example.com\n.example.com\nwww.example.com\nother.test\nother.test\n")
    r = subprocess.run([EGRESSCTL, "-c", conf, "check"], capture_output=True, text=True,
                       timeout=20)
    assert r.returncode == 0, r
    assert "%s: ok (1 rules), 4 list entries in 1 list" % conf in r.stdout, r
    for want in ("a.list:5: warning: duplicate entry other.test (first at a.list:4)",
                 "a.list:1: warning: entry example.com is already covered by .example.com "
                 "(a.list:2)",
                 "a.list:3: warning: entry www.example.com is already covered by .example.com"):
        assert want in r.stderr, r.stderr
    r = subprocess.run([EGRESSCTL, "-c", conf, "check", "--strict"], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 1, r

    with open(os.path.join(d, "policy.rules"), "w") as f:
        f.write("allow any @a.list 443 mode=report\n")
    for argv in ([EGRESSCTL, "-c", conf, "check"], [gwmod.BINARY, "-t", "-c", conf]):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20)
        assert r.returncode == 1, r
        assert "policy.rules:1: option \"mode=report\" applies to deny rules only" in r.stderr, r
