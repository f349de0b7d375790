"""TLS between the client and the gateway: `listen ... tls`.

Real clients through a tls listener (curl --proxy https://, Python requests,
openssl s_client), what the listener refuses (plaintext, TLS 1.1, 1.2 under
tls_min_version 1.3), hostile handshakes (garbage, stalled, reset) that leave
the gateway serving, PROXY header then handshake, ALPN, session resumption,
certificate rotation on reload (new connections get the new pair, open ones
keep theirs, a broken pair is refused and the old one stays), the key file's
secret-file rule, the certificate's expiry in /metrics, and auth_require_tls.

The SNI, audit and auth suites run through a tls listener too (they are
parametrized: harness/proxytls.py LISTENER_KINDS); this file covers what only
a tls listener has.
"""

import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time
import urllib.request

import pytest

from harness import proxytls
from harness.client import Conn, connect_bytes, request_bytes
from harness.gateway import free_port
from harness.proxytls import TlsSocket, client_context, make_pair, proxy_pair
from harness.servers import RecordingListener, pattern_bytes
from harness.tls import BODY, TlsOrigin, make_cert
from harness.util import curl, expect_one_record, fmt_records

TIMEOUT = 10
BUILD = os.path.join(os.path.dirname(__file__), "..", "..", "build")
EGRESSCTL = os.path.join(BUILD, "egressctl")


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def tls_origin(tmp_path_factory):
    cert, key = make_cert(str(tmp_path_factory.mktemp("origin")))
    s = TlsOrigin("127.0.0.2", cert, key).start()
    s.cafile = cert
    yield s
    s.stop()


@pytest.fixture
def tgw(make_gateway):
    """A gateway with a tls listener (gw.port) and a plain one (gw.plain_port)."""
    plain = free_port()
    g = make_gateway(conf={"listen": "127.0.0.1:%d" % plain}, client_tls=True,
                     hosts={"allowed.test": "127.0.0.2"})
    g.plain_port = plain
    return g


def raw_conn(port, timeout=TIMEOUT):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    return s


def get_via(port, origin, path, extra=()):
    """One absolute-form GET on a new connection (TLS if port is a tls listener)."""
    with Conn(port) as c:
        c.send(request_bytes("GET", "http://origin.test:%d%s" % (origin.port, path),
                             [("Host", "origin.test:%d" % origin.port)] + list(extra)))
        r = c.read_response()
        return c.local_port, r


def assert_serving(gw, origin):
    """The gateway still answers through its tls listener."""
    assert gw.alive(), gw.stderr()[-2000:]
    _, r = get_via(gw.port, origin, "/bytes/10")
    assert r.status == 200, r.describe()


def peer_cert_der(port, cafile):
    s = raw_conn(port)
    t = TlsSocket(s, cafile)
    der = t.obj.getpeercert(binary_form=True)
    return s, t, der


def der_of(pem_path):
    with open(pem_path) as f:
        pem = f.read()
    first = pem[pem.index("-----BEGIN CERTIFICATE-----"):]
    first = first[:first.index("-----END CERTIFICATE-----") + 25]
    return ssl.PEM_cert_to_DER_cert(first)


def s_client(args, stdin=b"", timeout=20):
    return subprocess.run(["openssl", "s_client"] + args, input=stdin, capture_output=True,
                          timeout=timeout)


def no_record_for(gw, port, what):
    recs = gw.audit_for_client(port, timeout=0.5)
    assert not recs, "%s: no request was made, yet records:\n%s" % (what, fmt_records(recs))


# ------------------------------------------------------------------ real clients


def test_curl_https_proxy_http_target(tgw, origin):
    r = curl(tgw.curl_proxy() + ["-o", "-", "http://origin.test:%d/bytes/1024" % origin.port])
    assert r.returncode == 0, r.stderr.decode()[-500:]
    assert r.stdout == pattern_bytes(1024)
    rec = expect_one_record(tgw, lambda x: x.get("url", "") and "/bytes/1024" in x["url"],
                            "curl --proxy https:// GET", event="request", status=200,
                            client_tls=True, reason="ok")
    assert rec["bytes_down"] > 1024


