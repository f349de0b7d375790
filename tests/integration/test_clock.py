"""Deadlines follow the monotonic clock, never the wall clock.

libfaketime (Debian's faketime package) steps egressd's wall clock while the
monotonic clock is left alone (FAKETIME_DONT_FAKE_MONOTONIC): an idle tunnel
must close after idle_timeout of real time whether the wall clock jumped back
an hour or forward a day.  Before the fix the idle check compared wall-clock
stamps, so a step back kept an idle tunnel open for the hour.
"""

import os
import time

import pytest

from harness.client import open_tunnel

FAKETIME_LIBS = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                 "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1"]


def _faketime_env(stamp_file):
    lib = next((p for p in FAKETIME_LIBS if os.path.exists(p)), None)
    if lib is None:
        pytest.fail("libfaketime is not installed (packaging/deps.sh installs faketime)")
    with open(stamp_file, "w") as f:
        f.write("+0\n")
    return {"LD_PRELOAD": lib, "FAKETIME_TIMESTAMP_FILE": stamp_file, "FAKETIME_NO_CACHE": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1"}


def _step(stamp_file, offset):
    with open(stamp_file, "w") as f:
        f.write(offset + "\n")


IDLE = 6    # past libevent's 5 s resync of its cached wall clock, so the step is seen


def test_idle_timeout_ignores_wall_clock_step_back(make_gateway, echo, tmp_path):
    offset = "-1h"
    stamp = str(tmp_path / "faketime")
    g = make_gateway(conf={"idle_timeout": str(IDLE)}, env=_faketime_env(stamp))
    c, resp = open_tunnel(g.port, "echo.test:%d" % echo.port)
    assert resp.status == 200, resp.describe()
    port = c.local_port
    c.send(b"ping")
    assert c.read_exact(4) == b"ping"
    t0 = time.monotonic()
    _step(stamp, offset)
    closed = c.wait_closed(IDLE + 4.0)
    waited = time.monotonic() - t0
    assert closed, "idle tunnel still open %.1f s after its last byte (wall clock %s)" % (
        waited, offset)
    assert waited >= IDLE - 1.0, "closed %.1f s after the last byte, before idle_timeout" % waited
    recs = g.audit_for_client(port, event="tunnel")
    assert len(recs) == 1 and recs[0]["close"] == "idle_timeout", recs
    c.close()
