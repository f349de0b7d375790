"""egressd as a service: least privilege and systemd's notification protocol.

Least privilege: started as root with `user nobody`, every thread of the
process has nobody's uids and gids and no capability (read from
/proc/PID/task/*/status by the test, not from the daemon's word), no new
privileges, no core dump, the admin socket belongs to nobody, and it still
serves tunnels and reloads its policy as nobody.  Root without `user` warns;
a non-root start with another `user` is refused; a secret owned by the user
is accepted.

sd_notify: a real AF_UNIX datagram socket bound by the test stands in for
systemd's; the messages must come in the order of the contract (READY=1
after listening, RELOADING=1 + MONOTONIC_USEC then READY=1 around a reload,
accepted or refused, STOPPING=1 on SIGTERM), with STATUS= and watchdog pings.
Without NOTIFY_SOCKET nothing of it happens.
"""

import os
import pwd
import signal
import socket
import stat
import subprocess
import tempfile
import time

import pytest

from harness import gateway as gwmod
from harness.client import connect_bytes, echo_through, Conn
from harness.util import fmt_records

NOBODY = pwd.getpwnam("nobody")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start as root")


def proc_status(pid, tid=None):
    path = "/proc/%d/status" % pid if tid is None else "/proc/%d/task/%s/status" % (pid, tid)
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def open_for(g):
    """The gateway's folder readable by nobody (mkdtemp makes it 0700)."""
    os.chmod(g.dir, 0o755)


def tunnel_echo(g, echo, data=b"through"):
    with Conn(g.port) as c:
        c.send(connect_bytes("echo.test:%d" % echo.port))
        r = c.read_head()
        assert r.status == 200, "tunnel after the drop: %s\n%s" % (r.describe(), g.stderr()[-2000:])
        return echo_through(c, data)


# ------------------------------------------------------------ least privilege


def test_root_with_user_drops_everything_in_every_thread(make_gateway, echo, rule_opts):
    g = make_gateway(conf={"user": "nobody", "admin_socket": "admin.sock", "workers": "2"},
                     start=False)
    open_for(g)
    g.start()
    pid = g.proc.pid
    assert tunnel_echo(g, echo) == b"through"
    tasks = os.listdir("/proc/%d/task" % pid)
    # main + 2 workers + the audit writer at least
    assert len(tasks) >= 4, tasks
    for tid in tasks:
        st = proc_status(pid, tid)
        assert st["Uid"] == [str(NOBODY.pw_uid)] * 4, (tid, st["Uid"])
        assert st["Gid"] == [str(NOBODY.pw_gid)] * 4, (tid, st["Gid"])
        assert st.get("Groups", []) in ([], [str(NOBODY.pw_gid)]), (tid, st.get("Groups"))
        for cap in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
            assert int(st[cap][0], 16) == 0, (tid, cap, st[cap])
        assert st["NoNewPrivs"] == ["1"], (tid, st["NoNewPrivs"])
    # Not dumpable: the kernel gives /proc/PID's files to root, not to the uid.
    assert os.stat("/proc/%d/environ" % pid).st_uid == 0
    with open("/proc/%d/limits" % pid) as f:
        core = [l for l in f if l.startswith("Max core file size")]
    assert core and core[0].split()[4:6] == ["0", "0"], core
    st = os.lstat(os.path.join(g.dir, "admin.sock"))
    assert stat.S_ISSOCK(st.st_mode) and st.st_uid == NOBODY.pw_uid, st
    assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
    assert "event=privdrop user=nobody" in g.stderr()
    assert "running-as-root" not in g.stderr()


def test_reload_works_as_the_user(make_gateway, echo, rule_opts):
    g = make_gateway(conf={"user": "nobody"}, policy=["allow any echo\\.test *" + rule_opts],
                     start=False)
    open_for(g)
    g.start()
    with open(os.path.join(g.dir, "policy.rules"), "w") as f:
        f.write("deny any echo\\.test *\nallow any .* *%s\n" % rule_opts)
    g.signal(signal.SIGHUP)
    recs = g.wait_audit(lambda r: r.get("event") == "reload", timeout=5)
    assert recs and recs[-1]["decision"] == "allow", fmt_records(g.audit())
    with Conn(g.port) as c:
        c.send(connect_bytes("echo.test:%d" % echo.port))
        assert c.read_head().status == 403, "the reloaded policy is not in force"
    # A policy nobody cannot read is refused, the old one stays.
    os.chmod(os.path.join(g.dir, "policy.rules"), 0o600)
    g.signal(signal.SIGHUP)
    recs = g.wait_audit(lambda r: r.get("event") == "reload" and r.get("decision") == "deny",
                        timeout=5)
    assert recs, fmt_records(g.audit())
    assert "Permission denied" in g.stderr(), g.stderr()[-2000:]
    with Conn(g.port) as c:
        c.send(connect_bytes("echo.test:%d" % echo.port))
        assert c.read_head().status == 403


