#!/bin/sh
# egressd against its peers on one loopback workload, in one invocation; prints the table of
# issue 17 with the ratios egressd ÷ each peer and egressd ÷ the best peer.
#
#   make bench                         (= sh tests/bench/run.sh)
#   BENCH_SECONDS=3                    seconds per measurement
#   BENCH_ROUNDS=2                     measurements per row and column; the best is kept
#   BENCH_CALLGRIND=1                  also count egressd's instructions per CONNECT tunnel
#                                      and per GET 1 KiB request (valgrind; 0: skip)
#   BENCH_CALLGRIND_SECONDS=5          seconds of each callgrind window
#   BENCH_AUDIT=1                      also run audit_bench.sh (records/s into rsyslogd)
#   BENCH_AUDIT_RATE=50000             records/s it offers (issue 17's target; 0: unpaced)
#   BENCH_IDLE=1000                    idle tunnels held open for the RSS row (at most 20,000)
#   BENCH_COLUMNS="sq ats hpc hps eg1 eg2"   columns to run (a subset while developing)
#   BENCH_ROWS="t1 t16 t128 get1k get1m b1 b8"   rows to run
#   BENCH_PROXY_CPU=0 BENCH_LOAD_CPU=1 CPUs of the proxies / of everything else
#
# Columns (each started from its own temporary folder, stopped by PID):
#   sq   Squid (Debian), one process (-N), caching off, access log to /dev/null
#   ats  Traffic Server (Debian 9.2) as a forward proxy: cache off, remap_required 0,
#        CONNECT to any port, ip_allow 127.0.0.1, logging off, one exec thread
#   hpc  HAProxy (Debian) as a plain TCP relay, one thread, copying through its buffers
#   hps  the same relay with `option splice-auto` (splice(2) once buffers fill)
#   eg1  egressd `workers 1`, audit to a real rsyslogd, sni=require on every tunnel
#   eg2  the same with `workers 2` (on the same single core: the cost of a second worker)
# The relays parse no HTTP and see no CONNECT: the load generator connects through them
# straight to the echo, source or HTTP origin (loadgen -d; wrk sends origin-form requests).
#
# Rows: CONNECT tunnels/s at 1, 16 and 128 clients (each: CONNECT, 200, a real TLS
# ClientHello sent and echoed back, close); GET 1 KiB req/s with 64 keep-alive connections
# and GET 1 MiB req/s with 8 (wrk); bulk GiB/s downloaded through 1 and 8 tunnels (after
# the ClientHello); KiB of RSS per idle tunnel with BENCH_IDLE open. Then audit_bench.sh's
# records/s into a real rsyslogd, and callgrind's instructions per tunnel and per request.
#
# Pinning: this script moves itself (and so every load generator, origin and the rsyslogd it
# starts) to BENCH_LOAD_CPU and starts each proxy with `taskset -c BENCH_PROXY_CPU`.
# Columns are interleaved within each row (their order rotates each round) so load from
# elsewhere on the machine falls on all alike. Everything listens and connects on 127.0.0.1
# only; every process this script starts is stopped by PID on exit.
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd)
SECS=${BENCH_SECONDS:-3}
ROUNDS=${BENCH_ROUNDS:-2}
CALLGRIND=${BENCH_CALLGRIND:-1}
CG_SECS=${BENCH_CALLGRIND_SECONDS:-5}
AUDIT=${BENCH_AUDIT:-1}
AUDIT_OFFER=${BENCH_AUDIT_RATE:-50000}
IDLE_N=${BENCH_IDLE:-1000}
COLS=${BENCH_COLUMNS:-"sq ats hpc hps eg1 eg2"}
ROWS=${BENCH_ROWS:-"t1 t16 t128 get1k get1m b1 b8"}
PROXY_CPU=${BENCH_PROXY_CPU:-0}
LOAD_CPU=${BENCH_LOAD_CPU:-1}
EGRESSD=${EGRESSD:-$REPO/build/egressd}
SQUID=${SQUID:-/usr/sbin/squid}
TRAFFIC_SERVER=${TRAFFIC_SERVER:-/usr/bin/traffic_server}
HAPROXY=${HAPROXY:-/usr/sbin/haproxy}
RSYSLOGD=${RSYSLOGD:-/usr/sbin/rsyslogd}
HELLO=${BENCH_HELLO:-$REPO/tests/unit/data/clienthello/openssl_s_client.bin}
GET1K_CONNS=64
GET1M_CONNS=8

