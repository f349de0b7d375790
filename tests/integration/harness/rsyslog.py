"""A real rsyslogd for the audit tests, in a temporary folder of its own.

Rsyslogd writes rsyslog.conf into /tmp/ersl-XXXX/ and runs
`/usr/sbin/rsyslogd -n -i PIDFILE -f CONF`.  It reads one imuxsock socket,
`audit.sock` in that folder (SysSock.Use="off": the system /dev/log is never
touched), with imuxsock's rate limit off, as packaging/rsyslog/egressd-audit.conf
ships it.  What arrives is written to

  audit.log     the message only, one per line: %msg% from its second character
                (the space after "egressd[PID]:" skipped), as the shipped recipe does
  meta.log      "PROGRAMNAME FACILITY SEVERITY" of each message, same order
  internal.log  rsyslogd's own messages (start, drops, errors)

Rsyslogd(relp=True) also listens with imrelp on 127.0.0.1:relp_port (a free
port chosen once; the same after a restart) into the same ruleset: the
audit_relp transport's receiver.  Rsyslogd(forward_relp=PORT) is an edge: it
writes nothing itself and forwards every record with omrelp to a central
rsyslogd's imrelp on that port, as packaging/rsyslog/egressd-forward.conf
ships it.

stop() and start() may be called any number of times; the socket path stays the
same (rsyslogd removes it on exit and creates it again on start).  The process
is stopped by its PID only (SIGTERM, SIGKILL after a bound).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from harness import auditview

RSYSLOGD = os.environ.get("RSYSLOGD", "/usr/sbin/rsyslogd")

_CONF = """\
# written by tests/integration/harness/rsyslog.py
global(workDirectory="{work}")
module(load="imuxsock" SysSock.Use="off")

input(type="imuxsock"
      Socket="{sock}"
      CreatePath="on"
      RateLimit.Interval="0"
      Ruleset="egressd_audit")

template(name="egressd_json" type="list") {{
	property(name="msg" position.from="2")
	constant(value="\\n")
}}

template(name="egressd_meta" type="list") {{
	property(name="programname")
	constant(value=" ")
	property(name="syslogfacility-text")
	constant(value=" ")
	property(name="syslogseverity-text")
	constant(value="\\n")
}}

ruleset(name="egressd_audit") {{
{actions}
	stop
}}