def test_byte_counts_are_the_plaintext(tgw, origin):
    """The same request through both listeners: the same bytes_up and bytes_down."""
    data = request_bytes("GET", "http://origin.test:%d/bytes/5000" % origin.port,
                         [("Host", "origin.test:%d" % origin.port), ("Connection", "close")])
    recs = {}
    for port in (tgw.plain_port, tgw.port):
        with Conn(port) as c:
            c.send(data)
            assert c.read_response().status == 200
            recs[port] = expect_one_record(tgw, lambda x, p=c.local_port: x.get("client_port") == p,
                                           "GET via %d" % port)
    plain, tls = recs[tgw.plain_port], recs[tgw.port]
    assert plain["client_tls"] is False and tls["client_tls"] is True
    assert (plain["bytes_up"], plain["bytes_down"]) == (tls["bytes_up"], tls["bytes_down"]), \
        fmt_records([plain, tls])
    assert tls["bytes_up"] == len(data)


def test_curl_https_proxy_https_target(make_gateway, tls_origin):
    gw = make_gateway(client_tls=True, hosts={"allowed.test": "127.0.0.2"},
                      policy=["allow any allowed\\.test %d sni=require" % tls_origin.port])
    mark = tls_origin.mark()
    r = curl(gw.curl_proxy() + ["--cacert", tls_origin.cafile,
                                "https://allowed.test:%d/" % tls_origin.port], timeout=20)
    assert r.returncode == 0, r.stderr.decode()[-500:]
    assert r.stdout == BODY
    conns = tls_origin.wait_conns(mark, count=1, timeout=TIMEOUT)
    assert len(conns) == 1 and conns[0].sni == "allowed.test", conns
    rec = expect_one_record(gw, lambda x: x.get("event") == "tunnel", "TLS in TLS tunnel",
                            sni="allowed.test", client_tls=True, reason="ok", status=200)
    # Plaintext of the tunnel: what the origin received, not TLS record bytes to the gateway.
    assert rec["bytes_up"] == conns[0].nbytes, fmt_records([rec])


def test_sni_check_inside_a_tls_listener_refuses_other_name(make_gateway, tls_origin):
    gw = make_gateway(client_tls=True, hosts={"allowed.test": "127.0.0.2",
                                              "other.test": "127.0.0.2"},
                      policy=["allow any allowed\\.test %d sni=require" % tls_origin.port])
    mark = tls_origin.mark()
    r = curl(gw.curl_proxy() + ["--cacert", tls_origin.cafile, "--connect-to",
                                "other.test:%d:allowed.test:%d" % (tls_origin.port, tls_origin.port),
                                "https://other.test:%d/" % tls_origin.port], timeout=20)
    assert r.returncode != 0 and r.stdout != BODY
    rec = expect_one_record(gw, lambda x: x.get("event") == "tunnel", "SNI mismatch in TLS",
                            reason="sni_mismatch", client_tls=True, close="sni_check")
    assert tls_origin.since(mark) == [] or all(c.nbytes == 0 for c in tls_origin.since(mark)), rec


def test_python_urllib3_and_requests_https_proxy(tgw, origin, tls_origin, tmp_path):
    """Debian 12's urllib3 1.26 and requests 2.28 with an https:// proxy.

    - urllib3 ProxyManager, http:// target: forwarded inside the TLS connection;
      the proxy certificate is verified against ca_certs (a wrong CA is refused).
    - requests, https:// target: TLS in TLS (CONNECT inside the proxy's TLS);
      the proxy certificate is verified against `verify` (a wrong one refused).
    - requests, http:// target: works, but requests 2.28 does not verify the
      proxy's certificate for it (urllib3 warns InsecureRequestWarning): a
      client weakness, stated in the README; urllib3 directly is the safe form.
    """
    requests = pytest.importorskip("requests")
    urllib3 = pytest.importorskip("urllib3")
    bundle = tmp_path / "cas.pem"
    bundle.write_text(open(tgw.tls_pair.ca).read() + open(tls_origin.cafile).read())
    wrong = tmp_path / "wrong.pem"
    wrong.write_text(open(tls_origin.cafile).read())     # not the proxy's CA
    url = "http://origin.test:%d/bytes/100" % origin.port

    pm = urllib3.ProxyManager(tgw.proxy_url, cert_reqs="CERT_REQUIRED", ca_certs=str(bundle))
    r = pm.request("GET", url, timeout=TIMEOUT, retries=False)
    assert r.status == 200 and r.data == pattern_bytes(100)
    bad = urllib3.ProxyManager(tgw.proxy_url, cert_reqs="CERT_REQUIRED", ca_certs=str(wrong))
    with pytest.raises(urllib3.exceptions.SSLError):
        bad.request("GET", url, timeout=TIMEOUT, retries=False)

    proxies = {"http": tgw.proxy_url, "https": tgw.proxy_url}
    target = "https://allowed.test:%d/" % tls_origin.port
    with requests.Session() as s:
        s.trust_env = False
        r = s.get(target, proxies=proxies, verify=str(bundle), timeout=TIMEOUT)
        assert r.status_code == 200 and r.content == BODY
        with pytest.raises(requests.exceptions.SSLError):
            s.get(target, proxies=proxies, verify=str(wrong), timeout=TIMEOUT)
        with pytest.warns(urllib3.exceptions.InsecureRequestWarning):
            r = s.get(url, proxies=proxies, verify=str(bundle), timeout=TIMEOUT)
        assert r.status_code == 200
    recs = tgw.wait_audit(lambda x: x.get("event") in ("request", "tunnel") and
                          x.get("status") == 200, count=3)
    assert sorted(x["event"] for x in recs) == ["request", "request", "tunnel"], fmt_records(recs)
    assert all(x["client_tls"] is True for x in recs), fmt_records(recs)


