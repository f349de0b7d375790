"""auth/ against a real slapd, through tests/integration/auth_probe.c.

The probe links auth/*.c (built here, with ASan and UBSan) and keeps one
authenticator alive while the tests feed it header values and stop, freeze
and restart the directory.  These tests check the module; the gateway's own
407/503/group-rule tests drive egressd with the same slapd fixture.
"""

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time

import pytest

from harness import slapd as sl
from harness.slapd import Slapd

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROBE_SRC = os.path.join(REPO, "tests", "integration", "auth_probe.c")
TIMEOUT = 2         # ldap_timeout given to the probe


def basic(user, password):
    raw = user.encode() if isinstance(user, str) else user
    raw += b":" + (password.encode() if isinstance(password, str) else password)
    return b"Basic " + base64.b64encode(raw)


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def probe_bin():
    d = tempfile.mkdtemp(prefix="auth-probe-")
    out = os.path.join(d, "auth_probe")
    srcs = sorted(os.path.join(REPO, "auth", f) for f in os.listdir(os.path.join(REPO, "auth"))
                  if f.endswith(".c"))
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "libevent", "ldap"],
                           capture_output=True, text=True, check=True).stdout.split()
    cmd = ["cc", "-std=gnu11", "-D_GNU_SOURCE", "-I", REPO, "-g", "-O1",
           "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
           "-Wall", "-Wextra", "-Werror", "-o", out, PROBE_SRC] + srcs + ["-pthread"] + flags
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail("building auth_probe failed:\n%s" % r.stderr[-4000:])
    yield out
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def ldap():
    s = Slapd().start()
    yield s
    s.cleanup()


@pytest.fixture
def own_ldap():
    """A directory of the test's own, for stopping and freezing."""
    s = Slapd().start()
    yield s
    s.cleanup()


@pytest.fixture(scope="module")
def ldap_tls():
    s = Slapd(tls=True).start()
    yield s
    s.cleanup()


class Probe:
    def __init__(self, binary, directory, extra=(), service=True, uris=None, env=None,
                 cwd=None):
        self.dir = tempfile.mkdtemp(prefix="auth-probe-run-")
        args = [binary]
        for u in (uris or [directory.uri]):
            args += ["--uri", u]
        args += ["--user-base", sl.PEOPLE, "--group-base", sl.GROUPS,
                 "--timeout", str(TIMEOUT)]
        if service:
            self.secret = directory.write_secret(os.path.join(self.dir, "ldap.secret"))
            args += ["--bind-dn", sl.BIND_DN, "--bind-pw-file", self.secret]
        args += list(extra)
        self.stderr_path = os.path.join(self.dir, "stderr")
        self._err = open(self.stderr_path, "wb")
        e = dict(os.environ)
        e.update(env or {})
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1")
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self._err, env=e, cwd=cwd or self.dir)
        self.first = self._read(10)

    def _read(self, timeout):
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.proc.stdout], [], [], left)[0]:
                raise AssertionError("auth_probe silent for %ss; stderr:\n%s"
                                     % (timeout, self.stderr()[-3000:]))
            ch = self.proc.stdout.read1(4096) if hasattr(self.proc.stdout, "read1") \
                else os.read(self.proc.stdout.fileno(), 4096)
            if not ch:
                raise AssertionError("auth_probe exited (%s); stderr:\n%s"
                                     % (self.proc.wait(), self.stderr()[-3000:]))
            line += ch
        return json.loads(line.decode())

    def cmd(self, text, timeout=30):
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()
        return self._read(timeout)

    def auth(self, hdr, timeout=30):
        return self.cmd("auth " + ("-" if hdr is None else hdr.hex()), timeout)

    def login(self, user, password):
        return self.auth(basic(user, password))

    def burst(self, n, hdr):
        return self.cmd("burst %d %s" % (n, hdr.hex()))

    def stats(self):
        return self.cmd("stats")

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def close(self):
        if self._err.closed:
            return self.proc.returncode, ""
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._err.close()
        rc = self.proc.returncode
        err = self.stderr()
        shutil.rmtree(self.dir, ignore_errors=True)
        return rc, err


