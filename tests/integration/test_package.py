"""The Debian package: build/egressd_VERSION_ARCH.deb as `make deb` makes it.

It lints clean; it holds the files and conffiles the contract lists; its unit
passes `systemd-analyze verify` (against a root made of this system's units
and the package's files) and rates 2.0 or lower in `systemd-analyze security
--offline=yes`; its binary and configuration, extracted with `dpkg-deb -x`,
pass `egressd -t`, start as root with `user nobody` and serve a tunnel after
dropping (every thread's /proc status: the user's uids, no capability); its
rsyslog drop-in, run by a real rsyslogd, writes one JSON record a line to
audit.log (0640, group adm) and its logrotate file makes rsyslogd reopen it.

Nothing here installs the package on this machine: paths that name the
system (/run/rsyslog, /var/log/egressd, /run/egressd) are rewritten to the
test's folder in copies of the packaged files.  The fixture builds the
package (`make deb`, about 40 s) when build/ has none newer than the sources.
"""

import glob
import grp
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import time

import pytest

from harness import gateway as gwmod
from harness.client import Conn, connect_bytes, echo_through

REPO = gwmod.REPO
BUILD = os.path.join(REPO, "build")
NOBODY = pwd.getpwnam("nobody")

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (starts egressd as root)")

SOURCES = ["gateway", "config", "auth", "policy", "audit", "admin", "lib", "packaging", "Makefile",
           "README.md"]


def _newest_source():
    newest = 0.0
    for s in SOURCES:
        p = os.path.join(REPO, s)
        if os.path.isfile(p):
            newest = max(newest, os.stat(p).st_mtime)
            continue
        for root, _dirs, files in os.walk(p):
            for f in files:
                newest = max(newest, os.stat(os.path.join(root, f)).st_mtime)
    return newest


@pytest.fixture(scope="module")
def deb():
    debs = glob.glob(os.path.join(BUILD, "egressd_*_*.deb"))
    if not debs or os.stat(debs[0]).st_mtime < _newest_source():
        r = subprocess.run(["make", "-C", REPO, "deb"], capture_output=True, timeout=600)
        assert r.returncode == 0, "make deb failed:\n%s\n%s" % (r.stdout.decode()[-4000:],
                                                               r.stderr.decode()[-4000:])
        debs = glob.glob(os.path.join(BUILD, "egressd_*_*.deb"))
    assert len(debs) == 1, debs
    return debs[0]


@pytest.fixture(scope="module")
def root(deb):
    d = tempfile.mkdtemp(prefix="egw-deb-")
    subprocess.run(["dpkg-deb", "-x", deb, d], check=True, timeout=60)
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_name_and_lintian(deb):
    ver = subprocess.run(["dpkg-deb", "-f", deb, "Version"], capture_output=True, check=True)
    arch = subprocess.run(["dpkg-deb", "-f", deb, "Architecture"], capture_output=True, check=True)
    want = "egressd_%s_%s.deb" % (ver.stdout.decode().strip(), arch.stdout.decode().strip())
    assert os.path.basename(deb) == want
    changes = deb[:-len(".deb")] + ".changes"
    assert os.path.exists(changes), changes
    r = subprocess.run(["lintian", "--fail-on", "error,warning", changes],
                       capture_output=True, timeout=300)
    tags = [l for l in r.stdout.decode().splitlines() if re.match(r"^[EW]: ", l)]
    assert r.returncode == 0 and not tags, "lintian:\n%s\n%s" % (r.stdout.decode(),
                                                                  r.stderr.decode())


