"""The slapd of tests/bench/auth_bench.sh: harness.slapd's seeded directory plus
N bench users (bench0 .. bench<N-1>, password bench-pw, all in group bench),
added with ldapadd as the root DN.

    python3 auth_bench.py DIR N

Writes DIR/slapd.env (shell assignments: LDAP_URI, LDAP_PORT, SLAPD_PID and the
egressd.conf lines in DIR/ldap.conf, with the service account's password in
DIR/ldap.secret, mode 0600), then waits for SIGTERM/SIGINT (or at most an hour)
and stops slapd by its PID and removes its folder.  Standard library only.
"""

import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

from harness import slapd as hs  # noqa: E402

PASSWORD = "bench-pw"


def bench_ldif(n):
    out = []
    for i in range(n):
        uid = "bench%d" % i
        out += ["dn: " + hs.user_dn(uid), "objectClass: inetOrgPerson", "uid: " + uid,
                "cn: " + uid, "sn: " + uid, "userPassword: " + PASSWORD, ""]
    out += ["dn: cn=bench," + hs.GROUPS, "objectClass: groupOfNames", "cn: bench"]
    out += ["member: " + hs.user_dn("bench%d" % i) for i in range(n)]
    out += [""]
    return "\n".join(out) + "\n"


def main():
    d, n = sys.argv[1], int(sys.argv[2])
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    s = hs.Slapd()
    try:
        s.start()
        ldif = os.path.join(d, "bench.ldif")
        with open(ldif, "w") as f:
            f.write(bench_ldif(n))
        r = subprocess.run(["ldapadd", "-x", "-H", s.uri, "-D", hs.ROOT_DN,
                            "-w", hs.ROOT_PASSWORD, "-f", ldif],
                           capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
        if r.returncode != 0:
            sys.exit("ldapadd: %s" % r.stderr.decode()[-2000:])
        conf = s.gateway_conf(d)
        with open(os.path.join(d, "ldap.conf"), "w") as f:
            for k, v in conf.items():
                f.write("%s %s\n" % (k, v))
        tmp = os.path.join(d, "slapd.env.tmp")
        with open(tmp, "w") as f:
            f.write("LDAP_URI=%s\nLDAP_PORT=%d\nSLAPD_PID=%d\n" % (s.uri, s.port, s.proc.pid))
        os.rename(tmp, os.path.join(d, "slapd.env"))
        deadline = time.monotonic() + 3600
        while not stop and time.monotonic() < deadline and s.alive():
            time.sleep(0.2)
    finally:
        s.cleanup()


if __name__ == "__main__":
    main()
