#!/bin/sh
# make demo: a local origin on 127.0.0.1:8080 and egressd on 127.0.0.1:3128, in the foreground.
set -e
top=$(cd "$(dirname "$0")/.." && pwd)
demo="$top/packaging/demo"
/usr/bin/python3 -m http.server 8080 --bind 127.0.0.1 --directory "$demo/www" >/dev/null 2>&1 &
origin=$!
trap 'kill "$origin" 2>/dev/null' EXIT INT TERM
cat <<MSG

egressd demo: gateway on 127.0.0.1:3128, demo origin on 127.0.0.1:8080 (policy: $demo/demo.rules)
Try, from another terminal:
  curl -x http://127.0.0.1:3128 http://127.0.0.1:8080/          # allowed: forwarded
  curl -p -x http://127.0.0.1:3128 http://127.0.0.1:8080/       # allowed: CONNECT tunnel
  curl -x http://127.0.0.1:3128 http://www.blocked.example/     # denied: 403
  $top/build/egressctl -c $demo/egressd.conf explain --method GET --host 127.0.0.1 --port 8080
Audit records are printed below as "audit {...}" lines. Ctrl-C stops.

MSG
"$top/build/egressd" -c "$demo/egressd.conf" || true