SAY=bench
# shellcheck source=lib.sh
. "$REPO/tests/bench/lib.sh"

# ------------------------------------------------------------------ dependencies
need=""
[ -x "$SQUID" ] || need="$need squid"
[ -x "$TRAFFIC_SERVER" ] || need="$need trafficserver"
[ -x "$HAPROXY" ] || need="$need haproxy"
[ -x "$RSYSLOGD" ] || need="$need rsyslog"
command -v wrk >/dev/null 2>&1 || need="$need wrk"
command -v curl >/dev/null 2>&1 || need="$need curl"
command -v taskset >/dev/null 2>&1 || need="$need util-linux"
command -v cc >/dev/null 2>&1 || need="$need gcc"
command -v python3 >/dev/null 2>&1 || need="$need python3"
[ "$CALLGRIND" = 1 ] && ! have_callgrind && need="$need valgrind"
# shellcheck disable=SC2086
install_missing $need
require_egressd
[ -r "$HELLO" ] || fail "$HELLO: no such ClientHello"
case " $COLS " in *" eg1 "*) ;; *) fail "BENCH_COLUMNS must include eg1 (the ratios are of it)" ;; esac
[ "$IDLE_N" -ge 1 ] && [ "$IDLE_N" -le 20000 ] || fail "BENCH_IDLE must be 1..20000"
# open files: as many as allowed (root may raise the hard
# limit, for this script and its children only); else what raise_nofile gets. HAProxy gets a
# maxconn that fits (two sockets and, spliced, a pipe per connection)
ulimit -n 100000 2>/dev/null || raise_nofile
NOFILE=$(ulimit -n)
NCPU=$(nproc)
bench_tmpdir egressd-bench

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

# ------------------------------------------------------------------ pinning
PIN=""
if [ "$NCPU" -ge 2 ] && taskset -pc "$LOAD_CPU" $$ >/dev/null 2>&1; then
	PIN="taskset -c $PROXY_CPU"
	PINNED="proxies on CPU $PROXY_CPU, load generators, origins and rsyslogd on CPU $LOAD_CPU"
else
	PINNED="not pinned (one CPU, or taskset refused)"
fi

# ------------------------------------------------------------------ build the clients
build_c origin origin.c
build_c loadgen loadgen.c loadlib.c

load=$(load_average)
MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
say "load average $load on $NCPU CPUs ($MODEL); $PINNED; ${SECS}s x $ROUNDS rounds per cell"

# ------------------------------------------------------------------ origins, rsyslogd
start_origin echo;   ECHO_PORT=$ORIGIN_PORT
start_origin source; SOURCE_PORT=$ORIGIN_PORT
start_origin http;   HTTP_PORT=$ORIGIN_PORT

printf '127.0.0.1 localhost\n' >"$T/hosts"
for k in 1k 1m; do
	printf 'wrk.path = "http://127.0.0.1:%s/%s"\nwrk.headers["Host"] = "127.0.0.1:%s"\n' \
		"$HTTP_PORT" "$k" "$HTTP_PORT" >"$T/get$k.lua"
done

