"""The egressd process under test.

Gateway writes egressd.conf, policy.rules, hosts and resolv.conf into its own
temporary folder, starts `build/egressd -c egressd.conf`, waits until its port
accepts, captures stderr into a file, and stops the process by its PID
(SIGTERM, then SIGKILL after a bound).

Audit records are collected from two places, so the tests do not depend on
which one the build uses: `audit {JSON}` lines on stderr, and syslog datagrams
on the unix socket named by audit_syslog_socket (bound here, in the temporary
folder; the JSON object is the part of the message from the first '{').
"""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

from harness import auditview, proxytls

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BINARY = os.environ.get("EGRESSD", os.path.join(REPO, "build", "egressd"))

DEFAULT_POLICY = ["allow any .* *"]
DEFAULT_HOSTS = {
    "origin.test": "127.0.0.2",
    "echo.test": "127.0.0.2",
    "internal.test": "127.0.0.3",
    "blackhole.test": "127.0.0.4",
    "forbidden.test": "127.0.0.2",
}

# The kind of main listener a Gateway gets when the test does not say:
# conftest.py's client_tls fixture sets it per module (plain and tls runs).
DEFAULT_CLIENT_TLS = False

_AUDIT_RE = re.compile(r"(?:^|\s)audit (\{.*\})\s*$")


