#!/usr/bin/env bash
# Whole-process time of `parallax render` against `f3d --output` on the same 188k-triangle binary
# STL at 1280x720, run alternately, N rounds each (default 15). Prints the medians and the ratio.
#   scripts/bench-render-vs-f3d.sh [ROUNDS]
# Needs Debian's f3d and xvfb (installed here if missing): f3d 1.3 needs an X display, so one
# Xvfb is started for the whole run and not counted.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-15}
command -v f3d >/dev/null && command -v Xvfb >/dev/null ||
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends f3d xvfb >/dev/null; }
export NODEVICE_SELECT=1
work=$(mktemp -d /tmp/parallax-vs-f3d.XXXXXX)
cargo run -q --release -p parallax-render --example dense_stl -- 188000 "$work/part.stl"
cargo build -q --release -p parallax-server
parallax="${CARGO_TARGET_DIR:-target}/release/parallax"

Xvfb :97 -screen 0 1920x1080x24 >/dev/null 2>&1 &
xvfb=$!
trap 'kill $xvfb 2>/dev/null || true; rm -rf "$work"' EXIT
sleep 1

ms() { local t0 t1; t0=$(date +%s%N); "$@" >/dev/null 2>&1; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); }
ours=(); theirs=()
for _ in $(seq 1 "$rounds"); do
  ours+=("$(ms "$parallax" render "$work/part.stl" --output "$work/ours.png" --size 1280x720)")
  theirs+=("$(ms env DISPLAY=:97 f3d --output "$work/f3d.png" --resolution 1280,720 "$work/part.stl")")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
m_ours=$(median "${ours[@]}"); m_theirs=$(median "${theirs[@]}")
echo "188k-triangle STL -> 1280x720 PNG, $rounds alternating runs each"
echo "parallax render: median ${m_ours} ms   (all: ${ours[*]})"
echo "f3d --output:    median ${m_theirs} ms   (all: ${theirs[*]})"
awk -v a="$m_theirs" -v b="$m_ours" 'BEGIN {printf "parallax is %.2fx faster\n", a / b}'
