#!/usr/bin/env bash
# Runs Parallax with the embedded defaults: a SQLite file in ./data, local render hosts, the web
# app on https://localhost:3000 (a certificate authority of its own in ./data/tls). Installs what is missing first; extra arguments go to
# `parallax serve` (e.g. --addr 0.0.0.0:3000 so tablets and headsets on the LAN can reach it).
set -euo pipefail
cd "$(dirname "$0")/.."

# The server's release build is the longest step and needs nothing but cargo: it starts first, and
# the tools, the web bundle and it share the machine's cores from then on (their lines are marked).
( set -o pipefail; cargo build --locked --release -p parallax-server -p parallax-step 2>&1 | sed -u 's/^/[server] /' ) &
server_build=$!
trap 'pkill -P $server_build 2>/dev/null || true' EXIT
scripts/setup.sh run
scripts/build-web.sh 2>&1 | sed -u 's/^/[web] /'
wait $server_build
trap - EXIT
# Mesa's lavapipe otherwise warns about XDG_RUNTIME_DIR on every start.
export NODEVICE_SELECT=${NODEVICE_SELECT:-1}
exec "${CARGO_TARGET_DIR:-target}/release/parallax" serve "$@"