def test_openssl_s_client_alpn_and_request(tgw, origin):
    req = ("GET http://origin.test:%d/bytes/7 HTTP/1.1\r\nHost: origin.test:%d\r\n"
           "Connection: close\r\n\r\n" % (origin.port, origin.port)).encode()
    r = s_client(["-connect", "127.0.0.1:%d" % tgw.port, "-CAfile", tgw.tls_pair.ca,
                  "-verify_return_error", "-alpn", "h2,http/1.1", "-ign_eof"], stdin=req)
    out = r.stdout.decode(errors="replace")
    assert "ALPN protocol: http/1.1" in out, out[-1500:]
    assert "Verify return code: 0" in out, out[-1500:]
    assert "HTTP/1.1 200" in out, out[-1500:]


def test_alpn_without_http11_gets_no_alpn_answer(tgw):
    s = raw_conn(tgw.port)
    try:
        t = TlsSocket(s, tgw.tls_pair.ca, alpn=["h2"])
        assert t.selected_alpn_protocol() is None
    finally:
        s.close()


def test_session_resumption_with_tickets(tgw, origin):
    ctx = client_context(tgw.tls_pair.ca, maximum=ssl.TLSVersion.TLSv1_2)
    with ctx.wrap_socket(raw_conn(tgw.port), server_hostname="localhost") as a:
        sess = a.session
        assert sess is not None and sess.has_ticket, "no session ticket issued"
    with ctx.wrap_socket(raw_conn(tgw.port), server_hostname="localhost", session=sess) as b:
        assert b.session_reused, "the ticket was not accepted"
        b.sendall(request_bytes("GET", "http://origin.test:%d/bytes/3" % origin.port,
                                [("Host", "origin.test:%d" % origin.port),
                                 ("Connection", "close")]))
        assert b.recv(4096).startswith(b"HTTP/1.1 200")


def test_keep_alive_and_pipelining_inside_tls(tgw, origin):
    with Conn(tgw.port) as c:
        one = request_bytes("GET", "http://origin.test:%d/bytes/300" % origin.port,
                            [("Host", "origin.test:%d" % origin.port)])
        c.send(one * 3)
        for _ in range(3):
            r = c.read_response()
            assert r.status == 200 and r.body == pattern_bytes(300)
        recs = tgw.audit_for_client(c.local_port, count=3)
    assert len(recs) == 3 and all(x["client_tls"] is True for x in recs), fmt_records(recs)


def test_tunnel_echo_and_half_close_inside_tls(tgw, echo):
    payload = pattern_bytes(300000, seed=3)
    with Conn(tgw.port) as c:
        c.send(connect_bytes("echo.test:%d" % echo.port))
        assert c.read_response(method="CONNECT").status == 200
        c.send(payload)
        c.shutdown_write()                 # close_notify, then FIN
        got = c.read_to_eof(timeout=20)
        port = c.local_port
    assert got == payload
    rec = expect_one_record(tgw, lambda x: x.get("client_port") == port, "TLS tunnel",
                            event="tunnel", client_tls=True)
    assert rec["bytes_up"] == len(payload) and rec["bytes_down"] == len(payload), \
        fmt_records([rec])


