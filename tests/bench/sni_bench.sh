#!/bin/sh
# What the SNI check costs: CONNECT tunnels per second with sni=require against sni=off.
#
#   sh tests/bench/sni_bench.sh
#   SNI_BENCH_SECONDS=3        seconds per measurement
#   SNI_BENCH_ROUNDS=3         measurements per mode and concurrency (alternating); best kept
#   SNI_BENCH_CONC="1 16"      client concurrencies
#   SNI_BENCH_HELLO=FILE       ClientHello to send (default: a captured openssl s_client hello
#                              for example.com, tests/unit/data/clienthello/openssl_s_client.bin)
#   SNI_BENCH_CALLGRIND=1      also count egressd's instructions per tunnel in each mode
#
# Each tunnel (tests/bench/sni_bench.c): CONNECT example.com:ECHO, read the 200, send the
# captured ClientHello, read it back from a raw TCP echo (tests/bench/origin.c; the gateway
# only reads the hello, it never needs a TLS server), close.  Two egressd processes, one per
# mode (`workers 1`, one rule `allow any example\.com ECHO sni=MODE`), audit records to a
# discarding unix socket.  Everything is on 127.0.0.1; every process started here is
# stopped by PID; each measurement is bounded by its seconds.
#
# Goal (issue 6): the check costs under 10% of tunnel setup, i.e. require/off >= 0.90.
set -u

REPO=$(cd "$(dirname "$0")/../.." && pwd)
SECS=${SNI_BENCH_SECONDS:-3}
ROUNDS=${SNI_BENCH_ROUNDS:-3}
CONCS=${SNI_BENCH_CONC:-"1 16"}
HELLO=${SNI_BENCH_HELLO:-$REPO/tests/unit/data/clienthello/openssl_s_client.bin}
CALLGRIND=${SNI_BENCH_CALLGRIND:-1}
EGRESSD=${EGRESSD:-$REPO/build/egressd}
NAME=example.com

SAY=sni_bench
# shellcheck source=lib.sh
. "$REPO/tests/bench/lib.sh"

require_egressd
[ -r "$HELLO" ] || fail "$HELLO: no such ClientHello"
command -v cc >/dev/null 2>&1 || fail "cc not found"
command -v python3 >/dev/null 2>&1 || fail "python3 not found"

bench_tmpdir egressd-snibench

cpu_ticks() {   # PID -> utime + stime of the process (all threads), in clock ticks
	sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}'
}

# ------------------------------------------------------------------ build, origin
build_c origin origin.c
build_c sni_bench sni_bench.c loadlib.c -pthread

start_origin echo; ECHO_PORT=$ORIGIN_PORT
start_logsink
printf '127.0.0.1 %s\n' "$NAME" >"$T/hosts"

start_egressd() {   # FOLDER MODE [WRAPPER...] -> PROXY_PID PROXY_PORT
	egressd_dir "$1"
	mode=$2
	shift 2
	printf 'allow any %s %s sni=%s\n' "$(printf '%s' "$NAME" | sed 's/\./\\./g')" \
		"$ECHO_PORT" "$mode" >"$D/policy.rules"
	egressd_conf 1 127.0.0.1/32 60 "sni_timeout 5"
	launch_egressd "egressd ($mode)" "$@"
}

start_egressd off off;         PORT_off=$PROXY_PORT;     PID_off=$PROXY_PID
start_egressd require require; PORT_require=$PROXY_PORT; PID_require=$PROXY_PID

# One tunnel through each must work (and the require one must really check: a hello
# for another name is refused).
for m in off require; do
	eval "p=\$PORT_$m"
	out=$("$B/sni_bench" "$p" "$NAME" "$ECHO_PORT" "$HELLO" 1 0.3)
	[ "$(field err "$out")" = 0 ] && [ "$(field ok "$out")" -gt 0 ] ||
		fail "sni=$m: tunnels fail: $out"
done
other="$REPO/tests/unit/data/clienthello/python_ssl.bin"    # SNI api.python.example
if [ -r "$other" ]; then
	out=$("$B/sni_bench" "$PORT_require" "$NAME" "$ECHO_PORT" "$other" 1 0.3 2>/dev/null)
	[ "$(field ok "$out")" = 0 ] || fail "sni=require relayed a hello for another name: $out"
fi

load=$(load_average)
say "load average $load on $(nproc) CPUs; hello $(wc -c <"$HELLO") bytes ($(basename "$HELLO")); ${SECS}s x $ROUNDS rounds per cell"

