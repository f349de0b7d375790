#!/bin/sh
# egressd against Squid on one loopback workload; prints egressd/Squid ratios.
#
#   make bench                         (= sh tests/bench/run.sh)
#   BENCH_SECONDS=3                    seconds per measurement
#   BENCH_ROUNDS=2                     measurements per row and proxy; the best is kept
#   BENCH_CALLGRIND=1                  also count instructions per CONNECT tunnel (valgrind)
#
# Rows: CONNECT tunnels/s at concurrency 1, 16, 128 (CONNECT to a TCP echo, 200, 16 bytes
# there and back, close); bulk MB/s downloaded through 1 and 8 tunnels; absolute-form
# GET of 1 KiB with keep-alive (wrk); RSS growth per 1,000 idle tunnels. egressd and Squid
# run with one worker each; an egressd `workers 2` column is added. Squid runs with
# caching off from its own temporary configuration, started and stopped by PID (-N: one
# process, which is the worker). Everything listens and connects on 127.0.0.1 only;
# every process this script starts is stopped by PID on exit.
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd)
SECS=${BENCH_SECONDS:-3}
ROUNDS=${BENCH_ROUNDS:-2}
CALLGRIND=${BENCH_CALLGRIND:-1}
EGRESSD=${EGRESSD:-$REPO/build/egressd}
SQUID=${SQUID:-/usr/sbin/squid}
WRK_CONNS=${BENCH_WRK_CONNS:-32}
IDLE_N=1000

SAY=bench
# shellcheck source=lib.sh
. "$REPO/tests/bench/lib.sh"

# ------------------------------------------------------------------ dependencies
need=""
[ -x "$SQUID" ] || need="$need squid"
command -v wrk >/dev/null 2>&1 || need="$need wrk"
command -v cc >/dev/null 2>&1 || need="$need gcc"
command -v python3 >/dev/null 2>&1 || need="$need python3"
# shellcheck disable=SC2086
install_missing $need
require_egressd
raise_nofile
bench_tmpdir egressd-bench

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

# ------------------------------------------------------------------ build the clients
build_c origin origin.c
build_c loadgen loadgen.c loadlib.c

load=$(load_average)
say "load average $load on $(nproc) CPUs; ${SECS}s per row"

# ------------------------------------------------------------------ origins
start_origin echo;   ECHO_PORT=$ORIGIN_PORT
start_origin source; SOURCE_PORT=$ORIGIN_PORT
start_origin http;   HTTP_PORT=$ORIGIN_PORT
start_logsink

printf '127.0.0.1 localhost\n' >"$T/hosts"
cat >"$T/get.lua" <<EOF
wrk.path = "http://127.0.0.1:$HTTP_PORT/1k"
wrk.headers["Host"] = "127.0.0.1:$HTTP_PORT"
EOF

# ------------------------------------------------------------------ proxies
RULE_OPT=""
probe_rule_opt() {   # sni=off once the SNI check exists (raw echo tunnels carry no TLS)
	d="$T/probe"
	mkdir -p "$d"
	printf 'allow any .* * sni=off\n' >"$d/policy.rules"
	printf 'listen 127.0.0.1:1\npolicy_file policy.rules\n' >"$d/egressd.conf"
	"$EGRESSD" -t -c "$d/egressd.conf" >/dev/null 2>&1 && RULE_OPT=" sni=off"
}
probe_rule_opt

start_egressd() {   # WORKERS [WRAPPER...] -> sets PROXY_PID PROXY_PORT
	w=$1
	shift
	egressd_dir "w$w"
	printf 'allow any .* *%s\n' "$RULE_OPT" >"$D/policy.rules"
	egressd_conf "$w" 127.0.0.0/8 300
	launch_egressd egressd "$@"
}