def test_half_close_while_the_client_is_not_reading_inside_tls(tgw):
    """The client's close_notify arrives while the gateway holds bytes for it
    that its socket would not take (the destination speaks first, the client
    reads only after it half-closed).  libevent 2.1's OpenSSL bufferevent
    drops its write event on close_notify; the rest must still come, then
    the close."""
    from harness.servers import BannerServer
    blob = pattern_bytes(4 << 20, seed=5)
    srv = BannerServer("127.0.0.2", banner=blob).start()
    try:
        with Conn(tgw.port) as c:
            c.send(connect_bytes("127.0.0.2:%d" % srv.port))
            assert c.read_response(method="CONNECT").status == 200
            time.sleep(0.5)         # every buffer on the way fills
            c.shutdown_write()
            time.sleep(0.5)         # the gateway reads the close_notify meanwhile
            got = c.read_to_eof(timeout=10)
            port = c.local_port
    finally:
        srv.stop()
    assert len(got) == len(blob) and got == blob, "%d of %d bytes came" % (len(got), len(blob))
    rec = expect_one_record(tgw, lambda x: x.get("client_port") == port, "TLS tunnel",
                            event="tunnel", client_tls=True)
    assert rec["bytes_down"] == len(blob), fmt_records([rec])


def test_response_after_close_notify_while_the_client_is_not_reading(tgw, origin):
    """The same on the forwarding path: a request, close_notify at once, and a
    response larger than the client's socket takes before it reads."""
    size = 2000000
    with Conn(tgw.port) as c:
        c.send(request_bytes("GET", "http://origin.test:%d/bytes/%d" % (origin.port, size),
                             [("Host", "origin.test:%d" % origin.port)]))
        c.shutdown_write()
        time.sleep(0.5)
        r = c.read_response()
        assert r.status == 200 and len(r.body) == size, r.describe()
        assert c.read_to_eof(timeout=10) == b""


# ------------------------------------------------------------------ refusals


def test_plaintext_to_tls_listener_goes_nowhere(tgw, origin):
    hits = len(origin.requests)
    s = raw_conn(tgw.port, timeout=5)
    try:
        s.sendall(request_bytes("GET", "http://origin.test:%d/bytes/9" % origin.port,
                                [("Host", "origin.test:%d" % origin.port)]))
        got = b""
        for _ in range(100):
            try:
                d = s.recv(4096)
            except (ConnectionResetError, socket.timeout):
                break
            if not d:
                break
            got += d
        port = s.getsockname()[1]
    finally:
        s.close()
    assert b"HTTP/" not in got and b"\r\n" not in got, got[:200]
    assert len(origin.requests) == hits, "the origin was reached"
    no_record_for(tgw, port, "plaintext")
    assert_serving(tgw, origin)


def test_tls11_client_is_refused(tgw, origin):
    r = s_client(["-connect", "127.0.0.1:%d" % tgw.port, "-tls1_1",
                  "-cipher", "DEFAULT:@SECLEVEL=0"], stdin=b"")
    err = (r.stdout + r.stderr).decode(errors="replace")
    assert r.returncode != 0, err[-1000:]
    assert "protocol version" in err or "unsupported protocol" in err.lower(), err[-1000:]
    assert_serving(tgw, origin)


def test_tls_min_version_13_refuses_12(make_gateway, origin):
    gw = make_gateway(client_tls=True, conf={"tls_min_version": "1.3"})
    r = s_client(["-connect", "127.0.0.1:%d" % gw.port, "-tls1_2"], stdin=b"")
    assert r.returncode != 0
    assert "protocol version" in (r.stdout + r.stderr).decode(errors="replace")
    s = raw_conn(gw.port)
    try:
        assert TlsSocket(s, gw.tls_pair.ca).version() == "TLSv1.3"
    finally:
        s.close()


def test_garbage_handshake_leaves_gateway_healthy(tgw, origin):
    for junk in (b"\x16\x03\x01\x00\x05hello", b"\x16\x03\x03\xff\xff" + os.urandom(3000),
                 os.urandom(2000), b"\x80\x2e\x01\x03\x01" + os.urandom(40)):
        s = raw_conn(tgw.port, timeout=5)
        try:
            s.sendall(junk)
            for _ in range(100):
                try:
                    if not s.recv(4096):
                        break
                except (ConnectionResetError, socket.timeout):
                    break
        except OSError:
            pass
        finally:
            s.close()
    assert_serving(tgw, origin)


