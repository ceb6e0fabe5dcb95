#!/usr/bin/env bash
# The Playwright suite in Debian's Chromium, against debug `parallax serve` processes this script
# starts and stops (build them first: scripts/test.sh does, or `cargo build -p parallax-server -p parallax-step`
# and scripts/build-web.sh). Extra arguments go to `playwright test` (e.g. -g "WebXR").
#
# The browser reaches Parallax as a headset on the showroom network does: over https at a name
# that is not localhost (Chromium maps parallax.test to 127.0.0.1), trusting the certificate
# authority the server made — put in an NSS database of the browser's own, never "ignore
# certificate errors". A second server with --tls off is the page over plain http.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target_dir=${CARGO_TARGET_DIR:-target}
export NODEVICE_SELECT=${NODEVICE_SELECT:-1}
logs=${PARALLAX_E2E_LOGS:-$(mktemp -d /tmp/parallax-e2e-logs.XXXXXX)}
work=$(mktemp -d /tmp/parallax-e2e.XXXXXX)
name=parallax.test

# Starts `parallax serve` with the given flags, logging to $logs/$1.log; sets $started_port. (Not
# called in a command substitution: that subshell's `pids` would be lost, and the servers with it.)
start_server() {
  local log="$logs/$1.log"; shift
  "$target_dir/debug/parallax" serve --addr 127.0.0.1:0 --site-root "$root/target/site" "$@" >"$log" 2>&1 &
  pids+=($!)
  started_port=
  for _ in $(seq 1 600); do
    started_port=$(grep -Eo 'listening on https?://[0-9.]+:[0-9]+' "$log" | head -1 | sed 's/.*://') || true
    [ -n "$started_port" ] && return
    kill -0 "${pids[-1]}" 2>/dev/null || { cat "$log" >&2; echo "the server died during start-up" >&2; exit 1; }
    sleep 0.1
  done
  cat "$log" >&2; echo "the server did not start within 60 s" >&2; exit 1
}
pids=()
trap 'for p in "${pids[@]}"; do kill $p 2>/dev/null || true; wait $p 2>/dev/null || true; done' EXIT

# An operator account for the console tests: its id and key, as `account create` prints them.
account=$("$target_dir/debug/parallax" account create "End-to-end" --data-dir "$work/data")
export PARALLAX_E2E_ACCOUNT=$(printf '%s\n' "$account" | awk '/^account id:/ {print $3}')
export PARALLAX_E2E_KEY=$(printf '%s\n' "$account" | awk '/^account key:/ {print $3}')
# Twenty Standard hosts: the tests' browser headsets (fifteen, and room to grow) hold their sessions until the run ends.
# They are all one account's (its guests' included), and its spaces outlast their tests: no quota
# of sessions or spaces, as an operator with one account would run it.
start_server server --data-dir "$work/data" --standard 20 --tls-name "$name" \
  --account-sessions 0 --account-spaces 0
port=$started_port
start_server plain --data-dir "$work/plain" --tls off --standard 0 --premium 0 --standard-standby 0
plain_port=$started_port
export PARALLAX_URL="https://$name:$port"
export PARALLAX_PLAIN_URL="http://$name:$plain_port"
echo "servers at $PARALLAX_URL and $PARALLAX_PLAIN_URL" >&2

# The browser trusts the server's authority: an NSS database in a home of its own.
export PARALLAX_BROWSER_HOME="$work/browser-home"
mkdir -p "$PARALLAX_BROWSER_HOME/.pki/nssdb"
certutil -d "sql:$PARALLAX_BROWSER_HOME/.pki/nssdb" -N --empty-password
certutil -d "sql:$PARALLAX_BROWSER_HOME/.pki/nssdb" -A -t "C,," -n "Parallax e2e CA" -i "$work/data/tls/ca.crt"
# Playwright's own requests (Node) trust it too.
export NODE_EXTRA_CA_CERTS="$work/data/tls/ca.crt"

# Certificates signed with the authority's own key, as a thief of the key would sign them: one
# for another site (evil.example), one for the coordinator's own name. The trust test serves each
# and watches Chromium refuse the first (the authority's name constraints) and accept the second.
forged="$work/forged"
mkdir -p "$forged"
for forged_name in evil.example "$name"; do
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$forged_name" \
    -keyout "$forged/$forged_name.key" -out "$forged/$forged_name.csr" 2>/dev/null
  printf 'subjectAltName=DNS:%s\nextendedKeyUsage=serverAuth\n' "$forged_name" >"$forged/$forged_name.ext"
  openssl x509 -req -in "$forged/$forged_name.csr" -CA "$work/data/tls/ca.crt" -CAkey "$work/data/tls/ca.key" \
    -CAcreateserial -days 2 -extfile "$forged/$forged_name.ext" -out "$forged/$forged_name.crt" 2>/dev/null
done
export PARALLAX_E2E_FORGED="$forged"

status=0
(cd end2end && npx playwright test "$@") 2>&1 | tee "$logs/playwright.log" || status=$?
for p in "${pids[@]}"; do
  kill -TERM "$p"
  wait "$p" || { echo "a server did not exit cleanly on SIGTERM" >&2; status=1; }
done
pids=()
exit $status
