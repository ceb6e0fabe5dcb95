#!/usr/bin/env bash
# Where each crashing input of a fuzz target crashes: runs the target's binary (built by
# scripts/fuzz.sh) on every tests/fuzz/artifacts/<target>/crash-* alone and counts the first
# symbolised stack frame of each. Not part of CI.
#
#   scripts/fuzz-triage.sh [TARGET]        (default: import_step)
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:-import_step}
bin=${PARALLAX_FUZZ_TARGET_DIR:-/var/tmp/parallax-fuzz-target}/x86_64-unknown-linux-gnu/release/$target
[ -x "$bin" ] || { echo "no $bin: run scripts/fuzz.sh first" >&2; exit 1; }
for input in tests/fuzz/artifacts/"$target"/crash-*; do
  [ -e "$input" ] || continue
  frame=$(timeout 60 "$bin" "$input" 2>&1 \
    | grep -m1 -E '^ *#[0-9]+ 0x[0-9a-f]+ in ' \
    | sed -E 's/^ *#[0-9]+ 0x[0-9a-f]+ in ([^( ]+).*/\1/' || true)
  echo "${frame:-(no crash when run alone)}"
done | sort | uniq -c | sort -rn
