# Shell plumbing shared by the benchmark scripts (run.sh, auth_bench.sh, sni_bench.sh).
# Sourced, not run:  REPO=...; EGRESSD=...; SAY=name; . "$REPO/tests/bench/lib.sh"
# Everything here listens and connects on 127.0.0.1 only; every process a script starts
# goes into PIDS and is stopped by PID (stop_pid, or cleanup on exit).

# say MESSAGE...: one line to stderr, prefixed with the script's name ($SAY).
say() { printf '%s\n' "$SAY: $*" >&2; }

# fail MESSAGE...: say it and exit 1 (cleanup runs from the EXIT trap).
fail() { say "$*"; exit 1; }

# install_missing PACKAGE...: apt-get install the packages named (as root); nothing when none.
# Their services are not started (a policy-rc.d that says no while apt runs, as
# packaging/deps.sh does): squid, haproxy, trafficserver and rsyslog would otherwise start on
# their usual ports.
install_missing() {
	[ $# -gt 0 ] || return 0
	[ "$(id -u)" = 0 ] || fail "missing: $* (run as root or install them)"
	say "installing $*"
	export DEBIAN_FRONTEND=noninteractive
	prc=/usr/sbin/policy-rc.d own_prc=""
	if [ ! -e "$prc" ]; then
		printf '#!/bin/sh\n# written by egressd tests/bench/lib.sh while apt runs\nexit 101\n' >"$prc"
		chmod 755 "$prc"
		own_prc=1
	fi
	rc=0
	apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null || rc=1
	[ -n "$own_prc" ] && rm -f "$prc"
	[ $rc = 0 ] || fail "apt-get install $* failed"
}

# require_egressd: fail unless $EGRESSD is an executable.
require_egressd() { [ -x "$EGRESSD" ] || fail "$EGRESSD is not built (make all)"; }

# raise_nofile: open-file limit 20000, or the hard limit when that is lower.
raise_nofile() { ulimit -n 20000 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true; }

# bench_tmpdir NAME: make T (/tmp/NAME.XXXXXX, mode 755) and B=$T/bin for the built
# clients, reset PIDS, and install the cleanup trap: every PID in PIDS stopped on exit,
# T removed.
bench_tmpdir() {
	T=$(mktemp -d "/tmp/$1.XXXXXX") || fail "mktemp"
	chmod 755 "$T"
	B="$T/bin"
	mkdir -p "$B"
	PIDS=""
	trap cleanup EXIT
	trap 'exit 130' INT TERM
}

# cleanup: TERM every PID in PIDS, wait up to 5 s for them, KILL what is left, remove T.
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

# stop_pid PID: stop one process: TERM, up to 10 s of waiting, KILL; drop it from PIDS.
stop_pid() {
	kill -TERM "$1" 2>/dev/null
	i=0
	while kill -0 "$1" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
	kill -KILL "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	PIDS=$(for p in $PIDS; do [ "$p" != "$1" ] && printf '%s ' "$p"; done)
}

# free_port: print a TCP port on 127.0.0.1 that is free right now.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_port PORT SECONDS PID: wait until 127.0.0.1:PORT accepts; fail early if PID exits.
wait_port() {
	python3 - "$1" "$2" "$3" <<'PY'
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
PY
}

# wait_file FILE SECONDS: wait until FILE is not empty; false when it stays empty.
wait_file() {
	i=0
	while [ ! -s "$1" ] && [ $i -lt $(($2 * 10)) ]; do sleep 0.1; i=$((i + 1)); done
	[ -s "$1" ]
}

# field NAME LINE: the value of NAME=... in a client's output LINE.
field() { printf '%s\n' "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }

# load_average: the 1-minute load average.
load_average() { cut -d' ' -f1 /proc/loadavg; }

# build_c OUTPUT SOURCE [SOURCE|-FLAG...]: cc -O2 the named files of tests/bench into
# $B/OUTPUT; arguments starting with - are passed to cc as they are.
build_c() {
	out=$1 src=$2
	shift
	n=$#
	while [ $n -gt 0 ]; do
		case $1 in -*) set -- "$@" "$1" ;; *) set -- "$@" "$REPO/tests/bench/$1" ;; esac
		shift
		n=$((n - 1))
	done
	cc -O2 -o "$B/$out" "$@" || fail "cc $src"
}

# start_origin MODE: run tests/bench/origin.c's MODE server (echo, source, http) on a free
# port; sets ORIGIN_PORT.
start_origin() {
	"$B/origin" "$1" "$T/$1.port" 900 &
	PIDS="$PIDS $!"
	wait_file "$T/$1.port" 10 || fail "$1 origin did not start"
	ORIGIN_PORT=$(cat "$T/$1.port")
}