EXPECTED = [
    "./usr/sbin/egressd",
    "./usr/sbin/egressctl",
    "./usr/share/man/man8/egressd.8.gz",
    "./usr/share/man/man8/egressctl.8.gz",
    "./usr/share/man/man5/egressd.conf.5.gz",
    "./usr/share/man/man5/egressd.policy.5.gz",
    "./etc/egressd/egressd.conf",
    "./etc/egressd/policy.rules",
    "./lib/systemd/system/egressd.service",
    "./etc/rsyslog.d/egressd.conf",
    "./etc/logrotate.d/egressd",
    "./usr/lib/tmpfiles.d/egressd.conf",
    "./usr/share/doc/egressd/copyright",
    "./usr/share/doc/egressd/audit/record.schema.json",
    "./usr/share/doc/egressd/examples/rsyslog/egressd-audit.conf",
    "./usr/share/doc/egressd/examples/rsyslog/egressd-audit-mmjsonparse.conf",
]


def test_file_list_and_conffiles(deb):
    r = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, check=True)
    listing = r.stdout.decode().splitlines()
    files = {l.split()[-1]: l.split()[0] for l in listing}
    for f in EXPECTED:
        assert f in files, "%s is not in the package:\n%s" % (f, r.stdout.decode())
    assert files["./usr/sbin/egressd"].startswith("-rwxr-xr-x")
    d = tempfile.mkdtemp(prefix="egw-ctl-")
    try:
        subprocess.run(["dpkg-deb", "-e", deb, d], check=True)
        with open(os.path.join(d, "conffiles")) as f:
            conffiles = f.read().split()
        for name in ("postinst", "postrm"):
            assert os.path.exists(os.path.join(d, name)), name
        with open(os.path.join(d, "postinst")) as f:
            postinst = f.read()
        with open(os.path.join(d, "postrm")) as f:
            postrm = f.read()
    finally:
        shutil.rmtree(d, ignore_errors=True)
    assert "/etc/egressd/egressd.conf" in conffiles and "/etc/egressd/policy.rules" in conffiles, \
        conffiles
    assert "adduser --system" in postinst and "/var/log/egressd" in postinst
    assert "deluser --system" in postrm and "rm -rf /var/log/egressd" in postrm


