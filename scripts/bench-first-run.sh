#!/usr/bin/env bash
# Times `scripts/run.sh` from its start until it serves its first page (GET /sign-in), step by
# step: each line of its output is stamped with the seconds since the start. Run it on a fresh
# clone of a machine that never ran the setup to measure a newcomer's first run (see
# docs/BENCHMARKS.md for how that machine was reset); on any other it times a warm start.
#
#   scripts/bench-first-run.sh [LOG]      (default LOG: /tmp/parallax-first-run.log)
set -euo pipefail
cd "$(dirname "$0")/.."
log=${1:-/tmp/parallax-first-run.log}
started=$(date +%s.%N)
since() { echo "$(date +%s.%N) - $started" | bc; }
(scripts/run.sh 2>&1 | while IFS= read -r line; do printf '%7.1f %s\n' "$(since)" "$line"; done >"$log") &
run=$!
# HTTPS by default: the authority appears in ./data/tls once the server has started.
until [ -f data/tls/ca.crt ] && curl -sf --cacert data/tls/ca.crt -o /dev/null https://localhost:3000/sign-in; do
  kill -0 $run 2>/dev/null || { echo "scripts/run.sh stopped; see $log" >&2; exit 1; }
  sleep 1
done
printf 'first page served after %.1f s (log: %s)\n' "$(since)" "$log"
pkill -TERM -f 'release/parallax serve' || true
wait $run 2>/dev/null || true