# One rsyslogd for the egressd columns: an imuxsock socket and a file per column, rate
# limiting off, asynchronous writes (as audit_bench.sh configures it).
start_rsyslogd() {
	r="$T/rsyslog"
	mkdir -p "$r"
	{
		printf 'global(workDirectory="%s")\n' "$r"
		printf 'module(load="imuxsock" SysSock.Use="off")\n'
		printf 'template(name="msg" type="list") { property(name="msg" position.from="2") constant(value="\\n") }\n'
		for col in $COLS; do
			case $col in eg*) ;; *) continue ;; esac
			printf 'input(type="imuxsock" Socket="%s/%s.sock" RateLimit.Interval="0" Ruleset="%s")\n' "$r" "$col" "$col"
			printf 'ruleset(name="%s") { action(type="omfile" File="%s/%s.log" Template="msg" asyncWriting="on" flushOnTXEnd="off" ioBufferSize="256k") stop }\n' \
				"$col" "$r" "$col"
		done
	} >"$r/rsyslog.conf"
	"$RSYSLOGD" -N1 -f "$r/rsyslog.conf" >"$r/check.out" 2>&1 || { cat "$r/check.out" >&2; fail "rsyslogd rejects the bench configuration"; }
	"$RSYSLOGD" -n -i "$r/rsyslogd.pid" -f "$r/rsyslog.conf" >"$r/out" 2>&1 &
	RSYSLOG_PID=$!
	PIDS="$PIDS $RSYSLOG_PID"
	for col in $COLS; do
		case $col in eg*) ;; *) continue ;; esac
		i=0
		while [ ! -S "$r/$col.sock" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
		[ -S "$r/$col.sock" ] || { cat "$r/out" >&2; fail "rsyslogd did not start"; }
	done
}
start_rsyslogd

# ------------------------------------------------------------------ proxies
# Each start_* sets PROXY_PID and the ports the load goes to: PROXY_PORT for the CONNECT
# proxies; RELAY_ECHO, RELAY_SOURCE, RELAY_HTTP for the relays (one listener per origin).
start_egressd() {   # COLUMN WORKERS AUDIT_COLUMN [WRAPPER...]: audit to AUDIT_COLUMN's socket
	col=$1 w=$2 acol=$3
	shift 3
	egressd_dir "$col"
	printf 'allow any .* * sni=require\n' >"$D/policy.rules"
	METRICS_PORT=$(free_port)
	egressd_conf "$w" 127.0.0.0/8 300 "sni_timeout 5" "metrics_listen 127.0.0.1:$METRICS_PORT"
	sed -i "s|^audit_syslog_socket .*|audit_syslog_socket $T/rsyslog/$acol.sock|" "$D/egressd.conf"
	# shellcheck disable=SC2086
	launch_egressd "egressd ($col)" $PIN "$@"
}

start_squid() {
	d="$T/squid"
	mkdir -p "$d"
	PROXY_PORT=$(free_port)
	squid_conf "$d" "http_port 127.0.0.1:$PROXY_PORT"
	$PIN "$SQUID" -N -f "$d/squid.conf" >/dev/null 2>"$d/stderr" &
	PROXY_PID=$!
	PIDS="$PIDS $PROXY_PID"
	wait_port "$PROXY_PORT" 30 "$PROXY_PID" || { tail -5 "$d/cache.log" "$d/stderr" >&2; fail "squid did not start"; }
}

