"""Differential pass: the same raw requests sent to Squid and to egressd, verdicts compared.

Each case is a request (mostly malformed: smuggling shapes, bad framing, bad
syntax, bad CONNECT authorities) sent on its own connection to both proxies.
Its verdict on each proxy is one of:

  accepted   an absolute-form request reached the origin (a connection whose
             first line carries the case's marker), or a CONNECT got a 2xx
  rejected   a 4xx/5xx response, or the connection closed, or no response
             within the bound, without anything reaching the origin

The test fails where Squid rejects and egressd accepts: egressd must be at least
as strict as Squid (issue 2: "where Squid is stricter than egressd, egressd is
wrong until shown otherwise"). The comparison table is printed either way
(visible with `pytest -s`, or in the report of a failure).

Some smuggling cases carry an inner request after the outer one's body; "+inner"
in the table means the proxy sent that inner request to the origin as a request
of its own, i.e. it framed the outer body differently from Content-Length (Squid
does for CL+TE: Transfer-Encoding wins, as RFC 9112 allows). Informational only.

Squid is the Debian package with its own temporary configuration (caching off,
access from localhost, CONNECT to any port), started and stopped by PID on its
own port; the test is skipped when /usr/sbin/squid is missing. Everything is on
127.0.0.1: the proxies, and the origin, a small recording HTTP server that
answers every request head with 200 and `Connection: close`.
"""

import concurrent.futures
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from harness.gateway import free_port

SQUID = os.environ.get("SQUID", "/usr/sbin/squid")
RESPONSE_TIMEOUT = 3.0     # per case: wait this long for a response head
ORIGIN_LINGER = 0.3        # the origin reads this long after answering (smuggled bytes)
PARALLEL = 12


# ------------------------------------------------------------------ the recording origin


