"""Raw-socket client helpers: send bytes to the gateway, read a response head or
a whole response with its framing, open tunnels, echo payloads through them.

Every socket gets a timeout; every read loop is bounded by bytes and time.
"""

import socket
import threading
import time

from harness.proxytls import TLS_PORTS, TlsSocket

DEFAULT_TIMEOUT = 10.0
MAX_HEAD = 256 * 1024


class Closed(Exception):
    """The peer closed (or reset) before a complete response arrived."""


class Response:
    def __init__(self, status_line, headers, raw_head):
        self.status_line = status_line
        parts = status_line.split(" ", 2)
        self.version = parts[0]
        try:
            self.status = int(parts[1])
        except (IndexError, ValueError):
            self.status = None
        self.reason = parts[2] if len(parts) > 2 else ""
        self.headers = headers
        self.raw_head = raw_head
        self.body = b""
        self.trailers = []
        self.complete = False

    def header(self, name):
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        return vals[0] if vals else None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def describe(self):
        body = self.body[:200]
        return "%r (headers %r, body %r%s)" % (
            self.status_line, self.headers, body, "..." if len(self.body) > 200 else "")

    def __repr__(self):
        return "<Response %s>" % self.describe()


class Conn:
    """A client connection with its own receive buffer."""

    def __init__(self, port, host="127.0.0.1", timeout=DEFAULT_TIMEOUT, src=None):
        self.sock = socket.create_connection((host, port), timeout=timeout,
                                             source_address=(src, 0) if src else None)
        self.sock.settimeout(timeout)
        if port in TLS_PORTS:
            # A tls listener: the same conversation inside TLS (harness/proxytls.py).
            self.sock = TlsSocket(self.sock, TLS_PORTS[port])
        self.buf = b""
        self.eof = False
        self.reset = False

    @property
    def local_port(self):
        return self.sock.getsockname()[1]

    def send(self, data):
        self.sock.sendall(data)

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    # --- low-level reading
    def _fill(self, deadline):
        if self.eof:
            return False
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("deadline passed")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(256 * 1024)
        except ConnectionResetError:
            self.eof = self.reset = True
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def read_until(self, sep, limit, deadline):
        while sep not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("no %r within %d bytes: %r" % (sep, limit, self.buf[:300]))
            if not self._fill(deadline):
                return None
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n, timeout=DEFAULT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise Closed("EOF after %d of %d bytes" % (len(self.buf), n))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_to_eof(self, timeout=DEFAULT_TIMEOUT, limit=64 * 1024 * 1024):
        """All bytes until EOF or reset; raises socket.timeout if no EOF by then."""
        deadline = time.monotonic() + timeout
        while len(self.buf) <= limit:
            if not self._fill(deadline):
                break
        out, self.buf = self.buf, b""
        return out

    def wait_closed(self, timeout):
        """True if the peer closes (EOF or reset) within timeout; the bytes seen
        meanwhile are kept in self.buf."""
        deadline = time.monotonic() + timeout
        try:
            while self._fill(deadline):
                if len(self.buf) > 16 * 1024 * 1024:
                    break
        except socket.timeout:
            return False
        return self.eof

    # --- HTTP
    def read_head(self, timeout=DEFAULT_TIMEOUT):
        """Read one response head (skipping nothing).  Returns a Response, or
        raises Closed if the peer closed first (with what came in the message)."""
        deadline = time.monotonic() + timeout
        try:
            head = self.read_until(b"\r\n\r\n", MAX_HEAD, deadline)
        except socket.timeout:
            raise socket.timeout("no complete response head within %.1f s; got %r"
                                 % (timeout, self.buf[:300])) from None
        if head is None:
            raise Closed("connection closed before a response head; got %r%s" % (
                self.buf[:300], " (reset)" if self.reset else ""))
        lines = head[:-4].decode("latin-1").split("\r\n")
        headers = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers.append((k, v.strip()))
        return Response(lines[0], headers, head)

    def read_response(self, method="GET", timeout=DEFAULT_TIMEOUT, skip_interim=True):
        """Read a whole response with its body per its framing."""
        deadline = time.monotonic() + timeout
        while True:
            resp = self.read_head(max(0.1, deadline - time.monotonic()))
            if skip_interim and resp.status is not None and 100 <= resp.status < 200 \
                    and resp.status != 101:
                continue
            break
        te = (resp.header("Transfer-Encoding") or "").lower()
        cl = resp.header("Content-Length")
        if method == "HEAD" or resp.status in (204, 304) or (resp.status or 0) < 200:
            resp.complete = True
            return resp
        if method == "CONNECT" and resp.status is not None and 200 <= resp.status < 300:
            resp.complete = True
            return resp
        if te == "chunked":
            parts = []
            for _ in range(1 << 20):
                line = self.read_until(b"\r\n", 4096, deadline)
                if line is None:
                    resp.body = b"".join(parts)
                    return resp
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    break
                parts.append(self.read_exact(size, max(0.1, deadline - time.monotonic())))
                self.read_exact(2, max(0.1, deadline - time.monotonic()))
            resp.body = b"".join(parts)
            for _ in range(100):
                line = self.read_until(b"\r\n", 8192, deadline)
                if line is None or line == b"\r\n":
                    break
                k, _, v = line[:-2].decode("latin-1").partition(":")
                resp.trailers.append((k, v.strip()))
            resp.complete = True
        elif cl is not None:
            n = int(cl)
            try:
                resp.body = self.read_exact(n, max(0.1, deadline - time.monotonic()))
                resp.complete = True
            except Closed:
                resp.body, self.buf = self.buf, b""
        else:
            resp.body = self.read_to_eof(max(0.1, deadline - time.monotonic()))
            resp.complete = True
        return resp


def request_bytes(method, target, headers=(), body=b"", version="HTTP/1.1"):
    lines = ["%s %s %s" % (method, target, version)]
    lines += ["%s: %s" % kv for kv in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def connect_bytes(authority, headers=None):
    if headers is None:
        headers = [("Host", authority)]
    return request_bytes("CONNECT", authority, headers)


def open_tunnel(port, authority, extra=b"", timeout=DEFAULT_TIMEOUT):
    """CONNECT through the gateway; returns (conn, response head).  The caller
    checks the status."""
    c = Conn(port, timeout=timeout)
    c.send(connect_bytes(authority) + extra)
    resp = c.read_head(timeout)
    return c, resp


def echo_through(conn, data, timeout=30.0):
    """Send data on conn from a thread while reading back len(data) bytes."""
    err = []

    def writer():
        try:
            view = memoryview(data)
            for i in range(0, len(data), 256 * 1024):
                conn.sock.sendall(view[i:i + 256 * 1024])
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    got = conn.read_exact(len(data), timeout)
    t.join(timeout)
    if err:
        raise err[0]
    return got
