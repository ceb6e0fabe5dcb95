#!/usr/bin/env bash
# Soak: 30 distinct uploaded models, selected round-robin in one space whose 4 headsets each load
# every selection on their own render session, for DURATION (default 5m). The coordinator and its
# render hosts run as the release binary, the hosts with small cache bounds, so their caches must
# evict; the resident memory of the coordinator (which keeps no meshes: uploads are converted by
# child processes and served from disk) and of each host is sampled every 5 s and the highest is
# printed beside the bounds.
#
#   scripts/bench-soak.sh [DURATION] [MESH_CACHE_MB] [GPU_CACHE_MB]     (5m 64 128)
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-5m}
mesh_mb=${2:-64}
gpu_mb=${3:-128}
target=${CARGO_TARGET_DIR:-target}
export NODEVICE_SELECT=1

cargo build --locked --release -p parallax-server -p parallax-step -p parallax-headset
cargo build --locked --release -p parallax-render --example dense_stl
work=$(mktemp -d /tmp/parallax-soak.XXXXXX)
trap 'kill $serve 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

account=$("$target/release/parallax" account create soak --data-dir "$work/data")
id=$(awk '/^account id:/ {print $3}' <<<"$account")
key=$(awk '/^account key:/ {print $3}' <<<"$account")
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
PARALLAX_HOST_MESH_CACHE_MB=$mesh_mb PARALLAX_HOST_GPU_CACHE_MB=$gpu_mb \
  "$target/release/parallax" serve --addr "127.0.0.1:$port" --data-dir "$work/data" \
  --site-root /nonexistent --standard 4 --standard-standby 4 --premium 0 --poll-interval-ms 0 --tls off \
  >"$work/serve.log" 2>&1 &
serve=$!
until curl -sf -o /dev/null "$url/v1/ping"; do sleep 0.2; done
token=$(curl -sf -H "Authorization: Bearer $id:$key" "$url/accounts/$id/token" |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["AccessToken"])')

echo "uploading 30 models" >&2
total=0
for i in $(seq 0 29); do
  triangles=$((40000 + i * 5000))
  "$target/release/examples/dense_stl" "$triangles" "$work/part-$i.stl" 2>/dev/null
  total=$((total + triangles))
  curl -sf -o /dev/null -H "Authorization: Bearer $token" -F "file=@$work/part-$i.stl" \
    -F "name=Part $i" "$url/v1/models"
done
echo "30 models, $total triangles in all" >&2

rss_mib() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
# Resident memory by kind: anonymous (the heap) and file-backed (mapped libraries: lavapipe's
# LLVM alone is tens of MiB once a first frame was drawn).
rss_kinds() { awk '/RssAnon|RssFile/ {printf "%s %.1f MiB  ", $1, $2 / 1024}' "/proc/$1/status" 2>/dev/null; }
max_coordinator=0
max_host=0
sample() {
  local c h
  c=$(rss_mib $serve)
  max_coordinator=$(python3 -c "print(max($max_coordinator, $c))")
  for pid in $(pgrep -P $serve -f render-host); do
    h=$(rss_mib "$pid")
    max_host=$(python3 -c "print(max($max_host, $h))")
  done
}
sample
echo "at rest: coordinator $max_coordinator MiB ($(rss_kinds $serve)), host $max_host MiB" >&2
for pid in $(pgrep -P $serve -f render-host); do echo "  host $pid: $(rss_kinds "$pid")" >&2; done

"$target/release/parallax-headset" load --server "$url" --account "$id" --key "$key" \
  --space soak --devices 4 --render --duration "$duration" --every 1s --viewport 640x360 \
  --json >"$work/report.json" &
load=$!
ticks=0
while kill -0 $load 2>/dev/null; do
  sample
  ticks=$((ticks + 1))
  if ((ticks % 12 == 0)); then
    echo "after $((ticks * 5)) s: coordinator $(rss_mib $serve) MiB, hosts" \
      "$(for pid in $(pgrep -P $serve -f render-host); do printf '%s ' "$(rss_mib "$pid")"; done)MiB" >&2
  fi
  sleep 5
done
wait $load
sample
echo "after the load: coordinator $(rss_kinds $serve)" >&2
for pid in $(pgrep -P $serve -f render-host); do echo "  host $pid: $(rss_kinds "$pid")" >&2; done
cat "$work/report.json"
echo
echo "highest resident memory over $duration: coordinator $max_coordinator MiB" \
  "(no mesh cache), render host $max_host MiB" \
  "(mesh cache $mesh_mb MiB + GPU cache $gpu_mb MiB)"