class RecordingOrigin:
    """HTTP origin on 127.0.0.1: records every connection's bytes; answers the
    first request head with `200 ok` and Connection: close, then reads for
    ORIGIN_LINGER more seconds (to see what a proxy sent after it) and closes."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.conns = []            # list of bytearray, one per accepted connection
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _accept_loop(self):
        while not self.stop_ev.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            buf = bytearray()
            with self.lock:
                self.conns.append(buf)
            threading.Thread(target=self._serve, args=(c, buf), daemon=True).start()

    def _serve(self, c, buf):
        deadline = time.monotonic() + 10
        answered_at = None
        try:
            while time.monotonic() < deadline and not self.stop_ev.is_set():
                if answered_at is not None and time.monotonic() > answered_at + ORIGIN_LINGER:
                    break
                c.settimeout(0.1)
                try:
                    data = c.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                with self.lock:
                    buf += data
                    have_head = b"\r\n\r\n" in buf or b"\n\n" in buf
                if answered_at is None and have_head:
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                              b"Content-Length: 2\r\nConnection: close\r\n\r\nok")
                    answered_at = time.monotonic()
        except OSError:
            pass
        finally:
            try:
                c.close()
            except OSError:
                pass

    def first_lines(self):
        with self.lock:
            return [bytes(b).split(b"\n", 1)[0] for b in self.conns]

    def stop(self):
        self.stop_ev.set()
        try:
            self.sock.close()
        except OSError:
            pass


# ------------------------------------------------------------------ Squid


class Squid:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="egw-squid-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        self.port = None
        self.proc = None

    def start(self):
        last = ""
        for _attempt in range(3):
            self.port = free_port()
            conf = os.path.join(self.dir, "squid.conf")
            with open(os.path.join(self.dir, "hosts"), "w") as f:
                f.write("127.0.0.1 localhost\n")
            with open(conf, "w") as f:
                f.write("\n".join([
                    "http_port 127.0.0.1:%d" % self.port,
                    "pid_filename %s/squid.pid" % self.dir,
                    "cache_log %s/cache.log" % self.dir,
                    "access_log stdio:%s/access.log" % self.dir,
                    "cache_store_log none",
                    "coredump_dir %s" % self.dir,
                    "cache deny all",
                    "cache_mem 8 MB",
                    "http_access allow localhost",
                    "http_access deny all",
                    "dns_nameservers 127.0.0.1",
                    "dns_timeout 2 seconds",
                    "hosts_file %s/hosts" % self.dir,
                    "pinger_enable off",
                    "icp_port 0",
                    "htcp_port 0",
                    "client_db off",
                    "netdb_filename none",
                    "shutdown_lifetime 0 seconds",
                    "connect_timeout 3 seconds",
                    "visible_hostname egressd-differential",
                ]) + "\n")
            if os.geteuid() == 0:
                try:
                    import pwd
                    pw = pwd.getpwnam("proxy")
                    os.chown(self.dir, pw.pw_uid, pw.pw_gid)
                except (KeyError, OSError):
                    os.chmod(self.dir, 0o777)
            self.stderr = open(os.path.join(self.dir, "stderr"), "ab")
            self.proc = subprocess.Popen([SQUID, "-N", "-f", conf], stdin=subprocess.DEVNULL,
                                         stdout=self.stderr, stderr=self.stderr, cwd=self.dir)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                    return self
                except OSError:
                    time.sleep(0.1)
            last = self.log()
            self.stop()
            self.stderr.close()
        raise RuntimeError("squid did not start:\n%s" % last[-3000:])

    def log(self):
        out = ""
        for name in ("stderr", "cache.log"):
            try:
                with open(os.path.join(self.dir, name), "rb") as f:
                    out += f.read().decode("utf-8", "replace")
            except OSError:
                pass
        return out

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)

    def cleanup(self):
        self.stop()
        try:
            self.stderr.close()
        except (AttributeError, OSError):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


# ------------------------------------------------------------------ the cases
#
# Templates are bytes; {o} = the origin's authority 127.0.0.1:PORT, {p} = its port,
# {m} = the case's marker (a path segment), {s} = the marker of a smuggled request.
# kind: "good" (both should accept: a sanity check of the setup), "bad", or for
# chunked bodies followed by an inner request "body" (malformed body: the inner
# request must not reach the origin as a request of its own through egressd,
# whatever Squid does) and "pipe" (well-formed control, informational).

def _r(s):
    return s.encode("latin-1")


GET = "GET http://{o}/{m} HTTP/1.1\r\nHost: {o}\r\n"
POST = "POST http://{o}/{m} HTTP/1.1\r\nHost: {o}\r\n"
SMUG = "GET http://{o}/{s} HTTP/1.1\r\nHost: {o}\r\n\r\n"

CASES = [
    # ---- good requests: the setup works for both
    ("good-get", "good", GET + "\r\n"),
    ("good-get-http10-no-host", "good", "GET http://{o}/{m} HTTP/1.0\r\n\r\n"),
    ("good-post-cl", "good", POST + "Content-Length: 5\r\n\r\nhello"),
    ("good-post-chunked", "good", POST + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("good-te-CHUNKED-case", "good", POST + "Transfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("good-connect", "good", "CONNECT {o} HTTP/1.1\r\nHost: {o}\r\n\r\n"),

    # ---- smuggling: Content-Length and Transfer-Encoding
    ("cl-and-te", "bad", POST + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUG),
    ("te-and-cl", "bad", POST + "Transfer-Encoding: chunked\r\nContent-Length: 45\r\n\r\n0\r\n\r\n" + SMUG),
    ("te-space-before-colon", "bad", POST + "Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n" + SMUG),
    ("te-xchunked", "bad", POST + "Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + SMUG),
    ("te-chunked-x", "bad", POST + "Transfer-Encoding: chunked-x\r\n\r\n0\r\n\r\n"),
    ("te-gzip-chunked", "bad", POST + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
    ("te-chunked-gzip", "bad", POST + "Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"),
    ("te-chunked-chunked", "bad", POST + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n"),
    ("te-identity", "bad", POST + "Transfer-Encoding: identity\r\nContent-Length: 5\r\n\r\nhello"),
    ("te-two-fields", "bad", POST + "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n"),
    ("te-quoted", "bad", POST + "Transfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n"),
    ("te-vtab", "bad", POST + "Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n"),
    ("te-nul", "bad", POST + "Transfer-Encoding: chunked\x00\r\n\r\n0\r\n\r\n"),
    ("te-obs-fold", "bad", POST + "Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"),
    ("te-empty", "bad", POST + "Transfer-Encoding:\r\n\r\n"),
    ("te-in-http10", "bad", "POST http://{o}/{m} HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("cl-two-different", "bad", POST + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
    ("cl-list-different", "bad", POST + "Content-Length: 5, 6\r\n\r\nhello!"),
    ("cl-plus-sign", "bad", POST + "Content-Length: +5\r\n\r\nhello"),
    ("cl-minus-sign", "bad", POST + "Content-Length: -5\r\n\r\nhello"),
    ("cl-hex", "bad", POST + "Content-Length: 0x5\r\n\r\nhello"),
    ("cl-inner-space", "bad", POST + "Content-Length: 1 5\r\n\r\nhello"),
    ("cl-huge", "bad", POST + "Content-Length: 99999999999999999999999999\r\n\r\nhello"),
    ("cl-empty", "bad", POST + "Content-Length:\r\n\r\n"),
    ("cl-space-before-colon", "bad", POST + "Content-Length : 5\r\n\r\nhello"),

    # ---- header syntax
    ("obs-fold", "bad", GET + "X-A: a\r\n b\r\n\r\n"),
    ("bare-lf-everywhere", "bad", "GET http://{o}/{m} HTTP/1.1\nHost: {o}\n\n"),
    ("bare-lf-one-field", "bad", GET + "X-A: a\nX-B: b\r\n\r\n"),
    ("bare-cr-in-value", "bad", GET + "X-A: a\rb\r\n\r\n"),
    ("bare-cr-line-end", "bad", GET + "X-A: a\rX-B: b\r\n\r\n"),
    ("nul-in-value", "bad", GET + "X-A: a\x00b\r\n\r\n"),
    ("nul-in-name", "bad", GET + "X-\x00A: b\r\n\r\n"),
    ("ctl-in-value", "bad", GET + "X-A: a\x01b\r\n\r\n"),
    ("space-before-colon", "bad", GET + "X-A : b\r\n\r\n"),
    ("tab-before-colon", "bad", GET + "X-A\t: b\r\n\r\n"),
    ("space-in-name", "bad", GET + "X A: b\r\n\r\n"),
    ("empty-name", "bad", GET + ": b\r\n\r\n"),
    ("no-colon", "bad", GET + "X-A b\r\n\r\n"),
    ("host-space-before-colon", "bad", "GET http://{o}/{m} HTTP/1.1\r\nHost : {o}\r\n\r\n"),
    ("missing-host-http11", "bad", "GET http://{o}/{m} HTTP/1.1\r\n\r\n"),
    ("duplicate-host-same", "bad", GET + "Host: {o}\r\n\r\n"),
    ("duplicate-host-different", "bad", GET + "Host: 127.0.0.9\r\n\r\n"),
    ("empty-host", "bad", "GET http://{o}/{m} HTTP/1.1\r\nHost:\r\n\r\n"),
    ("overlong-head", "bad", GET + "X-Big: " + "a" * (70 * 1024) + "\r\n\r\n"),
    ("overlong-field-count", "bad", GET + "".join("X-F%d: v\r\n" % i for i in range(6000)) + "\r\n"),

    # ---- request line
    ("version-2.0", "bad", "GET http://{o}/{m} HTTP/2.0\r\nHost: {o}\r\n\r\n"),
    ("version-1.2", "bad", "GET http://{o}/{m} HTTP/1.2\r\nHost: {o}\r\n\r\n"),
    ("version-3.1", "bad", "GET http://{o}/{m} HTTP/3.1\r\nHost: {o}\r\n\r\n"),
    ("version-lowercase", "bad", "GET http://{o}/{m} http/1.1\r\nHost: {o}\r\n\r\n"),
    ("version-1.01", "bad", "GET http://{o}/{m} HTTP/1.01\r\nHost: {o}\r\n\r\n"),
    ("version-garbage", "bad", "GET http://{o}/{m} HTTP/1.1x\r\nHost: {o}\r\n\r\n"),
    ("version-missing-0.9", "bad", "GET http://{o}/{m}\r\n\r\n"),
    ("double-space", "bad", "GET  http://{o}/{m} HTTP/1.1\r\nHost: {o}\r\n\r\n"),
    ("trailing-space", "bad", "GET http://{o}/{m} HTTP/1.1 \r\nHost: {o}\r\n\r\n"),
    ("tab-separator", "bad", "GET\thttp://{o}/{m}\tHTTP/1.1\r\nHost: {o}\r\n\r\n"),
    ("hash-in-target", "bad", "GET http://{o}/{m}#frag HTTP/1.1\r\nHost: {o}\r\n\r\n"),
    ("space-in-target", "bad", "GET http://{o}/{m} x HTTP/1.1\r\nHost: {o}\r\n\r\n"),
    ("ctl-in-target", "bad", "GET http://{o}/{m}\x01 HTTP/1.1\r\nHost: {o}\r\n\r\n"),
    ("userinfo-in-url", "bad", "GET http://user:pw@{o}/{m} HTTP/1.1\r\nHost: {o}\r\n\r\n"),
    ("userinfo-no-password", "bad", "GET http://user@{o}/{m} HTTP/1.1\r\nHost: {o}\r\n\r\n"),
    ("url-port-65536", "bad", "GET http://127.0.0.1:65536/{m} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    ("url-port-0", "bad", "GET http://127.0.0.1:0/{m} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    ("url-host-127.1", "bad", "GET http://127.1:{p}/{m} HTTP/1.1\r\nHost: 127.1:{p}\r\n\r\n"),
    ("url-host-hex", "bad", "GET http://0x7f.0.0.1:{p}/{m} HTTP/1.1\r\nHost: 0x7f.0.0.1:{p}\r\n\r\n"),
    ("url-host-decimal", "bad", "GET http://2130706433:{p}/{m} HTTP/1.1\r\nHost: 2130706433:{p}\r\n\r\n"),
    ("method-bad-char", "bad", "G(T http://{o}/{m} HTTP/1.1\r\nHost: {o}\r\n\r\n"),
    ("method-empty", "bad", " http://{o}/{m} HTTP/1.1\r\nHost: {o}\r\n\r\n"),
    ("origin-form-to-proxy", "bad", "GET /{m} HTTP/1.1\r\nHost: {o}\r\n\r\n"),

    # ---- CONNECT authorities
    ("connect-127.1", "bad", "CONNECT 127.1:{p} HTTP/1.1\r\nHost: 127.1:{p}\r\n\r\n"),
    ("connect-hex", "bad", "CONNECT 0x7f.0.0.1:{p} HTTP/1.1\r\nHost: 0x7f.0.0.1:{p}\r\n\r\n"),
    ("connect-octal", "bad", "CONNECT 0177.0.0.1:{p} HTTP/1.1\r\nHost: 0177.0.0.1:{p}\r\n\r\n"),
    ("connect-decimal", "bad", "CONNECT 2130706433:{p} HTTP/1.1\r\nHost: 2130706433:{p}\r\n\r\n"),
    ("connect-port-0", "bad", "CONNECT 127.0.0.1:0 HTTP/1.1\r\nHost: 127.0.0.1:0\r\n\r\n"),
    ("connect-port-65536", "bad", "CONNECT 127.0.0.1:65536 HTTP/1.1\r\nHost: 127.0.0.1:65536\r\n\r\n"),
    ("connect-port-wrap", "bad", "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),   # {p}+65536
    ("connect-port-plus", "bad", "CONNECT 127.0.0.1:+{p} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    ("connect-port-missing", "bad", "CONNECT 127.0.0.1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    ("connect-port-empty", "bad", "CONNECT 127.0.0.1: HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
    ("connect-userinfo", "bad", "CONNECT user@{o} HTTP/1.1\r\nHost: {o}\r\n\r\n"),
    ("connect-path", "bad", "CONNECT {o}/x HTTP/1.1\r\nHost: {o}\r\n\r\n"),
    ("connect-absolute-url", "bad", "CONNECT http://{o}/ HTTP/1.1\r\nHost: {o}\r\n\r\n"),
    ("connect-leading-space-host", "bad", "CONNECT  {o} HTTP/1.1\r\nHost: {o}\r\n\r\n"),
    ("connect-bracket-v4", "bad", "CONNECT [127.0.0.1]:{p} HTTP/1.1\r\nHost: {o}\r\n\r\n"),
    ("connect-zone-id", "bad", "CONNECT [::1%25lo]:{p} HTTP/1.1\r\nHost: {o}\r\n\r\n"),
    ("connect-bad-version", "bad", "CONNECT {o} HTTP/1.2\r\nHost: {o}\r\n\r\n"),
    ("connect-obs-fold", "bad", "CONNECT {o} HTTP/1.1\r\nHost: {o}\r\nX-A: a\r\n b\r\n\r\n"),
    ("connect-bare-lf", "bad", "CONNECT {o} HTTP/1.1\nHost: {o}\n\n"),

    # ---- chunked bodies with an inner request after them. The outer head reaches the
    # origin either way (bodies stream), so for these the verdict that matters is
    # whether the inner request was sent to the origin as a request of its own:
    # after a malformed body it must never be ("pipe" is the well-formed control).
    ("pipelined-after-chunked", "pipe", POST + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + SMUG),
    ("chunk-size-overflow", "body", POST + "Transfer-Encoding: chunked\r\n\r\n"
     "10000000000000005\r\nhello\r\n0\r\n\r\n" + SMUG),
    ("chunk-size-0x", "body", POST + "Transfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n" + SMUG),
    ("chunk-size-negative", "body", POST + "Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n" + SMUG),
    ("chunk-size-space", "body", POST + "Transfer-Encoding: chunked\r\n\r\n5 5\r\nhello\r\n0\r\n\r\n" + SMUG),
    ("chunk-lf-only", "body", POST + "Transfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n" + SMUG),
    ("chunk-data-longer", "body", POST + "Transfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n" + SMUG),
    ("chunk-ext-bare-cr", "body", POST + "Transfer-Encoding: chunked\r\n\r\n5;a=b\rc\r\nhello\r\n0\r\n\r\n" + SMUG),
    ("chunk-bad-trailer", "body", POST + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T : v\r\n\r\n" + SMUG),
]


KIND = dict((c[0], c[1]) for c in CASES)
TEMPLATE = dict((c[0], c[2]) for c in CASES)


def render(template, origin_port, marker):
    text = template
    if "%d" in text:
        text = text % (origin_port + 65536)
    text = (text.replace("{o}", "127.0.0.1:%d" % origin_port)
            .replace("{p}", str(origin_port))
            .replace("{s}", marker + "smug")
            .replace("{m}", marker))
    return text.encode("latin-1")


def send_case(port, data, linger=0.0):
    """Send one request on a fresh connection; returns (status or None, how).
    With linger, keep the connection open (reading) that long after the status
    line, so that a proxy gets to what follows the first request."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=RESPONSE_TIMEOUT)
    except OSError as e:
        return None, "connect failed: %s" % e
    try:
        s.settimeout(RESPONSE_TIMEOUT)
        try:
            s.sendall(data)
        except OSError:
            pass                 # a proxy may reject and close before reading everything
        buf = b""
        deadline = time.monotonic() + RESPONSE_TIMEOUT
        while b"\r\n" not in buf and b"\n" not in buf and len(buf) < 65536:
            left = deadline - time.monotonic()
            if left <= 0:
                return None, "timeout"
            s.settimeout(left)
            try:
                d = s.recv(65536)
            except socket.timeout:
                return None, "timeout"
            except ConnectionResetError:
                return None, "reset"
            if not d:
                return None, "closed"
            buf += d
        line = buf.split(b"\n", 1)[0].rstrip(b"\r")
        end = time.monotonic() + linger
        while time.monotonic() < end:
            s.settimeout(max(0.01, end - time.monotonic()))
            try:
                if not s.recv(65536):
                    break
            except (socket.timeout, OSError):
                break
        parts = line.split(b" ")
        if len(parts) >= 2 and parts[0].startswith(b"HTTP/") and parts[1].isdigit():
            return int(parts[1]), line.decode("latin-1")
        return None, "garbage: %r" % line[:60]
    finally:
        s.close()