# Traffic Server from a runroot of its own (TS_RUNROOT): configuration, cache, logs and
# runtime files all in $T/ats; run as the invoking user (user_id #-1: no change of user).
start_ats() {
	a="$T/ats"
	mkdir -p "$a/etc" "$a/run" "$a/log" "$a/cache"
	PROXY_PORT=$(free_port)
	cp -r /etc/trafficserver/body_factory "$a/etc/" 2>/dev/null
	for f in cache.config hosting.config logging.yaml parent.config plugin.config remap.config \
		sni.yaml socks.config splitdns.config ssl_multicert.config strategies.yaml volume.config; do
		: >"$a/etc/$f"
	done
	cat >"$a/runroot.yaml" <<EOF
prefix: $a
exec_prefix: /usr
bindir: /usr/bin
sbindir: /usr/sbin
sysconfdir: $a/etc
datadir: $a
includedir: /usr/include
libdir: /usr/lib/trafficserver
libexecdir: /usr/lib/trafficserver/modules
localstatedir: $a/run
runtimedir: $a/run
logdir: $a/log
cachedir: $a/cache
EOF
	printf '%s/cache 64M\n' "$a" >"$a/etc/storage.config"
	cat >"$a/etc/ip_allow.yaml" <<EOF
ip_allow:
  - apply: in
    ip_addrs: 127.0.0.1
    action: allow
    methods: ALL
EOF
	cat >"$a/etc/records.config" <<EOF
CONFIG proxy.config.http.server_ports STRING $PROXY_PORT:ipv4:ip-in=127.0.0.1
CONFIG proxy.config.exec_thread.autoconfig INT 0
CONFIG proxy.config.exec_thread.limit INT 1
CONFIG proxy.config.accept_threads INT 0
CONFIG proxy.config.task_threads INT 1
CONFIG proxy.config.http.cache.http INT 0
CONFIG proxy.config.cache.ram_cache.size INT 0
CONFIG proxy.config.reverse_proxy.enabled INT 0
CONFIG proxy.config.url_remap.remap_required INT 0
CONFIG proxy.config.http.connect_ports STRING $ECHO_PORT $SOURCE_PORT
CONFIG proxy.config.http.insert_request_via_str INT 0
CONFIG proxy.config.http.insert_response_via_str INT 0
CONFIG proxy.config.http.insert_client_ip INT 0
CONFIG proxy.config.http.insert_squid_x_forwarded_for INT 0
CONFIG proxy.config.log.logging_enabled INT 0
CONFIG proxy.config.diags.debug.enabled INT 0
CONFIG proxy.config.net.connections_throttle INT 30000
CONFIG proxy.config.net.max_connections_in INT 30000
CONFIG proxy.config.hostdb.host_file.path STRING $T/hosts
CONFIG proxy.config.admin.user_id STRING #-1
CONFIG proxy.config.crash_log_helper STRING /bin/true
EOF
	TS_RUNROOT="$a/runroot.yaml" $PIN "$TRAFFIC_SERVER" >"$a/stdout" 2>&1 &
	PROXY_PID=$!
	PIDS="$PIDS $PROXY_PID"
	wait_port "$PROXY_PORT" 60 "$PROXY_PID" || { tail -5 "$a/stdout" "$a/log/diags.log" >&2; fail "traffic_server did not start"; }
}

# HAProxy as a plain TCP relay, one thread, one listener per origin; SPLICE 1 adds
# `option splice-auto`.
start_haproxy() {   # NAME SPLICE
	h="$T/haproxy-$1"
	mkdir -p "$h"
	RELAY_ECHO=$(free_port) RELAY_SOURCE=$(free_port) RELAY_HTTP=$(free_port)
	{
		printf 'global\n\tnbthread 1\n\tmaxconn %s\n' $(( (NOFILE - 200) / 3 ))
		printf 'defaults\n\tmode tcp\n\ttimeout connect 5s\n\ttimeout client 300s\n\ttimeout server 300s\n'
		[ "$2" = 1 ] && printf '\toption splice-auto\n'
		printf 'listen echo\n\tbind 127.0.0.1:%s\n\tserver o 127.0.0.1:%s\n' "$RELAY_ECHO" "$ECHO_PORT"
		printf 'listen source\n\tbind 127.0.0.1:%s\n\tserver o 127.0.0.1:%s\n' "$RELAY_SOURCE" "$SOURCE_PORT"
		printf 'listen http\n\tbind 127.0.0.1:%s\n\tserver o 127.0.0.1:%s\n' "$RELAY_HTTP" "$HTTP_PORT"
	} >"$h/haproxy.cfg"
	"$HAPROXY" -c -q -f "$h/haproxy.cfg" >"$h/check.out" 2>&1 || { cat "$h/check.out" >&2; fail "haproxy rejects $h/haproxy.cfg"; }
	$PIN "$HAPROXY" -db -f "$h/haproxy.cfg" >"$h/stdout" 2>&1 &
	PROXY_PID=$!
	PIDS="$PIDS $PROXY_PID"
	for p in $RELAY_ECHO $RELAY_SOURCE $RELAY_HTTP; do
		wait_port "$p" 30 "$PROXY_PID" || { tail -5 "$h/stdout" >&2; fail "haproxy ($1) did not start"; }
	done
}

