#!/usr/bin/env bash
# Mutation testing of the pure crates (not part of CI: it builds and tests each mutant, about
# 5 s apiece on 2 cores, ~950 mutants in all). Installs cargo-mutants if missing. Extra arguments
# go to cargo mutants, e.g. `--file core/src/reliable.rs` for one file.
#
#   scripts/mutants.sh [core|render] [ARGS…]        (default: core, then render)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null || cargo install --locked cargo-mutants
export NODEVICE_SELECT=1
crates=(core render)
case "${1:-}" in
  core | render) crates=("$1"); shift ;;
esac
for crate in "${crates[@]}"; do
  cargo mutants -p "parallax-$crate" -j 2 --output "target/mutants-$crate" "$@"
done