def run_table(proxy_port, tag, origin):
    def one(i_case):
        i, (cid, _kind, tmpl) = i_case
        marker = "dz%s%03dq" % (tag, i)
        data = render(tmpl, origin.port, marker)
        status, how = send_case(proxy_port, data, linger=1.0 if b"smug" in data else 0.0)
        return cid, marker, status, how

    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as ex:
        results = list(ex.map(one, enumerate(CASES)))
    time.sleep(ORIGIN_LINGER + 0.3)      # let forwarded requests land at the origin
    firsts = origin.first_lines()
    out = {}
    for cid, marker, status, how in results:
        mk = marker.encode()
        reached = any(mk in fl and (mk + b"smug") not in fl for fl in firsts)
        smuggled = any((mk + b"smug") in fl for fl in firsts)
        kind = KIND[cid]
        if kind in ("body", "pipe"):
            accepted = smuggled
        elif TEMPLATE[cid].startswith("CONNECT"):
            accepted = status is not None and 200 <= status < 300
        else:
            accepted = reached
        if kind in ("body", "pipe"):
            verdict = "inner-forwarded" if smuggled else "inner-not-fwd"
        elif accepted:
            verdict = "accept"
        else:
            verdict = "reject"
        detail = str(status) if status is not None else how
        out[cid] = {"accepted": accepted, "inner": smuggled, "detail": detail,
                    "verdict": verdict + ("+inner" if smuggled and kind not in ("body", "pipe") else "")}
    return out


