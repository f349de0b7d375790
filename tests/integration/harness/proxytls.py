"""TLS between the client and the gateway (a `listen ... tls` listener).

- proxy_pair(): a test CA and a server certificate for 127.0.0.1 and localhost,
  generated with openssl once per test process (never committed), the key
  mode 0600 as the secret-file rule wants; returns ProxyPair(ca, cert, key).
  make_pair(folder, days=...) makes a fresh one (rotation tests).
- TLS_PORTS: port -> CA file of every gateway port that speaks TLS; Conn()
  in client.py looks the port up there and wraps its socket.
- TlsSocket: the client side over a MemoryBIO, shaped like a socket (sendall,
  recv, shutdown, settimeout, setsockopt, getsockname ...), so the helpers and
  the tests that drive `c.sock` byte by byte work unchanged through a TLS
  listener: what they send is the plaintext inside it.  shutdown(SHUT_WR)
  sends close_notify, then the TCP FIN; reading goes on (a half-close).

Every read is bounded by the socket timeout; every loop by a count.
"""

import os
import socket
import ssl
import subprocess
import tempfile
import threading

import pytest

TLS_PORTS = {}

# In a test module: `pytestmark = LISTENER_KINDS` runs each of its tests through
# a plain and a tls listener (conftest.py's client_tls fixture; the clients of
# client.py speak TLS to a tls one).  Not a copy of the tests: the same ones.
LISTENER_KINDS = pytest.mark.parametrize("client_tls", [False, True], ids=["plain", "tls"],
                                         indirect=True, scope="module")
_PAIR = None


class ProxyPair:
    def __init__(self, ca, cert, key):
        self.ca, self.cert, self.key = ca, cert, key


def _openssl(args):
    r = subprocess.run(["openssl"] + args, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (args[0], r.stderr.decode(errors="replace")[-500:]))


def make_pair(folder, days=30, cn="localhost", ca=None, tag="proxy"):
    """A CA (or the given one, a (ca_cert, ca_key) tuple) and a leaf for
    127.0.0.1/localhost in folder; returns (ProxyPair, (ca_cert, ca_key))."""
    if ca is None:
        ca = (os.path.join(folder, "ca.pem"), os.path.join(folder, "ca.key"))
        _openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                  "-nodes", "-days", "30", "-subj", "/CN=egressd test CA",
                  "-keyout", ca[1], "-out", ca[0]])
    key = os.path.join(folder, tag + ".key")
    csr = os.path.join(folder, tag + ".csr")
    cert = os.path.join(folder, tag + ".pem")
    ext = os.path.join(folder, tag + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    _openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
              "-subj", "/CN=%s" % cn, "-keyout", key, "-out", csr])
    _openssl(["x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
              "-days", str(days), "-extfile", ext, "-out", cert])
    os.chmod(key, 0o600)
    return ProxyPair(ca[0], cert, key), ca


def proxy_pair():
    global _PAIR
    if _PAIR is None:
        _PAIR, _ = make_pair(tempfile.mkdtemp(prefix="egw-proxytls-", dir="/tmp"))
    return _PAIR


def client_context(cafile, minimum=None, maximum=None):
    ctx = ssl.create_default_context(cafile=cafile)
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


