"""Loopback servers the scenarios talk to through the gateway.

Every server binds a 127.0.0.x address on a random free port, runs in daemon
threads started by its constructor's start(), and is stopped by stop().  Every
socket has a timeout and every loop is bounded, so a misbehaving gateway makes a
test fail instead of hanging.

- HttpOrigin: a scriptable HTTP/1.1 origin (echo as JSON, N bytes with
  Content-Length / chunked with trailers / close-delimited, HEAD/204/304,
  100-continue, keep-alive, slow responses, raw hostile bytes).
- EchoServer: byte-exact TCP echo that honours half-close.
- Blackhole: a listener whose accept queue is full, so new SYNs are dropped.
- RecordingListener: accepts and records connections (to prove nothing came).
- DnsStub: UDP DNS on 127.0.0.1 answering NXDOMAIN to everything, except the
  few names a test maps to a loopback address in dns.answers.
"""

import base64
import hashlib
import json
import socket
import struct
import threading
import time

IO_TIMEOUT = 10.0          # per-socket timeout inside the servers
MAX_HEAD = 256 * 1024      # bound for a request head the origin accepts
MAX_REQUESTS_PER_CONN = 1000


def pattern_bytes(n, seed=0):
    """Deterministic, non-repeating-looking payload of n bytes."""
    block = hashlib.sha256(b"egressd-%d" % seed).digest() * 128  # 4 KiB
    reps, rest = divmod(n, len(block))
    return block * reps + block[:rest]


class _ServerBase:
    """Accept loop in a thread; one handler thread per connection."""

    def __init__(self, host, backlog=1024, port=0):
        self.host = host
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                                  socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(backlog)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._threads = []
        self._conns = []
        self._lock = threading.Lock()
        self.accepted = 0
        self.errors = []

    def start(self):
        t = threading.Thread(target=self._accept_loop, daemon=True,
                             name="%s-accept" % type(self).__name__)
        t.start()
        self._threads.append(t)
        return self

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, peer = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            conn.settimeout(IO_TIMEOUT)
            with self._lock:
                self.accepted += 1
                self._conns.append(conn)
            t = threading.Thread(target=self._run_conn, args=(conn, peer), daemon=True)
            t.start()

    def _run_conn(self, conn, peer):
        try:
            self.handle(conn, peer)
        except (OSError, ValueError) as e:
            with self._lock:
                self.errors.append(repr(e))
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def handle(self, conn, peer):
        raise NotImplementedError

    def stop(self):
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.close()
            except OSError:
                pass

    @property
    def addr(self):
        return ("[%s]:%d" if ":" in self.host else "%s:%d") % (self.host, self.port)


class EchoServer(_ServerBase):
    """Byte-exact echo.  On EOF from the client it finishes echoing, then shuts
    down its write side (half-close), then closes."""

    def __init__(self, host="127.0.0.2", port=0):
        super().__init__(host, port=port)
        self.bytes_in = 0

    def handle(self, conn, peer):
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            data = conn.recv(256 * 1024)
            if not data:
                break
            with self._lock:
                self.bytes_in += len(data)
            conn.sendall(data)
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        # Wait (bounded) for the peer to close so our close never sends RST.
        try:
            conn.settimeout(2)
            conn.recv(1)
        except OSError:
            pass


class BannerServer(_ServerBase):
    """Speaks first (like SMTP or SSH): sends a banner on accept, then echoes."""

    def __init__(self, host="127.0.0.2", banner=b"220 banner.test ESMTP ready\r\n"):
        super().__init__(host)
        self.banner = banner

    def handle(self, conn, peer):
        conn.sendall(self.banner)
        for _ in range(100000):
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)


class SinkServer(_ServerBase):
    """Reads and discards everything, never answers; counts bytes."""

    def __init__(self, host="127.0.0.2"):
        super().__init__(host)
        self.bytes_in = 0

    def handle(self, conn, peer):
        conn.settimeout(30)
        for _ in range(1000000):
            data = conn.recv(65536)
            if not data:
                break
            with self._lock:
                self.bytes_in += len(data)