# ------------------------------------------------------------------ fixtures and test


@pytest.fixture(scope="module")
def squid():
    if not os.access(SQUID, os.X_OK):
        pytest.skip("%s is missing (apt-get install squid)" % SQUID)
    s = Squid()
    try:
        s.start()
    except RuntimeError as e:
        s.cleanup()
        pytest.fail(str(e))
    yield s
    s.cleanup()


@pytest.fixture(scope="module")
def rec_origin():
    o = RecordingOrigin().start()
    yield o
    o.stop()


def test_egressd_at_least_as_strict_as_squid(squid, rec_origin, make_gateway, allow_all):
    gw = make_gateway(conf={"allow_internal": ["127.0.0.1/32"], "header_timeout": "5"},
                      policy=allow_all)
    sq = run_table(squid.port, "s", rec_origin)
    eg = run_table(gw.port, "e", rec_origin)

    lines = []
    w = max(len(c[0]) for c in CASES)
    lines.append("%-*s  %-4s  %-26s  %-26s  %s" % (w, "case", "kind", "squid", "egressd", "note"))
    lines.append("-" * (w + 70))
    worse, broken_good, desync = [], [], []
    for cid, kind, _t in CASES:
        s, e = sq[cid], eg[cid]
        note = ""
        if kind == "body":
            if e["accepted"]:
                note = "EGRESSD FORWARDED THE INNER REQUEST"
                desync.append(cid)
        elif kind == "pipe":
            pass
        elif not s["accepted"] and e["accepted"]:
            note = "SQUID STRICTER"
            worse.append(cid)
        elif s["accepted"] and not e["accepted"]:
            note = "egressd stricter"
        if kind == "good" and not (s["accepted"] and e["accepted"]):
            note = (note + " " if note else "") + "GOOD REQUEST NOT ACCEPTED"
            broken_good.append(cid)
        lines.append("%-*s  %-4s  %-26s  %-26s  %s" % (
            w, cid, kind, ("%s %s" % (s["verdict"], s["detail"]))[:26],
            ("%s %s" % (e["verdict"], e["detail"]))[:26], note))
    plain = [c for c in CASES if c[1] in ("good", "bad")]
    n_stricter = sum(1 for c in plain if sq[c[0]]["accepted"] and not eg[c[0]]["accepted"])
    lines.append("%d request cases: Squid stricter on %d, egressd stricter on %d, both reject %d, "
                 "both accept %d; %d body cases: egressd forwarded an inner request on %d" % (
                     len(plain), len(worse), n_stricter,
                     sum(1 for c in plain if not sq[c[0]]["accepted"] and not eg[c[0]]["accepted"]),
                     sum(1 for c in plain if sq[c[0]]["accepted"] and eg[c[0]]["accepted"]),
                     sum(1 for c in CASES if c[1] == "body"), len(desync)))
    table = "\n".join(lines)
    print("\n" + table)

    assert not broken_good, ("good requests not accepted by both proxies (setup broken?): %s\n%s"
                             % (broken_good, table))
    assert not worse, "Squid rejects but egressd accepts: %s\n%s" % (worse, table)
    assert not desync, ("egressd forwarded the request after a malformed chunked body as a "
                        "request of its own: %s\n%s" % (desync, table))
