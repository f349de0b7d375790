#!/bin/sh
# Install the Debian packages egressd needs; quick when all are there.
#
#   sh packaging/deps.sh demo    what the build and `make demo` need, nothing more
#   sh packaging/deps.sh check   that, plus what the tests need (default)
#   sh packaging/deps.sh bench   that, plus the peers and tools of `make bench` (tests/bench
#                                installs what it lacks itself, too)
#
# Packages are installed without starting their services (a policy-rc.d that
# says no while apt runs): squid (the differential test's peer) would
# otherwise start on 3128 — the demo's port — and slapd, rsyslogd and haproxy
# on their usual ports.  The tests start their own instances on loopback.
set -e
BUILD="build-essential pkg-config libevent-dev libldap2-dev libpcre2-dev libjson-c-dev libssl-dev libsystemd-dev librelp-dev"
DEMO="python3 curl slapd ldap-utils librelp0"
CHECK="clang libclang-rt-dev libcmocka-dev python3-pytest python3-pytest-xdist python3-yaml python3-requests python3-urllib3 openssl rsyslog rsyslog-relp squid faketime haproxy debhelper lintian logrotate systemd"
BENCH="trafficserver wrk valgrind"
case "${1:-check}" in
demo) PKGS="$BUILD $DEMO" ;;
check) PKGS="$BUILD $DEMO $CHECK" ;;
bench) PKGS="$BUILD $DEMO $CHECK $BENCH" ;;
*) echo "usage: sh packaging/deps.sh [demo|check|bench]" >&2; exit 2 ;;
esac
missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "deps: missing packages:$missing (run as root or install them)" >&2
	exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
prc=/usr/sbin/policy-rc.d
own_prc=""
if [ ! -e "$prc" ]; then
	printf '#!/bin/sh\n# written by egressd packaging/deps.sh while apt runs\nexit 101\n' >"$prc"
	chmod 755 "$prc"
	own_prc=1
fi
rc=0
apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing >/dev/null || rc=$?
[ -n "$own_prc" ] && rm -f "$prc"
# Installed for the tests only: never started at boot either.
if [ -d /run/systemd/system ]; then
	for svc in squid slapd haproxy trafficserver; do
		case " $missing " in *" $svc "*) systemctl disable --now "$svc" >/dev/null 2>&1 || true ;; esac
	done
fi
exit $rc