def test_stalled_handshake_is_cut_by_header_timeout(make_gateway, origin):
    gw = make_gateway(client_tls=True, conf={"header_timeout": "2"})
    ctx = client_context(gw.tls_pair.ca)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = out.read()
    s = raw_conn(gw.port, timeout=10)
    try:
        s.sendall(hello[:len(hello) // 2])      # half a ClientHello, then nothing
        t0 = time.monotonic()
        closed = False
        for _ in range(100):
            try:
                if not s.recv(4096):
                    closed = True
                    break
            except ConnectionResetError:
                closed = True
                break
            except socket.timeout:
                break
        assert closed, "a stalled handshake was not cut"
        assert time.monotonic() - t0 < 8
    finally:
        s.close()
    assert_serving(gw, origin)


def test_reset_mid_handshake_leaves_gateway_healthy(tgw, origin):
    for cut in (1, 10, 100):
        ctx = client_context(tgw.tls_pair.ca)
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, server_hostname="localhost")
        with pytest.raises(ssl.SSLWantReadError):
            obj.do_handshake()
        hello = out.read()
        s = raw_conn(tgw.port)
        s.sendall(hello[:cut] if cut < 100 else hello)
        if cut == 100:
            time.sleep(0.1)                     # the ServerHello is on its way back
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()                               # RST
    assert_serving(tgw, origin)


# ------------------------------------------------------------------ PROXY header, then TLS


def test_proxy_protocol_then_handshake(make_gateway, origin):
    gw = make_gateway(client_tls=True, proxy_listener=True)
    s = raw_conn(gw.proxy_port)
    try:
        s.sendall(b"PROXY TCP4 192.0.2.7 127.0.0.1 40001 3128\r\n")
        t = TlsSocket(s, gw.tls_pair.ca)
        t.sendall(request_bytes("GET", "http://origin.test:%d/bytes/11" % origin.port,
                                [("Host", "origin.test:%d" % origin.port),
                                 ("Connection", "close")]))
        got = b""
        for _ in range(100):
            d = t.recv(65536)
            if not d:
                break
            got += d
    finally:
        s.close()
    assert got.startswith(b"HTTP/1.1 200") and got.endswith(pattern_bytes(11)), got[:300]
    expect_one_record(gw, lambda x: x.get("client_ip") == "192.0.2.7", "PROXY + TLS",
                      client_port=40001, client_tls=True, status=200)


def test_proxy_protocol_tls_without_header_is_closed(make_gateway, origin):
    gw = make_gateway(client_tls=True, proxy_listener=True)
    s = raw_conn(gw.proxy_port, timeout=5)
    try:
        with pytest.raises((ConnectionResetError, ssl.SSLError, OSError)):
            TlsSocket(s, gw.tls_pair.ca)
    finally:
        s.close()
    assert_serving(gw, origin)


# ------------------------------------------------------------------ key file and rotation


def write_conf_copy(gw, **changes):
    text = gw.conf_text
    for k, v in changes.items():
        text = re.sub(r"(?m)^%s .*$" % k, "%s %s" % (k, v), text)
    path = os.path.join(gw.dir, "check.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def run_t(conf):
    return subprocess.run([os.path.join(BUILD, "egressd"), "-t", "-c", conf],
                          capture_output=True, timeout=30)


def test_key_file_mode_refused_by_t_and_at_start(tgw, tmp_path):
    key = tmp_path / "proxy.key"
    shutil.copy(tgw.tls_pair.key, key)
    os.chmod(key, 0o644)
    conf = write_conf_copy(tgw, tls_key_file=str(key))
    r = run_t(conf)
    assert r.returncode == 1
    err = r.stderr.decode()
    assert re.search(r"check\.conf:\d+: tls_key_file .*mode 0644", err), err
    r = subprocess.run([os.path.join(BUILD, "egressd"), "-c", conf], capture_output=True,
                       timeout=30)
    assert r.returncode != 0 and "mode 0644" in r.stderr.decode(), r.stderr.decode()[-500:]


def test_t_refuses_a_key_that_does_not_match(tgw, tmp_path):
    other, _ = make_pair(str(tmp_path))
    conf = write_conf_copy(tgw, tls_key_file=other.key)
    r = run_t(conf)
    assert r.returncode == 1
    assert "does not match" in r.stderr.decode(), r.stderr.decode()
    assert run_t(write_conf_copy(tgw)).returncode == 0


def test_tls_listener_needs_the_pair(make_gateway):
    gw = make_gateway(client_tls=True, start=False)
    gw.port = free_port()
    gw.write_files()
    conf = write_conf_copy(gw)
    with open(conf) as f:
        text = "".join(l for l in f if not l.startswith("tls_cert_file"))
    with open(conf, "w") as f:
        f.write(text)
    r = run_t(conf)
    assert r.returncode == 1
    assert re.search(r"check\.conf:2: listen .* tls needs \"tls_cert_file\"", r.stderr.decode()), \
        r.stderr.decode()


@pytest.fixture
def rotating(make_gateway, tmp_path):
    """A gateway whose pair lives in files the test may replace."""
    first, ca = make_pair(str(tmp_path), days=20, tag="a")
    second, _ = make_pair(str(tmp_path), days=40, tag="b", ca=ca)
    cert, key = str(tmp_path / "live.pem"), str(tmp_path / "live.key")
    shutil.copy(first.cert, cert)
    shutil.copy(first.key, key)
    os.chmod(key, 0o600)
    metrics = free_port()
    gw = make_gateway(client_tls=True, conf={
        "tls_cert_file": cert, "tls_key_file": key,
        "admin_socket": "admin.sock", "metrics_listen": "127.0.0.1:%d" % metrics})
    proxytls.TLS_PORTS[gw.port] = first.ca
    gw.metrics_port = metrics
    return gw, first, second, cert, key


def install(src, dst_cert, dst_key):
    shutil.copy(src.cert, dst_cert)
    shutil.copy(src.key, dst_key)
    os.chmod(dst_key, 0o600)


def reload_cmd(gw):
    return subprocess.run([EGRESSCTL, "-c", os.path.join(gw.dir, "egressd.conf"), "reload"],
                          capture_output=True, timeout=30)


def expiry_metric(gw):
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % gw.metrics_port,
                                  timeout=TIMEOUT).read().decode()
    m = re.search(r"(?m)^egressd_tls_cert_expiry_timestamp_seconds (\d+)$", body)
    assert m, body[-2000:]
    return int(m.group(1))


def not_after(pem):
    r = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", pem],
                       capture_output=True, timeout=30)
    return int(ssl.cert_time_to_seconds(r.stdout.decode().strip().split("=", 1)[1]))


