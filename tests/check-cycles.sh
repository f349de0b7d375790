#!/bin/sh
# No two files of gateway/ may include each other, directly or through others:
# a cycle means neither can be read, tested or replaced alone.  Each .c/.h is
# the module of its base name; tsort(1) reports a loop in the include graph.
set -eu
cd "$(dirname "$0")/.."
err=$(mktemp)
trap 'rm -f "$err"' EXIT
for f in gateway/*.c gateway/*.h gateway/http/*.c gateway/http/*.h; do
	m=$(basename "${f%.*}")
	sed -n 's|^#include "gateway/\(http/\)\{0,1\}\([a-z_]*\)\.h".*|\2|p' "$f" |
	    while read -r d; do echo "$m $d"; done
done | tsort >/dev/null 2>"$err" || true
if [ -s "$err" ]; then
	sed 's/^tsort: /include cycle: /' "$err"
	echo "gateway/ files include each other in a cycle"
	exit 1
fi
