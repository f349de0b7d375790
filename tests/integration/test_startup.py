"""Starting, as an operator meets it: a second egressd on a running one's address
refuses to start (never shares the port), and `egressd -t` reports what would stop
`egressd -c` from starting (secret-file modes, unreadable files, a missing
admin-socket folder) with the same FILE:LINE message."""

import os
import shutil
import socket
import subprocess
import tempfile

import pytest

from harness import gateway as gwmod
from harness.client import Conn, request_bytes
from harness.gateway import free_port


def run(args, timeout=10):
    return subprocess.run([gwmod.BINARY] + args, stdin=subprocess.DEVNULL, capture_output=True,
                          timeout=timeout)


@pytest.fixture
def confdir():
    d = tempfile.mkdtemp(prefix="egw-conf-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def write(d, name, text, mode=None):
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(text)
    if mode is not None:
        os.chmod(p, mode)
    return p


# ------------------------------------------------------------------ address in use

def test_second_daemon_on_same_address_refuses(make_gateway, origin):
    g = make_gateway(policy=["allow any .* *"])
    # The second one: same listen address, a policy that denies everything.
    write(g.dir, "second.rules", "deny any .* *\n")
    text = g.conf_text.replace("policy_file policy.rules", "policy_file second.rules")
    text = text.replace("audit_syslog_socket audit.sock", "audit_syslog_socket second.sock")
    conf2 = write(g.dir, "second.conf", text)
    p = subprocess.Popen([gwmod.BINARY, "-c", conf2], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=g.dir)
    try:
        out, _ = p.communicate(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate(timeout=5)
        pytest.fail("a second egressd on 127.0.0.1:%d kept running (it shares the port): %s"
                    % (g.port, out.decode()[-2000:]))
    out = out.decode()
    assert p.returncode != 0, out
    assert "%s:2: listen 127.0.0.1:%d: address in use" % (conf2, g.port) in out, out
    statuses = []
    for _ in range(12):
        with Conn(g.port) as c:
            c.send(request_bytes("GET", "http://origin.test:%d/bytes/10" % origin.port,
                                 [("Host", "origin.test"), ("Connection", "close")]))
            statuses.append(c.read_response().status)
    assert statuses == [200] * 12, statuses


def test_second_daemon_on_same_metrics_address_refuses(make_gateway):
    mport = free_port()
    g = make_gateway(conf={"metrics_listen": "127.0.0.1:%d" % mport})
    port2 = free_port()
    text = g.conf_text.replace("listen 127.0.0.1:%d\n" % g.port, "listen 127.0.0.1:%d\n" % port2)
    text = text.replace("audit_syslog_socket audit.sock", "audit_syslog_socket second.sock")
    conf2 = write(g.dir, "second.conf", text)
    r = run(["-c", conf2], timeout=10)
    out = (r.stdout + r.stderr).decode()
    assert r.returncode != 0 and "metrics_listen 127.0.0.1:%d: address in use" % mport in out, out


# ------------------------------------------------------------------ -t tells what -c refuses

LDAP = ("auth ldap\nldap_uri ldap://127.0.0.1:1\nldap_user_base ou=people,dc=example,dc=org\n")


def check_both(conf, expect):
    """-t exits 1 and -c refuses to start, both with the message `expect`."""
    outs = []
    for args in (["-t", "-c", conf], ["-c", conf]):
        r = run(args, timeout=10)
        out = (r.stdout + r.stderr).decode()
        assert r.returncode == 1 if args[0] == "-t" else r.returncode != 0, (args, out)
        assert expect in out, "%s: expected %r in %r" % (args, expect, out)
        outs.append(out)
    assert "ok (" not in outs[0]


def base(confdir, extra):
    write(confdir, "policy.rules", "allow any .* *\n")
    return write(confdir, "egressd.conf", "listen 127.0.0.1:%d\npolicy_file policy.rules\n%s"
                 % (free_port(), extra))


def test_secret_mode_0644(confdir):
    secret = write(confdir, "bind.secret", "hunter2\n", mode=0o644)
    conf = base(confdir, LDAP + "ldap_bind_dn cn=svc,dc=example,dc=org\n"
                "ldap_bind_password_file bind.secret\n")
    check_both(conf, "%s:7: ldap_bind_password_file %s: mode 0644" % (conf, secret))


def test_secret_missing(confdir):
    conf = base(confdir, LDAP + "ldap_bind_dn cn=svc,dc=example,dc=org\n"
                "ldap_bind_password_file nowhere.secret\n")
    check_both(conf, "%s:7: ldap_bind_password_file %s: No such file"
               % (conf, os.path.join(confdir, "nowhere.secret")))


def test_ca_file_unreadable(confdir):
    conf = base(confdir, LDAP + "ldap_starttls yes\nldap_tls_ca_file missing-ca.pem\n")
    check_both(conf, "%s:7: ldap_tls_ca_file %s: No such file"
               % (conf, os.path.join(confdir, "missing-ca.pem")))


def test_ca_file_is_a_folder(confdir):
    os.mkdir(os.path.join(confdir, "ca.d"))
    conf = base(confdir, LDAP + "ldap_tls_ca_file ca.d\n")
    check_both(conf, "%s:6: ldap_tls_ca_file %s: is a folder" % (conf, os.path.join(confdir, "ca.d")))


def test_admin_socket_folder_missing(confdir):
    conf = base(confdir, "admin_socket no-such-dir/admin.sock\n")
    check_both(conf, "%s:3: admin_socket %s: its folder %s does not exist"
               % (conf, os.path.join(confdir, "no-such-dir/admin.sock"),
                  os.path.join(confdir, "no-such-dir")))


def test_hosts_file_missing(confdir):
    conf = base(confdir, "dns_hosts_file no-hosts\n")
    check_both(conf, "%s:3: dns_hosts_file %s: No such file" % (conf, os.path.join(confdir, "no-hosts")))


def test_good_secret_passes_check(confdir):
    write(confdir, "bind.secret", "hunter2\n", mode=0o600)
    conf = base(confdir, LDAP + "ldap_bind_dn cn=svc,dc=example,dc=org\n"
                "ldap_bind_password_file bind.secret\n")
    r = run(["-t", "-c", conf])
    out = (r.stdout + r.stderr).decode()
    assert r.returncode == 0 and "%s: ok (1 rules)" % conf in out, out