def test_rotation_on_reload(rotating, origin):
    gw, first, second, cert, key = rotating
    assert expiry_metric(gw) == not_after(first.cert)
    s_old, t_old, der = peer_cert_der(gw.port, first.ca)
    try:
        assert der == der_of(first.cert)
        install(second, cert, key)
        r = reload_cmd(gw)
        assert r.returncode == 0, (r.stdout + r.stderr).decode()
        # New connections: the new pair.  The open one keeps its own and still works.
        s_new, _, der_new = peer_cert_der(gw.port, first.ca)
        s_new.close()
        assert der_new == der_of(second.cert)
        assert expiry_metric(gw) == not_after(second.cert)
        t_old.sendall(request_bytes("GET", "http://origin.test:%d/bytes/5" % origin.port,
                                    [("Host", "origin.test:%d" % origin.port),
                                     ("Connection", "close")]))
        assert t_old.recv(65536).startswith(b"HTTP/1.1 200")
    finally:
        s_old.close()
    rec = expect_one_record(gw, lambda x: x.get("event") == "reload", "reload", decision="allow")
    assert "tls pair reloaded" in rec["message"], fmt_records([rec])


@pytest.mark.parametrize("breakage", ["garbage key", "mismatched key", "key mode 0640",
                                      "missing cert"])
