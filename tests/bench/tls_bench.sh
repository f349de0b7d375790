#!/bin/sh
# What TLS on the client side costs: egressd's tls listener beside Squid's https_port and
# beside egressd's plain listener, on one loopback workload, in one run.
#
#   sh tests/bench/tls_bench.sh          BENCH_SECONDS=2 (per row), BENCH_ROUNDS=1
#
# Columns: egT (egressd `listen … tls`), sqT (Squid https_port), egP (egressd plain),
# sqP (Squid http_port). egressd runs one worker with both listeners; Squid one process
# (-N) with both ports. Debian 12's squid is the GnuTLS build (squid-openssl conflicts
# with it and would replace it, so it is not installed here): its https_port works.
# Rows: CONNECT tunnels/s at concurrency 1 and 16 (a new connection, and with TLS a
# full handshake, per tunnel: TLS 1.3, X25519, ECDSA P-256, no resumption), absolute-
# form GET of 1 KiB with keep-alive (16 connections), bulk MiB/s through 1 tunnel; then
# the proxy's CPU time per full handshake (connect, handshake, close, 4 at a time) and
# its CPU time per MiB relayed in the bulk row. Everything on 127.0.0.1; every process
# started here is stopped by PID on exit.
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd)
SECS=${BENCH_SECONDS:-2}
ROUNDS=${BENCH_ROUNDS:-1}
EGRESSD=${EGRESSD:-$REPO/build/egressd}
SQUID=${SQUID:-/usr/sbin/squid}

SAY=tls_bench
# shellcheck source=lib.sh
. "$REPO/tests/bench/lib.sh"

need=""
[ -x "$SQUID" ] || need="$need squid"
command -v openssl >/dev/null 2>&1 || need="$need openssl"
# shellcheck disable=SC2086
install_missing $need
require_egressd
raise_nofile
bench_tmpdir egressd-tls-bench

build_c origin origin.c
build_c tls_bench tls_bench.c -lssl -lcrypto -pthread
TCK=$(getconf CLK_TCK)
cpu_us() { awk -v t="$TCK" '{print ($14 + $15) * 1000000 / t}' "/proc/$1/stat" 2>/dev/null; }

say "load average $(load_average) on $(nproc) CPUs; ${SECS}s per row"

start_origin echo;   ECHO_PORT=$ORIGIN_PORT
start_origin source; SOURCE_PORT=$ORIGIN_PORT
start_origin http;   HTTP_PORT=$ORIGIN_PORT
start_logsink
printf '127.0.0.1 localhost\n' >"$T/hosts"

# The proxies' pair: a CA and an ECDSA P-256 leaf for 127.0.0.1, made now.
P="$T/pki"
mkdir -p "$P"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj /CN=bench-ca -keyout "$P/ca.key" -out "$P/ca.pem" 2>/dev/null &&
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 \
	-keyout "$P/proxy.key" -out "$P/proxy.csr" 2>/dev/null &&
printf 'subjectAltName=IP:127.0.0.1\n' >"$P/ext" &&
openssl x509 -req -in "$P/proxy.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial \
	-days 2 -extfile "$P/ext" -out "$P/proxy.pem" 2>/dev/null || fail "openssl could not make the pair"
chmod 600 "$P/proxy.key"

# ------------------------------------------------------------------ proxies
egressd_dir tls
TLS_PORT=$(free_port)
printf 'allow any .* * sni=off\n' >"$D/policy.rules"
egressd_conf 1 127.0.0.0/8 300 "listen 127.0.0.1:$TLS_PORT tls" \
	"tls_cert_file $P/proxy.pem" "tls_key_file $P/proxy.key"
launch_egressd egressd
PORT_egP=$PROXY_PORT; PORT_egT=$TLS_PORT; PID_eg=$PROXY_PID
wait_port "$TLS_PORT" 30 "$PID_eg" || fail "egressd tls listener did not start"

d="$T/squid"
mkdir -p "$d"
PORT_sqP=$(free_port)
PORT_sqT=$(free_port)
cp "$P/proxy.pem" "$P/proxy.key" "$d/"
squid_conf "$d" "http_port 127.0.0.1:$PORT_sqP" \
	"https_port 127.0.0.1:$PORT_sqT tls-cert=$d/proxy.pem tls-key=$d/proxy.key"
