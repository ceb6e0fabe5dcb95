#!/usr/bin/env bash
# Big models end to end. For each size, the generated assembly (`samples::assembly`: shafts of
# 10,000 triangles in racks of 50) is written as a binary glTF with a node per part, uploaded to
# a release `parallax serve` of its own, converted by its child process, and loaded by a headset
# (`parallax-headset join`, 640x360, 30 Hz poses) on a Premium render session. Printed per size:
# the conversion's time and the most memory it held, the converted mesh and its coarse form on
# disk, the time from the headset asking for the model to its first frame (the coarse form) and
# to its first full-detail frame, and the render host's resident memory then and at its peak.
#
#   scripts/bench-big-load.sh [MILLIONS|copies:N|FILE...]     (1 5 20)
#
# `copies:N` uploads one 188,000-triangle part placed by N glTF nodes (a part used N times); a
# FILE (a STEP, glTF, OBJ or STL file) is uploaded as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1 5 20)
target=${CARGO_TARGET_DIR:-target}
export NODEVICE_SELECT=1

cargo build --locked --release -p parallax-server -p parallax-step -p parallax-headset
cargo build --locked --release -p parallax-render --example assembly_glb
work=$(mktemp -d /tmp/parallax-big.XXXXXX)
serve=
headset=
stop() {
  for pid in $headset $serve; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap 'stop; rm -rf "$work"' EXIT
mib() { awk -v f="$2" '$1 == f {printf "%.0f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo 0; }
in_mib() { python3 -c "print(f'{$1 / 1048576:.1f}')"; }
json() { python3 -c "import json, sys; print(json.load(sys.stdin)$1)"; }

printf '| model (triangles) | file | conversion | its peak RSS | mesh on disk (B/triangle) | coarse form (triangles) | first frame | full detail | host RSS (peak) |\n'
printf '|---|---|---|---|---|---|---|---|---|\n'
for millions in "${sizes[@]}"; do
  if [ -f "$millions" ]; then
    file=$millions
    millions=$(basename "$file")
  elif [[ $millions == copies:* ]]; then
    file=$work/copies.glb
    "$target/release/examples/assembly_glb" "$millions" "$file" 2>/dev/null
  else
    file=$work/racks.glb
    "$target/release/examples/assembly_glb" "$((millions * 1000000))" "$file" 2>/dev/null
  fi
  data=$work/data-$millions
  account=$("$target/release/parallax" account create big --data-dir "$data")
  id=$(awk '/^account id:/ {print $3}' <<<"$account")
  key=$(awk '/^account key:/ {print $3}' <<<"$account")
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  url=http://127.0.0.1:$port
  RUST_LOG=info "$target/release/parallax" serve --addr "127.0.0.1:$port" --data-dir "$data" \
    --site-root /nonexistent --standard 1 --standard-standby 0 --premium 1 --premium-standby 1 \
    --poll-interval-ms 0 --tls off --max-upload-mb 2048 >"$work/serve-$millions.log" 2>&1 &
  serve=$!
  until curl -sf -o /dev/null "$url/v1/ping"; do sleep 0.2; done
  token=$(curl -sf -H "Authorization: Bearer $id:$key" "$url/accounts/$id/token" | json '["AccessToken"]')

  model=$(curl -sf -H "Authorization: Bearer $token" -F "file=@$file" -F "name=Racks" \
    "$url/v1/models" | json '["id"]')
  status=Converting
  while [ "$status" = Converting ]; do
    sleep 0.5
    status=$(curl -sf -H "Authorization: Bearer $token" "$url/v1/models/$model" | json '["status"]')
  done
  triangles=$(curl -sf -H "Authorization: Bearer $token" "$url/v1/models/$model" | json '["triangles"]')
  [ "$status" = Ready ] || { echo "the conversion ended $status" >&2; tail -5 "$work/serve-$millions.log" >&2; exit 1; }
  converted=$(grep -o 'conversion ended.*' "$work/serve-$millions.log" | tail -1)
  seconds=$(sed -E 's/.* in ([0-9.]+) s.*/\1/' <<<"$converted")
  peak=$(sed -E 's/.*at most ([0-9]+) MiB.*/\1/' <<<"$converted")
  folder=$(dirname "$(find "$data/models" -name .parallax-mesh | head -1)")
  mesh_bytes=$(stat -c %s "$folder/.parallax-mesh")
  coarse_bytes=$(stat -c %s "$folder/.parallax-preview" 2>/dev/null || echo 0)

  # A space whose headsets render on Premium sessions, showing the model; then one headset.
  member=$(curl -sf -X PUT -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"template":"default","constants":{"renderSize":"Premium"},"device":"tablet","role":"tablet"}' \
    "$url/v1/spaces/racks" | json '["member"]["token"]')
  curl -sf -o /dev/null -X PATCH -H "Authorization: Bearer $token" -H "Parallax-Member: $member" -H 'Content-Type: application/json' \
    -d "{\"selectedModel\":\"$model\"}" "$url/v1/spaces/racks/properties"
  "$target/release/parallax-headset" join --server "$url" --account "$id" --key "$key" \
    --space racks --width 640 --height 360 >"$work/headset-$millions.log" 2>&1 &
  headset=$!
  for _ in $(seq 1200); do
    grep -q 'first full-detail frame' "$work/headset-$millions.log" && break
    kill -0 $headset 2>/dev/null || break
    sleep 0.1
  done
  host=$(pgrep -P $serve -f render-host | head -1)
  sleep 2
  host_rss=$(mib "$host" VmRSS:)
  host_peak=$(mib "$host" VmHWM:)
  first=$(grep -oE 'first frame of .* after [0-9]+ ms' "$work/headset-$millions.log" | grep -oE '[0-9]+ ms' || echo '-')
  full=$(grep -oE 'first full-detail frame of .* after [0-9]+ ms' "$work/headset-$millions.log" | grep -oE '[0-9]+ ms' || echo '-')
  coarse=$(grep -oE 'coarse: [0-9]+ triangles' "$work/headset-$millions.log" | grep -oE '[0-9]+' || echo 0)
  printf '| %s (%s) | %s MiB | %s s | %s MiB | %s MiB (%s) | %s MiB (%s) | %s | %s | %s MiB (%s MiB) |\n' \
    "$millions" "$triangles" "$(in_mib "$(stat -c %s "$file")")" "$seconds" "$peak" \
    "$(in_mib "$mesh_bytes")" "$(python3 -c "print(f'{$mesh_bytes / $triangles:.1f}')")" \
    "$(in_mib "$coarse_bytes")" "$coarse" "$first" "$full" "$host_rss" "$host_peak"
  if [ "$full" = '-' ]; then cat "$work/headset-$millions.log" >&2; fi
  stop
  headset=
  serve=
  grep -E "fetched a model|uploaded a model" "$work/serve-$millions.log" | sed "s/\x1b\[[0-9;]*m//g" >&2 || true
  rm -rf "$data"
done