@pytest.fixture
def make_probe(probe_bin):
    probes = []

    def make(directory, **kw):
        p = Probe(probe_bin, directory, **kw)
        probes.append(p)
        return p
    yield make
    for p in probes:
        rc, err = p.close()
        assert "ERROR: AddressSanitizer" not in err and "runtime error" not in err, err[-4000:]
        for pw in list(sl.USERS.values()) + [sl.BIND_PASSWORD, "wrong-pw"]:
            assert pw not in err, "a password appears in the module's messages:\n" + err


@pytest.fixture
def probe(ldap, make_probe):
    p = make_probe(ldap)
    assert p.first == {"ready": True}, p.first
    return p


def expect(res, status, user=None, groups=None, sync=None):
    assert res.get("status") == status, res
    if user is not None:
        assert res["user"] == user, res
    if groups is not None:
        assert sorted(res["groups"]) == sorted(groups), res
    if sync is not None:
        assert res["sync"] is sync, res


# ------------------------------------------------------------------ credentials


def test_good_passwords_with_groups(probe):
    expect(probe.login("alice", "alice-pw"), "ok", "alice", ["engineering"], sync=False)
    expect(probe.login("bob", "bob-pw"), "ok", "bob", ["sales"])
    expect(probe.login("carol", "carol-pw"), "ok", "carol", [])
    # the second time from the cache, on the calling thread
    expect(probe.login("alice", "alice-pw"), "ok", "alice", ["engineering"], sync=True)
    assert probe.stats()["exchanges"] == 3


def test_wrong_password_does_not_lock_out_the_right_one(probe):
    expect(probe.login("alice", "wrong-pw"), "failed", "alice", [], sync=False)
    expect(probe.login("alice", "wrong-pw"), "failed", "alice", sync=True)   # negative cache
    expect(probe.login("alice", "alice-pw"), "ok", "alice", ["engineering"])
    expect(probe.login("bob", "alice-pw"), "failed", "bob")


def test_empty_password_never_reaches_the_directory(probe, ldap):
    # The directory would take it: a DN with an empty password binds anonymously.
    r = subprocess.run(["ldapwhoami", "-x", "-H", ldap.uri, "-D", sl.user_dn("alice"), "-w", ""],
                       capture_output=True, text=True, env={"LDAPNOINIT": "1"})
    assert r.returncode == 0 and "anonymous" in r.stdout, (r.stdout, r.stderr)
    expect(probe.login("alice", ""), "failed", "alice", [], sync=True)
    expect(probe.auth(b"Basic " + base64.b64encode(b":alice-pw")), "failed", sync=True)
    expect(probe.auth(b"Basic " + base64.b64encode(b":")), "failed", sync=True)
    assert probe.stats()["exchanges"] == 0


def test_unknown_user(probe):
    expect(probe.login("mallory", "alice-pw"), "failed", "mallory")
    expect(probe.login("dup", "dup-pw"), "failed", "dup")   # two entries: neither


@pytest.mark.parametrize("name", ["*", "alice*", "alice)(uid=*", "*)(uid=*))(|(uid=*",
                                  "al*ce", "*lice", "(uid=alice)", "alice\\2a", "star*",
                                  "*user", "paren(*)"])
def test_injection_never_authenticates(probe, name):
    for pw in ("alice-pw", "star-pw", "paren-pw"):
        res = probe.login(name, pw)
        expect(res, "failed")
        assert res["user"] == name, res


def test_metacharacter_users_are_themselves(probe):
    # '*' and parentheses in the name and in the DN (the group filter's %d)
    expect(probe.login("star*user", "star-pw"), "ok", "star*user", ["stars"])
    expect(probe.login("paren(user)", "paren-pw"), "ok", "paren(user)", ["stars"])
    expect(probe.login("star*user", "paren-pw"), "failed")


