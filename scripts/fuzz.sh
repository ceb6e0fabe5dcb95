#!/usr/bin/env bash
# Fuzzes every importer and wire decoder (tests/fuzz, cargo-fuzz on nightly), each for a set time,
# and prints a Markdown table of what it did: the rows docs/FUZZING.md keeps. Not part of CI.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 300 s, every target)
#
# The corpus grows in /var/tmp/parallax-fuzz-corpus/<target> across runs, seeded from
# tests/fuzz/seeds/<target> (and the real STEP files). A crashing input lands in
# tests/fuzz/artifacts/<target>/; fix it, then keep it as a regression test (docs/FUZZING.md).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${1:-300}
shift || true
all=(import_stl import_obj import_gltf import_step mesh_transfer frame_header render_connection space_socket host_link)
[ $# -gt 0 ] && targets=("$@") || targets=("${all[@]}")

scripts/setup.sh run >&2
rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal >&2
cargo fuzz --version >/dev/null 2>&1 || cargo install cargo-fuzz --locked >&2
export CARGO_TARGET_DIR=${PARALLAX_FUZZ_TARGET_DIR:-/var/tmp/parallax-fuzz-target}
corpora=${PARALLAX_FUZZ_CORPUS:-/var/tmp/parallax-fuzz-corpus}
logs=$(mktemp -d /tmp/parallax-fuzz.XXXXXX)

cd tests/fuzz
cargo +nightly fuzz build -O >&2
echo "| target | seconds | runs | runs/s | coverage | corpus | crashes |"
echo "|---|---|---|---|---|---|---|"
failed=0
for target in "${targets[@]}"; do
  corpus=$corpora/$target
  mkdir -p "$corpus" "artifacts/$target"
  [ -d "seeds/$target" ] && cp -n seeds/"$target"/* "$corpus"/ 2>/dev/null || true
  [ "$target" = import_step ] && cp -n "$root"/render/step/tests/data/*.st*p "$corpus"/ 2>/dev/null || true
  extra=()
  # OpenCascade crashes on some broken files (the conversion child's limits contain that): the
  # STEP target runs each input in a child of its own and goes on after a crash, counting them.
  # Its caches live as long as the process; they are not leaks of ours.
  [ "$target" = import_step ] && extra+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 -detect_leaks=0)
  set +e
  cargo +nightly fuzz run -O "$target" "$corpus" -- \
    -max_total_time="$seconds" -timeout=30 -rss_limit_mb=4096 -print_final_stats=1 "${extra[@]}" \
    >"$logs/$target.log" 2>&1
  status=$?
  set -e
  runs=$(grep -oE '^stat::number_of_executed_units: *[0-9]+' "$logs/$target.log" | grep -oE '[0-9]+$' \
    || grep -oE '^#[0-9]+: ' "$logs/$target.log" | tail -1 | grep -oE '[0-9]+' || echo 0)
  rate=$(grep -oE '^stat::average_exec_per_sec: *[0-9]+' "$logs/$target.log" | grep -oE '[0-9]+$' || echo 0)
  cov=$(grep -oE 'cov: [0-9]+' "$logs/$target.log" | tail -1 | grep -oE '[0-9]+' || echo 0)
  files=$(find "$corpus" -type f | wc -l)
  crashes=$(find "artifacts/$target" -type f | wc -l)
  [ $status -ne 0 ] && failed=1
  echo "| $target | $seconds | $runs | $rate | $cov | $files | $crashes |"
done
echo >&2 "logs in $logs"
exit $failed
