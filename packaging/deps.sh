#!/bin/sh
# Install the Debian packages egressd's build, tests and demo need; quick when all are there.
set -e
PKGS="build-essential pkg-config clang libclang-rt-dev libevent-dev libldap2-dev libpcre2-dev
libjson-c-dev libcmocka-dev libssl-dev python3 python3-pytest curl openssl slapd ldap-utils rsyslog
squid faketime"
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
apt-get update -qq
apt-get install -y -qq --no-install-recommends $missing >/dev/null
