#!/bin/sh
# make demo: a local origin on 127.0.0.1:8080, a seeded slapd on 127.0.0.1:3389 and egressd
# on 127.0.0.1:3128 authenticating against it. egressd's log and audit records stay in the
# foreground; Ctrl-C (or SIGTERM to this script) stops all three by PID and removes the
# temporary folder.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
demo="$top/packaging/demo"
SLAPD=/usr/sbin/slapd
SLAPADD=/usr/sbin/slapadd
LDAP_PORT=3389
PORT=${DEMO_PORT:-3128}

say() { printf 'demo: %s\n' "$*" >&2; }

origin="" slapd="" egressd="" sink=""
T=""
cleanup() {
	trap - EXIT INT TERM HUP
	# egressd first, while the audit sink still reads: its stop record is
	# the last line the demo prints.
	if [ -n "$egressd" ]; then
		kill -TERM "$egressd" 2>/dev/null
		i=0
		while kill -0 "$egressd" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
		sleep 0.3
	fi
	for p in $egressd $slapd $origin $sink; do kill -TERM "$p" 2>/dev/null; done
	i=0
	while [ $i -lt 70 ]; do
		alive=""
		for p in $egressd $slapd $origin $sink; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
		[ -z "$alive" ] && break
		sleep 0.1
		i=$((i + 1))
	done
	for p in $egressd $slapd $origin $sink; do kill -KILL "$p" 2>/dev/null; done
	for p in $egressd $slapd $origin $sink; do wait "$p" 2>/dev/null; done
	[ -n "$T" ] && rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

for prog in "$SLAPD" "$SLAPADD"; do
	[ -x "$prog" ] || { say "$prog is missing (make deps installs slapd)"; exit 1; }
done
[ -x "$top/build/egressd" ] || { say "build/egressd is not built (make)"; exit 1; }

# A port another program holds: say which, and how to pick another.
port_user() {
	command -v ss >/dev/null 2>&1 || return 1
	ss -H -ltnp "sport = :$1" 2>/dev/null | sed -n 's/.*users:((\("[^"]*"\),pid=\([0-9]*\).*/\1 (pid \2)/p' | head -1
}
for pt in "$PORT" 8080 "$LDAP_PORT"; do
	if ! /usr/bin/python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))' "$pt" 2>/dev/null; then
		who=$(port_user "$pt")
		say "127.0.0.1:$pt is taken${who:+ by $who}."
		if [ "$pt" = "$PORT" ]; then
			say "Stop it (e.g. systemctl stop squid), or run the demo on another port: make demo DEMO_PORT=3129"
		else
			say "The demo needs it (8080: demo origin, $LDAP_PORT: demo directory); stop that program first."
		fi
		exit 1
	fi
done

# Everything the demo writes goes to one private temporary folder.
umask 077
T=$(mktemp -d /tmp/egressd-demo.XXXXXX) || exit 1

# ------------------------------------------------------------------ the directory
# A fresh service-account password for each run, in the directory and in ldap.secret (0600).
secret=$(od -An -N18 -tx1 /dev/urandom | tr -d ' \n')
mkdir "$T/slapd-db"
sed "s|@DIR@|$T|g" "$demo/slapd.conf" >"$T/slapd.conf"
sed "s|@SVC_PASSWORD@|$secret|" "$demo/directory.ldif" >"$T/directory.ldif"
printf '%s\n' "$secret" >"$T/ldap.secret"
chmod 600 "$T/ldap.secret" "$T/directory.ldif"
if ! "$SLAPADD" -q -f "$T/slapd.conf" -l "$T/directory.ldif" >"$T/slapadd.log" 2>&1; then
	cat "$T/slapadd.log" >&2
	say "slapadd failed"
	exit 1
