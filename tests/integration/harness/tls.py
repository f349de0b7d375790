"""TLS on loopback for the SNI tests: a self-signed certificate, a TLS origin that
counts every raw byte it receives, and a TLS client that drives a handshake over
any socket (so a test chooses exactly how the ClientHello bytes are written).

- make_cert(dir): `openssl req -x509` key and certificate for allowed.test and
  other.test (subjectAltName), self-signed: the certificate is its own CA file.
- TlsOrigin(host, cert, key): accepts TCP on host:random; per connection it
  records every byte that arrives on the socket (before, during and after the
  TLS handshake) and feeds them to an ssl.SSLObject over a MemoryBIO, so the
  byte count is the real one and not what the TLS layer consumed.  A client
  that completes the handshake and sends an HTTP request head gets a fixed
  response (BODY) and the connection closes.  Bytes that are not TLS are still
  counted; the connection then ends.  The server name the TLS stack saw (SNI
  callback) is recorded too.
- TlsClient(sock, server_hostname, cafile): client side over a MemoryBIO:
  hello() gives the ClientHello bytes without sending them; finish() completes
  the handshake over the socket; get(path) sends a GET and reads the response.

Every socket has a timeout, every loop is bounded by bytes and time.
"""

import os
import socket
import ssl
import subprocess
import threading
import time

from harness.servers import _ServerBase

MAX_LOG = 1 << 20            # raw bytes kept per connection (all are counted)
BODY = b"hello from the TLS origin\n"
NAMES = ("allowed.test", "other.test")


def make_cert(folder, names=NAMES):
    """Generate key.pem and cert.pem in folder; returns (cert, key)."""
    cert = os.path.join(folder, "cert.pem")
    key = os.path.join(folder, "key.pem")
    san = ",".join("DNS:%s" % n for n in names)
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-days", "2", "-subj", "/CN=%s" % names[0],
                        "-addext", "subjectAltName=%s" % san,
                        "-keyout", key, "-out", cert],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError("openssl req failed: %s" % r.stderr.decode(errors="replace")[-500:])
    return cert, key


class OriginConn:
    """What one accepted connection brought."""

    def __init__(self, peer):
        self.peer = peer
        self.nbytes = 0               # every raw byte received
        self.raw = bytearray()        # the first MAX_LOG of them
        self.sni = None               # server name the TLS stack saw (callback)
        self.handshake_ok = False
        self.request = b""            # decrypted request head
        self.error = None
        self.done = threading.Event()  # the connection has ended

    def __repr__(self):
        return "<OriginConn peer=%s bytes=%d sni=%r handshake=%s error=%r first=%r>" % (
            self.peer, self.nbytes, self.sni, self.handshake_ok, self.error, bytes(self.raw[:40]))


