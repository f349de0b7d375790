"""Offline checks as an admin runs them: `egressctl check` and `egressd -t` print
policy lint warnings as FILE:LINE: warning: ... (exit status unchanged; strict
options make them errors), both report what start would refuse, and `egressctl
explain` puts the final outcome first and warns about requests that cannot exist."""

import json
import os
import shutil
import subprocess
import tempfile

import pytest

from harness import gateway as gwmod

EGRESSCTL = os.environ.get("EGRESSCTL", os.path.join(gwmod.REPO, "build", "egressctl"))
LDAP = "auth ldap\nldap_uri ldap://127.0.0.1:9\nldap_user_base dc=example,dc=test\n"


def run(argv, timeout=10):
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)


@pytest.fixture
def confdir():
    d = tempfile.mkdtemp(prefix="egw-check-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def write_conf(d, policy_lines, extra=""):
    conf = os.path.join(d, "egressd.conf")
    with open(conf, "w") as f:
        f.write("listen 127.0.0.1:1\npolicy_file policy.rules\n" + extra)
    with open(os.path.join(d, "policy.rules"), "w") as f:
        f.write("\n".join(policy_lines) + "\n")
    return conf


SLOPPY = [
    "allow any github.com 443",                     # 1 unescaped dot
    "allow any .example\\.com 443",                 # 2 Squid habit
    "allow any example\\.org:443 *",                # 3 host:port
    "allow group:eng (.+\\.)?corp\\.test 443",      # 4 identity under auth none
    "allow any a\\.test 443",                       # 5
    "allow any a\\.test 443",                       # 6 duplicate of 5
    "allow any a\\.test 443 methods=GET",           # 7 never decides (5 first)
]


def test_check_warnings_keep_exit_status(confdir):
    conf = write_conf(confdir, SLOPPY)
    for argv in ([EGRESSCTL, "-c", conf, "check"], [gwmod.BINARY, "-t", "-c", conf]):
        r = run(argv)
        out, err = r.stdout.decode(), r.stderr.decode()
        assert r.returncode == 0, (argv, out, err)
        assert "%s: ok (7 rules)" % conf in out, (argv, out)
        lines = [l for l in err.splitlines() if ": warning: " in l]
        assert [l.split(": warning: ")[0] for l in lines] == \
            ["policy.rules:%d" % n for n in (1, 2, 3, 4, 6, 7)], (argv, err)
        assert "githubxcom" in lines[0] and "github\\.com" in lines[0], lines[0]
        assert "(.+\\.)?example\\.com" in lines[1], lines[1]
        assert "host:port" in lines[2], lines[2]
        assert "auth none" in lines[3], lines[3]
        assert "duplicate of policy.rules:5" in lines[4], lines[4]
        assert "policy.rules:5" in lines[5], lines[5]


def test_strict_makes_warnings_errors(confdir):
    conf = write_conf(confdir, SLOPPY)
    for argv in ([EGRESSCTL, "-c", conf, "check", "--strict"],
                 [gwmod.BINARY, "-t", "-W", "-c", conf]):
        r = run(argv)
        assert r.returncode == 1, (argv, r)
        assert b"ok (" not in r.stdout, (argv, r.stdout)
        assert r.stderr.count(b": warning: ") == 6, (argv, r.stderr)


def test_clean_policy_has_no_warnings(confdir):
    for name in ("policy.rules", "blocked.list"):
        shutil.copy(os.path.join(gwmod.REPO, "packaging", name), os.path.join(confdir, name))
    conf = os.path.join(confdir, "egressd.conf")
    with open(conf, "w") as f:
        f.write("listen 127.0.0.1:1\npolicy_file policy.rules\n" + LDAP)
    for argv in ([EGRESSCTL, "-c", conf, "check", "--strict"],
                 [gwmod.BINARY, "-t", "-W", "-c", conf]):
        r = run(argv)
        assert r.returncode == 0 and r.stderr == b"", (argv, r)
        assert ("%s: ok (9 rules), 5 list entries in 1 list" % conf).encode() in r.stdout, (
            argv, r.stdout)


def test_check_reports_what_start_refuses(confdir):
    secret = os.path.join(confdir, "bind.secret")
    with open(secret, "w") as f:
        f.write("pw\n")
    os.chmod(secret, 0o644)
    conf = write_conf(confdir, ["allow any a\\.test 443"],
                      LDAP + "ldap_bind_dn cn=svc\nldap_bind_password_file bind.secret\n")
    want = "%s:7: ldap_bind_password_file %s: mode 0644" % (conf, secret)
    for argv in ([EGRESSCTL, "-c", conf, "check"], [gwmod.BINARY, "-t", "-c", conf]):
        r = run(argv)
        assert r.returncode == 1 and want in r.stderr.decode(), (argv, r)


def test_check_usage(confdir):
    conf = write_conf(confdir, ["allow any a\\.test 443"])
    r = run([EGRESSCTL, "-c", conf, "check", "--bogus"])
    assert r.returncode == 2 and b"usage" in r.stderr


# ------------------------------------------------------------------ explain

def explain(conf, *args):
    r = run([EGRESSCTL, "-c", conf, "explain"] + list(args))
    assert r.returncode == 0, (args, r)
    return r.stdout.decode(), r.stderr.decode()


def test_explain_first_line_is_final_outcome(confdir):
    conf = write_conf(confdir, ["allow any (.+\\.)?example\\.com 443",
                                "deny any (.+\\.)?evil\\.test *",
                                "allow any 192\\.0\\.2\\.1 443"])
    out, _ = explain(conf, "--method", "CONNECT", "--host", "www.example.com", "--port", "443",
                     "--sni", "other.example.com")
    lines = out.splitlines()
    assert lines[0] == "decision: deny (sni_mismatch)", out
    assert lines[1].startswith("why: ") and "other.example.com" in lines[1], out
    assert "rule: policy.rules:1: " in out, out
    out, _ = explain(conf, "--method", "CONNECT", "--host", "192.0.2.1", "--port", "443",
                     "--sni", "x.evil.test")
    assert out.startswith("decision: deny (sni_denied)\nwhy: "), out
    out, _ = explain(conf, "--method", "CONNECT", "--host", "192.0.2.1", "--port", "443",
                     "--sni", "192.0.2.1")
    assert out.startswith("decision: deny (sni_invalid)\n"), out
    out, _ = explain(conf, "--method", "CONNECT", "--host", "www.example.com", "--port", "443",
                     "--sni", "WWW.example.com")
    assert out.startswith("decision: allow (ok)\nrule: policy.rules:1: "), out
    j = json.loads(explain(conf, "--json", "--method", "CONNECT", "--host", "www.example.com",
                           "--port", "443", "--sni", "other.example.com")[0])
    assert j["outcome"] == "deny" and j["outcome_reason"] == "sni_mismatch", j
    assert j["decision"] == "allow" and j["sni_verdict"] == "sni_mismatch", j


def test_explain_warns_about_impossible_requests(confdir):
    conf = write_conf(confdir, ["allow group:eng (.+\\.)?github\\.com 443"], LDAP)
    out, err = explain(conf, "--group", "eng", "--method", "CONNECT", "--host", "github.com",
                       "--port", "443")
    assert "warning: --group without --user" in err, err
    out, err = explain(conf, "--user", "bob", "--group", "eng", "--method", "CONNECT",
                       "--host", "github.com", "--port", "443")
    assert "warning" not in err, err
    conf = write_conf(confdir, ["allow group:eng (.+\\.)?github\\.com 443"])
    out, err = explain(conf, "--user", "bob", "--method", "CONNECT", "--host", "github.com",
                       "--port", "443")
    assert "warning: --user under \"auth none\"" in err, err
    assert out.startswith("decision: deny (default_deny)"), out