def test_broken_pair_on_reload_keeps_the_old(rotating, origin, tmp_path, breakage):
    gw, first, second, cert, key = rotating
    if breakage == "garbage key":
        with open(key, "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
        want = "tls_key_file"
    elif breakage == "mismatched key":
        shutil.copy(second.cert, cert)      # the old key stays: they do not match
        want = "does not match"
    elif breakage == "key mode 0640":
        os.chmod(key, 0o640)
        want = "mode 0640"
    else:
        os.unlink(cert)
        want = "tls_cert_file"
    r = reload_cmd(gw)
    out = (r.stdout + r.stderr).decode()
    assert r.returncode == 1 and want in out and "old certificate and key stay" in out, out
    s, _, der = peer_cert_der(gw.port, first.ca)
    s.close()
    assert der == der_of(first.cert), "the old pair is not the one in force"
    assert expiry_metric(gw) == not_after(first.cert)
    rec = expect_one_record(gw, lambda x: x.get("event") == "reload", "refused reload",
                            decision="deny")
    assert want in rec["message"], fmt_records([rec])
    assert_serving(gw, origin)
    gw.signal(signal.SIGHUP)                # the same through SIGHUP
    recs = gw.wait_audit(lambda x: x.get("event") == "reload", count=2)
    assert len(recs) == 2 and recs[1]["decision"] == "deny", fmt_records(recs)


# ------------------------------------------------------------------ auth_require_tls


@pytest.fixture
def fake_ldap():
    """Records every connection: a Proxy-Authorization never checked leaves it empty."""
    s = RecordingListener("127.0.0.1").start()
    yield s
    s.stop()


def require_tls_gateway(make_gateway, fake_ldap):
    plain, metrics = free_port(), free_port()
    gw = make_gateway(client_tls=True, conf={
        "listen": "127.0.0.1:%d" % plain, "auth": "ldap", "auth_require_tls": "yes",
        "metrics_listen": "127.0.0.1:%d" % metrics,
        "ldap_uri": "ldap://127.0.0.1:%d" % fake_ldap.port, "ldap_user_base": "dc=x",
        "ldap_timeout": "1"})
    gw.plain_port, gw.metrics_port = plain, metrics
    return gw


AUTHZ = ("Proxy-Authorization", "Basic YWxpY2U6YWxpY2UtcHc=")   # alice:alice-pw


@pytest.mark.parametrize("method", ["GET", "CONNECT"])
def test_auth_require_tls_refuses_credentials_on_plain(make_gateway, fake_ldap, origin, method):
    gw = require_tls_gateway(make_gateway, fake_ldap)
    with Conn(gw.plain_port) as c:
        if method == "GET":
            c.send(request_bytes("GET", "http://origin.test:%d/bytes/1" % origin.port,
                                 [("Host", "origin.test:%d" % origin.port), AUTHZ]))
        else:
            c.send(connect_bytes("origin.test:%d" % origin.port,
                                 headers=[("Host", "origin.test:%d" % origin.port), AUTHZ]))
        r = c.read_response(method=method)
        port = c.local_port
    assert r.status == 403, r.describe()
    assert b"TLS listener" in r.body, r.body
    rec = expect_one_record(gw, lambda x: x.get("client_port") == port, "insecure credentials",
                            reason="insecure_credentials", status=403, decision="deny",
                            client_tls=False, user=None, close="denied")
    assert "alice" not in str(rec)
    time.sleep(0.3)
    assert fake_ldap.received == b"", "the directory was contacted"
    m = re.search(r'(?m)^egressd_decisions_total\{decision="deny",reason="insecure_credentials"\} (\d+)$',
                  urllib.request.urlopen("http://127.0.0.1:%d/metrics" % gw.metrics_port,
                                         timeout=TIMEOUT).read().decode())
    assert m and int(m.group(1)) == 1, "insecure_credentials not counted in /metrics"


def test_auth_require_tls_anonymous_on_plain_and_credentials_on_tls(make_gateway, fake_ldap,
                                                                    origin):
    gw = require_tls_gateway(make_gateway, fake_ldap)
    _, r = get_via(gw.plain_port, origin, "/bytes/4")
    assert r.status == 200, r.describe()        # anonymous rules keep working on plain
    # On the tls listener the credentials are checked: they go to the directory
    # (this one does not speak LDAP: 503 auth_unavailable).
    port, r = get_via(gw.port, origin, "/bytes/4", extra=[AUTHZ])
    assert r.status == 503, r.describe()
    expect_one_record(gw, lambda x: x.get("client_port") == port, "credentials over TLS",
                      reason="auth_unavailable", client_tls=True)
    assert fake_ldap.received != b"", "the directory was not asked"