@pytest.mark.parametrize("hdr", [
    b"Basic YWxpY2U6YWxpY2UtcHc",          # padding missing
    b"Basic YWxpY2U6YWxpY2UtcHc==",        # too much padding
    b"Basic YWxpY2U6YWxpY2UtcHc=,",        # trailing garbage
    b"Basic YWxp Y2U6YWxpY2UtcHc=",        # space inside
    b"Basic YWxpY2U6YWxpY2UtcHc=\x00",     # NUL after
    b"Basic YWxpY2U_YWxpY2UtcHc=",         # base64url
    b"Basic !!!!",
    b"Basic",
    b"Basic ",
    b"Bearer YWxpY2U6YWxpY2UtcHc=",
    b"Digest username=\"alice\"",
    b"Negotiate YWxpY2U6YWxpY2UtcHc=",
    b"BasicYWxpY2U6YWxpY2UtcHc=",
    b"",
    b"Basic " + base64.b64encode(b"ali\x00ce:alice-pw"),
    b"Basic " + base64.b64encode(b"alice:alice\x00-pw"),
    b"Basic " + base64.b64encode(b"alice:alice-pw\r\n"),
    b"Basic " + base64.b64encode(b"\xffalice:alice-pw"),
    b"Basic " + base64.b64encode(b" alice:alice-pw"),
    b"Basic " + base64.b64encode(b"alice :alice-pw"),
    b"Basic " + base64.b64encode(b"alice"),
    b"Basic " + base64.b64encode(b"alice:" + b"x" * 2000),
])
def test_bad_headers_fail_locally(probe, hdr):
    expect(probe.auth(hdr), "failed", sync=True)
    assert probe.stats()["exchanges"] == 0


def test_missing_header(probe):
    expect(probe.auth(None), "missing", sync=True)


def test_scheme_is_case_insensitive(probe):
    expect(probe.auth(b"bAsIc " + base64.b64encode(b"alice:alice-pw")), "ok", "alice")


def test_name_as_stored(probe):
    for given in ("ALICE", "Alice", "aLiCe"):
        res = probe.login(given, "alice-pw")
        expect(res, "ok", "alice", ["engineering"])


def test_colon_in_password_and_utf8_name(probe):
    # the name travels escaped byte by byte (\\c3\\a9) and still matches
    expect(probe.login("jos\u00e9", "pa:ss:wd"), "ok", "jos\u00e9", [])
    expect(probe.login("JOS\u00c9", "pa:ss:wd"), "ok", "jos\u00e9", [])
    expect(probe.login("jos\u00e9", "pa:ss"), "failed", "jos\u00e9")


def test_anonymous_search(ldap, make_probe):
    p = make_probe(ldap, service=False)
    expect(p.login("alice", "alice-pw"), "ok", "alice", ["engineering"])
    expect(p.login("alice", "wrong-pw"), "failed")


def test_complex_filter_reads_uid(ldap, make_probe):
    p = make_probe(ldap, extra=["--user-filter", "(&(objectClass=inetOrgPerson)(uid=%u))"])
    expect(p.login("ALICE", "alice-pw"), "ok", "alice", ["engineering"])
    expect(p.login("*", "alice-pw"), "failed")


def test_coalescing_one_exchange(probe):
    before = probe.stats()["exchanges"]
    res = probe.burst(40, basic("carol", "carol-pw"))
    assert res == {"ok": 40, "failed": 0, "unavailable": 0, "sync": 0}, res
    assert probe.stats()["exchanges"] == before + 1


def test_uris_tried_in_order(ldap, make_probe):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = "ldap://127.0.0.1:%d/" % s.getsockname()[1]
    s.close()
    p = make_probe(ldap, uris=[dead, ldap.uri])
    expect(p.login("alice", "alice-pw"), "ok", "alice")