# Per column: PID_c; CONNECT proxies PORT_c; relays DIRECT_c=1 and ECHO_c SOURCE_c HTTP_c.
start_column() {   # COLUMN
	col=$1
	DIRECT=0
	case $col in
	sq)  start_squid ;;
	ats) start_ats ;;
	hpc) start_haproxy copy 0; DIRECT=1 ;;
	hps) start_haproxy splice 1; DIRECT=1 ;;
	eg1) start_egressd eg1 1 eg1; eval "METRICS_$col=\$METRICS_PORT" ;;
	eg2) start_egressd eg2 2 eg2; eval "METRICS_$col=\$METRICS_PORT" ;;
	*) fail "unknown column $col" ;;
	esac
	eval "PID_$col=\$PROXY_PID DIRECT_$col=\$DIRECT"
	if [ $DIRECT = 1 ]; then
		eval "ECHO_$col=\$RELAY_ECHO SOURCE_$col=\$RELAY_SOURCE HTTP_$col=\$RELAY_HTTP"
	else
		eval "ECHO_$col=\$PROXY_PORT SOURCE_$col=\$PROXY_PORT HTTP_$col=\$PROXY_PORT"
	fi
}

v() { eval "printf '%s' \"\$$1_$2\""; }   # v NAME COLUMN: the value of NAME_COLUMN

# lg COLUMN MODE N SECONDS: run loadgen through the column (CONNECT, or direct via a relay).
# lg_bg: the same, to be started with & (the subshell becomes loadgen, so $! is its PID).
lg() { lg_run "" "$@"; }
lg_bg() { lg_run exec "$@"; }
lg_run() {   # "" | exec, then lg's arguments
	ex=$1 col=$2 mode=$3
	case $mode in bulk) which=SOURCE target=$SOURCE_PORT ;; *) which=ECHO target=$ECHO_PORT ;; esac
	if [ "$(v DIRECT "$col")" = 1 ]; then
		$ex "$B/loadgen" -d -p "$HELLO" "$mode" "$(v "$which" "$col")" "$target" "$4" "$5"
	else
		$ex "$B/loadgen" -p "$HELLO" "$mode" "$(v "$which" "$col")" "$target" "$4" "$5"
	fi
}

# wrk_get COLUMN SIZE CONNS SECONDS: wrk's output for GET /SIZE through the column
# (absolute-form through a proxy, origin-form through a relay); wrk takes whole seconds.
wrk_get() {
	col=$1
	d=$(awk -v s="$4" 'BEGIN { d = int(s); if (d < s) d++; if (d < 1) d = 1; print d }')
	if [ "$(v DIRECT "$col")" = 1 ]; then
		wrk -t1 -c"$3" -d"${d}s" "http://127.0.0.1:$(v HTTP "$col")/$2" 2>&1
	else
		wrk -t1 -c"$3" -d"${d}s" -s "$T/get$2.lua" "http://127.0.0.1:$(v HTTP "$col")/" 2>&1
	fi
}

# ------------------------------------------------------------------ measurements
# Results are kept in variables named R_<column>_<row> (setr/getr/keep_best in lib.sh);
# with several rounds the best (highest; for RSS the lowest) is kept.
FLAGS=""        # cells that saw failures: "<col>_<row>" words

measure_idle() {   # COLUMN
	col=$1
	pid=$(v PID "$col")
	lg "$col" tunnels 1 0.3 >/dev/null   # warm-up
	before=$(rss_kb "$pid")
	lg_bg "$col" idle "$IDLE_N" 120 >"$T/idle.out" &
	lgpid=$!
	PIDS="$PIDS $lgpid"
	i=0
	while ! grep -q '^ready' "$T/idle.out" 2>/dev/null && [ $i -lt 650 ]; do sleep 0.1; i=$((i + 1)); done
	sleep 0.5
	after=$(rss_kb "$pid")
	ready=$(sed -n 's/^ready \([0-9]*\).*/\1/p' "$T/idle.out")
	stop_pid "$lgpid"
	rm -f "$T/idle.out"
	if [ -n "$ready" ] && [ "$ready" -gt 0 ] && [ -n "$before" ] && [ -n "$after" ]; then
		setr "$col" rss "$(awk -v a="$after" -v b="$before" -v n="$ready" 'BEGIN { printf "%.1f", (a - b) / n }')"
		[ "$ready" -lt "$IDLE_N" ] && { say "$col: only $ready of $IDLE_N idle tunnels opened"; FLAGS="$FLAGS ${col}_rss"; }
	fi
	say "$col: RSS $before kB -> $after kB with ${ready:-0} idle tunnels"
	sleep 1
}

