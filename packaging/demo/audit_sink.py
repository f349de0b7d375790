"""The demo's syslog socket: prints each egressd audit record as one "audit {...}" line.

    python3 audit_sink.py SOCKET_PATH

A unix datagram socket (what egressd's audit_syslog_socket names) read until SIGTERM
(Ctrl-C is ignored: the demo stops the sink after egressd); the RFC 3164 header ("<PRI>Mmm dd hh:mm:ss TAG[PID]: ") is dropped.
"""
import os
import signal
import socket
import sys

path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
# Ctrl-C reaches the whole process group: the sink stays until the demo stops it
# (SIGTERM), after egressd, so that egressd's stop record is still printed.
signal.signal(signal.SIGINT, signal.SIG_IGN)
try:
    while True:
        msg = s.recv(65536).decode("utf-8", "replace")
        head, sep, body = msg.partition("]: ")
        print("audit " + (body if sep else msg).rstrip("\n"), flush=True)
finally:
    os.unlink(path)