# ------------------------------------------------------------------ rates
BEST=""
best_of() { eval "printf '%s' \"\${BEST_$1_$2:-0}\""; }
for c in $CONCS; do
	r=1
	while [ $r -le "$ROUNDS" ]; do
		for m in off require; do
			eval "p=\$PORT_$m; pid=\$PID_$m"
			t0=$(cpu_ticks "$pid")
			out=$("$B/sni_bench" "$p" "$NAME" "$ECHO_PORT" "$HELLO" "$c" "$SECS")
			t1=$(cpu_ticks "$pid")
			eval "TICKS_$m=\$((\${TICKS_$m:-0} + t1 - t0)); TUNNELS_$m=\$((\${TUNNELS_$m:-0} + $(field ok "$out")))"
			rate=$(field rate "$out")
			err=$(field err "$out")
			say "conc $c round $r sni=$m: $out"
			[ "$err" = 0 ] || say "  (errors in this measurement)"
			old=$(best_of "$m" "$c")
			[ "$(awk -v a="$rate" -v b="$old" 'BEGIN{print (a+0 > b+0)}')" = 1 ] &&
				eval "BEST_${m}_$c=$rate"
		done
		r=$((r + 1))
	done
done

# ------------------------------------------------------------------ callgrind (optional)
CG_off=""; CG_require=""
if [ "$CALLGRIND" = 1 ] && have_callgrind; then
	stop_pid "$PID_off"
	stop_pid "$PID_require"
	for m in off require; do
		start_egressd "cg-$m" "$m" valgrind --tool=callgrind --instr-atstart=no \
			--callgrind-out-file="$T/cg-$m.out"
		"$B/sni_bench" "$PROXY_PORT" "$NAME" "$ECHO_PORT" "$HELLO" 1 1 >/dev/null   # warm-up
		if callgrind_measure "$T/cg-$m.out" "$B/sni_bench" "$PROXY_PORT" "$NAME" "$ECHO_PORT" "$HELLO" 1 "$SECS"; then
			n=$(field ok "$CG_RUN")
			if [ -n "$CG_TOTAL" ] && [ -n "$n" ] && [ "$n" -gt 0 ] && [ "$(field err "$CG_RUN")" = 0 ]; then
				eval "CG_$m=$((CG_TOTAL / n))"
				say "callgrind sni=$m: $CG_TOTAL instructions for $n tunnels"
			else
				say "callgrind sni=$m: no figure ($CG_RUN)"
			fi
		else
			say "callgrind_control failed for sni=$m"
		fi
	done
fi

# ------------------------------------------------------------------ report
echo
printf '%-34s %12s %12s %14s\n' "row" "sni=off" "sni=require" "require/off"
printf '%-34s %12s %12s %14s\n' "---" "-------" "-----------" "-----------"
verdict=ok
for c in $CONCS; do
	a=$(best_of off "$c")
	b=$(best_of require "$c")
	ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { if (a + 0 == 0) print "n/a"; else printf "%.3f", b / a }')
	printf '%-34s %12s %12s %14s\n' "tunnels/s, concurrency $c" "$a" "$b" "$ratio"
	[ "$ratio" = n/a ] || [ "$(awk -v r="$ratio" 'BEGIN{print (r >= 0.90)}')" = 1 ] || verdict=over
done
HZ=$(getconf CLK_TCK 2>/dev/null || echo 100)
us_per() {   # MODE -> egressd CPU microseconds (user + system) per tunnel over every measurement
	eval "t=\${TICKS_$1:-0}; n=\${TUNNELS_$1:-0}"
	awk -v t="$t" -v n="$n" -v hz="$HZ" 'BEGIN { if (n + 0 == 0) print "n/a"; else printf "%.1f", t * 1e6 / hz / n }'
}
u_off=$(us_per off)
u_req=$(us_per require)
pct=$(awk -v a="$u_off" -v b="$u_req" 'BEGIN { if (a + 0 == 0) print "n/a"; else printf "%+.1f%%", (b - a) * 100 / a }')
printf '%-34s %12s %12s %14s\n' "egressd CPU us per tunnel (u+s)" "$u_off" "$u_req" "$pct"
if [ -n "$CG_off" ] && [ -n "$CG_require" ]; then
	pct=$(awk -v a="$CG_off" -v b="$CG_require" 'BEGIN { printf "%+.1f%%", (b - a) * 100 / a }')
	printf '%-34s %12s %12s %14s\n' "egressd instructions per tunnel" "$CG_off" "$CG_require" "$pct"
fi
echo
if [ "$verdict" = ok ]; then
	echo "goal (the check costs < 10% of tunnel setup, require/off >= 0.90): met"
else
	echo "goal (the check costs < 10% of tunnel setup, require/off >= 0.90): NOT met on this run (shared CPUs are noisy: rerun with more rounds)"
fi
