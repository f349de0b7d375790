"""Out of file descriptors, every listener rests instead of spinning: the proxy
listeners (workers), /metrics and the admin socket (main thread).  And the soft
RLIMIT_NOFILE is raised at start toward what max_connections needs, with a
warning when the hard limit is lower."""

import os
import socket
import time
import urllib.request

import pytest

from harness.gateway import free_port


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")   # utime + stime


def soft_nofile(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError("no Max open files in /proc/%d/limits" % pid)


def scrape(port, timeout=3):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=timeout) as r:
        return r.status, r.read().decode()


def emfile_lines(text):
    return [l for l in text.splitlines() if "Too many open files" in l]


def test_out_of_fds_main_thread_rests_and_recovers(make_gateway):
    mport = free_port()
    g = make_gateway(nofile=64, conf={"header_timeout": "30", "admin_socket": "admin.sock",
                                      "metrics_listen": "127.0.0.1:%d" % mport})
    assert scrape(mport)[0] == 200
    sock_path = os.path.join(g.dir, "admin.sock")
    held, pending = [], []
    try:
        for _ in range(100):                 # more than the gateway has descriptors for
            held.append(socket.create_connection(("127.0.0.1", g.port), timeout=5))
        time.sleep(0.5)
        before = len(emfile_lines(g.stderr()))
        # One waiting scraper and one waiting admin client: the kernel completes
        # their handshakes, accept() in egressd fails with EMFILE.
        m = socket.create_connection(("127.0.0.1", mport), timeout=5)
        m.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        pending.append(m)
        a = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        a.settimeout(5)
        a.connect(sock_path)
        a.sendall(b"status\n")
        pending.append(a)
        time.sleep(0.3)
        c0 = cpu_seconds(g.proc.pid)
        time.sleep(2.0)
        used = cpu_seconds(g.proc.pid) - c0
        assert g.alive(), "egressd died when out of descriptors:\n%s" % g.stderr()[-2000:]
        assert used < 0.5, "egressd used %.2f s of CPU in 2 s with a scraper and an admin " \
            "client pending while out of descriptors (accept loop spinning?)" % used
        lines = emfile_lines(g.stderr())[before:]
        assert len(lines) <= 6, "%d EMFILE lines in 2 s (want a few, rate-limited):\n%s" % (
            len(lines), "\n".join(lines[:10]))
        paused = [l for l in g.stderr().splitlines() if "event=accept-paused" in l]
        assert any("listener=metrics_listen" in l for l in paused), g.stderr()[-3000:]
        assert any("listener=admin_socket" in l for l in paused), g.stderr()[-3000:]
    finally:
        for s in held + pending:
            s.close()
    # Descriptors free again: /metrics answers.
    deadline = time.monotonic() + 10
    last = None
    while time.monotonic() < deadline:
        try:
            code, text = scrape(mport)
            if code == 200 and "egressd_connections_open" in text:
                return
            last = code
        except OSError as e:
            last = repr(e)
        time.sleep(0.3)
    pytest.fail("/metrics did not answer after descriptors were freed: %s" % last)


def test_metrics_clients_capped(make_gateway):
    mport = free_port()
    g = make_gateway(conf={"metrics_listen": "127.0.0.1:%d" % mport})
    idle = []
    try:
        for _ in range(16):
            idle.append(socket.create_connection(("127.0.0.1", mport), timeout=5))
        time.sleep(0.3)
        extra = socket.create_connection(("127.0.0.1", mport), timeout=5)
        extra.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        data = extra.recv(4096)
        extra.close()
        assert data.startswith(b"HTTP/1.1 503"), data
    finally:
        for s in idle:
            s.close()
    time.sleep(0.3)
    assert scrape(mport)[0] == 200


def test_soft_nofile_raised_toward_max_connections(make_gateway):
    g = make_gateway(nofile=256, nofile_hard=4096, conf={"max_connections": "1000"})
    soft = soft_nofile(g.proc.pid)
    assert soft >= 2000, "soft RLIMIT_NOFILE %d: not raised for max_connections 1000" % soft
    assert soft <= 4096
    assert "event=fd-limit nofile=%d raised_from=256" % soft in g.stderr(), g.stderr()[-2000:]
    assert "fd-limit-low" not in g.stderr()


def test_hard_nofile_below_need_warns(make_gateway):
    g = make_gateway(nofile=256, nofile_hard=512, conf={"max_connections": "1000"})
    assert soft_nofile(g.proc.pid) == 512
    warn = [l for l in g.stderr().splitlines() if "event=fd-limit-low" in l]
    assert len(warn) == 1 and "nofile_hard=512" in warn[0] and "max_connections=1000" in warn[0], \
        g.stderr()[-2000:]