measure() {   # COLUMN ROW
	col=$1
	case $2 in
	t*)
		out=$(lg "$col" tunnels "${2#t}" "$SECS")
		say "$col: tunnels c=${2#t}: $out"
		keep_best "$col" "$2" "$(awk -v r="$(field rate "$out")" 'BEGIN { printf "%.0f", r }')"
		[ "$(field err "$out")" = 0 ] || FLAGS="$FLAGS ${col}_$2"
		;;
	b*)
		out=$(lg "$col" bulk "${2#b}" "$SECS")
		say "$col: bulk c=${2#b}: $out"
		keep_best "$col" "$2" "$(awk -v m="$(field mbps "$out")" 'BEGIN { printf "%.2f", m * 1e6 / 1073741824 }')"
		[ "$(field err "$out")" = 0 ] || FLAGS="$FLAGS ${col}_$2"
		;;
	get1k|get1m)
		size=${2#get}
		conns=$GET1K_CONNS
		[ "$size" = 1m ] && conns=$GET1M_CONNS
		out=$(wrk_get "$col" "$size" "$conns" "$SECS")
		rps=$(printf '%s\n' "$out" | awk '/^Requests\/sec:/ {printf "%.0f", $2}')
		bad=$(printf '%s\n' "$out" | awk '/Non-2xx or 3xx responses:/ {print $NF}')
		errs=$(printf '%s\n' "$out" | sed -n 's/.*Socket errors: //p')
		say "$col: wrk GET $size c=$conns: ${rps:-no} req/s${bad:+, non-2xx $bad}${errs:+, socket errors $errs}"
		[ -n "$rps" ] && keep_best "$col" "$2" "$rps"
		[ -z "$bad" ] && [ -n "$rps" ] || FLAGS="$FLAGS ${col}_$2"
		;;
	esac
	sleep 0.5
}

for col in $COLS; do start_column "$col"; done
# Each column must carry a tunnel and a request before anything is measured.
for col in $COLS; do
	out=$(lg "$col" tunnels 1 0.3)
	[ "$(field err "$out")" = 0 ] && [ "$(field ok "$out")" -gt 0 ] || fail "$col: tunnels fail: $out"
	if [ "$(v DIRECT "$col")" = 1 ]; then
		px="" url="http://127.0.0.1:$(v HTTP "$col")/1m"
	else
		px="http://127.0.0.1:$(v HTTP "$col")" url="http://127.0.0.1:$HTTP_PORT/1m"
	fi
	code=$(curl -s -o /dev/null -w '%{http_code}' ${px:+-x "$px"} "$url")
	[ "$code" = 200 ] || fail "$col: GET /1m answered ${code:-nothing}"
done

for col in $COLS; do measure_idle "$col"; done
r=1
while [ "$r" -le "$ROUNDS" ]; do
	# rotate the order of the columns each round
	order=$(printf '%s\n' $COLS | awk -v r="$r" '{ c[NR] = $0 } END { for (i = 0; i < NR; i++) print c[(i + r - 1) % NR + 1] }')
	for row in $ROWS; do
		for col in $order; do measure "$col" "$row"; done
	done
	r=$((r + 1))
done

# The egressd columns' audit: what each sent and lost (its /metrics) against the lines
# rsyslogd wrote (waiting up to 10 s for asynchronous writes to land).
AUDIT_NOTE=""
for col in $COLS; do
	case $col in eg*) ;; *) continue ;; esac
	m=$(curl -s "http://127.0.0.1:$(v METRICS "$col")/metrics")
	sent=$(printf '%s\n' "$m" | awk '$1 == "egressd_audit_records_sent_total" {print $2}')
	lost=$(printf '%s\n' "$m" | awk '$1 == "egressd_audit_records_lost_total" {print $2}')
	i=0
	lines=0
	while [ $i -lt 100 ]; do
		lines=$(wc -l <"$T/rsyslog/$col.log" 2>/dev/null || echo 0)
		[ -n "$sent" ] && [ "$lines" -ge "$sent" ] && break
		sleep 0.1
		i=$((i + 1))
	done
	# the SNI check really ran: tunnel records carry the hello's server name
	sni=$(grep -c '"sni":"example.com"' "$T/rsyslog/$col.log" 2>/dev/null)
	AUDIT_NOTE="$AUDIT_NOTE