class TlsSocket:
    """A TLS client over a connected TCP socket, with a socket's interface."""

    MAX_ROUNDS = 10000

    def __init__(self, sock, cafile, server_hostname="localhost", ctx=None, alpn=None):
        self.raw = sock
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        ctx = ctx or client_context(cafile)
        if alpn:
            ctx.set_alpn_protocols(alpn)
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname=server_hostname)
        self.closed_write = False
        # One thread may send while another reads (echo_through does): the
        # SSLObject is used under obj_lock only, and the records it made go
        # out under send_lock in the order they were made.  A reader never
        # holds a lock while it waits on the socket.
        self.obj_lock = threading.Lock()
        self.send_lock = threading.Lock()
        self._handshake()

    def _flush(self):
        with self.send_lock:
            with self.obj_lock:
                data = self.out.read()
            if data:
                self.raw.sendall(data)

    def _feed(self):
        data = self.raw.recv(256 * 1024)
        with self.obj_lock:
            if not data:
                self.inc.write_eof()
                return False
            self.inc.write(data)
        return True

    def _handshake(self):
        for _ in range(self.MAX_ROUNDS):
            try:
                self.obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
                if not self._feed():
                    raise ConnectionResetError("the gateway closed during the TLS handshake")
        raise ssl.SSLError("TLS handshake did not finish")

    def selected_alpn_protocol(self):
        return self.obj.selected_alpn_protocol()

    def version(self):
        return self.obj.version()

    def sendall(self, data):
        with self.send_lock:
            with self.obj_lock:
                if data:
                    self.obj.write(data)
                out = self.out.read()
            if out:
                self.raw.sendall(out)

    def send(self, data):
        self.sendall(data)
        return len(data)

    def recv(self, n):
        for _ in range(self.MAX_ROUNDS):
            try:
                with self.obj_lock:
                    return self.obj.read(n)
            except ssl.SSLWantReadError:
                with self.obj_lock:
                    pending = self.out.pending
                if pending:
                    self._flush()
                if not self._feed():
                    continue
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
        return b""

    def read_buffered(self):
        """Plaintext decryptable from bytes already received, without reading
        the socket (for select() loops: records may wait in the BIO);
        None once the TLS stream has ended."""
        out = b""
        for _ in range(self.MAX_ROUNDS):
            try:
                with self.obj_lock:
                    data = self.obj.read(65536)
            except ssl.SSLWantReadError:
                return out
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return out or None
            if not data:
                return out or None
            out += data
        return out

    def shutdown(self, how):
        if how in (socket.SHUT_WR, socket.SHUT_RDWR) and not self.closed_write:
            self.closed_write = True
            try:
                with self.obj_lock:
                    self.obj.unwrap()
            except (ssl.SSLWantReadError, ssl.SSLError):
                pass
            self._flush()
        self.raw.shutdown(how)

    def close(self):
        self.raw.close()

    def __getattr__(self, name):          # settimeout, setsockopt, getsockname, fileno ...
        return getattr(self.raw, name)


class PlainBridge:
    """For clients that can only speak plain HTTP to a proxy (openssl s_client
    -proxy): a loopback port whose connections are carried, through TLS, to a
    tls listener.  The bytes the client sends are the plaintext inside; at most
    MAX_CONNS connections, each bounded in time.  proxy_addr(gw) picks it."""

    MAX_CONNS = 16
    SECONDS = 60

    def __init__(self, port, cafile):
        import threading
        self.port, self.cafile = port, cafile
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.settimeout(0.5)
        self.addr = "127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        import threading
        n = 0
        while not self.stopping and n < self.MAX_CONNS:
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            n += 1
            threading.Thread(target=self._pump, args=(c,), daemon=True).start()

    def _pump(self, c):
        import select
        import time
        deadline = time.monotonic() + self.SECONDS
        try:
            raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            t = TlsSocket(raw, self.cafile)
        except OSError:
            c.close()
            return
        c.settimeout(10)
        up_open = True
        try:
            while time.monotonic() < deadline:
                r, _, _ = select.select([c, raw] if up_open else [raw], [], [], 0.5)
                if c in r:
                    data = c.recv(65536)
                    if data:
                        t.sendall(data)
                    else:
                        up_open = False
                        t.shutdown(socket.SHUT_WR)
                if raw in r:
                    if not t._feed():
                        rest = t.read_buffered()
                        if rest:
                            c.sendall(rest)
                        break
                    data = t.read_buffered()
                    if data is None:
                        break
                    if data:
                        c.sendall(data)
        except OSError:
            pass
        finally:
            for s in (c, raw):
                try:
                    s.close()
                except OSError:
                    pass

    def stop(self):
        self.stopping = True
        self.lsock.close()


_BRIDGES = {}


def proxy_addr(gw):
    """HOST:PORT where a plain-HTTP-to-the-proxy client reaches gw's main listener."""
    if not gw.client_tls:
        return "127.0.0.1:%d" % gw.port
    if gw.port not in _BRIDGES:
        _BRIDGES[gw.port] = PlainBridge(gw.port, gw.tls_pair.ca)
    return _BRIDGES[gw.port].addr
