"""A throw-away OpenLDAP slapd on loopback, seeded with a small directory.

    from harness.slapd import Slapd
    s = Slapd(tls=True).start()     # ldap://127.0.0.1:<random>/, StartTLS available
    s.gateway_conf(dir)             # egressd.conf keys for it (writes ldap.secret, 0600)
    s.stop(); s.start()             # same port, same data
    s.freeze(); s.thaw()            # SIGSTOP / SIGCONT: accepts TCP, answers nothing
    s.cleanup()

The directory (suffix dc=example,dc=com, mdb, built with slapadd from an LDIF):

    ou=people   uid=alice        alice-pw        in engineering
                uid=bob          bob-pw          in sales
                uid=carol        carol-pw        in no group
                uid=star*user    star-pw         in stars (filter metacharacters in
                uid=paren(user)  paren-pw        in stars  the name and the DN)
                uid=jos\u00e9       pa:ss:wd        in no group (UTF-8 name, colons)
                uid=dup + cn=dup2,uid=dup        dup-pw          two entries share uid=dup
    ou=svc      cn=proxy         proxy-secret    the service account (BIND_DN)
    ou=groups   cn=engineering (alice), cn=sales (bob), cn=stars (star*user, paren(user))

`allow bind_anon_dn` is set on purpose: slapd then accepts a bind with a DN
and an empty password as anonymous, so a gateway that let an empty password
through to a bind would be caught by the tests.  Anyone may search; only a
bind may compare userPassword.

With tls=True, a test CA and a server certificate for 127.0.0.1/localhost are
made with openssl in the temporary folder (ca_file), and a second, unrelated
CA (wrong_ca_file) for fail-closed tests.  The process is stopped by its PID
(SIGTERM, then SIGKILL).  Standard library only.
"""

import base64
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
OPENSSL = "/usr/bin/openssl"
SCHEMA_DIR = "/etc/ldap/schema"
MODULE_DIR = "/usr/lib/ldap"

BASE = "dc=example,dc=com"
PEOPLE = "ou=people," + BASE
GROUPS = "ou=groups," + BASE
BIND_DN = "cn=proxy,ou=svc," + BASE
BIND_PASSWORD = "proxy-secret"
ROOT_DN = "cn=admin," + BASE
ROOT_PASSWORD = "root-secret"

USERS = {
    "alice": "alice-pw",
    "bob": "bob-pw",
    "carol": "carol-pw",
    "star*user": "star-pw",
    "paren(user)": "paren-pw",
    "jos\u00e9": "pa:ss:wd",       # a UTF-8 name, colons in the password
}
MEMBERS = {
    "engineering": ["alice"],
    "sales": ["bob"],
    "stars": ["star*user", "paren(user)"],
}


class SlapdError(Exception):
    pass


