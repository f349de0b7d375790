#!/bin/sh
# Build and run the policy decision benchmark: ns per decision at 1,000 and
# 10,000 generated rules (or the counts given as arguments).
#   sh tests/bench/policy_bench.sh [RULES...]
#   POLICY_BENCH_LINEAR=1 sh tests/bench/policy_bench.sh    also time the plain scan
set -e
cd "$(dirname "$0")/../.."
mkdir -p build/bench
${CC:-cc} -O2 -g -std=gnu11 -pthread -D_GNU_SOURCE -I. \
    -Wall -Wextra -Werror -Wshadow -Wcast-qual -Wstrict-prototypes -Wmissing-prototypes \
    -Wformat=2 -Wvla -Wimplicit-fallthrough -Wundef -Wwrite-strings \
    $(pkg-config --cflags libpcre2-8) \
    -o build/bench/policy_bench tests/bench/policy_bench.c policy/*.c \
    $(pkg-config --libs libpcre2-8)
exec build/bench/policy_bench "$@"