start_squid() {   # -> sets PROXY_PID PROXY_PORT
	d="$T/squid"
	mkdir -p "$d"
	PROXY_PORT=$(free_port)
	cat >"$d/squid.conf" <<EOF
http_port 127.0.0.1:$PROXY_PORT
pid_filename $d/squid.pid
cache_log $d/cache.log
access_log stdio:/dev/null
cache_store_log none
coredump_dir $d
cache deny all
cache_mem 8 MB
http_access allow localhost
http_access deny all
dns_nameservers 127.0.0.1
hosts_file $T/hosts
pinger_enable off
icp_port 0
htcp_port 0
client_db off
netdb_filename none
shutdown_lifetime 1 seconds
max_filedescriptors 20000
visible_hostname egressd-bench
EOF
	if id proxy >/dev/null 2>&1; then chown -R proxy "$d"; else chmod 777 "$d"; fi
	"$SQUID" -N -f "$d/squid.conf" >/dev/null 2>"$d/stderr" &
	PROXY_PID=$!
	PIDS="$PIDS $PROXY_PID"
	wait_port "$PROXY_PORT" 30 "$PROXY_PID" || { tail -5 "$d/cache.log" "$d/stderr" >&2; fail "squid did not start"; }
}

# ------------------------------------------------------------------ measurements
# Results are kept in variables named R_<column>_<row> (setr/getr/keep_best in lib.sh);
# with several rounds the best (highest; for RSS the lowest) is kept. The three proxies
# run side by side and every row is measured on each in turn, so load from elsewhere on
# the machine falls on all columns alike.
port_of() { eval "printf '%s' \"\$PORT_$1\""; }
pid_of() { eval "printf '%s' \"\$PID_$1\""; }
FLAGS=""        # rows that saw failures: "<col>_<row>" words

measure_idle() {   # COLUMN
	col=$1
	port=$(port_of "$col")
	pid=$(pid_of "$col")
	"$B/loadgen" tunnels "$port" "$ECHO_PORT" 1 1 >/dev/null   # warm-up
	before=$(rss_kb "$pid")
	"$B/loadgen" idle "$port" "$ECHO_PORT" $IDLE_N 60 >"$T/idle.out" &
	lg=$!
	PIDS="$PIDS $lg"
	i=0
	while ! grep -q '^ready' "$T/idle.out" 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
	sleep 0.5
	after=$(rss_kb "$pid")
	ready=$(sed -n 's/^ready \([0-9]*\).*/\1/p' "$T/idle.out")
	stop_pid "$lg"
	rm -f "$T/idle.out"
	if [ -n "$ready" ] && [ "$ready" -gt 0 ] && [ -n "$before" ] && [ -n "$after" ]; then
		setr "$col" rss $(( (after - before) * 1000 / ready ))
		[ "$ready" -lt $IDLE_N ] && say "$col: only $ready of $IDLE_N idle tunnels opened"
	fi
	say "$col: RSS $before kB -> $after kB with ${ready:-0} idle tunnels"
	sleep 1
}

measure() {   # COLUMN ROW
	col=$1
	port=$(port_of "$col")
	case $2 in
	t*)
		out=$("$B/loadgen" tunnels "$port" "$ECHO_PORT" "${2#t}" "$SECS")
		say "$col: tunnels c=${2#t}: $out"
		keep_best "$col" "$2" "$(field rate "$out")"
		[ "$(field err "$out")" = 0 ] || FLAGS="$FLAGS ${col}_$2"
		;;
	b*)
		out=$("$B/loadgen" bulk "$port" "$SOURCE_PORT" "${2#b}" "$SECS")
		say "$col: bulk c=${2#b}: $out"
		keep_best "$col" "$2" "$(field mbps "$out")"
		[ "$(field err "$out")" = 0 ] || FLAGS="$FLAGS ${col}_$2"
		;;
	get)
		out=$(wrk -t1 -c"$WRK_CONNS" -d"${SECS}s" -s "$T/get.lua" "http://127.0.0.1:$port/" 2>&1)
		rps=$(printf '%s\n' "$out" | awk '/^Requests\/sec:/ {print $2}')
		bad=$(printf '%s\n' "$out" | awk '/Non-2xx or 3xx responses:/ {print $NF}')
		errs=$(printf '%s\n' "$out" | sed -n 's/.*Socket errors: //p')
		say "$col: wrk GET 1k: $rps req/s${bad:+, non-2xx $bad}${errs:+, socket errors $errs}"
		[ -n "$rps" ] && keep_best "$col" get "$rps"
		[ -z "$bad" ] || FLAGS="$FLAGS ${col}_get"
		;;
	esac
	sleep 0.5
}

