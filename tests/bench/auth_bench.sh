#!/bin/sh
# The cost of authentication: CONNECT tunnels per second anonymous vs authenticated with a
# warm cache, and the time of a cold authentication (a user not yet cached: one LDAP
# exchange: user search, user bind, group search).
#
#   sh tests/bench/auth_bench.sh
#   BENCH_SECONDS=3      seconds per throughput measurement
#   BENCH_ROUNDS=3       rounds; the best of each row is kept
#   BENCH_COLD_USERS=200 distinct users per cold measurement (each round uses fresh ones)
#   BENCH_CALLGRIND=1    also count egressd's instructions per tunnel, both ways (valgrind)
#   BENCH_CALLGRIND_KEEP=DIR  keep the callgrind files there (for callgrind_annotate)
#   BENCH_LAT_N=2000     sequential tunnels per warm/anonymous latency measurement
#
# A slapd (tests/integration/harness/slapd.py's directory plus the bench users, added
# with ldapadd by tests/bench/auth_bench.py) and two egressd, one worker each, both with
# `auth ldap` against it and differing only in the policy: `allow any` (the client sends
# no credentials) and `allow authenticated` (the client sends the same valid credentials
# every time, after a warm-up that fills the cache). The two are measured alternately,
# so load from elsewhere falls on both. Everything is on 127.0.0.1; every process is
# stopped by PID on exit; each measurement is bounded in time.
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd)
SECS=${BENCH_SECONDS:-3}
ROUNDS=${BENCH_ROUNDS:-3}
COLD_N=${BENCH_COLD_USERS:-200}
CALLGRIND=${BENCH_CALLGRIND:-1}
CG_KEEP=${BENCH_CALLGRIND_KEEP:-}
LAT_N=${BENCH_LAT_N:-2000}
EGRESSD=${EGRESSD:-$REPO/build/egressd}

say() { printf '%s\n' "auth_bench: $*" >&2; }
fail() { say "$*"; exit 1; }

[ -x "$EGRESSD" ] || fail "$EGRESSD is not built (make all)"
[ -x /usr/sbin/slapd ] && command -v ldapadd >/dev/null 2>&1 || fail "needs slapd and ldap-utils (make deps)"
ulimit -n 20000 2>/dev/null || true

