#!/bin/sh
# run.sh — bounded libFuzzer runs for make check (short) and make fuzz (long).
#
#   sh tests/fuzz/run.sh SECONDS BIN...
#
# For each build/fuzz/fuzz_X: first every file in tests/fuzz/regress/X/ is run
# once as a regression input (a crasher found earlier must stay fixed), then
# the target fuzzes for SECONDS from a temporary copy of tests/fuzz/corpus/X/,
# with tests/fuzz/X.dict when there is one.  Nothing is written into the
# repository: new corpus entries and crash files go to a scratch folder, which
# is removed when every target passed and kept (its path printed) otherwise.
# One line of summary per target; the exit status is non-zero if any target
# crashed, leaked, timed out or failed a regression input.  A crasher found
# here is then copied by a developer into tests/fuzz/regress/X/.
#
# Targets run one after another, never in parallel: the fuzzers share the
# machine with the rest of make check.

set -u

if [ $# -lt 2 ]; then
	echo "usage: sh tests/fuzz/run.sh SECONDS BIN..." >&2
	exit 2
fi
seconds=$1
shift
case $seconds in
''|*[!0-9]*) echo "run.sh: SECONDS must be a number: $seconds" >&2; exit 2 ;;
esac

here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d "${TMPDIR:-/tmp}/egressd-fuzz.XXXXXX") || exit 1
failed=0

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# Longest input worth trying per target (a little past each parser's bounds
# that matter, so the limits themselves are fuzzed).
max_len_for() {
	case $1 in
	request|response|chunked) echo 9000 ;;
	url|host) echo 1024 ;;
	proxy) echo 1200 ;;
	sni|sni_openssl) echo 36000 ;;
	*) echo 4096 ;;
	esac
}

for bin in "$@"; do
	name=$(basename "$bin")
	name=${name#fuzz_}
	if [ ! -x "$bin" ]; then
		echo "fuzz $name: FAIL (no executable $bin)"
		failed=1
		continue
	fi
	work="$scratch/$name"
	mkdir -p "$work/corpus" "$work/artifacts"
	log="$work/log"

	# Regression inputs: run once each, no fuzzing.
	nreg=0
	if [ -d "$here/regress/$name" ]; then
		for f in "$here/regress/$name"/*; do
			[ -f "$f" ] || continue
			nreg=$((nreg + 1))
			if ! "$bin" "$f" >"$work/regress.log" 2>&1; then
				echo "fuzz $name: FAIL regression input $f (log: $work/regress.log)"
				failed=1
				continue 2
			fi
		done
	fi

	if [ -d "$here/corpus/$name" ]; then
		cp -R "$here/corpus/$name/." "$work/corpus/" 2>/dev/null
	fi
	# (the for list above was expanded once: reusing "$@" for options is safe)
	set -- -max_total_time="$seconds" -max_len="$(max_len_for "$name")" \
	    -timeout=25 -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix="$work/artifacts/"
	[ -f "$here/$name.dict" ] && set -- "$@" -dict="$here/$name.dict"

	"$bin" "$@" "$work/corpus" >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
	ncorpus=$(ls "$work/corpus" | wc -l)
	crash=$(ls "$work/artifacts" 2>/dev/null | head -n 1)
	if [ $rc -ne 0 ] || [ -n "$crash" ]; then
		echo "fuzz $name: FAIL exit $rc after ${execs:-?} execs; crash file: ${crash:+$work/artifacts/$crash} (log: $log)"
		grep -m 3 -E 'ERROR|SUMMARY|runtime error|Assertion' "$log" | sed 's/^/    /'
		failed=1
	else
		echo "fuzz $name: ok ${seconds}s, ${execs:-?} execs, ${cov:-cov: ?}, corpus $ncorpus, regress $nreg"
	fi
done

if [ $failed -ne 0 ]; then
	echo "fuzz: failures kept in $scratch (copy crashers into tests/fuzz/regress/NAME/)"
	exit 1
fi
rm -rf "$scratch"
exit 0