"$SQUID" -N -f "$d/squid.conf" >/dev/null 2>"$d/stderr" &
PID_sq=$!
PIDS="$PIDS $PID_sq"
wait_port "$PORT_sqT" 30 "$PID_sq" || { tail -5 "$d/cache.log" "$d/stderr" >&2; fail "squid did not start"; }

port_of() { eval "printf '%s' \"\$PORT_$1\""; }
pid_of() { case $1 in eg*) printf '%s' "$PID_eg" ;; *) printf '%s' "$PID_sq" ;; esac; }
kind_of() { case $1 in *T) printf tls ;; *) printf plain ;; esac; }
FLAGS=""

measure() {   # COLUMN ROW
	col=$1 port=$(port_of "$1") kind=$(kind_of "$1") pid=$(pid_of "$1")
	case $2 in
	t*)
		out=$("$B/tls_bench" tunnels "$port" "$ECHO_PORT" "${2#t}" "$SECS" "$kind")
		keep_best "$col" "$2" "$(field rate "$out")" ;;
	get)
		out=$("$B/tls_bench" get "$port" "$HTTP_PORT" 16 "$SECS" "$kind")
		keep_best "$col" get "$(field rate "$out")" ;;
	b1)
		c0=$(cpu_us "$pid")
		out=$("$B/tls_bench" bulk "$port" "$SOURCE_PORT" 1 "$SECS" "$kind")
		c1=$(cpu_us "$pid")
		mib=$(awk -v r="$(field mibps "$out")" -v s="$(field secs "$out")" 'BEGIN {print r * s}')
		keep_best "$col" b1 "$(field mibps "$out")"
		keep_best "$col" cpumib "$(awk -v a="$c0" -v b="$c1" -v m="$mib" 'BEGIN {
			if (m > 0) printf "%.0f", (b - a) / m; else print "n/a" }')" min ;;
	hs)
		c0=$(cpu_us "$pid")
		out=$("$B/tls_bench" handshakes "$port" 0 4 "$SECS" tls)
		c1=$(cpu_us "$pid")
		keep_best "$col" hs "$(awk -v a="$c0" -v b="$c1" -v n="$(field ok "$out")" 'BEGIN {
			if (n > 0) printf "%.0f", (b - a) / n; else print "n/a" }')" min ;;
	esac
	say "$col $2: $out"
	[ "$(field err "$out")" = 0 ] || FLAGS="$FLAGS ${col}_$2"
	sleep 0.3
}

COLS="egT sqT egP sqP"
r=1
while [ $r -le "$ROUNDS" ]; do
	for row in t1 t16 get b1; do
		for col in $COLS; do measure "$col" "$row"; done
	done
	for col in egT sqT; do measure "$col" hs; done
	r=$((r + 1))
done

printf '\n%-34s %10s %10s %10s %10s\n' "" "egressd" "squid" "egressd" "squid"
printf '%-34s %10s %10s %10s %10s\n' "" "tls" "https_port" "plain" "http_port"
row() {   # LABEL ROW
	printf '%-34s' "$1"
	for col in $COLS; do printf ' %10s' "$(getr "$col" "$2")"; done
	printf '\n'
}
row "CONNECT tunnels/s, c=1" t1
row "CONNECT tunnels/s, c=16" t16
row "GET 1 KiB keep-alive req/s, c=16" get
row "bulk MiB/s, 1 tunnel" b1
row "proxy CPU us per MiB (bulk)" cpumib
row "proxy CPU us per full handshake" hs
[ -z "$FLAGS" ] || say "rows with errors:$FLAGS"
say "tls/plain (egressd): tunnels c=16 $(awk -v a="$(getr egT t16)" -v b="$(getr egP t16)" 'BEGIN {if (b > 0) printf "%.2f", a / b}'), GET $(awk -v a="$(getr egT get)" -v b="$(getr egP get)" 'BEGIN {if (b > 0) printf "%.2f", a / b}'), bulk $(awk -v a="$(getr egT b1)" -v b="$(getr egP b1)" 'BEGIN {if (b > 0) printf "%.2f", a / b}')"
