"""`make demo` as a newcomer meets it (packaging/demo.sh).

- it prints the start record, and the stop record when Ctrl-C stops it;
- when its port is taken it says by whom and how to pick another
  (DEMO_PORT), instead of failing obscurely.

The demo uses fixed loopback ports (8080 origin, 3389 directory); the test
skips when another program holds them.
"""

import os
import signal
import socket
import subprocess
import time

import pytest

from harness.gateway import free_port

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEMO = os.path.join(TOP, "packaging", "demo.sh")


def _free(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


@pytest.fixture
def demo_ports():
    if not (_free(8080) and _free(3389)):
        pytest.skip("127.0.0.1:8080 or :3389 is taken on this machine")


def _run_demo(port, until, timeout=20):
    env = dict(os.environ, DEMO_PORT=str(port))
    p = subprocess.Popen(["sh", DEMO], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, env=env, start_new_session=True)
    out = b""
    deadline = time.monotonic() + timeout
    os.set_blocking(p.stdout.fileno(), False)
    try:
        while time.monotonic() < deadline and p.poll() is None and until(out) is False:
            try:
                chunk = p.stdout.read()
            except BlockingIOError:
                chunk = None
            if chunk:
                out += chunk
            time.sleep(0.05)
        return p, out
    except BaseException:
        os.killpg(p.pid, signal.SIGKILL)
        raise


def _finish(p, out, timeout=15):
    try:
        rest, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        rest, _ = p.communicate()
    return out + (rest or b"")


def test_demo_prints_start_and_stop_records(demo_ports):
    port = free_port()
    p, out = _run_demo(port, lambda o: b'"event":"start"' in o)
    assert b'"event":"start"' in out, out.decode(errors="replace")[-3000:]
    os.killpg(p.pid, signal.SIGINT)          # Ctrl-C: the whole foreground group
    out = _finish(p, out)
    text = out.decode(errors="replace")
    assert '"event":"stop"' in text, text[-3000:]
    assert "could not be delivered" not in text, text[-3000:]


def test_demo_says_who_holds_its_port(demo_ports):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        p, out = _run_demo(port, lambda o: False, timeout=10)
        out = _finish(p, out)
    finally:
        holder.close()
    text = out.decode(errors="replace")
    assert p.returncode not in (0, None), text
    assert "127.0.0.1:%d is taken" % port in text, text
    assert "DEMO_PORT=" in text, text
