#!/usr/bin/env bash
# Refreshes tests/advisory-db.tar.gz, the snapshot of the RustSec advisory database that
# `scripts/test.sh` runs `cargo audit` against (the build machines cannot reach GitHub, where the
# database lives). Run it on a machine that can, then commit the tarball; the commit it was made
# from is in the tarball's advisory-db/SNAPSHOT.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git clone -q --depth 1 https://github.com/rustsec/advisory-db "$work/advisory-db"
commit=$(git -C "$work/advisory-db" rev-parse HEAD)
date=$(git -C "$work/advisory-db" log -1 --format=%cs)
rm -rf "$work/advisory-db/.git" "$work/advisory-db/.github"
echo "rustsec/advisory-db $commit ($date)" > "$work/advisory-db/SNAPSHOT"
tar -C "$work" -czf tests/advisory-db.tar.gz --sort=name --mtime="$date 00:00Z" \
  --owner=0 --group=0 --numeric-owner advisory-db
echo "tests/advisory-db.tar.gz: rustsec/advisory-db $commit ($date)"
