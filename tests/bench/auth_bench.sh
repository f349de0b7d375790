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

SAY=auth_bench
# shellcheck source=lib.sh
. "$REPO/tests/bench/lib.sh"

require_egressd
[ -x /usr/sbin/slapd ] && command -v ldapadd >/dev/null 2>&1 || fail "needs slapd and ldap-utils (make deps)"
raise_nofile
bench_tmpdir egressd-auth-bench

# ------------------------------------------------------------------ clients, origin, directory
build_c origin origin.c
build_c client auth_bench.c loadlib.c

start_origin echo; ECHO_PORT=$ORIGIN_PORT
start_logsink

NUSERS=$((COLD_N * (ROUNDS + 1)))
mkdir -p "$T/ldap"
python3 "$REPO/tests/bench/auth_bench.py" "$T/ldap" "$NUSERS" 2>"$T/ldap/wrapper.err" &
WRAPPER=$!
PIDS="$PIDS $WRAPPER"
wait_file "$T/ldap/slapd.env" 60 || { cat "$T/ldap/wrapper.err" >&2; fail "slapd did not start"; }
. "$T/ldap/slapd.env"
PIDS="$PIDS $SLAPD_PID"     # in case the wrapper dies without stopping it
say "slapd on $LDAP_URI (pid $SLAPD_PID) with $NUSERS bench users"

load=$(load_average)
say "load average $load on $(nproc) CPUs; ${SECS}s per row, $ROUNDS rounds"

printf '127.0.0.1 localhost\n' >"$T/hosts"
start_egressd() {   # NAME RULE [WRAPPER...] -> sets PROXY_PID PROXY_PORT
	name=$1 rule=$2
	shift 2
	egressd_dir "$name"
	cp "$T/ldap/ldap.secret" "$D/ldap.secret"
	chmod 600 "$D/ldap.secret"
	printf '%s 127\\.0\\.0\\.1 * sni=off\n' "$rule" >"$D/policy.rules"
	egressd_conf 1 127.0.0.0/8 300 "auth_cache_ttl 3600"
	{
		grep -v '^ldap_bind_password_file' "$T/ldap/ldap.conf"
		echo "ldap_bind_password_file ldap.secret"
	} >>"$D/egressd.conf"
	launch_egressd "egressd $name" "$@"
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
if [ "$CALLGRIND" = 1 ] && have_callgrind; then
	for col in anon auth; do
		if [ $col = anon ]; then rule="allow any"; else rule="allow authenticated"; fi
		start_egressd "cg$col" "$rule" valgrind --tool=callgrind --instr-atstart=no \
		    --callgrind-out-file="$T/cg-$col.out"
		eval "a=\$args_$col"
		# shellcheck disable=SC2086
		"$B/client" tunnels "$PROXY_PORT" "$ECHO_PORT" 1 2 $a >/dev/null   # warm-up, not counted
		# shellcheck disable=SC2086
		if callgrind_measure "$T/cg-$col.out" "$B/client" tunnels "$PROXY_PORT" "$ECHO_PORT" 1 "$SECS" $a; then
			[ -n "$CG_KEEP" ] && mkdir -p "$CG_KEEP" && cp "$T"/cg-$col.out* "$CG_KEEP/"
			n=$(field ok "$CG_RUN")
			if [ -n "$CG_TOTAL" ] && [ -n "$n" ] && [ "$n" -gt 0 ]; then
				eval "CG_$col=$((CG_TOTAL / n))"
				say "callgrind $col: $CG_TOTAL instructions for $n tunnels"
			fi
		else
			say "callgrind_control failed"
		fi
	done
fi

# ------------------------------------------------------------------ table
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