class StallServer(_ServerBase):
    """Accepts and never reads (until stopped): the upload direction backs up."""

    def handle(self, conn, peer):
        self._stop.wait(60)


class RstServer(_ServerBase):
    """Accepts, reads a little, then resets the connection (SO_LINGER 0)."""

    def handle(self, conn, peer):
        conn.settimeout(5)
        try:
            conn.recv(100)
        except OSError:
            pass
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class RecordingListener(_ServerBase):
    """Accepts connections and records what arrives (should be nothing)."""

    def __init__(self, host):
        super().__init__(host)
        self.received = b""

    def handle(self, conn, peer):
        conn.settimeout(1)
        try:
            data = conn.recv(65536)
            with self._lock:
                self.received += data
        except OSError:
            pass


class Blackhole:
    """A listening socket with listen(0) whose accept queue is filled, so that
    further SYNs to it are dropped by the kernel and connects time out."""

    def __init__(self, host="127.0.0.4"):
        self.host = host
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []

    def start(self):
        import select
        for _ in range(16):                      # bounded
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex((self.host, self.port))
            self.fillers.append(s)
            _, w, _ = select.select([], [s], [], 0.5)
            if not w:
                break                           # this SYN was dropped: the queue is full
        else:
            raise RuntimeError("blackhole: accept queue never filled")
        return self

    def stop(self):
        for s in self.fillers:
            s.close()
        self.sock.close()


class DnsStub:
    """UDP DNS server on 127.0.0.1 answering NXDOMAIN (RCODE 3) to every query,
    except names in self.answers (always loopback addresses), answered with one
    A or AAAA record (NODATA for the other type)."""

    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.queries = []
        self.answers = {}     # name -> loopback address answered (A or AAAA); others NXDOMAIN
        self._stop = threading.Event()

    def start(self):
        threading.Thread(target=self._loop, daemon=True, name="dns-stub").start()
        return self

    def _loop(self):
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                break
            if len(data) < 12:
                continue
            qid, flags, qd = struct.unpack("!HHH", data[:6])
            # Copy the question section (first question only).
            i = 12
            name = []
            while i < len(data) and data[i] != 0 and len(name) < 128:
                ln = data[i]
                name.append(data[i + 1:i + 1 + ln].decode("ascii", "replace"))
                i += 1 + ln
            qend = min(i + 5, len(data))
            qname = ".".join(name)
            qtype = struct.unpack("!H", data[i + 1:i + 3])[0] if i + 3 <= len(data) else 0
            self.queries.append(qname)
            addr = self.answers.get(qname.lower())
            rr = b""
            if addr is None:
                rcode = 3                                     # NXDOMAIN
            else:
                rcode = 0
                fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
                if (qtype, fam) in ((1, socket.AF_INET), (28, socket.AF_INET6)):
                    rdata = socket.inet_pton(fam, addr)
                    rr = struct.pack("!HHHIH", 0xC00C, qtype, 1, 5, len(rdata)) + rdata
            rflags = 0x8000 | (flags & 0x0100) | 0x0080 | rcode   # QR, RD copied, RA
            resp = struct.pack("!HHHHHH", qid, rflags, 1 if qd else 0, 1 if rr else 0, 0, 0) \
                + data[12:qend] + rr
            try:
                self.sock.sendto(resp, peer)
            except OSError:
                pass

    def stop(self):
        self._stop.set()
        self.sock.close()


# ---------------------------------------------------------------- HTTP origin

