#!/bin/sh
# Policy benchmarks (issue 18's figures come from `lists` and `reload`):
#   sh tests/bench/policy_bench.sh [RULES...]     ns per decision at 1,000 and 10,000 rules
#   sh tests/bench/policy_bench.sh lists [N...]   domain lists: load time, RSS, ns per decision
#                                                 for 1k, 100k and 1M entries and 10 x 100k
#   sh tests/bench/policy_bench.sh reload         a running gateway with a 1M-entry list (then
#                                                 ten lists of 100k): tunnel latency with and
#                                                 without reloads, the reload times, its RSS
#   sh tests/bench/policy_bench.sh all            lists, then reload (make policy-bench)
#   POLICY_BENCH_LINEAR=1    rules: also time the plain scan
#   POLICY_BENCH_WALL=1      wall clock instead of the benchmark thread's CPU time
#   RELOAD_SECONDS=8 RELOAD_CONC=4 RELOAD_EVERY=1.5   the reload measurement
# Everything listens and connects on 127.0.0.1; every process started is stopped by PID.
set -e
cd "$(dirname "$0")/../.."
REPO=$(pwd)
mkdir -p build/bench
${CC:-cc} -O2 -g -std=gnu11 -pthread -D_GNU_SOURCE -I. \
    -Wall -Wextra -Werror -Wshadow -Wcast-qual -Wstrict-prototypes -Wmissing-prototypes \
    -Wformat=2 -Wvla -Wimplicit-fallthrough -Wundef -Wwrite-strings \
    $(pkg-config --cflags libpcre2-8) \
    -o build/bench/policy_bench tests/bench/policy_bench.c policy/*.c \
    $(pkg-config --libs libpcre2-8)

case ${1:-} in
reload|all) ;;
*) exec build/bench/policy_bench "$@" ;;
esac
[ "$1" = all ] && build/bench/policy_bench lists
set +e

# ------------------------------------------------------------------ reload through the gateway
EGRESSD=${EGRESSD:-$REPO/build/egressd}
SECS=${RELOAD_SECONDS:-8}
CONC=${RELOAD_CONC:-4}
EVERY=${RELOAD_EVERY:-1.5}
NAME=bench-target.example
SAY=policy_bench
# shellcheck source=lib.sh
. "$REPO/tests/bench/lib.sh"
require_egressd
bench_tmpdir egressd-policybench
build_c origin origin.c
build_c reload_lat reload_lat.c loadlib.c
start_origin echo; ECHO_PORT=$ORIGIN_PORT
start_logsink
printf '127.0.0.1 %s\n' "$NAME" >"$T/hosts"

status_kb() { awk -v k="$2" '$1 == k {print $2}' "/proc/$1/status" 2>/dev/null; }

# lists NLISTS ENTRIES: write $D/lN.list (the last holds .bench-target.example at its end)
# and a policy naming them all.
write_lists() {
	: >"$D/policy.rules"
	l=0
	while [ $l -lt "$1" ]; do
		awk -v n="$2" -v l=$l -v last=$(($1 - 1)) -v name="$NAME" 'BEGIN {
			for (i = 0; i < n; i++)
				if (i % 3 == 0) printf ".zone%d-%d.example-cdn.net\n", l, i
				else printf "host%d.l%d.tracker-%d.example.com\n", i, l, i % 997
			if (l == last) printf ".%s\n", name
		}' >"$D/l$l.list"
		printf 'allow any @l%d.list %s sni=off\n' $l "$ECHO_PORT" >>"$D/policy.rules"
		l=$((l + 1))
	done
}

measure() {   # LABEL NLISTS ENTRIES
	egressd_dir "$1"
	write_lists "$2" "$3"
	egressd_conf 2 127.0.0.1/32 60
	"$EGRESSD" -t -c "$D/egressd.conf" 2>/dev/null | sed "s|^|$SAY: |" >&2
	launch_egressd "$1"
	pid=$PROXY_PID
	rss=$(status_kb "$pid" VmRSS:)
	"$B/reload_lat" "$PROXY_PORT" "$NAME" "$ECHO_PORT" "$CONC" 1 >/dev/null   # warm-up
	quiet=$("$B/reload_lat" "$PROXY_PORT" "$NAME" "$ECHO_PORT" "$CONC" "$SECS")
	say "$1 without reloads: $quiet"
	"$B/reload_lat" "$PROXY_PORT" "$NAME" "$ECHO_PORT" "$CONC" "$SECS" >"$T/busy.out" &
	lg=$!
	PIDS="$PIDS $lg"
	n=0
	sleep 0.5
	while kill -0 "$lg" 2>/dev/null && [ $n -lt 100 ]; do
		kill -HUP "$pid"
		n=$((n + 1))
		sleep "$EVERY"
	done
	wait "$lg"
	PIDS=$(for p in $PIDS; do [ "$p" != "$lg" ] && printf '%s ' "$p"; done)
	busy=$(cat "$T/busy.out")
	sleep 3        # the last reload finishes before its time is read
	say "$1 with $n reloads:  $busy"
	times=$(sed -n 's/.*event=reload .*load_ms=\([0-9.]*\).*/\1/p' "$D/stderr" | tr '\n' ' ')
	oks=$(grep -c 'event=reload ' "$D/stderr")
	hwm=$(status_kb "$pid" VmHWM:)
	rss2=$(status_kb "$pid" VmRSS:)
	say "$1: $oks reloads ok; RSS $((rss / 1024)) MB at start, $((rss2 / 1024)) MB after, peak $((hwm / 1024)) MB${times:+; load ms: $times}"
	errs=$(field err "$busy")
	[ "$errs" = 0 ] || say "$1: $errs failed tunnels during reloads"
	printf '%-30s %10s %10s %10s %10s %8s %8s\n' "$1" "$(field max_ms "$quiet")" \
		"$(field max_ms "$busy")" "$(field p99_ms "$quiet")" "$(field p99_ms "$busy")" \
		"$n" "$((hwm / 1024))" >>"$T/table"
	stop_pid "$pid"
}

: >"$T/table"
measure "1 list of 1,000,000" 1 1000000
measure "10 lists of 100,000" 10 100000
echo
printf '%-30s %10s %10s %10s %10s %8s %8s\n' "gateway (workers 2, conc $CONC)" "max ms" \
	"max ms" "p99 ms" "p99 ms" "reloads" "peak MB"
printf '%-30s %10s %10s %10s %10s %8s %8s\n' "" "quiet" "reloading" "quiet" "reloading" "" ""
cat "$T/table"
echo "Tunnel latency: CONNECT to a list entry, 16 bytes echoed, close; ${SECS}s per column;"
echo "a reload (SIGHUP) every ${EVERY}s in the reloading columns. Load average: $(load_average)."