def test_wrong_service_password_is_unavailable(ldap, probe_bin):
    # the service account is the operator's problem, not the user's: 503, not 407
    d = tempfile.mkdtemp(prefix="auth-probe-bad-")
    try:
        sec = ldap.write_secret(os.path.join(d, "s"), password="not-the-secret")
        r = subprocess.run([probe_bin, "--uri", ldap.uri, "--user-base", sl.PEOPLE,
                            "--bind-dn", sl.BIND_DN, "--bind-pw-file", sec],
                           input=b"auth " + basic("alice", "alice-pw").hex().encode() + b"\n",
                           capture_output=True, timeout=30)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    lines = [json.loads(l) for l in r.stdout.decode().splitlines()]
    assert lines[1]["status"] == "unavailable", lines
    assert b"bind as the service account failed" in r.stderr, r.stderr
    assert b"not-the-secret" not in r.stderr and b"alice-pw" not in r.stderr


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_secret_file_readable_by_others_is_refused(ldap, probe_bin, mode):
    d = tempfile.mkdtemp(prefix="auth-probe-perm-")
    try:
        sec = ldap.write_secret(os.path.join(d, "s"), mode=mode)
        r = subprocess.run([probe_bin, "--uri", ldap.uri, "--user-base", sl.PEOPLE,
                            "--bind-dn", sl.BIND_DN, "--bind-pw-file", sec],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
        assert r.returncode != 0
        assert b"chmod 600" in r.stdout, r.stdout
        assert sl.BIND_PASSWORD.encode() not in r.stdout + r.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------ directory down


def test_cached_users_survive_a_stopped_directory(own_ldap, make_probe):
    p = make_probe(own_ldap)
    expect(p.login("alice", "alice-pw"), "ok", "alice", ["engineering"])
    expect(p.login("bob", "wrong-pw"), "failed")
    own_ldap.stop()
    expect(p.login("alice", "alice-pw"), "ok", "alice", ["engineering"], sync=True)
    expect(p.login("bob", "wrong-pw"), "failed", sync=True)      # negative entry still there
    res = p.login("bob", "bob-pw")                                # not cached: 503, not 407
    expect(res, "unavailable", sync=False)
    assert res["user"] is None
    expect(p.login("bob", "bob-pw"), "unavailable")               # and not cached either
    assert p.stats()["errors"] >= 2
    own_ldap.start()
    expect(p.login("bob", "bob-pw"), "ok", "bob", ["sales"])     # recovery, same authenticator
    expect(p.login("carol", "carol-pw"), "ok", "carol")


def test_frozen_directory_delays_only_uncached(own_ldap, make_probe):
    p = make_probe(own_ldap)
    expect(p.login("alice", "alice-pw"), "ok")
    own_ldap.freeze()
    try:
        t0 = time.monotonic()
        expect(p.login("alice", "alice-pw"), "ok", "alice", sync=True)
        assert time.monotonic() - t0 < 0.5
        t0 = time.monotonic()
        expect(p.auth(basic("carol", "carol-pw"), timeout=6 * TIMEOUT + 10), "unavailable")
        took = time.monotonic() - t0
        # one timed-out operation on the kept connection, one on a fresh one
        assert TIMEOUT - 0.5 <= took <= 3 * TIMEOUT + 2, took
    finally:
        own_ldap.thaw()
    expect(p.login("carol", "carol-pw"), "ok", "carol")


# ------------------------------------------------------------------ TLS


def test_starttls_with_the_test_ca(ldap_tls, make_probe):
    p = make_probe(ldap_tls, extra=["--starttls", "--ca", ldap_tls.ca_file])
    expect(p.login("alice", "alice-pw"), "ok", "alice", ["engineering"])
    expect(p.login("alice", "wrong-pw"), "failed")


def test_starttls_wrong_ca_fails_closed(ldap_tls, make_probe):
    # ldaprc, LDAPTLS_* and LDAPRC would all say "do not check": LDAPNOINIT
    # keeps them out of the daemon.
    d = tempfile.mkdtemp(prefix="auth-ldaprc-")
    try:
        with open(os.path.join(d, "ldaprc"), "w") as f:
            f.write("TLS_REQCERT never\nTLS_CACERT %s\n" % ldap_tls.ca_file)
        env = {"LDAPTLS_REQCERT": "never", "LDAPTLS_CACERT": ldap_tls.ca_file,
               "LDAPRC": os.path.join(d, "ldaprc"), "HOME": d}
        p = make_probe(ldap_tls, extra=["--starttls", "--ca", ldap_tls.wrong_ca_file],
                       env=env, cwd=d)
        res = p.login("alice", "alice-pw")
        expect(res, "unavailable")
        assert "StartTLS failed" in p.stderr(), p.stderr()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_no_fallback_to_plain_text(ldap, make_probe, ldap_tls):
    # this slapd has no certificate: StartTLS is refused, and so is the login
    p = make_probe(ldap, extra=["--starttls", "--ca", ldap_tls.ca_file])
    expect(p.login("alice", "alice-pw"), "unavailable")
    assert "StartTLS failed" in p.stderr()


def test_missing_ca_file_is_a_start_error(ldap_tls, probe_bin):
    r = subprocess.run([probe_bin, "--uri", ldap_tls.uri, "--user-base", sl.PEOPLE,
                        "--starttls", "--ca", "/nonexistent/ca.pem"],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=30)
    assert r.returncode != 0
    assert b"ldap_tls_ca_file /nonexistent/ca.pem" in r.stdout, r.stdout