T=$(mktemp -d /tmp/egressd-auth-bench.XXXXXX) || fail "mktemp"
chmod 755 "$T"
PIDS=""
cleanup() {
	trap - EXIT INT TERM
	for p in $PIDS; do kill -TERM "$p" 2>/dev/null; done
	i=0
	while [ $i -lt 50 ]; do
		alive=""
		for p in $PIDS; do kill -0 "$p" 2>/dev/null && alive="$alive $p"; done
		[ -z "$alive" ] && break
		sleep 0.1
		i=$((i + 1))
	done
	for p in $PIDS; do kill -KILL "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

stop_pid() {
	kill -TERM "$1" 2>/dev/null
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	PIDS=$(for p in $PIDS; do [ "$p" != "$1" ] && printf '%s ' "$p"; done)
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {   # PORT SECONDS PID
	python3 - "$1" "$2" "$3" <<'EOF'
import os, socket, sys, time
port, secs, pid = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
end = time.monotonic() + secs
while time.monotonic() < end:
    try:
        os.kill(pid, 0)
    except OSError:
        sys.exit("process %d exited" % pid)
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.1)
sys.exit("port %d not listening after %ss" % (port, secs))
EOF
}

wait_file() {   # FILE SECONDS
	i=0
	while [ ! -s "$1" ] && [ $i -lt $(($2 * 10)) ]; do sleep 0.1; i=$((i + 1)); done
	[ -s "$1" ]
}

field() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# ------------------------------------------------------------------ clients, origin, directory
B="$T/bin"
mkdir -p "$B"
cc -O2 -o "$B/origin" "$REPO/tests/bench/origin.c" || fail "cc origin.c"
cc -O2 -o "$B/client" "$REPO/tests/bench/auth_bench.c" || fail "cc auth_bench.c"

"$B/origin" echo "$T/echo.port" 900 &
PIDS="$PIDS $!"
wait_file "$T/echo.port" 10 || fail "echo origin did not start"
ECHO_PORT=$(cat "$T/echo.port")
"$B/origin" logsink "$T/audit.sock" 900 &
PIDS="$PIDS $!"

NUSERS=$((COLD_N * (ROUNDS + 1)))
mkdir -p "$T/ldap"
python3 "$REPO/tests/bench/auth_bench.py" "$T/ldap" "$NUSERS" 2>"$T/ldap/wrapper.err" &
WRAPPER=$!
PIDS="$PIDS $WRAPPER"
wait_file "$T/ldap/slapd.env" 60 || { cat "$T/ldap/wrapper.err" >&2; fail "slapd did not start"; }
. "$T/ldap/slapd.env"
PIDS="$PIDS $SLAPD_PID"     # in case the wrapper dies without stopping it
say "slapd on $LDAP_URI (pid $SLAPD_PID) with $NUSERS bench users"

load=$(cut -d' ' -f1 /proc/loadavg)
say "load average $load on $(nproc) CPUs; ${SECS}s per row, $ROUNDS rounds"

printf '127.0.0.1 localhost\n' >"$T/hosts"
start_egressd() {   # NAME RULE [WRAPPER...] -> sets PROXY_PID PROXY_PORT
	name=$1 rule=$2
	shift 2
	d="$T/egressd-$name"
	mkdir -p "$d"
	cp "$T/ldap/ldap.secret" "$d/ldap.secret"
	chmod 600 "$d/ldap.secret"
	PROXY_PORT=$(free_port)
	printf '%s 127\\.0\\.0\\.1 * sni=off\n' "$rule" >"$d/policy.rules"
	printf 'nameserver 127.0.0.1:1\noptions timeout:1 attempts:1\n' >"$d/resolv.conf"
	{
		cat <<EOF
listen 127.0.0.1:$PROXY_PORT
workers 1
policy_file policy.rules
dns_hosts_file $T/hosts
dns_resolv_conf resolv.conf
allow_internal 127.0.0.0/8
max_connections 20000
idle_timeout 300
audit_syslog_socket $T/audit.sock
auth_cache_ttl 3600
EOF
		grep -v '^ldap_bind_password_file' "$T/ldap/ldap.conf"
		echo "ldap_bind_password_file ldap.secret"
	} >"$d/egressd.conf"
	"$@" "$EGRESSD" -c "$d/egressd.conf" >/dev/null 2>"$d/stderr" &
	PROXY_PID=$!
	PIDS="$PIDS $PROXY_PID"
	wait_port "$PROXY_PORT" 60 "$PROXY_PID" || { tail -5 "$d/stderr" >&2; fail "egressd $name did not start"; }
}

start_egressd anon "allow any";          PORT_anon=$PROXY_PORT; PID_anon=$PROXY_PID
start_egressd auth "allow authenticated"; PORT_auth=$PROXY_PORT; PID_auth=$PROXY_PID

# Credentials per column: none for anon, alice for the warm cache.
args_anon=""
args_auth="alice alice-pw"

# Sanity and warm-up: each must answer 200 (the auth one after one LDAP exchange).
out=$("$B/client" users "$PORT_auth" "$ECHO_PORT" 1 1 - x 2>/dev/null)
[ "$(field ok "$out")" = 0 ] || fail "the authenticated gateway let an anonymous tunnel through: $out"
for col in anon auth; do
	eval "port=\$PORT_$col; a=\$args_$col"
	# shellcheck disable=SC2086
	out=$("$B/client" tunnels "$port" "$ECHO_PORT" 1 1 $a)
	[ "$(field err "$out")" = 0 ] && [ "$(field ok "$out")" -gt 0 ] || fail "$col warm-up failed: $out"
done

# ------------------------------------------------------------------ measurements
setr() { eval "R_$1_$2=\$3"; }
getr() { eval "printf '%s' \"\${R_$1_$2:-n/a}\""; }
keep_best() {   # COLUMN ROW VALUE [min]
	old=$(getr "$1" "$2")
	if [ "$old" = n/a ]; then setr "$1" "$2" "$3"; return; fi
	better=$(awk -v a="$3" -v b="$old" -v m="${4:-max}" 'BEGIN {
		a += 0; b += 0; print (m == "min" ? a < b : a > b) ? 1 : 0 }')
	[ "$better" = 1 ] && setr "$1" "$2" "$3"
}
FLAGS=""

r=1
while [ "$r" -le "$ROUNDS" ]; do
	for c in 1 16; do
		for col in anon auth; do
			eval "port=\$PORT_$col; a=\$args_$col"
			# shellcheck disable=SC2086
			out=$("$B/client" tunnels "$port" "$ECHO_PORT" "$c" "$SECS" $a)
			say "round $r $col c=$c: $out"
			keep_best "$col" "t$c" "$(field rate "$out")"
			[ "$(field err "$out")" = 0 ] || FLAGS="$FLAGS ${col}_t$c"
			sleep 0.3
		done
	done
	# Latency, one at a time: warm (alice, cached) and cold (fresh users: each one LDAP
	# exchange; the users of round r are bench[(r-1)*N .. r*N-1]).
	out=$("$B/client" users "$PORT_auth" "$ECHO_PORT" 1 "$LAT_N" alice alice-pw)
	say "round $r warm latency: $out"
	keep_best auth warm_ms "$(field mean_ms "$out")" min
	keep_best auth warm_p50 "$(field p50_ms "$out")" min
	out=$("$B/client" users "$PORT_anon" "$ECHO_PORT" 1 "$LAT_N" - x)
	say "round $r anonymous latency: $out"
	keep_best anon warm_ms "$(field mean_ms "$out")" min
	keep_best anon warm_p50 "$(field p50_ms "$out")" min
	out=$("$B/client" users "$PORT_auth" "$ECHO_PORT" 1 "$COLD_N" 'bench%d' bench-pw $(((r - 1) * COLD_N)))
	say "round $r cold c=1: $out"
	[ "$(field err "$out")" = 0 ] || FLAGS="$FLAGS auth_cold_ms"
	keep_best auth cold_ms "$(field mean_ms "$out")" min
	keep_best auth cold_p50 "$(field p50_ms "$out")" min
	keep_best auth cold_p95 "$(field p95_ms "$out")" min
	r=$((r + 1))
done
# Cold authentications in parallel: the last block of fresh users, 16 at a time.
out=$("$B/client" users "$PORT_auth" "$ECHO_PORT" 16 "$COLD_N" 'bench%d' bench-pw $((ROUNDS * COLD_N)))
say "cold c=16: $out"
[ "$(field err "$out")" = 0 ] || FLAGS="$FLAGS auth_cold16"
setr auth cold16 "$(field rate "$out")"
stop_pid "$PID_anon"
stop_pid "$PID_auth"

# ------------------------------------------------------------------ callgrind (optional)
CG_anon="" CG_auth=""
if [ "$CALLGRIND" = 1 ] && command -v valgrind >/dev/null 2>&1 && command -v callgrind_control >/dev/null 2>&1; then
	for col in anon auth; do
		if [ $col = anon ]; then rule="allow any"; else rule="allow authenticated"; fi
		start_egressd "cg$col" "$rule" valgrind --tool=callgrind --instr-atstart=no \
		    --callgrind-out-file="$T/cg-$col.out"
		eval "a=\$args_$col"
		# shellcheck disable=SC2086
		"$B/client" tunnels "$PROXY_PORT" "$ECHO_PORT" 1 2 $a >/dev/null   # warm-up, not counted
		if callgrind_control -i on "$PROXY_PID" >/dev/null 2>&1; then
			# shellcheck disable=SC2086
			out=$("$B/client" tunnels "$PROXY_PORT" "$ECHO_PORT" 1 "$SECS" $a)
			callgrind_control -i off "$PROXY_PID" >/dev/null 2>&1
			stop_pid "$PROXY_PID"
			[ -n "$CG_KEEP" ] && mkdir -p "$CG_KEEP" && cp "$T"/cg-$col.out* "$CG_KEEP/"
			n=$(field ok "$out")
			total=$(awk '/^totals:/ {s += $2} END {if (s) print s}' "$T"/cg-$col.out* 2>/dev/null)
			if [ -n "$total" ] && [ -n "$n" ] && [ "$n" -gt 0 ]; then
				eval "CG_$col=$((total / n))"
				say "callgrind $col: $total instructions for $n tunnels"
			fi
		else
			say "callgrind_control failed"
			stop_pid "$PROXY_PID"
		fi
	done
fi

# ------------------------------------------------------------------ table
mark() {
	v=$(getr "$1" "$2")
	case " $FLAGS " in *" $1_$2 "*) v="$v*" ;; esac
	printf '%s' "$v"
}
pct() {   # ANON AUTH HIGHER_IS_BETTER -> extra cost of auth in %
	awk -v a="$(printf '%s' "$1" | tr -d '*')" -v b="$(printf '%s' "$2" | tr -d '*')" -v h="$3" 'BEGIN {
		if (a == "" || b == "" || a == "n/a" || b == "n/a" || a + 0 == 0 || b + 0 == 0) { print "n/a"; exit }
		printf "%+.1f%%\n", h ? (a / b - 1) * 100 : (b / a - 1) * 100 }'
}
echo
printf '%-52s %12s %12s %10s\n' "row" "anonymous" "auth warm" "auth cost"
printf '%-52s %12s %12s %10s\n' "---" "---------" "---------" "---------"
for c in 1 16; do
	a=$(mark anon "t$c"); b=$(mark auth "t$c")
	printf '%-52s %12s %12s %10s\n' "CONNECT tunnels/s, concurrency $c" "$a" "$b" "$(pct "$a" "$b" 1)"