# rsyslogd's own messages (start, "begin to drop messages", errors).
*.* action(type="omfile" File="{internal}")
"""


_LOCAL_ACTIONS = """\
	action(type="omfile" File="{out}" Template="egressd_json")
	action(type="omfile" File="{meta}" Template="egressd_meta")"""

_RELP_INPUT = """
module(load="imrelp")
input(type="imrelp" address="127.0.0.1" port="{port}" ruleset="egressd_audit")
"""

# The edge of packaging/rsyslog/egressd-forward.conf: a disk-assisted queue
# that survives the central's absence, RELP to the central, retried forever.
_FORWARD_ACTIONS = """\
	action(type="omrelp" target="127.0.0.1" port="{port}" template="RSYSLOG_ForwardFormat"
	       queue.type="LinkedList" queue.filename="fwd" queue.saveOnShutdown="on"
	       action.resumeRetryCount="-1" action.resumeInterval="1")"""


def _free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class RsyslogError(Exception):
    pass


class Rsyslogd:
    def __init__(self, relp=False, forward_relp=None):
        if not os.access(RSYSLOGD, os.X_OK):
            raise RsyslogError("%s is not installed" % RSYSLOGD)
        self.dir = tempfile.mkdtemp(prefix="ersl-", dir="/tmp")
        self.sock_path = os.path.join(self.dir, "audit.sock")
        self.out_path = os.path.join(self.dir, "audit.log")
        self.meta_path = os.path.join(self.dir, "meta.log")
        self.internal_path = os.path.join(self.dir, "internal.log")
        self.pid_path = os.path.join(self.dir, "rsyslogd.pid")
        self.conf_path = os.path.join(self.dir, "rsyslog.conf")
        self.stderr_path = os.path.join(self.dir, "rsyslogd.stderr")
        self.work = os.path.join(self.dir, "work")
        os.mkdir(self.work)
        self.proc = None
        self.starts = 0
        self._hidden = (0, 0)           # (audit.log, meta.log) lines: see forget_audit
        self.served_a_test = False
        auditview.SOURCES.add(self)
        self.relp_port = _free_port() if relp else None
        if forward_relp:
            actions = _FORWARD_ACTIONS.format(port=forward_relp)
        else:
            actions = _LOCAL_ACTIONS.format(out=self.out_path, meta=self.meta_path)
        conf = _CONF.format(work=self.work, sock=self.sock_path, internal=self.internal_path,
                            actions=actions)
        if relp:
            conf += _RELP_INPUT.format(port=self.relp_port)
        if forward_relp:
            conf = conf.replace('module(load="imuxsock" SysSock.Use="off")\n',
                                'module(load="imuxsock" SysSock.Use="off")\n'
                                'module(load="omrelp")\n', 1)
        with open(self.conf_path, "w") as f:
            f.write(conf)
        r = subprocess.run([RSYSLOGD, "-N1", "-f", self.conf_path], stdin=subprocess.DEVNULL,
                           capture_output=True, timeout=20)
        if r.returncode != 0:
            raise RsyslogError("rsyslogd -N1 refused %s (exit %d):\n%s%s" % (
                self.conf_path, r.returncode, r.stdout.decode(errors="replace"),
                r.stderr.decode(errors="replace")))

    # ------------------------------------------------------------ process
    def _socket_ready(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            s.connect(self.sock_path)       # refused for a stale socket file
        except OSError:
            return False
        finally:
            s.close()
        if self.relp_port:
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                t.connect(("127.0.0.1", self.relp_port))
            except OSError:
                return False
            finally:
                t.close()
        return True

    def start(self, timeout=10.0):
        if self.alive():
            return self
        err = open(self.stderr_path, "ab")
        try:
            self.proc = subprocess.Popen([RSYSLOGD, "-n", "-i", self.pid_path, "-f", self.conf_path],
                                         stdin=subprocess.DEVNULL, stdout=err, stderr=err,
                                         cwd=self.dir)
        finally:
            err.close()
        self.starts += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RsyslogError("rsyslogd exited with %s at start:\n%s" % (
                    self.proc.returncode, self.diagnostics()))
            if self._socket_ready():
                return self
            time.sleep(0.02)
        self.stop()
        raise RsyslogError("rsyslogd did not open %s within %ss:\n%s" % (
            self.sock_path, timeout, self.diagnostics()))

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10.0):
        """SIGTERM to our rsyslogd's PID, SIGKILL after timeout; returns the exit code.
        When it returns, the socket is closed: nothing more is read from it."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        return self.proc.returncode

    def cleanup(self):
        auditview.SOURCES.discard(self)
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------ output
    @staticmethod
    def _read(path):
        try:
            with open(path, "rb") as f:
                return f.read()
        except OSError:
            return b""

    def raw(self):
        """audit.log as bytes."""
        return self._read(self.out_path)

    def lines(self):
        """Complete lines of audit.log (a line still being written is left out)."""
        data = self.raw()
        return data.split(b"\n")[:-1]

    def _meta_lines(self):
        return self._read(self.meta_path).split(b"\n")[:-1]

    def meta(self):
        """programname, facility and severity of each record that records() shows."""
        return [l.decode("utf-8", "replace") for l in self._meta_lines()[self._hidden[1]:]]

    def internal(self):
        return self._read(self.internal_path).decode("utf-8", "replace")

    def forget_audit(self):
        """Hide the records seen so far from records(), wait_records() and
        meta() (harness/auditview.py says when and why); lines() and raw() still
        have them all."""
        self._hidden = (len(self.lines()), len(self._meta_lines()))

    def records(self):
        out = []
        for line in self.lines()[self._hidden[0]:]:
            try:
                rec = json.loads(line.decode("utf-8"))
                if not isinstance(rec, dict):
                    raise ValueError("not an object")
                out.append(rec)
            except ValueError:
                out.append({"_unparsable": line.decode("utf-8", "replace")})
        return out

    def wait_records(self, pred, count=1, timeout=5.0, settle=0.2):
        """Wait (bounded) until at least count records match pred; wait settle
        seconds more to catch duplicates; return the matching records."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(1 for r in self.records() if pred(r)) >= count:
                break
            time.sleep(0.05)
        if settle:
            time.sleep(settle)
        return [r for r in self.records() if pred(r)]

    def diagnostics(self):
        return "rsyslog.conf: %s\nrsyslogd stderr:\n%s\ninternal.log:\n%s\n" % (
            self.conf_path, self._read(self.stderr_path).decode("utf-8", "replace")[-3000:],
            self.internal()[-3000:])