COLS="eg1 sq eg2"
start_egressd 1; PORT_eg1=$PROXY_PORT; PID_eg1=$PROXY_PID
start_squid;     PORT_sq=$PROXY_PORT;  PID_sq=$PROXY_PID
start_egressd 2; PORT_eg2=$PROXY_PORT; PID_eg2=$PROXY_PID

for col in $COLS; do measure_idle "$col"; done
r=1
while [ $r -le "$ROUNDS" ]; do
	for row in t1 t16 t128 b1 b8 get; do
		for col in $COLS; do measure "$col" "$row"; done
	done
	r=$((r + 1))
done
for col in $COLS; do stop_pid "$(pid_of "$col")"; done

# ------------------------------------------------------------------ callgrind (optional)
CG=""
if [ "$CALLGRIND" = 1 ] && have_callgrind; then
	start_egressd 1 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$T/cg.out"
	"$B/loadgen" tunnels "$PROXY_PORT" "$ECHO_PORT" 1 2 >/dev/null   # warm-up, not counted
	if callgrind_measure "$T/cg.out" "$B/loadgen" tunnels "$PROXY_PORT" "$ECHO_PORT" 1 "$SECS"; then
		n=$(field ok "$CG_RUN")
		if [ -n "$CG_TOTAL" ] && [ -n "$n" ] && [ "$n" -gt 0 ]; then
			CG=$((CG_TOTAL / n))
			say "callgrind: $CG_TOTAL instructions for $n tunnels"
		fi
	else
		say "callgrind_control failed; no callgrind row"
	fi
fi

# ------------------------------------------------------------------ table
ratio() {   # A B -> A/B with two decimals
	a=$(printf '%s' "$1" | tr -d '*!')
	b=$(printf '%s' "$2" | tr -d '*!')
	awk -v a="$a" -v b="$b" 'BEGIN { if (a == "" || b == "" || a == "n/a" || b == "n/a" || b + 0 == 0) print "n/a"; else printf "%.2f\n", a / b }'
}

echo
printf '%-44s %12s %12s %8s %12s %8s\n' "row" "egressd w1" "squid" "w1/squid" "egressd w2" "w2/squid"
printf '%-44s %12s %12s %8s %12s %8s\n' "---" "----------" "-----" "--------" "----------" "--------"
row() {   # KEY LABEL
	e1=$(mark eg1 "$1"); s=$(mark sq "$1"); e2=$(mark eg2 "$1")
	printf '%-44s %12s %12s %8s %12s %8s\n' "$2" "$e1" "$s" "$(ratio "$e1" "$s")" "$e2" "$(ratio "$e2" "$s")"
}
row t1   "CONNECT tunnels/s, concurrency 1"
row t16  "CONNECT tunnels/s, concurrency 16"
row t128 "CONNECT tunnels/s, concurrency 128"
row b1   "bulk MB/s, 1 tunnel"
row b8   "bulk MB/s, 8 tunnels"
row get  "GET 1 KiB req/s, keep-alive (wrk c=$WRK_CONNS)"
row rss  "RSS kB per 1,000 idle tunnels (lower=better)"
if [ -n "$CG" ]; then
	printf '%-44s %12s %12s %8s %12s %8s\n' "callgrind instructions per tunnel" "$CG" "-" "-" "-" "-"
fi
echo
echo "Higher is better except RSS. Best of $ROUNDS x ${SECS}s per cell. * = failed tunnels or non-2xx responses."
echo "egressd audit records go to a syslog datagram sink, Squid's access log to /dev/null."
echo "Load average at start: $load on $(nproc) CPUs (client, origins and proxy share them)."