class TlsOrigin(_ServerBase):
    """A TLS origin that counts every raw byte each connection delivers, so a
    test can tell that a refused tunnel reached it with nothing at all."""

    def __init__(self, host, cert, key):
        super().__init__(host, backlog=256)
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(cert, key)
        self.ctx.sni_callback = self._on_sni
        self.conns = []

    # ------------------------------------------------------------ bookkeeping
    def mark(self):
        """A position in the list of accepted connections (see since())."""
        with self._lock:
            return len(self.conns)

    def since(self, mark):
        with self._lock:
            return list(self.conns[mark:])

    def wait_conns(self, mark, count=1, timeout=5.0, ended=True):
        """Wait until count connections were accepted after mark (and, with ended,
        have ended); return every connection accepted after mark."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.since(mark)
            if len(got) >= count and (not ended or all(c.done.is_set() for c in got)):
                break
            time.sleep(0.02)
        return self.since(mark)

    # ------------------------------------------------------------ server
    def _on_sni(self, sslobj, name, ctx):
        rec = getattr(sslobj, "_origin_rec", None)
        if rec is not None:
            rec.sni = name
        return None

    def handle(self, s, peer):
        rec = OriginConn(peer)
        with self._lock:
            self.conns.append(rec)
        self._serve(s, rec)

    def _recv(self, s, rec, deadline):
        """One read from the raw socket, counted; b'' at EOF."""
        s.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            data = s.recv(65536)
        except ConnectionResetError:
            data = b""
        if data:
            rec.nbytes += len(data)
            if len(rec.raw) < MAX_LOG:
                rec.raw += data[:MAX_LOG - len(rec.raw)]
        return data

    def _serve(self, s, rec):
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = self.ctx.wrap_bio(inc, out, server_side=True)
        obj._origin_rec = rec
        deadline = time.monotonic() + 30
        try:
            # handshake
            for _ in range(10000):
                try:
                    obj.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    pending = out.read()
                    if pending:
                        s.sendall(pending)
                    data = self._recv(s, rec, deadline)
                    if not data:
                        rec.error = "eof during handshake"
                        return
                    inc.write(data)
            pending = out.read()
            if pending:
                s.sendall(pending)
            rec.handshake_ok = True
            # request head
            for _ in range(10000):
                if b"\r\n\r\n" in rec.request or len(rec.request) > 65536:
                    break
                try:
                    rec.request += obj.read(65536)
                    continue
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLZeroReturnError:
                    break
                data = self._recv(s, rec, deadline)
                if not data:
                    break
                inc.write(data)
            if b"\r\n\r\n" in rec.request:
                obj.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                          b"Connection: close\r\n\r\n%s" % (len(BODY), BODY))
                try:
                    obj.unwrap()
                except (ssl.SSLWantReadError, ssl.SSLError):
                    pass
                s.sendall(out.read())
                # bounded wait for the client to close, counting what comes
                for _ in range(100):
                    if not self._recv(s, rec, min(deadline, time.monotonic() + 2)):
                        break
        except ssl.SSLError as e:
            rec.error = "tls: %s" % e
            # keep counting what the peer sends until it closes (bounded)
            try:
                for _ in range(100):
                    if not self._recv(s, rec, min(deadline, time.monotonic() + 1)):
                        break
            except OSError:
                pass
        except OSError as e:
            rec.error = "socket: %r" % e
        finally:
            try:
                s.close()
            except OSError:
                pass
            rec.done.set()


class TlsClient:
    """TLS client over a MemoryBIO on an already connected socket (a tunnel)."""

    def __init__(self, sock, server_hostname, cafile, check_hostname=None):
        self.sock = sock
        ctx = ssl.create_default_context(cafile=cafile)
        if check_hostname is None:
            check_hostname = server_hostname is not None and not server_hostname.endswith(".")
        ctx.check_hostname = check_hostname
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out, server_hostname=server_hostname)
        self._hello = None
        self.pending = b""            # bytes received on the socket before finish()

    def hello(self):
        """The ClientHello bytes (computed once, not sent)."""
        if self._hello is None:
            try:
                self.obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
            self._hello = self.out.read()
        return self._hello

    def _feed(self, deadline):
        self.sock.settimeout(max(0.05, deadline - time.monotonic()))
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("peer closed during TLS")
        self.inc.write(data)

    def finish(self, timeout=10.0):
        """Complete the handshake (the hello is assumed sent already)."""
        deadline = time.monotonic() + timeout
        self.hello()
        if self.pending:
            self.inc.write(self.pending)
            self.pending = b""
        for _ in range(10000):
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                data = self.out.read()
                if data:
                    self.sock.sendall(data)
                self._feed(deadline)
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def get(self, host, path="/", timeout=10.0):
        """GET over the established TLS session; returns the whole response (to EOF)."""
        deadline = time.monotonic() + timeout
        self.obj.write(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                        % (path, host)).encode())
        self.sock.sendall(self.out.read())
        resp = b""
        for _ in range(10000):
            try:
                chunk = self.obj.read(65536)
                if not chunk:
                    break
                resp += chunk
                continue
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
            try:
                self._feed(deadline)
            except ConnectionError:
                break
        return resp