fi
"$SLAPD" -d 0 -h "ldap://127.0.0.1:$LDAP_PORT/" -f "$T/slapd.conf" >"$T/slapd.log" 2>&1 &
slapd=$!
# Ready when a base search as the service account answers (up to 10 s). ldapsearch -y
# sends a file's bytes as they are (egressd drops ldap.secret's trailing newline), so it
# gets a copy without the newline.
printf '%s' "$secret" >"$T/ldap.secret.check"
i=0
until ldapsearch -x -LLL -H "ldap://127.0.0.1:$LDAP_PORT/" -D "cn=egressd,ou=svc,dc=example,dc=com" \
    -y "$T/ldap.secret.check" -b "dc=example,dc=com" -s base dn >/dev/null 2>&1; do
	if ! kill -0 "$slapd" 2>/dev/null || [ $i -ge 100 ]; then
		tail -5 "$T/slapd.log" >&2
		say "slapd did not answer on 127.0.0.1:$LDAP_PORT (is the port in use?)"
		exit 1
	fi
	sleep 0.1
	i=$((i + 1))
done
rm -f "$T/ldap.secret.check"

# ------------------------------------------------------------------ origin and gateway
/usr/bin/python3 -m http.server 8080 --bind 127.0.0.1 --directory "$demo/www" >/dev/null 2>&1 &
origin=$!
# The audit records go to a socket of the demo's own, which prints them.
/usr/bin/python3 "$demo/audit_sink.py" "$T/audit.sock" &
sink=$!
# The start record is the first thing printed: wait for the sink's socket.
i=0
while [ ! -S "$T/audit.sock" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done

sed "s|127.0.0.1:3128|127.0.0.1:$PORT|" "$demo/egressd.conf" >"$T/egressd.conf"
cp "$demo/demo.rules" "$T/"
{
	cat /etc/hosts 2>/dev/null
	printf '127.0.0.1 eng.demo.test crm.demo.test admin.demo.test intranet.demo.test\n'
} >"$T/hosts"
chmod 644 "$T/egressd.conf" "$T/demo.rules" "$T/hosts"

px="-x http://127.0.0.1:$PORT"
cat <<MSG

egressd demo: gateway on 127.0.0.1:$PORT, demo origin on 127.0.0.1:8080, demo directory
(slapd) on ldap://127.0.0.1:$LDAP_PORT/: alice/alice-pw in engineering, bob/bob-pw in sales,
carol/carol-pw in no group. Configuration and policy: $T/egressd.conf, $T/demo.rules
(copies of $demo/; edit the policy there and send SIGHUP to egressd to reload).
Try, from another terminal:
  curl $px http://127.0.0.1:8080/                          # allowed to anyone: forwarded
  curl -p $px http://127.0.0.1:8080/                       # allowed to anyone: CONNECT tunnel
  curl $px http://www.blocked.example/                     # denied: 403
  curl -U alice:alice-pw $px http://eng.demo.test:8080/    # group:engineering: allowed
  curl -U alice:alice-pw -p $px http://admin.demo.test:8080/   # user:alice, CONNECT tunnel: allowed
  curl -U bob:bob-pw $px http://crm.demo.test:8080/        # group:sales: allowed
  curl -U carol:carol-pw $px http://intranet.demo.test:8080/   # authenticated: allowed
  curl -i $px http://eng.demo.test:8080/                   # no credentials: 407 (Proxy-Authenticate)
  curl -i -U alice:wrong $px http://eng.demo.test:8080/    # wrong password: 407
  curl -i -U bob:bob-pw $px http://eng.demo.test:8080/     # bob is not in engineering: 403
  $top/build/egressctl -c $T/egressd.conf explain --user bob --group sales --method GET --host eng.demo.test --port 8080
  ldapwhoami -x -H ldap://127.0.0.1:$LDAP_PORT/ -D uid=alice,ou=people,dc=example,dc=com -w alice-pw
Audit records are printed below as "audit {...}" lines. Ctrl-C stops.

MSG
"$top/build/egressd" -c "$T/egressd.conf" &
egressd=$!
say "pids: egressd $egressd, slapd $slapd, origin $origin, audit sink $sink"
# A trapped signal interrupts wait at once (the trap then stops everything by PID).
wait "$egressd"
rc=$?
egressd=""
exit $rc
