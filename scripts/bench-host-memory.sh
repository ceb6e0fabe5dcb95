#!/usr/bin/env bash
# Resident memory at rest of a coordinator and of its one warm Standard render host, as the
# `parallax` binary BIN (default: the release build) starts them with a fresh data dir.
#
#   scripts/bench-host-memory.sh [BIN] [SECONDS to settle after the host registered, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-${CARGO_TARGET_DIR:-target}/release/parallax}
settle=${2:-10}
data=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$data" "$log"' EXIT
NODEVICE_SELECT=1 "$bin" serve --addr 127.0.0.1:0 --data-dir "$data" --site-root /nonexistent \
  --standard 1 --standard-standby 1 --premium 0 >"$log" 2>&1 &
serve=$!
for _ in $(seq 1 150); do grep -q 'registered' "$log" && break; sleep 0.2; done
grep -q 'registered' "$log" || { cat "$log" >&2; echo "no render host registered" >&2; exit 1; }
sleep "$settle"
host=$(pgrep -P $serve -f render-host | head -1)
rss() { awk '/VmRSS/ {printf "%.1f MiB", $2 / 1024}' "/proc/$1/status"; }
echo "coordinator $(rss $serve), render host $(rss "$host")"
kill -TERM $serve
wait $serve || true