def _free_port(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def user_dn(uid):
    return "uid=%s,%s" % (uid, PEOPLE)


def _attr(name, value):
    """One LDIF line; values that are not plain ASCII go base64 (RFC 2849)."""
    if all(0x20 <= ord(c) < 0x7f for c in value) and not value.startswith((" ", ":", "<")):
        return "%s: %s" % (name, value)
    return "%s:: %s" % (name, base64.b64encode(value.encode()).decode())


def _ldif():
    out = ["dn: " + BASE, "objectClass: dcObject", "objectClass: organization",
           "dc: example", "o: Example", ""]
    for ou in ("people", "groups", "svc"):
        out += ["dn: ou=%s,%s" % (ou, BASE), "objectClass: organizationalUnit",
                "ou: " + ou, ""]
    for uid, pw in USERS.items():
        out += [_attr("dn", user_dn(uid)), "objectClass: inetOrgPerson", _attr("uid", uid),
                _attr("cn", uid), _attr("sn", uid), _attr("userPassword", pw), ""]
    # Two entries answer (uid=dup): a search must refuse to pick one.
    out += ["dn: uid=dup," + PEOPLE, "objectClass: inetOrgPerson", "uid: dup",
            "cn: dup", "sn: dup", "userPassword: dup-pw", ""]
    out += ["dn: cn=dup2,uid=dup," + PEOPLE, "objectClass: inetOrgPerson", "uid: dup",
            "cn: dup2", "sn: dup", "userPassword: dup-pw", ""]
    out += ["dn: " + BIND_DN, "objectClass: organizationalRole",
            "objectClass: simpleSecurityObject", "cn: proxy",
            "userPassword: " + BIND_PASSWORD, ""]
    for g, members in MEMBERS.items():
        out += ["dn: cn=%s,%s" % (g, GROUPS), "objectClass: groupOfNames", "cn: " + g]
        out += ["member: " + user_dn(m) for m in members]
        out += [""]
    return "\n".join(out) + "\n"


class Slapd:
    def __init__(self, tls=False):
        for prog in (SLAPD, SLAPADD):
            if not os.access(prog, os.X_OK):
                raise SlapdError("%s is not installed (apt-get install slapd)" % prog)
        self.tls = tls
        self.dir = tempfile.mkdtemp(prefix="slapd-", dir="/tmp")
        self.port = None
        self.proc = None
        self.ca_file = self.wrong_ca_file = None
        self.log_path = os.path.join(self.dir, "slapd.log")
        self._log = None
        self.frozen = False
        if tls:
            self._make_certs()
        self._write_conf()
        self._seed()

    # ------------------------------------------------------------ setup
    def _openssl(self, *args):
        r = subprocess.run([OPENSSL] + list(args), cwd=self.dir, capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=60)
        if r.returncode != 0:
            raise SlapdError("openssl %s: %s" % (" ".join(args), r.stderr.decode()[-2000:]))

    def _ca(self, name):
        self._openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-nodes", "-keyout", name + ".key", "-out", name + ".pem", "-days", "3",
                      "-subj", "/CN=egressd test %s" % name,
                      "-addext", "basicConstraints=critical,CA:TRUE",
                      "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        return os.path.join(self.dir, name + ".pem")

    def _make_certs(self):
        self.ca_file = self._ca("ca")
        self.wrong_ca_file = self._ca("wrong-ca")
        with open(os.path.join(self.dir, "server.ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\n"
                    "keyUsage=critical,digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth\n"
                    "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
        self._openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                      "-nodes", "-keyout", "server.key", "-out", "server.csr",
                      "-subj", "/CN=127.0.0.1")
        self._openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                      "-CAcreateserial", "-out", "server.pem", "-days", "3",
                      "-extfile", "server.ext")

    def _write_conf(self):
        d = self.dir
        os.makedirs(os.path.join(d, "db"), exist_ok=True)
        lines = ["include %s/%s.schema" % (SCHEMA_DIR, s)
                 for s in ("core", "cosine", "inetorgperson", "nis")]
        lines += [
            "pidfile %s/slapd.pid" % d,
            "argsfile %s/slapd.args" % d,
            "modulepath " + MODULE_DIR,
            "moduleload back_mdb",
            "allow bind_anon_dn",
            "sizelimit 500",
        ]
        if self.tls:
            lines += ["TLSCACertificateFile %s/ca.pem" % d,
                      "TLSCertificateFile %s/server.pem" % d,
                      "TLSCertificateKeyFile %s/server.key" % d]
        lines += [
            "database mdb",
            "maxsize 16777216",
            'suffix "%s"' % BASE,
            'rootdn "%s"' % ROOT_DN,
            "rootpw " + ROOT_PASSWORD,
            "directory %s/db" % d,
            "access to attrs=userPassword by anonymous auth by self auth by * none",
            "access to * by * read",
        ]
        self.conf_path = os.path.join(d, "slapd.conf")
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _seed(self):
        path = os.path.join(self.dir, "seed.ldif")
        with open(path, "w") as f:
            f.write(_ldif())
        r = subprocess.run([SLAPADD, "-f", self.conf_path, "-l", path], capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=60)
        if r.returncode != 0:
            raise SlapdError("slapadd failed: %s" % r.stderr.decode()[-3000:])

    # ------------------------------------------------------------ process
    @property
    def uri(self):
        return "ldap://127.0.0.1:%d/" % self.port

    def start(self, timeout=10.0):
        """Start (or restart on the same port after stop())."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        attempts = 1 if self.port is not None else 3
        last = None
        for _ in range(attempts):
            if self.port is None or attempts > 1:
                self.port = _free_port()
            self._log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                [SLAPD, "-d", "0", "-h", "ldap://127.0.0.1:%d/" % self.port,
                 "-f", self.conf_path],
                stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log, cwd=self.dir)
            try:
                self._wait_ready(timeout)
                return self
            except SlapdError as e:
                last = e
                self._kill()
        raise last

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SlapdError("slapd exited with %s; log:\n%s"
                                 % (self.proc.returncode, self.log()[-3000:]))
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SlapdError("slapd not listening on %d after %ss; log:\n%s"
                         % (self.port, timeout, self.log()[-3000:]))

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)
        if self._log:
            self._log.close()
            self._log = None

    def stop(self, grace=5.0):
        """SIGTERM by PID, SIGKILL after grace seconds; the port stays reserved
        in self.port for start()."""
        if self.proc is None:
            return
        if self.frozen:
            self.thaw()
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        self._kill()
        # mdb leaves no lock that would stop the next start; the pid file does
        # not matter to slapd -d.

    def freeze(self):
        """SIGSTOP: the kernel still completes TCP handshakes, nothing answers."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGSTOP)
            self.frozen = True

    def thaw(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.frozen = False

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # ------------------------------------------------------------ clients
    def write_secret(self, path, password=BIND_PASSWORD, mode=0o600):
        """The service account's password file (one trailing newline, as an
        operator's editor leaves it)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        os.chmod(path, mode)
        return path

    def gateway_conf(self, dir, starttls=None, service_account=True, ca_file=None):
        """egressd.conf keys (a dict for harness.gateway.Gateway(conf=...)) that
        point a gateway at this directory.  The password file is written into
        dir (normally the gateway's own folder) with mode 0600."""
        conf = {
            "auth": "ldap",
            "ldap_uri": self.uri,
            "ldap_user_base": PEOPLE,
            "ldap_user_filter": "(uid=%u)",
            "ldap_group_base": GROUPS,
            "ldap_group_filter": "(member=%d)",
            "ldap_group_attr": "cn",
            "ldap_timeout": "2",
        }
        if service_account:
            conf["ldap_bind_dn"] = BIND_DN
            conf["ldap_bind_password_file"] = self.write_secret(os.path.join(dir, "ldap.secret"))
        if starttls if starttls is not None else self.tls:
            conf["ldap_starttls"] = "yes"
            conf["ldap_tls_ca_file"] = ca_file or self.ca_file
        return conf