def test_policy_unreadable_by_the_user_is_said_at_start(make_gateway):
    g = make_gateway(conf={"user": "nobody"}, start=False)
    open_for(g)
    real_write = g.write_files
    g.write_files = lambda: (real_write(), os.chmod(os.path.join(g.dir, "policy.rules"), 0o600))
    g.start()
    assert "event=policy-unreadable policy=policy.rules user=nobody" in g.stderr(), \
        g.stderr()[-2000:]


def test_root_without_user_warns(make_gateway):
    g = make_gateway()
    assert "event=running-as-root" in g.stderr(), g.stderr()[-2000:]


def _conf_dir(extra=""):
    d = tempfile.mkdtemp(prefix="egw-svc-")
    os.chmod(d, 0o755)
    with open(os.path.join(d, "policy.rules"), "w") as f:
        f.write("allow any .* 443\n")
    with open(os.path.join(d, "egressd.conf"), "w") as f:
        f.write("listen 127.0.0.1:%d\npolicy_file policy.rules\nworkers 1\n"
                "audit_syslog_socket audit.sock\n%s" % (gwmod.free_port(), extra))
    return d


def _low_port():
    """A free port below 1024 on 127.0.0.1 (only CAP_NET_BIND_SERVICE may bind it)."""
    import random
    for _ in range(50):
        port = random.randint(900, 1023)
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    pytest.fail("no free port below 1024")


@pytest.mark.skipif(not os.access("/usr/bin/setpriv", os.X_OK), reason="needs setpriv")
def test_started_as_user_with_ambient_capability_sheds_it(echo, dns, rule_opts):
    """What the unit does: User=egressd with AmbientCapabilities=CAP_NET_BIND_SERVICE.
    egressd binds a port below 1024 with it, then no thread keeps any capability."""
    d = tempfile.mkdtemp(prefix="egw-svc-")
    os.chmod(d, 0o755)
    port = _low_port()
    with open(os.path.join(d, "policy.rules"), "w") as f:
        f.write("allow any echo\\.test *%s\n" % rule_opts)
    with open(os.path.join(d, "hosts"), "w") as f:
        f.write("127.0.0.2 echo.test\n")
    with open(os.path.join(d, "resolv.conf"), "w") as f:
        f.write("nameserver 127.0.0.1:%d\n" % dns.port)
    with open(os.path.join(d, "egressd.conf"), "w") as f:
        f.write("listen 127.0.0.1:%d\npolicy_file policy.rules\nworkers 2\nuser nobody\n"
                "dns_hosts_file hosts\ndns_resolv_conf resolv.conf\n"
                "allow_internal 127.0.0.2/32\naudit_syslog_socket audit.sock\n"
                "shutdown_grace 1\n" % port)
    log = open(os.path.join(d, "stderr.log"), "wb")
    p = subprocess.Popen(["/usr/bin/setpriv", "--reuid=nobody", "--regid=%d" % NOBODY.pw_gid,
                          "--clear-groups", "--inh-caps=+net_bind_service",
                          "--ambient-caps=+net_bind_service", gwmod.BINARY, "-c",
                          os.path.join(d, "egressd.conf")],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=d)
    try:
        gwmod.wait_listening(p, [port], log.name)
        with Conn(port) as c:
            c.send(connect_bytes("echo.test:%d" % echo.port))
            assert c.read_head().status == 200
            assert echo_through(c, b"low") == b"low"
        for tid in os.listdir("/proc/%d/task" % p.pid):
            st = proc_status(p.pid, tid)
            assert st["Uid"] == [str(NOBODY.pw_uid)] * 4, (tid, st["Uid"])
            for cap in ("CapEff", "CapPrm", "CapInh", "CapAmb"):
                assert int(st[cap][0], 16) == 0, (tid, cap, st[cap])
    finally:
        gwmod.stop_process(p, grace=10)
        log.close()
        import shutil
        shutil.rmtree(d, ignore_errors=True)


def test_non_root_with_another_user_is_refused():
    d = _conf_dir("user root\n")
    try:
        # nobody runs a copy: the checkout may sit under a folder only root
        # may enter (mktemp -d makes it 0700).
        import shutil
        binary = os.path.join(d, "egressd")
        shutil.copy(gwmod.BINARY, binary)
        os.chmod(binary, 0o755)
        r = subprocess.run([binary, "-c", os.path.join(d, "egressd.conf")],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=10,
                           user=NOBODY.pw_uid, group=NOBODY.pw_gid, extra_groups=[])
        assert r.returncode != 0
        err = r.stderr.decode()
        assert "egressd.conf:5: user root: egressd runs as uid %d" % NOBODY.pw_uid in err, err
    finally:
        import shutil
        shutil.rmtree(d, ignore_errors=True)