def free_port(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def stop_process(proc, grace=5.0):
    """SIGTERM, wait up to grace seconds, then SIGKILL (a process that ignores
    SIGTERM must not hang the run).  True when SIGKILL was needed."""
    if proc.poll() is not None:
        return False
    proc.terminate()
    try:
        proc.wait(timeout=grace)
        return False
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
        return True


def read_log(path):
    """A process's captured stdout and stderr, as text ("" before there is any)."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def wait_listening(proc, ports, log, timeout=10.0):
    """Until every one of ports on 127.0.0.1 accepts.  GatewayError, with the
    end of the log file, when proc exits first or timeout passes."""
    deadline = time.monotonic() + timeout
    pending = list(ports)
    while pending and time.monotonic() < deadline:
        if proc.poll() is not None:
            raise GatewayError("egressd exited with %s before listening; stderr:\n%s"
                               % (proc.returncode, read_log(log)[-4000:]))
        try:
            s = socket.create_connection(("127.0.0.1", pending[0]), timeout=0.5)
            s.close()
            pending.pop(0)
        except OSError:
            time.sleep(0.05)
    if pending:
        raise GatewayError("egressd not listening on %s after %ss; stderr:\n%s"
                           % (pending, timeout, read_log(log)[-4000:]))


_COLLECTOR = r"""
import os, signal, socket, sys
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(path)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
with open(out, "ab", buffering=0) as f:
    f.write(b"")                   # the file exists: the socket is bound
    while True:
        data = s.recv(1 << 20)
        f.write(data.replace(b"\n", b" ") + b"\n")
"""


class SyslogCollector:
    """A separate process bound to the audit syslog socket (so that test threads
    never slow down its reading: a unix datagram socket queues only a few
    messages); each message is appended as one line to a file."""

    def __init__(self, path):
        self.path = path
        self.out = path + ".messages"
        self.proc = subprocess.Popen([sys.executable, "-c", _COLLECTOR, path, self.out],
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (os.path.exists(path) and os.path.exists(self.out)):
            if self.proc.poll() is not None:
                raise GatewayError("syslog collector exited with %s" % self.proc.returncode)
            time.sleep(0.02)
        if not os.path.exists(path):
            self.stop()
            raise GatewayError("syslog collector did not bind %s" % path)

    @property
    def messages(self):
        try:
            with open(self.out, "rb") as f:
                return [l for l in f.read().split(b"\n") if l]
        except OSError:
            return []

    def records(self):
        out = []
        for m in self.messages:
            text = m.decode("utf-8", "replace")
            i = text.find("{")
            if i < 0:
                continue
            try:
                out.append(json.loads(text[i:].strip()))
            except ValueError:
                out.append({"_unparsable": text})
        return out

    def stop(self):
        stop_process(self.proc)


class NoCollector:
    """Stands in for SyslogCollector when a test brings its own syslog reader
    (Gateway(..., syslog_collector=False)): nothing is bound, nothing is seen."""

    path = None
    out = None
    messages = []

    def records(self):
        return []

    def stop(self):
        pass


class GatewayError(Exception):
    pass


class Gateway:
    """One egressd process with its own configuration folder.

    conf: dict of extra/overriding configuration keys (value: str, list of str
          for a repeatable key, or None to drop a default key).
    policy: list of policy lines.  hosts: dict name -> address (added to the defaults).
    proxy_listener: also listen on a second port with proxy_protocol.
    env: extra environment variables for egressd (e.g. an LD_PRELOAD).
    syslog_collector: bind the Python collector on audit.sock (default); False
          when the test points audit_syslog_socket at a reader of its own.
    """

    def __init__(self, dns_port, conf=None, policy=None, hosts=None, proxy_listener=False,
                 workers=2, resolv_extra="", nofile=None, nofile_hard=None,
                 syslog_collector=True, env=None, client_tls=None):
        if not os.access(BINARY, os.X_OK):
            raise GatewayError("%s is not built (run `make all`)" % BINARY)
        self.dir = tempfile.mkdtemp(prefix="egw-", dir="/tmp")
        self.dns_port = dns_port
        self.port = None
        self.proxy_port = None
        self.proxy_listener = proxy_listener
        # client_tls: the main listener (and the proxy_protocol one) speak TLS.
        self.client_tls = DEFAULT_CLIENT_TLS if client_tls is None else client_tls
        self.tls_pair = proxytls.proxy_pair() if self.client_tls else None
        self.proc = None
        self.returncode = None
        self.stderr_path = os.path.join(self.dir, "stderr.log")
        self.audit_sock_path = os.path.join(self.dir, "audit.sock")
        self.policy = list(policy if policy is not None else DEFAULT_POLICY)
        self.hosts = dict(DEFAULT_HOSTS)
        self.hosts.update(hosts or {})
        self.workers = workers
        self.conf_overrides = dict(conf or {})
        self.resolv_extra = resolv_extra
        self.nofile = nofile
        self.env = env
        self.nofile_hard = nofile_hard if nofile_hard is not None else nofile
        self.syslog = SyslogCollector(self.audit_sock_path) if syslog_collector else NoCollector()
        self._stderr_file = None
        self._audit_hidden = (0, 0)     # (stderr records, syslog records): see forget_audit
        self.served_a_test = False      # see harness/auditview.py
        auditview.SOURCES.add(self)

    # ------------------------------------------------------------ files
    def _conf_items(self):
        items = {
            "workers": str(self.workers),
            "policy_file": "policy.rules",
            "dns_hosts_file": "hosts",
            "dns_resolv_conf": "resolv.conf",
            "allow_internal": ["127.0.0.2/32", "127.0.0.4/32"],
            "audit_syslog_socket": "audit.sock",
            "connect_timeout": "2",
            "idle_timeout": "30",
            "header_timeout": "5",
            "shutdown_grace": "2",
            "max_connections": "1000",
        }
        for k, v in self.conf_overrides.items():
            if v is None:
                items.pop(k, None)
            else:
                items[k] = v
        return items

    def write_files(self):
        tls = " tls" if self.client_tls else ""
        lines = ["# written by tests/integration/harness/gateway.py",
                 "listen 127.0.0.1:%d%s" % (self.port, tls)]
        if self.proxy_listener:
            lines.append("listen 127.0.0.1:%d proxy_protocol%s" % (self.proxy_port, tls))
        if self.client_tls:
            items = self._conf_items()
            if "tls_cert_file" not in items:
                lines.append("tls_cert_file %s" % self.tls_pair.cert)
            if "tls_key_file" not in items:
                lines.append("tls_key_file %s" % self.tls_pair.key)
        for k, v in self._conf_items().items():
            for one in (v if isinstance(v, list) else [v]):
                lines.append("%s %s" % (k, one))
        self.conf_text = "\n".join(lines) + "\n"
        with open(os.path.join(self.dir, "egressd.conf"), "w") as f:
            f.write(self.conf_text)
        with open(os.path.join(self.dir, "policy.rules"), "w") as f:
            f.write("\n".join(self.policy) + "\n")
        with open(os.path.join(self.dir, "hosts"), "w") as f:
            for name, addr in self.hosts.items():
                for one in (addr if isinstance(addr, list) else [addr]):
                    f.write("%s %s\n" % (one, name))
        with open(os.path.join(self.dir, "resolv.conf"), "w") as f:
            # The DNS stub on loopback only: nothing ever leaves the machine.
            f.write("nameserver 127.0.0.1:%d\noptions timeout:1 attempts:1 ndots:1\n%s"
                    % (self.dns_port, self.resolv_extra))

    # ------------------------------------------------------------ process
    def start(self, wait=True, same_ports=False):
        """same_ports: start again on the ports of the previous run (a restart)."""
        last = None
        for _attempt in range(3):            # a port picked may be taken meanwhile
            if not (same_ports and self.port):
                self.port = free_port()
                self.proxy_port = free_port() if self.proxy_listener else None
            # The registry outlives gateways: a port a TLS gateway used before
            # may come back for a plain one.
            if self.client_tls:
                proxytls.TLS_PORTS[self.port] = self.tls_pair.ca
            else:
                proxytls.TLS_PORTS.pop(self.port, None)
            self.write_files()
            self._stderr_file = open(self.stderr_path, "ab")
            pre = None
            if self.nofile:
                import resource
                lim = (self.nofile, self.nofile_hard)
                pre = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, lim)
            self.proc = subprocess.Popen([BINARY, "-c", os.path.join(self.dir, "egressd.conf")],
                                         stdin=subprocess.DEVNULL, stdout=self._stderr_file,
                                         stderr=self._stderr_file, cwd=self.dir, preexec_fn=pre,
                                         env=dict(os.environ, **self.env) if self.env else None)
            if not wait:
                return self
            try:
                self.wait_ready()
                return self
            except GatewayError as e:
                last = e
                if self.proc.poll() is None:
                    self.kill()
                if "address already in use" not in self.stderr().lower() and \
                        "address in use" not in self.stderr():
                    break
        raise last

    def wait_ready(self, timeout=10.0):
        ports = [self.port] + ([self.proxy_port] if self.proxy_port else [])
        wait_listening(self.proc, ports, self.stderr_path, timeout)
        time.sleep(0.1)   # let every worker's listener come up

    @property
    def proxy_url(self):
        """The proxy as curl and Python clients name it."""
        return "%s://127.0.0.1:%d" % ("https" if self.client_tls else "http", self.port)

    def curl_proxy(self):
        """curl arguments that reach this gateway's main listener."""
        args = ["-x", self.proxy_url]
        if self.client_tls:
            args += ["--proxy-cacert", self.tls_pair.ca]
        return args

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig):
        if self.alive():
            os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout):
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        return self.returncode

    def kill(self):
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def stop(self, grace=8.0):
        """SIGTERM, wait up to grace seconds, then SIGKILL.  Returns the exit code
        (negative for a signal), and remembers whether SIGKILL was needed."""
        self.killed = False
        if self.proc is None:
            return None
        self.killed = stop_process(self.proc, grace)
        self.returncode = self.proc.returncode
        return self.returncode

    @contextlib.contextmanager
    def running(self):
        """Start, hand the gateway over, and clean up after (also when the
        start fails): `with Gateway(...).running() as g: yield g` in a fixture."""
        try:
            self.start()
            yield self
        finally:
            self.cleanup()

    def cleanup(self):
        auditview.SOURCES.discard(self)
        self.stop()
        if self.port is not None and self.client_tls:
            proxytls.TLS_PORTS.pop(self.port, None)
        self.syslog.stop()
        if self._stderr_file:
            self._stderr_file.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------ output
    def stderr(self):
        return read_log(self.stderr_path)

    def _stderr_records(self):
        recs = []
        for line in self.stderr().splitlines():
            m = _AUDIT_RE.search(line)
            if m:
                try:
                    recs.append(json.loads(m.group(1)))
                except ValueError:
                    recs.append({"_unparsable": line})
        return recs

    def forget_audit(self):
        """Hide every audit record seen so far from audit() and wait_audit()
        (harness/auditview.py says when and why)."""
        self._audit_hidden = (len(self._stderr_records()), len(self.syslog.records()))

    def audit(self, event=None):
        """Every audit record seen so far (stderr `audit {...}` lines and
        syslog), less those forget_audit() hid."""
        from_stderr = self._stderr_records()
        # The same record may come on both channels (while both are in use): a
        # syslog record whose id was already seen on stderr is not counted twice.
        seen = {r.get("id") for r in from_stderr if r.get("id") is not None}
        hidden_stderr, hidden_syslog = self._audit_hidden
        recs = from_stderr[hidden_stderr:]
        recs += [r for r in self.syslog.records()[hidden_syslog:]
                 if r.get("id") is None or r.get("id") not in seen]
        if event is not None:
            recs = [r for r in recs if r.get("event") == event]
        return recs

    def audit_raw(self):
        """The raw bytes of every audit record (stderr lines and syslog messages),
        to check they are valid UTF-8 JSON whatever the client sent."""
        try:
            with open(self.stderr_path, "rb") as f:
                lines = [l for l in f.read().split(b"\n") if b"audit {" in l]
        except OSError:
            lines = []
        lines += self.syslog.messages
        return lines

    def wait_audit(self, pred, count=1, timeout=5.0, settle=0.2):
        """Wait until at least count records match pred; then wait settle seconds
        more (to catch duplicates) and return the matching records."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [r for r in self.audit() if pred(r)]
            if len(got) >= count:
                break
            time.sleep(0.05)
        time.sleep(settle)
        return [r for r in self.audit() if pred(r)]

    def audit_for_client(self, client_port, count=1, timeout=5.0, event=None):
        def pred(r):
            return r.get("client_port") == client_port and (event is None or r.get("event") == event)
        return self.wait_audit(pred, count=count, timeout=timeout)

    def describe(self):
        return "egressd.conf:\n%s\npolicy.rules:\n%s\n" % (self.conf_text, "\n".join(self.policy))