$col: $lines audit records written by rsyslogd (${sni:-0} of them tunnels with sni example.com); egressd counted ${sent:-?} sent, ${lost:-?} lost."
done
for col in $COLS; do stop_pid "$(v PID "$col")"; done

# ------------------------------------------------------------------ audit rate (audit_bench.sh)
AUDIT_RATE="" AUDIT_RESULT="" AUDIT_LOST=""
if [ "$AUDIT" = 1 ]; then
	# the transport's own benchmark: its emitter and rsyslogd on both CPUs, as it is documented
	taskset -pc 0-1 $$ >/dev/null 2>&1
	out=$(sh "$REPO/tests/bench/audit_bench.sh" 200000 2 "$AUDIT_OFFER" 2>&1)
	[ -n "$PIN" ] && taskset -pc "$LOAD_CPU" $$ >/dev/null 2>&1
	printf '%s\n' "$out" | sed 's/^/bench: audit_bench: /' >&2
	AUDIT_RATE=$(printf '%s\n' "$out" | sed -n 's/.*sustained_rate=\([0-9]*\).*/\1/p')
	AUDIT_RESULT=$(printf '%s\n' "$out" | sed -n 's/.*result: //p' | head -1)
	AUDIT_LOST=$(printf '%s\n' "$out" | sed -n 's/^ *lost_total=//p' | head -1)
fi

# ------------------------------------------------------------------ callgrind (optional)
CG_TUNNEL="" CG_GET=""
if [ "$CALLGRIND" = 1 ] && have_callgrind; then
	start_egressd cg1 1 eg1 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$T/cg-tunnel.out"
	DIRECT_cg=0 ECHO_cg=$PROXY_PORT SOURCE_cg=$PROXY_PORT HTTP_cg=$PROXY_PORT
	lg cg tunnels 1 2 >/dev/null   # warm-up, not counted
	if callgrind_measure "$T/cg-tunnel.out" lg cg tunnels 1 "$CG_SECS"; then
		n=$(field ok "$CG_RUN")
		if [ -n "$CG_TOTAL" ] && [ -n "$n" ] && [ "$n" -gt 0 ] && [ "$(field err "$CG_RUN")" = 0 ]; then
			CG_TUNNEL=$((CG_TOTAL / n))
			say "callgrind: $CG_TOTAL instructions for $n tunnels"
		fi
	else
		say "callgrind_control failed; no instructions per tunnel"
	fi
	start_egressd cg2 1 eg1 valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$T/cg-get.out"
	DIRECT_cg=0 HTTP_cg=$PROXY_PORT
	wrk_get cg 1k 4 2 >/dev/null   # warm-up, not counted
	if callgrind_measure "$T/cg-get.out" wrk_get cg 1k 4 "$CG_SECS"; then
		n=$(printf '%s\n' "$CG_RUN" | awk '/requests in/ {print $1}')
		bad=$(printf '%s\n' "$CG_RUN" | awk '/Non-2xx or 3xx responses:/ {print $NF}')
		if [ -n "$CG_TOTAL" ] && [ -n "$n" ] && [ "$n" -gt 0 ] && [ -z "$bad" ]; then
			CG_GET=$((CG_TOTAL / n))
			say "callgrind: $CG_TOTAL instructions for $n GET 1 KiB requests"
		fi
	else
		say "callgrind_control failed; no instructions per request"
	fi
fi

# ------------------------------------------------------------------ table
num() { printf '%s' "$1" | tr -d '*'; }
ratio() {   # A B -> A/B with two decimals
	awk -v a="$(num "$1")" -v b="$(num "$2")" 'BEGIN {
		if (a == "" || b == "" || a == "n/a" || b == "n/a" || b + 0 == 0) print "–"; else printf "%.2f\n", a / b }'
}
has_col() { case " $COLS " in *" $1 "*) return 0 ;; esac; return 1; }
cell() { if has_col "$1"; then mark "$1" "$2"; else printf 'n/a'; fi; }
# best peer of a row: the highest (the lowest for RSS) among the peers measured, and its name
best_peer() {   # ROW
	for c in sq ats hpc hps; do
		has_col "$c" || continue
		x=$(getr "$c" "$1")
		[ "$x" = n/a ] || printf '%s %s\n' "$x" "$c"
	done | sort -g $([ "$1" = rss ] || printf '%s' -r) | head -1
}
name() { case $1 in sq) echo Squid ;; ats) echo ATS ;; hpc) echo copy ;; hps) echo splice ;; *) echo "$1" ;; esac; }