def test_unknown_user_is_a_config_error():
    d = _conf_dir("user no-such-user-egw\n")
    try:
        for args in (["-t"], []):
            r = subprocess.run([gwmod.BINARY] + args + ["-c", os.path.join(d, "egressd.conf")],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
            assert r.returncode == 1, (args, r)
            assert "egressd.conf:5: user no-such-user-egw: no such user" in r.stderr.decode(), r
    finally:
        import shutil
        shutil.rmtree(d, ignore_errors=True)


def test_secret_may_belong_to_the_user():
    d = _conf_dir("auth ldap\nldap_uri ldap://127.0.0.1:1\nldap_user_base dc=x\n"
                  "ldap_bind_dn cn=proxy,dc=x\nldap_bind_password_file ldap.secret\n")
    try:
        sec = os.path.join(d, "ldap.secret")
        with open(sec, "w") as f:
            f.write("pw\n")
        os.chmod(sec, 0o600)
        os.chown(sec, NOBODY.pw_uid, NOBODY.pw_gid)
        conf = os.path.join(d, "egressd.conf")
        r = subprocess.run([gwmod.BINARY, "-t", "-c", conf], capture_output=True, timeout=10)
        assert r.returncode == 1 and b"must be owned by root" in r.stderr, r
        with open(conf, "a") as f:
            f.write("user nobody\n")
        r = subprocess.run([gwmod.BINARY, "-t", "-c", conf], capture_output=True, timeout=10)
        assert r.returncode == 0, r
    finally:
        import shutil
        shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------ sd_notify


class NotifySocket:
    """systemd's side: an AF_UNIX datagram socket; every datagram is one message."""

    def __init__(self, d):
        self.path = os.path.join(d, "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o777)       # the daemon sends as nobody too
        self.sock.settimeout(0.2)
        self.messages = []

    def drain(self, until=None, timeout=5.0):
        """Collect messages; with until, stop once a message contains it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                m = self.sock.recv(4096).decode()
            except socket.timeout:
                if until is None:
                    return
                continue
            self.messages.append(m)
            if until is not None and until in m.split("\n"):
                return
        if until is not None:
            raise AssertionError("no %r in %r" % (until, self.messages))

    def states(self):
        """The messages without the watchdog pings, as lists of assignments."""
        return [m.split("\n") for m in self.messages if m != "WATCHDOG=1"]

    def close(self):
        self.sock.close()


def _has(msg, key):
    return any(a.startswith(key) for a in msg)


@pytest.mark.parametrize("as_user", [False, True], ids=["root", "user-nobody"])
def test_notify_messages_in_order(make_gateway, echo, rule_opts, as_user):
    conf = {"user": "nobody"} if as_user else {}
    g = make_gateway(conf=conf, start=False)
    open_for(g)
    ns = NotifySocket(g.dir)
    try:
        g.env = {"NOTIFY_SOCKET": ns.path, "WATCHDOG_USEC": "400000"}
        g.start()
        ns.drain(until="READY=1")
        ready = ns.states()[-1]
        assert ns.states() == [ready], "READY=1 must be the first state message: %r" % ns.messages
        assert _has(ready, "STATUS=serving: 1 rules from policy.rules"), ready
        # READY=1 comes after listening: the listener accepts by then.
        assert tunnel_echo(g, echo) == b"through"
        # Watchdog pings at half the interval.
        time.sleep(0.7)
        ns.drain()
        assert ns.messages.count("WATCHDOG=1") >= 2, ns.messages
        assert "event=watchdog interval_ms=200" in g.stderr()
        # An accepted reload, then a refused one: RELOADING=1 with a timestamp, READY=1 after.
        before = time.clock_gettime(time.CLOCK_MONOTONIC)
        g.signal(signal.SIGHUP)
        ns.drain(until="READY=1")
        with open(os.path.join(g.dir, "policy.rules"), "w") as f:
            f.write("frobnicate any .* *\n")
        g.signal(signal.SIGHUP)
        ns.drain(until="READY=1")
        g.signal(signal.SIGTERM)
        ns.drain(until="STOPPING=1")
        assert g.wait_exit(10) == 0
        st = ns.states()
        kinds = [[a.split("=")[0] for a in m if a.split("=")[0] in
                  ("READY", "RELOADING", "STOPPING")] for m in st]
        kinds = [k for k in kinds if k]
        assert kinds == [["READY"], ["RELOADING"], ["READY"], ["RELOADING"], ["READY"],
                         ["STOPPING"]], ns.messages
        reloading = [m for m in st if "RELOADING=1" in m]
        for m in reloading:
            usec = [a for a in m if a.startswith("MONOTONIC_USEC=")]
            assert usec, m
            t = int(usec[0].split("=")[1]) / 1e6
            assert before - 1 <= t <= time.clock_gettime(time.CLOCK_MONOTONIC), (before, t)
        # The first READY carries the status; the last STATUS= says it stops.
        assert _has(st[-1], "STATUS=stopping"), st[-1]
    finally:
        ns.close()


def test_nothing_without_notify_socket(make_gateway):
    g = make_gateway(env={"WATCHDOG_USEC": "200000", "NOTIFY_SOCKET": ""})
    time.sleep(0.3)
    g.signal(signal.SIGTERM)
    assert g.wait_exit(10) == 0
    err = g.stderr()
    assert "event=watchdog" not in err and "sd-notify" not in err, err[-2000:]
