#!/bin/sh
# audit_bench.sh — audit records per second into a real rsyslogd, and loss.
#
#   sh tests/bench/audit_bench.sh [N] [THREADS] [RATE]
#
# Builds tests/bench/audit_bench.c with audit/*.c, starts rsyslogd in the
# foreground with a configuration of its own in a temporary directory
# (imuxsock on a socket there, rate limiting off, omfile to a file there, its
# own pid file), emits N records (default 200000) from THREADS threads
# (default 2) as fast as possible (or at RATE records/s), waits until the file
# holds every line, and reports the sustained rate, what had to queue and
# what was lost.  Then the audit's CPU cost per record (encode, and
# encode + frame + send).  rsyslogd is stopped by its pid; everything lives in
# the temporary directory, removed at the end.  Bounded: 60 s of waiting.
set -eu

N=${1:-200000}
THREADS=${2:-2}
RATE=${3:-0}
TOP=$(cd "$(dirname "$0")/../.." && pwd)
RSYSLOGD=${RSYSLOGD:-/usr/sbin/rsyslogd}
TMP=$(mktemp -d /tmp/audit_bench.XXXXXX)
RSPID=

cleanup() {
	if [ -n "$RSPID" ] && kill -0 "$RSPID" 2>/dev/null; then
		kill "$RSPID"
		i=0
		while kill -0 "$RSPID" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

now_ms() { date +%s%3N; }
# cpu_ticks: "ALL STEAL", the machine's CPU time so far and the part of it the
# hypervisor took (steal: on a shared VM, rsyslogd and the emitter lose it alike).
cpu_ticks() { awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print t, $9 }' /proc/stat; }

cc -std=gnu11 -D_GNU_SOURCE -O2 -g -I"$TOP" $(pkg-config --cflags json-c relp) \
    "$TOP"/tests/bench/audit_bench.c "$TOP"/audit/*.c -o "$TMP/audit_bench" \
    -pthread $(pkg-config --libs json-c relp)

cat > "$TMP/rsyslog.conf" <<EOF
global(workDirectory="$TMP")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="$TMP/log.sock" RateLimit.Interval="0" Ruleset="audit")
template(name="json" type="list") {
	property(name="msg" position.from="2")
	constant(value="\n")
}
ruleset(name="audit") {
	if \$programname == "egressd" then {
		action(type="omfile" File="$TMP/audit.log" Template="json"
		       asyncWriting="on" flushOnTXEnd="off" ioBufferSize="256k")
	}
	stop
}
EOF
"$RSYSLOGD" -N1 -f "$TMP/rsyslog.conf" >/dev/null 2>&1 || { echo "rsyslogd rejects the bench configuration"; exit 1; }
"$RSYSLOGD" -n -i "$TMP/rsyslogd.pid" -f "$TMP/rsyslog.conf" >"$TMP/rsyslogd.out" 2>&1 &
RSPID=$!
i=0
while [ ! -S "$TMP/log.sock" ]; do
	i=$((i + 1))
	[ $i -lt 100 ] || { echo "rsyslogd did not start:"; cat "$TMP/rsyslogd.out"; exit 1; }
	sleep 0.05
done
: > "$TMP/audit.log"

echo "== $N records from $THREADS threads into rsyslogd $("$RSYSLOGD" -v | head -1 | awk '{print $2}')" \
    "(rate: $([ "$RATE" = 0 ] && echo 'as fast as possible' || echo "$RATE/s"))"
ticks_before=$(cpu_ticks)
"$TMP/audit_bench" emit "$TMP/log.sock" "$N" "$THREADS" "$RATE" > "$TMP/emit.out"
start=$(sed -n 's/^start_ms=//p' "$TMP/emit.out")
lost=$(sed -n 's/^lost_total=//p' "$TMP/emit.out")
loss_records=$(sed -n 's/^loss_records=//p' "$TMP/emit.out")
expect=$((N - lost + loss_records))

# rsyslogd writes asynchronously: wait until every delivered record is a line.
deadline=$(( $(now_ms) + 60000 ))
while :; do
	lines=$(wc -l < "$TMP/audit.log")
	done_ms=$(now_ms)
	[ "$lines" -lt "$expect" ] || break
	[ "$done_ms" -lt "$deadline" ] || break
	sleep 0.02
done
ticks_after=$(cpu_ticks)
grep -v '^start_ms=' "$TMP/emit.out" | sed 's/^/  /'
dups=$(grep -o '"id":"b[0-9]*-[0-9]*"' "$TMP/audit.log" | sort | uniq -d | wc -l)
bad=$(grep -vc '^{"ts":"[^"]*","event":"\(tunnel\|audit_loss\)".*}$' "$TMP/audit.log" || true)
lost_reported=$(grep -o '"lost":[0-9]*' "$TMP/audit.log" | awk -F: '{ s += $2 } END { print s + 0 }')
elapsed=$((done_ms - start))
echo "  received_lines=$lines (expected $expect: $N emitted - $lost lost + $loss_records loss records)"
echo "  duplicate_ids=$dups malformed_lines=$bad lost_in_audit_loss_records=$lost_reported (counted: $lost)"
echo "  sustained_rate=$(awk -v n="$lines" -v ms="$elapsed" 'BEGIN { printf "%.0f", n * 1000 / ms }') records/s" \
    "(first emit to last line written: $elapsed ms)"
echo "  steal=$(echo "$ticks_before $ticks_after" | awk '{ d = $3 - $1; printf "%.1f", (d > 0 ? 100 * ($4 - $2) / d : 0) }')%" \
    "of the machine's CPU time over that span (taken by the hypervisor; 0 on bare metal)"
if [ "$lines" -eq "$expect" ] && [ "$lost" -eq 0 ] && [ "$dups" -eq 0 ] && [ "$bad" -eq 0 ]; then
	echo "  result: every record received, none lost"
else
	echo "  result: LOSS OR DAMAGE (see above)"
	[ "$lost_reported" -eq "$lost" ] && [ "$lines" -eq "$expect" ] && [ "$dups" -eq 0 ] && [ "$bad" -eq 0 ] &&
	    echo "  (every loss counted exactly: the audit_loss records add up to it)"
fi

echo "== the audit's share of one tunnel (CPU time of the emitting thread, 100000 records)"
"$TMP/audit_bench" cost 100000 | sed 's/^/  /'