def test_unit_verifies_and_is_hardened(root):
    unit = os.path.join(root, "lib/systemd/system/egressd.service")
    # A root where the unit meets this system's units, its binary and /bin/kill.
    v = tempfile.mkdtemp(prefix="egw-vroot-")
    try:
        shutil.copytree("/lib/systemd/system", os.path.join(v, "lib/systemd/system"),
                        symlinks=True)
        shutil.copy(unit, os.path.join(v, "lib/systemd/system/egressd.service"))
        os.makedirs(os.path.join(v, "usr/sbin"))
        os.makedirs(os.path.join(v, "bin"))
        shutil.copy(os.path.join(root, "usr/sbin/egressd"), os.path.join(v, "usr/sbin/egressd"))
        shutil.copy("/bin/kill", os.path.join(v, "bin/kill"))
        r = subprocess.run(["systemd-analyze", "verify", "--man=no", "--root=" + v,
                            "egressd.service"], capture_output=True, timeout=60)
        out = (r.stdout + r.stderr).decode()
        # verify exits 0 on an unknown key or a bad value: any line is a failure.
        assert r.returncode == 0 and out.strip() == "", out
    finally:
        shutil.rmtree(v, ignore_errors=True)
    r = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--threshold=20", unit],
                       capture_output=True, timeout=60)
    out = r.stdout.decode()
    m = re.search(r"Overall exposure level for egressd\.service: ([0-9.]+)", out)
    assert m and float(m.group(1)) <= 2.0 and r.returncode == 0, out[-3000:]
    keys = {}
    with open(unit) as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                k, _, val = line.strip().partition("=")
                keys.setdefault(k, []).append(val)
    assert keys["Type"] == ["notify"]
    assert keys["User"] == ["egressd"]
    assert keys["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert keys["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    for k, want in (("ProtectSystem", "strict"), ("PrivateTmp", "yes"), ("ProtectHome", "yes"),
                    ("NoNewPrivileges", "yes"), ("RuntimeDirectory", "egressd")):
        assert keys.get(k) == [want], (k, keys.get(k))
    assert keys.get("SystemCallFilter") and keys.get("RestrictAddressFamilies")
    assert "kill -HUP $MAINPID" in keys["ExecReload"][0]
    # LimitNOFILE holds the packaged max_connections (two descriptors each).
    with open(os.path.join(root, "etc/egressd/egressd.conf")) as f:
        maxc = int(re.search(r"^max_connections\s+(\d+)", f.read(), re.M).group(1))
    assert int(keys["LimitNOFILE"][0]) >= 2 * maxc + 1000, (keys["LimitNOFILE"], maxc)


def _packaged_conf(root, d, port, dns, extra_policy="", allow_internal=None):
    """The packaged egressd.conf and policy.rules, with what names this host
    (port, sockets, user, DNS files) pointed at the test's folder d: hosts
    names echo.test, the rest goes to the dns stub; allow_internal, when
    given, is added."""
    with open(os.path.join(root, "etc/egressd/egressd.conf")) as f:
        text = f.read()
    text = re.sub(r"^listen\s+127\.0\.0\.1:3128$", "listen 127.0.0.1:%d" % port, text, flags=re.M)
    text = re.sub(r"^user\s+egressd$", "user nobody", text, flags=re.M)
    text = text.replace("/run/rsyslog/egressd.sock", os.path.join(d, "audit.sock"))
    text = text.replace("/run/egressd/admin.sock", os.path.join(d, "admin.sock"))
    assert "listen 127.0.0.1:%d" % port in text and "user nobody" in text
    text += "dns_hosts_file hosts\ndns_resolv_conf resolv.conf\n"
    if allow_internal is not None:
        text += "allow_internal %s\n" % allow_internal
    with open(os.path.join(d, "egressd.conf"), "w") as f:
        f.write(text)
    with open(os.path.join(d, "hosts"), "w") as f:
        f.write("127.0.0.2 echo.test\n")
    with open(os.path.join(d, "resolv.conf"), "w") as f:
        f.write("nameserver 127.0.0.1:%d\n" % dns.port)
    with open(os.path.join(root, "etc/egressd/policy.rules")) as f:
        policy = f.read()
    with open(os.path.join(d, "policy.rules"), "w") as f:
        f.write(policy + extra_policy)
    return os.path.join(d, "egressd.conf")


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="egw-pkg-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_packaged_config_checks_and_denies_by_default(root, workdir, dns, echo):
    with open(os.path.join(root, "etc/egressd/egressd.conf")) as f:
        text = f.read()
    assert re.search(r"^listen\s+\S+:3128$", text, re.M)
    assert re.search(r"^auth\s+none$", text, re.M)
    with open(os.path.join(root, "etc/egressd/policy.rules")) as f:
        rules = [l for l in f if l.strip() and not l.lstrip().startswith("#")]
    assert rules == [], "the packaged policy must be default-deny: %r" % rules
    port = gwmod.free_port()
    conf = _packaged_conf(root, workdir, port, dns)
    binary = os.path.join(root, "usr/sbin/egressd")
    r = subprocess.run([binary, "-t", "-c", conf], capture_output=True, timeout=10)
    assert r.returncode == 0 and b"ok (0 rules)" in r.stdout, r


def test_packaged_binary_drops_and_serves(root, workdir, dns, echo):
    port = gwmod.free_port()
    # The shipped config allows no internal destination: the echo server is on loopback.
    conf = _packaged_conf(root, workdir, port, dns, "allow any echo\\.test * sni=off\n",
                          allow_internal="127.0.0.2/32")
    with open(conf) as f:
        text = f.read()
    text = re.sub(r"^workers\s+auto$", "workers 2", text, flags=re.M)
    text = re.sub(r"^shutdown_grace\s+\d+$", "shutdown_grace 1", text, flags=re.M)
    with open(conf, "w") as f:
        f.write(text)
    binary = os.path.join(root, "usr/sbin/egressd")
    log = open(os.path.join(workdir, "stderr.log"), "wb")
    p = subprocess.Popen([binary, "-c", conf], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         cwd=workdir)
    try:
        gwmod.wait_listening(p, [port], log.name)
        with Conn(port) as c:
            c.send(connect_bytes("echo.test:%d" % echo.port))
            resp = c.read_head()
            assert resp.status == 200, resp.describe()
            assert echo_through(c, b"packaged") == b"packaged"
        with Conn(port) as c:
            c.send(connect_bytes("other.test:443"))
            assert c.read_head().status == 403
        for tid in os.listdir("/proc/%d/task" % p.pid):
            st = {}
            with open("/proc/%d/task/%s/status" % (p.pid, tid)) as f:
                for line in f:
                    k, _, v = line.partition(":")
                    st[k] = v.split()
            assert st["Uid"] == [str(NOBODY.pw_uid)] * 4, (tid, st["Uid"])
            assert int(st["CapEff"][0], 16) == 0 and int(st["CapPrm"][0], 16) == 0, (tid, st)
        sock = os.lstat(os.path.join(workdir, "admin.sock"))
        assert sock.st_uid == NOBODY.pw_uid
        r = subprocess.run([os.path.join(root, "usr/sbin/egressctl"), "-c", conf, "status"],
                           capture_output=True, timeout=10)
        assert r.returncode == 0, r
    finally:
        gwmod.stop_process(p, grace=10)
        log.close()
    assert p.returncode == 0, open(os.path.join(workdir, "stderr.log")).read()


def _wait(pred, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def _lines(path):
    try:
        with open(path) as f:
            return [l for l in f.read().splitlines() if l]
    except OSError:
        return []


def test_rsyslog_dropin_and_logrotate(root, workdir, dns, echo):
    """The packaged drop-in run by a real rsyslogd; records sent by the packaged
    egressd; the packaged logrotate file rotates and rsyslogd reopens."""
    logdir = os.path.join(workdir, "log")
    sock = os.path.join(workdir, "audit.sock")
    pidfile = os.path.join(workdir, "rsyslogd.pid")
    with open(os.path.join(root, "etc/rsyslog.d/egressd.conf")) as f:
        dropin = f.read()
    assert "/var/log/egressd/audit.log" in dropin and "/run/rsyslog/egressd.sock" in dropin
    dropin = dropin.replace("/var/log/egressd", logdir).replace("/run/rsyslog/egressd.sock", sock)
    with open(os.path.join(workdir, "dropin.conf"), "w") as f:
        f.write(dropin)
    work = os.path.join(workdir, "spool")
    os.mkdir(work)
    with open(os.path.join(workdir, "rsyslog.conf"), "w") as f:
        f.write('global(workDirectory="%s")\nmodule(load="imuxsock" SysSock.Use="off")\n'
                'include(file="%s")\n*.* action(type="omfile" File="%s")\n'
                % (work, os.path.join(workdir, "dropin.conf"), os.path.join(workdir, "other.log")))
    rs = subprocess.Popen(["/usr/sbin/rsyslogd", "-n", "-i", pidfile, "-f",
                           os.path.join(workdir, "rsyslog.conf")], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    g = None
    try:
        assert _wait(lambda: os.path.exists(sock) and os.path.exists(pidfile)), \
            "rsyslogd did not start: %r" % (rs.poll() and rs.stderr.read())
        port = gwmod.free_port()
        conf = _packaged_conf(root, workdir, port, dns, "allow any echo\\.test * sni=off\n",
                              allow_internal="127.0.0.2/32")
        log = open(os.path.join(workdir, "stderr.log"), "wb")
        g = subprocess.Popen([os.path.join(root, "usr/sbin/egressd"), "-c", conf],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=workdir)
        gwmod.wait_listening(g, [port], log.name)

        def tunnel(tag):
            with Conn(port) as c:
                c.send(connect_bytes("echo.test:%d" % echo.port))
                assert c.read_head().status == 200
                assert echo_through(c, tag) == tag
                return c.local_port

        audit = os.path.join(logdir, "audit.log")
        cport = tunnel(b"one")
        assert _wait(lambda: any('"client_port":%d' % cport in l.replace(" ", "")
                                 for l in _lines(audit))), _lines(audit)
        recs = [json.loads(l) for l in _lines(audit)]    # every line one JSON object
        assert {"start", "tunnel"} <= {r["event"] for r in recs}, recs
        st = os.stat(audit)
        assert stat.S_IMODE(st.st_mode) == 0o640, oct(st.st_mode)
        assert st.st_gid == grp.getgrnam("adm").gr_gid and st.st_uid == 0
        assert not _lines(os.path.join(workdir, "other.log")) or \
            "egressd" not in "".join(_lines(os.path.join(workdir, "other.log")))

        # Rotate with the packaged file: rename, then rsyslogd reopens (SIGHUP).
        with open(os.path.join(root, "etc/logrotate.d/egressd")) as f:
            lr = f.read()
        lr = lr.replace("/var/log/egressd", logdir).replace("/run/rsyslogd.pid", pidfile)
        # This machine's systemd (if it is PID 1) would HUP the system rsyslog.
        lr = lr.replace("/run/systemd/system", os.path.join(workdir, "no-systemd"))
        with open(os.path.join(workdir, "logrotate.conf"), "w") as f:
            f.write(lr)
        r = subprocess.run(["logrotate", "-f", "-s", os.path.join(workdir, "lr.state"),
                            os.path.join(workdir, "logrotate.conf")], capture_output=True,
                           timeout=30)
        assert r.returncode == 0, r
        assert os.path.exists(audit + ".1"), os.listdir(logdir)
        cport2 = tunnel(b"two")
        assert _wait(lambda: any('"client_port":%d' % cport2 in l.replace(" ", "")
                                 for l in _lines(audit))), \
            "rsyslogd did not reopen audit.log after the rotation: %s" % os.listdir(logdir)
        assert not any('"client_port":%d' % cport2 in l.replace(" ", "")
                       for l in _lines(audit + ".1"))
        assert stat.S_IMODE(os.stat(audit).st_mode) == 0o640
    finally:
        if g is not None:
            gwmod.stop_process(g, grace=10)
        gwmod.stop_process(rs, grace=10)


@pytest.mark.skipif(os.environ.get("EGRESSD_PKG_INSTALL_TEST") != "1",
                    reason="installs the package on this machine: EGRESSD_PKG_INSTALL_TEST=1")
def test_install_and_purge(deb):
    """dpkg -i on this machine, then purge: the user, the folders, -t of the
    installed configuration, and nothing left after purge."""
    assert subprocess.run(["getent", "passwd", "egressd"]).returncode != 0, \
        "an egressd user exists already"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    r = subprocess.run(["dpkg", "-i", deb], capture_output=True, timeout=300, env=env)
    try:
        assert r.returncode == 0, r
        pw = pwd.getpwnam("egressd")
        assert pw.pw_uid < 1000 and pw.pw_shell.endswith("nologin"), pw
        st = os.stat("/etc/egressd")
        assert stat.S_IMODE(st.st_mode) == 0o750 and st.st_gid == pw.pw_gid, st
        st = os.stat("/var/log/egressd")
        assert stat.S_IMODE(st.st_mode) == 0o750 and st.st_gid == grp.getgrnam("adm").gr_gid
        assert os.stat("/run/egressd").st_uid == pw.pw_uid
        r = subprocess.run(["/usr/sbin/egressd", "-t", "-c", "/etc/egressd/egressd.conf"],
                           capture_output=True, timeout=10)
        assert r.returncode == 0 and b"ok (0 rules)" in r.stdout, r
    finally:
        r = subprocess.run(["dpkg", "--purge", "egressd"], capture_output=True, timeout=300,
                           env=env)
    assert r.returncode == 0, r
    assert subprocess.run(["getent", "passwd", "egressd"], capture_output=True).returncode != 0
    assert subprocess.run(["getent", "group", "egressd"], capture_output=True).returncode != 0
    for p in ("/var/log/egressd", "/etc/egressd", "/run/egressd", "/usr/sbin/egressd"):
        assert not os.path.exists(p), p