class Request:
    def __init__(self, method, target, version, headers, body, trailers):
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers        # list of (name, value) as received
        self.body = body
        self.trailers = trailers

    def header(self, name):
        vals = [v for k, v in self.headers if k.lower() == name.lower()]
        return vals[0] if vals else None

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def as_json(self):
        return {
            "method": self.method,
            "path": self.target,
            "version": self.version,
            "headers": [[k, v] for k, v in self.headers],
            "body_len": len(self.body),
            "body_sha256": hashlib.sha256(self.body).hexdigest(),
            "body_b64": base64.b64encode(self.body[:4096]).decode(),
            "trailers": [[k, v] for k, v in self.trailers],
        }


class _Reader:
    """Buffered reader over a socket with bounds."""

    def __init__(self, conn):
        self.conn = conn
        self.buf = b""

    def fill(self):
        data = self.conn.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def read_until(self, sep, limit):
        while sep not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("line too long")
            if not self.fill():
                return None
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exact(self, n):
        while len(self.buf) < n:
            if not self.fill():
                raise ValueError("eof in body")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def _parse_fields(lines):
    out = []
    for line in lines:
        if not line:
            continue
        k, _, v = line.partition(":")
        out.append((k, v.strip()))
    return out


class HttpOrigin(_ServerBase):
    """A scriptable HTTP/1.1 origin with keep-alive.

    Built-in paths (the query string is ignored):
      /echo                 200, JSON of the request (method, path, headers, body digest)
      /bytes/N              N pattern bytes with Content-Length
      /chunked/N            N pattern bytes chunked, with trailer X-Checksum
      /close/N              N pattern bytes, no length, connection closed to end it
      /status/CODE          that status with an empty body (204/304 carry none)
      /slow/MS/N            sleeps MS milliseconds, then N bytes with Content-Length
      /stream/N             N bytes (a 1 MiB pattern repeated) with Content-Length, streamed
      /drip/N               N bytes chunked in 10-byte chunks, written 3 bytes at a time
      /raw/NAME             writes raw bytes registered in origin.raw[NAME], then closes
    A request with Expect: 100-continue whose target contains a string in
    origin.reject_expect is answered 417 at once, its body unread, and closed.
    A test can register its own handler: origin.routes["/x"] = fn(req, conn) -> bool(keep).
    HEAD gets the same headers as GET and no body.  Expect: 100-continue is
    answered with an interim 100 before the body is read.
    """

    def __init__(self, host="127.0.0.2"):
        super().__init__(host)
        self.requests = []
        self.routes = {}
        self.raw = {}
        self.reject_expect = set()   # path parts answered 417 without reading the body

    # --- request reading
    def _read_request(self, rd, conn):
        head = rd.read_until(b"\r\n\r\n", MAX_HEAD)
        if head is None:
            return None
        lines = head[:-4].decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ", 2)
        headers = _parse_fields(lines[1:])
        req = Request(method, target, version, headers, b"", [])
        te = (req.header("Transfer-Encoding") or "").lower()
        cl = req.header("Content-Length")
        if (req.header("Expect") or "").lower() == "100-continue":
            if any(p in target for p in self.reject_expect):
                # Answer at once without reading the body, and close.
                req.body = None
                return req
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        if te == "chunked":
            body = []
            for _ in range(1 << 20):
                line = rd.read_until(b"\r\n", 4096)
                if line is None:
                    raise ValueError("eof in chunk size")
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    break
                body.append(rd.read_exact(size))
                rd.read_exact(2)
            tr = []
            for _ in range(100):
                line = rd.read_until(b"\r\n", 8192)
                if line is None or line == b"\r\n":
                    break
                tr.append(line[:-2].decode("latin-1"))
            req.body = b"".join(body)
            req.trailers = _parse_fields(tr)
        elif cl is not None:
            req.body = rd.read_exact(int(cl))
        return req

    def handle(self, conn, peer):
        rd = _Reader(conn)
        for _ in range(MAX_REQUESTS_PER_CONN):
            req = self._read_request(rd, conn)
            if req is None:
                return
            with self._lock:
                self.requests.append(req)
            if req.body is None:
                conn.sendall(b"HTTP/1.1 417 Expectation Failed\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
                try:
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            keep = self._respond(req, conn)
            if not keep or (req.header("Connection") or "").lower() == "close":
                try:
                    conn.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return

    @staticmethod
    def _send(conn, req, status, headers, body, reason=None):
        reasons = {200: "OK", 204: "No Content", 304: "Not Modified", 404: "Not Found",
                   201: "Created", 500: "Internal Server Error"}
        out = ["HTTP/1.1 %d %s" % (status, reason or reasons.get(status, "Status"))]
        out += ["%s: %s" % kv for kv in headers]
        data = ("\r\n".join(out) + "\r\n\r\n").encode("latin-1")
        if req.method != "HEAD" and status not in (204, 304):
            data += body
        conn.sendall(data)

    def _respond(self, req, conn):
        path = req.target
        if path.startswith("http://"):
            path = "/" + path.split("/", 3)[3] if path.count("/") >= 3 else "/"
        path = path.split("?", 1)[0]
        for prefix, fn in self.routes.items():
            if path == prefix or path.startswith(prefix + "/"):
                return fn(req, conn)
        parts = path.strip("/").split("/")
        kind = parts[0]
        if kind == "echo":
            body = json.dumps(req.as_json()).encode()
            self._send(conn, req, 200, [("Content-Type", "application/json"),
                                        ("Content-Length", str(len(body)))], body)
            return True
        if kind == "bytes":
            n = int(parts[1])
            self._send(conn, req, 200, [("Content-Length", str(n))], pattern_bytes(n))
            return True
        if kind == "chunked":
            n = int(parts[1])
            data = pattern_bytes(n)
            hdr = [("Transfer-Encoding", "chunked"), ("Trailer", "X-Checksum")]
            out = []
            step = 7919
            for i in range(0, n, step):
                piece = data[i:i + step]
                out.append(b"%x\r\n%s\r\n" % (len(piece), piece))
            out.append(b"0\r\nX-Checksum: %s\r\n\r\n" % hashlib.sha256(data).hexdigest().encode())
            self._send(conn, req, 200, hdr, b"".join(out))
            return True
        if kind == "close":
            n = int(parts[1])
            self._send(conn, req, 200, [("Connection", "close")], pattern_bytes(n))
            return False
        if kind == "status":
            code = int(parts[1])
            hdr = [] if code in (204, 304) else [("Content-Length", "0")]
            self._send(conn, req, code, hdr, b"")
            return True
        if kind == "slow":
            time.sleep(min(int(parts[1]), 20000) / 1000.0)
            n = int(parts[2])
            self._send(conn, req, 200, [("Content-Length", str(n))], pattern_bytes(n))
            return True
        if kind == "stream":
            # N pattern bytes with Content-Length, written in 1 MiB blocks, so
            # huge bodies never sit whole in the origin's memory.
            n = int(parts[1])
            block = pattern_bytes(1 << 20)
            self._send(conn, req, 200, [("Content-Length", str(n))], b"")
            if req.method != "HEAD":
                sent = 0
                while sent < n:
                    piece = block[:min(len(block), n - sent)]
                    conn.sendall(piece)
                    sent += len(piece)
            return True
        if kind == "drip":
            # N pattern bytes chunked, the whole response written a few bytes at a time.
            n = int(parts[1])
            data = pattern_bytes(n)
            out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            for i in range(0, n, 10):
                out += b"%x\r\n%s\r\n" % (len(data[i:i + 10]), data[i:i + 10])
            out += b"0\r\n\r\n"
            for i in range(0, len(out), 3):
                conn.sendall(out[i:i + 3])
                time.sleep(0.002)
            return True
        if kind == "raw":
            conn.sendall(self.raw[parts[1]])
            return False
        self._send(conn, req, 404, [("Content-Length", "0")], b"")
        return True

    def requests_for(self, path_part):
        with self._lock:
            return [r for r in self.requests if path_part in r.target]