done
a=$(getr anon warm_ms); b=$(getr auth warm_ms)
printf '%-52s %12s %12s %10s\n' "tunnel latency ms, one at a time (mean)" "$a" "$b" "$(pct "$a" "$b" 0)"
a=$(getr anon warm_p50); b=$(getr auth warm_p50)
printf '%-52s %12s %12s %10s\n' "tunnel latency ms, one at a time (median)" "$a" "$b" "$(pct "$a" "$b" 0)"
if [ -n "$CG_anon" ] && [ -n "$CG_auth" ]; then
	printf '%-52s %12s %12s %10s\n' "callgrind instructions per tunnel (egressd)" "$CG_anon" "$CG_auth" "$(pct "$CG_anon" "$CG_auth" 0)"
fi
echo
cold=$(mark auth cold_ms); warm=$(getr auth warm_ms)
printf '%-52s %12s\n' "cold auth tunnel latency ms (mean, c=1, $COLD_N users)" "$cold"
printf '%-52s %12s\n' "cold auth tunnel latency ms (median / p95)" "$(getr auth cold_p50) / $(getr auth cold_p95)"
printf '%-52s %12s\n' "cost of a cold authentication ms (cold - warm mean)" \
    "$(awk -v c="$(printf '%s' "$cold" | tr -d '*')" -v w="$warm" 'BEGIN { if (c == "n/a" || w == "n/a") print "n/a"; else printf "%.3f\n", c - w }')"
printf '%-52s %12s\n' "cold authenticated tunnels/s, concurrency 16" "$(mark auth cold16)"
echo
echo "Best of $ROUNDS x ${SECS}s per throughput cell; latency rows: best round of $LAT_N (cold: $COLD_N) sequential tunnels."
echo "auth cost: how much more an authenticated tunnel costs (warm cache: same credentials, cached)."
echo "* = failed tunnels in a measurement. Load average at start: $load on $(nproc) CPUs."
