"""Fixtures for the egressd end-to-end tests.

Scenario layout (all loopback):
  client            127.0.0.1 (raw sockets, curl)
  egressd           127.0.0.1:random (+ a proxy_protocol port when asked)
  HTTP origin       127.0.0.2:random      (names origin.test, forbidden.test)
  TCP echo          127.0.0.2:random      (name echo.test)
  "internal" host   127.0.0.3             (left out of allow_internal)
  blackhole         127.0.0.4:random      (connects time out)
  DNS stub          127.0.0.1:random UDP  (NXDOMAIN to everything)

On a failing test the gateway's stderr and audit records are attached to the report.
"""

import os
import subprocess
import tempfile

import pytest

from harness import auditview, gateway as gwmod
from harness.gateway import Gateway, GatewayError
from harness.servers import Blackhole, DnsStub, EchoServer, HttpOrigin

# ------------------------------------------------------------------ helpers


def _probe_policy_option():
    """The SNI check defaults to `require` for CONNECT rules, and raw echo tunnels
    carry no ClientHello: use `sni=off` when this build's policy accepts it."""
    if not os.access(gwmod.BINARY, os.X_OK):
        return ""
    d = tempfile.mkdtemp(prefix="egw-probe-")
    try:
        with open(os.path.join(d, "policy.rules"), "w") as f:
            f.write("allow any .* * sni=off\n")
        with open(os.path.join(d, "egressd.conf"), "w") as f:
            f.write("listen 127.0.0.1:1\npolicy_file policy.rules\n")
        try:
            r = subprocess.run([gwmod.BINARY, "-t", "-c", os.path.join(d, "egressd.conf")],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return " sni=off" if r.returncode == 0 else ""
    finally:
        import shutil
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def rule_opts():
    """Options appended to allow rules that tunnels raw bytes (" sni=off" or "")."""
    return _probe_policy_option()


@pytest.fixture(scope="session")
def allow_all(rule_opts):
    return ["allow any .* *" + rule_opts]


@pytest.fixture(scope="module", autouse=True)
def client_tls(request):
    """The kind of listener this module's gateways get: plain unless the module
    runs over both (`pytestmark = proxytls.LISTENER_KINDS`); a test may still ask
    Gateway(client_tls=...) for one kind."""
    kind = bool(getattr(request, "param", False))
    old = gwmod.DEFAULT_CLIENT_TLS
    gwmod.DEFAULT_CLIENT_TLS = kind
    yield kind
    gwmod.DEFAULT_CLIENT_TLS = old


# ------------------------------------------------------------------ servers


@pytest.fixture(scope="session")
def dns():
    s = DnsStub().start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def origin():
    s = HttpOrigin("127.0.0.2").start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def echo():
    s = EchoServer("127.0.0.2").start()
    yield s
    s.stop()


@pytest.fixture
def blackhole():
    s = Blackhole("127.0.0.4").start()
    yield s
    s.stop()


# ------------------------------------------------------------------ gateways


class GatewayFactory:
    def __init__(self, dns_port, allow_all):
        self.dns_port = dns_port
        self.allow_all = allow_all
        self.instances = []

    def __call__(self, conf=None, policy=None, hosts=None, proxy_listener=False, start=True,
                 workers=2, resolv_extra="", nofile=None, nofile_hard=None, env=None,
                 client_tls=None):
        g = Gateway(self.dns_port, conf=conf, policy=policy if policy is not None else self.allow_all,
                    hosts=hosts, proxy_listener=proxy_listener, workers=workers,
                    resolv_extra=resolv_extra, nofile=nofile, nofile_hard=nofile_hard, env=env,
                    client_tls=client_tls)
        self.instances.append(g)
        if start:
            g.start()
        return g

    def cleanup(self):
        for g in self.instances:
            g.cleanup()


@pytest.fixture(autouse=True)
def audit_of_this_test_only():
    """A shared gateway or rsyslogd shows a test only its own records
    (harness/auditview.py)."""
    auditview.test_begins()
    yield
    auditview.test_ends()


@pytest.fixture
def make_gateway(dns, allow_all, request):
    """Start a gateway with per-test configuration: make_gateway(conf={...}, policy=[...])."""
    if not os.access(gwmod.BINARY, os.X_OK):
        pytest.fail("%s is not built: run `make all`" % gwmod.BINARY)
    f = GatewayFactory(dns.port, allow_all)
    request.node._gateways = f.instances
    yield f
    crashed = [g for g in f.instances if g.proc is not None and g.proc.poll() not in (None, 0)
               and not getattr(g, "_expect_exit", False)]
    f.cleanup()
    for g in crashed:
        pytest.fail("egressd exited with status %s during the test; stderr:\n%s"
                    % (g.proc.returncode, g.stderr()[-3000:]))


@pytest.fixture(scope="module")
def shared_gateway(dns, allow_all, client_tls):
    """One default gateway shared by the tests of a module (allow everything,
    allow_internal 127.0.0.2/32 and 127.0.0.4/32).  It depends on client_tls
    so that a module run over both listener kinds gets one of each."""
    if not os.access(gwmod.BINARY, os.X_OK):
        pytest.fail("%s is not built: run `make all`" % gwmod.BINARY)
    g = Gateway(dns.port, policy=allow_all)
    try:
        g.start()
    except GatewayError:
        g.cleanup()
        raise
    yield g
    g.cleanup()


@pytest.fixture
def gw(shared_gateway, request):
    """The module's shared gateway; the test fails if egressd died during it."""
    request.node._gateways = [shared_gateway]
    if not shared_gateway.alive():
        pytest.fail("shared egressd is not running (exit %s); stderr:\n%s"
                    % (shared_gateway.proc.returncode, shared_gateway.stderr()[-3000:]))
    yield shared_gateway
    if not shared_gateway.alive():
        pytest.fail("egressd died during this test (exit %s); stderr:\n%s"
                    % (shared_gateway.proc.returncode, shared_gateway.stderr()[-3000:]))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and call.when in ("call", "teardown"):
        for g in getattr(item, "_gateways", []):
            try:
                err = g.stderr()
                rep.sections.append(("egressd stderr (%s)" % g.dir, err[-6000:]))
                rep.sections.append(("egressd configuration", g.describe()))
            except Exception as e:   # never hide the real failure
                rep.sections.append(("egressd stderr", "unavailable: %r" % e))