# start_logsink: a unix datagram socket $T/audit.sock that discards egressd's audit records.
start_logsink() {
	"$B/origin" logsink "$T/audit.sock" 900 &
	PIDS="$PIDS $!"
}

# egressd_dir NAME: make D=$T/egressd-NAME with a resolv.conf that resolves nothing;
# sets PROXY_PORT to a free port. The script then writes $D/policy.rules.
egressd_dir() {
	D="$T/egressd-$1"
	mkdir -p "$D"
	PROXY_PORT=$(free_port)
	printf 'nameserver 127.0.0.1:1\noptions timeout:1 attempts:1\n' >"$D/resolv.conf"
}

# egressd_conf WORKERS ALLOW_INTERNAL IDLE_TIMEOUT [LINE...]: write $D/egressd.conf, the
# settings every bench gateway shares (names from $T/hosts, audit to the log sink) and LINEs.
egressd_conf() {
	w=$1 internal=$2 idle=$3
	shift 3
	{
		cat <<CONF
listen 127.0.0.1:$PROXY_PORT
workers $w
policy_file policy.rules
dns_hosts_file $T/hosts
dns_resolv_conf resolv.conf
allow_internal $internal
max_connections 20000
idle_timeout $idle
audit_syslog_socket $T/audit.sock
CONF
		for line in "$@"; do printf '%s\n' "$line"; done
	} >"$D/egressd.conf"
}

# launch_egressd LABEL [WRAPPER...]: run egressd on $D/egressd.conf (under WRAPPER, e.g.
# valgrind, when given) and wait for its port; sets PROXY_PID.
launch_egressd() {
	label=$1
	shift
	"$@" "$EGRESSD" -c "$D/egressd.conf" >/dev/null 2>"$D/stderr" &
	PROXY_PID=$!
	PIDS="$PIDS $PROXY_PID"
	wait_port "$PROXY_PORT" 60 "$PROXY_PID" || { tail -5 "$D/stderr" >&2; fail "$label did not start"; }
}

# squid_conf DIR LINE...: write DIR/squid.conf, the LINEs (its ports) and the settings every
# bench Squid shares (one process, its files in DIR, caching off, access log to /dev/null,
# names from $T/hosts), and give DIR to the user Squid drops to.
squid_conf() {
	sd=$1
	shift
	{
		for line in "$@"; do printf '%s\n' "$line"; done
		cat <<CONF
pid_filename $sd/squid.pid
cache_log $sd/cache.log
access_log stdio:/dev/null
cache_store_log none
coredump_dir $sd
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
CONF
	} >"$sd/squid.conf"
	if id proxy >/dev/null 2>&1; then chown -R proxy "$sd"; else chmod 777 "$sd"; fi
}

# have_callgrind: whether valgrind and callgrind_control are installed.
have_callgrind() { command -v valgrind >/dev/null 2>&1 && command -v callgrind_control >/dev/null 2>&1; }

# callgrind_measure OUTFILE CMD...: with egressd $PROXY_PID started under
# `valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=OUTFILE`, run CMD with
# instrumentation on, then stop egressd. Sets CG_RUN (CMD's output) and CG_TOTAL (the
# instructions counted, empty when none); false when callgrind_control failed.
callgrind_measure() {
	cg_file=$1
	shift
	CG_RUN="" CG_TOTAL=""
	if ! callgrind_control -i on "$PROXY_PID" >/dev/null 2>&1; then
		stop_pid "$PROXY_PID"
		return 1
	fi
	CG_RUN=$("$@")
	callgrind_control -i off "$PROXY_PID" >/dev/null 2>&1
	stop_pid "$PROXY_PID"
	CG_TOTAL=$(awk '/^totals:/ {s += $2} END {if (s) print s}' "$cg_file"* 2>/dev/null)
}

# Results kept in variables named R_<column>_<row>.
# setr COLUMN ROW VALUE / getr COLUMN ROW (n/a when unset).
setr() { eval "R_$1_$2=\$3"; }
getr() { eval "printf '%s' \"\${R_$1_$2:-n/a}\""; }

# keep_best COLUMN ROW VALUE [min]: keep VALUE when it beats the kept one (higher; lower with min).
keep_best() {
	old=$(getr "$1" "$2")
	if [ "$old" = n/a ]; then setr "$1" "$2" "$3"; return; fi
	better=$(awk -v a="$3" -v b="$old" -v m="${4:-max}" 'BEGIN {
		a += 0; b += 0; print (m == "min" ? a < b : a > b) ? 1 : 0 }')
	[ "$better" = 1 ] && setr "$1" "$2" "$3"
}

# mark COLUMN ROW: the kept value, with * when a measurement of it saw failures
# (FLAGS holds "<column>_<row>" words).
mark() {
	v=$(getr "$1" "$2")
	case " $FLAGS " in *" $1_$2 "*) v="$v*" ;; esac
	printf '%s' "$v"
}
