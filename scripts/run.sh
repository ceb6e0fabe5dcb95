#!/usr/bin/env bash
# Runs Parallax with the embedded defaults: a SQLite file in ./data, a local render thread, the
# web app on http://127.0.0.1:3000. Installs what is missing first; extra arguments go to
# `parallax serve` (e.g. --addr 0.0.0.0:3000 so tablets and headsets on the LAN can reach it).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh run
scripts/build-web.sh
cargo build --locked --release -p parallax-server
# Mesa's lavapipe otherwise warns about XDG_RUNTIME_DIR on every start.
export NODEVICE_SELECT=${NODEVICE_SELECT:-1}
exec "${CARGO_TARGET_DIR:-target}/release/parallax" serve "$@"
