"""Options on the gateway's own sockets, read from the running daemon.

A copy of each socket is taken with pidfd_getfd(2) (the test runs as the
daemon's user or root), so what is checked is the option the kernel holds for
the gateway's descriptor, not a guess from timing.
"""

import ctypes
import os
import socket

from harness.client import Conn

SYS_PIDFD_GETFD = 438    # x86_64 and aarch64's generic table alike
_libc = ctypes.CDLL(None, use_errno=True)


def _socket_inodes(pid):
    """{inode: fd} of every socket the process holds."""
    out = {}
    for name in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, name))
        except OSError:
            continue
        if target.startswith("socket:["):
            out[int(target[8:-1])] = int(name)
    return out


def _tcp_sockets(pid):
    """[(local_port, remote_port, fd)] of the process's IPv4 TCP sockets."""
    inodes = _socket_inodes(pid)
    found = []
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            inode = int(fields[9])
            if inode in inodes:
                found.append((int(fields[1].split(":")[1], 16),
                              int(fields[2].split(":")[1], 16), inodes[inode]))
    return found


def _nodelay_of(pid, fd):
    pidfd = os.pidfd_open(pid)
    try:
        mine = _libc.syscall(SYS_PIDFD_GETFD, pidfd, fd, 0)
        assert mine >= 0, "pidfd_getfd: %s" % os.strerror(ctypes.get_errno())
    finally:
        os.close(pidfd)
    s = socket.socket(fileno=mine)
    try:
        return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        s.detach()
        os.close(mine)


def test_client_and_origin_sockets_send_without_nagle_delay(make_gateway, origin):
    """Both of the gateway's sockets of a proxied request have TCP_NODELAY: a
    reply head and a small body never wait for the peer's delayed ACK.  The
    client's socket gets it from the listener (accepted sockets inherit it),
    the origin's from the connect."""
    g = make_gateway()
    with Conn(g.port) as c:
        c.send(b"GET http://origin.test:%d/echo HTTP/1.1\r\nHost: origin.test:%d\r\n\r\n"
               % (origin.port, origin.port))
        r = c.read_response()
        assert r.status == 200, r.describe()
        socks = _tcp_sockets(g.proc.pid)
        client_side = [fd for lp, rp, fd in socks if lp == g.port and rp == c.local_port]
        origin_side = [fd for lp, rp, fd in socks if rp == origin.port]
        assert len(client_side) == 1 and len(origin_side) == 1, socks
        assert _nodelay_of(g.proc.pid, client_side[0]) == 1, "client socket: Nagle on"
        assert _nodelay_of(g.proc.pid, origin_side[0]) == 1, "origin socket: Nagle on"