SQV=$("$SQUID" -v 2>/dev/null | sed -n 's/.*Version \([0-9.]*\).*/\1/p' | head -1)
ATSV=$("$TRAFFIC_SERVER" -V 2>&1 | sed -n 's/.*Traffic Server \([0-9.]*\).*/\1/p' | head -1)
HAV=$("$HAPROXY" -v 2>/dev/null | sed -n 's/.*version \([0-9.]*\).*/\1/p' | head -1)
echo
echo "| row | Squid $SQV | Traffic Server $ATSV | HAProxy $HAV relay copy / splice | egressd w1 | egressd w2 | w1 ÷ Squid | w1 ÷ ATS | w1 ÷ copy / splice | w1 ÷ best peer |"
echo "|---|---|---|---|---|---|---|---|---|---|"
row() {   # KEY LABEL
	case " $ROWS rss " in *" $1 "*) ;; *) return ;; esac
	e=$(cell eg1 "$1")
	bp=$(best_peer "$1")
	printf '| %s | %s | %s | %s / %s | %s | %s | %s | %s | %s / %s | %s |\n' "$2" \
		"$(cell sq "$1")" "$(cell ats "$1")" "$(cell hpc "$1")" "$(cell hps "$1")" "$e" "$(cell eg2 "$1")" \
		"$(ratio "$e" "$(getr sq "$1")")" "$(ratio "$e" "$(getr ats "$1")")" \
		"$(ratio "$e" "$(getr hpc "$1")")" "$(ratio "$e" "$(getr hps "$1")")" \
		"$([ -n "$bp" ] && printf '%s (%s)' "$(ratio "$e" "${bp% *}")" "$(name "${bp#* }")" || printf '–')"
}
row t1    "CONNECT tunnels/s, 1 client"
row t16   "CONNECT tunnels/s, 16 clients"
row t128  "CONNECT tunnels/s, 128 clients"
row get1k "GET 1 KiB req/s, $GET1K_CONNS conns"
row get1m "GET 1 MiB req/s, $GET1M_CONNS conns"
row b1    "bulk GiB/s, 1 tunnel"
row b8    "bulk GiB/s, 8 tunnels"
row rss   "KiB RSS per idle tunnel ($IDLE_N open; lower is better)"
if [ -n "$AUDIT_RATE" ]; then
	printf '| %s | – | – | – / – | %s (%s lost) | – | | | | |\n' "audit records/s delivered to rsyslogd (audit_bench.sh: 200,000 offered at $([ "$AUDIT_OFFER" = 0 ] && echo 'full speed' || echo "$AUDIT_OFFER/s"))" \
		"$AUDIT_RATE" "${AUDIT_LOST:-?}"
fi
echo
[ -n "$CG_TUNNEL" ] && echo "callgrind: egressd w1 instructions per CONNECT tunnel (sni=require, audit on): $CG_TUNNEL"
[ -n "$CG_GET" ] && echo "callgrind: egressd w1 instructions per GET 1 KiB request (keep-alive, 4 conns, audit on): $CG_GET"
[ -n "$AUDIT_RESULT" ] && echo "audit_bench.sh: 200,000 records from 2 threads (both CPUs, with rsyslogd): $AUDIT_RESULT"
printf '%s\n' "$AUDIT_NOTE" | sed '/^$/d'
echo
echo "Higher is better except RSS. Best of $ROUNDS x ${SECS}s per cell; * = failed tunnels, socket errors or non-2xx responses."
echo "Ratios are egressd w1 ÷ peer (for RSS above 1 is worse); the relays parse no HTTP and see no CONNECT."
echo "$PINNED; load average at start $load on $NCPU CPUs ($MODEL); $(date -u '+%Y-%m-%d %H:%M UTC')."
