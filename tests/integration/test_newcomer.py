"""Small things a newcomer trips over, each with a clear outcome.

- a UTF-8 BOM at the start of egressd.conf or the policy file is skipped
  (before: `unknown key "\\ufefflisten"`, the BOM invisible in the message);
- a password file written with CRLF works (before: a bare "Invalid
  credentials" in the log and 503 for everyone);
- StartTLS against a server that does not offer it says so.
"""

import base64
import os
import shutil
import subprocess
import tempfile

import pytest

from harness import gateway as gwmod
from harness.client import Conn, connect_bytes, echo_through
from harness.slapd import Slapd

BOM = b"\xef\xbb\xbf"


def test_bom_at_the_start_of_config_and_policy_is_skipped():
    d = tempfile.mkdtemp(prefix="egw-bom-")
    try:
        with open(os.path.join(d, "egressd.conf"), "wb") as f:
            f.write(BOM + b"listen 127.0.0.1:3999\npolicy_file policy.rules\n")
        with open(os.path.join(d, "policy.rules"), "wb") as f:
            f.write(BOM + b"allow any .* 443\n")
        r = subprocess.run([gwmod.BINARY, "-t", "-c", os.path.join(d, "egressd.conf")],
                           capture_output=True, timeout=10)
        out = (r.stdout + r.stderr).decode("utf-8", "replace")
        assert r.returncode == 0, out
        assert "ok (1 rules)" in out, out
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def slapd():
    s = Slapd().start()
    yield s
    s.cleanup()


def _basic(user, pw):
    return "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()


def test_password_file_with_crlf_works(make_gateway, slapd, echo, tmp_path):
    conf = slapd.gateway_conf(str(tmp_path))
    secret = conf["ldap_bind_password_file"]
    with open(secret) as f:
        pw = f.read().rstrip("\n")
    with open(secret, "w") as f:
        f.write(pw + "\r\n")
    os.chmod(secret, 0o600)
    g = make_gateway(conf=conf, policy=["allow authenticated echo\\.test * sni=off"])
    authority = "echo.test:%d" % echo.port
    with Conn(g.port) as c:
        c.send(connect_bytes(authority, [("Host", authority),
                                         ("Proxy-Authorization", _basic("alice", "alice-pw"))]))
        r = c.read_response(method="CONNECT")
        assert r.status == 200, "CRLF password file: %s\n%s" % (r.describe(), g.stderr()[-1500:])
        assert echo_through(c, b"ok") == b"ok"


def test_starttls_against_a_plain_server_says_so(make_gateway, slapd, echo, tmp_path):
    conf = slapd.gateway_conf(str(tmp_path), starttls=True, ca_file="/etc/ssl/certs/ca-certificates.crt")
    g = make_gateway(conf=conf, policy=["allow authenticated echo\\.test * sni=off"])
    authority = "echo.test:%d" % echo.port
    with Conn(g.port) as c:
        c.send(connect_bytes(authority, [("Host", authority),
                                         ("Proxy-Authorization", _basic("alice", "alice-pw"))]))
        r = c.read_response(method="CONNECT")
        assert r.status == 503, r.describe()
    lines = [l for l in g.stderr().splitlines() if "StartTLS failed" in l]
    assert lines, g.stderr()[-2000:]
    assert "does not offer StartTLS" in lines[0], lines[0]
