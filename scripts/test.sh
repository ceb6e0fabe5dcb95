#!/usr/bin/env bash
# Runs every test Parallax has: formatting, clippy (native and wasm), the Rust test suites, the
# web bundle build, and the Playwright suite in Debian's Chromium against a server this script
# starts and stops. Installs what is missing first. Ends with one line: "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# With PARALLAX_BLESS set, the golden test rewrites its references instead of comparing with them:
# such a run would prove nothing, so it does not start (CI runs this script too).
if [ -n "${PARALLAX_BLESS+set}" ]; then
  echo "PARALLAX_BLESS is set: the golden test would rewrite its references instead of checking them; unset it and run again" >&2
  exit 2
fi

scripts/setup.sh all
export NODEVICE_SELECT=${NODEVICE_SELECT:-1}
target_dir=${CARGO_TARGET_DIR:-target}
logs=$(mktemp -d /tmp/parallax-test.XXXXXX)
started=$(date +%s)

step() { printf '\n\033[1;34m==> %s\033[0m (%ss)\n' "$*" "$(( $(date +%s) - started ))" >&2; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "parallax-host stays apart from the coordinator"
# The render host runs on GPU machines of its own: none of the coordinator's crates may come with it.
if cargo tree --locked -p parallax-host -e normal,build --prefix none | grep -E '^(parallax-server|parallax-app|sqlx|leptos)[ _-]'; then
  echo "parallax-host must not depend on the crates above" >&2
  exit 1
fi

step "the default build has no kube"
# The Kubernetes provisioner is the server's feature `kubernetes`: without it, none of its crates.
if cargo tree --locked -p parallax-server -e normal,build --prefix none | grep -E '^(kube|k8s-openapi)[ -]'; then
  echo "the default build must not depend on kube" >&2
  exit 1
fi

step "no RSA in the build"
# Tokens are HS256 only (server/src/accounts/hs256.rs); `rsa` has an advisory with no fix
# (RUSTSEC-2023-0071). It is still named in Cargo.lock through sqlx-mysql, which sqlx lists but
# this build never compiles; what is compiled must not include it.
if [ -n "$(cargo tree --locked --workspace --all-features -e normal,build -i rsa 2>/dev/null)" ]; then
  cargo tree --locked --workspace --all-features -e normal,build -i rsa >&2
  echo "something brought rsa back into the build" >&2
  exit 1
fi

step "cargo audit (RustSec advisories)"
# Against the database snapshot in tests/ (scripts/update-advisory-db.sh refreshes it where GitHub
# is reachable; the build machines are not). One exception: RUSTSEC-2023-0071 in `rsa`, which
# Cargo.lock names only through sqlx's MySQL driver, never compiled (the step above checks).
rm -rf "$target_dir/advisory-db"
mkdir -p "$target_dir"
tar -C "$target_dir" -xzf tests/advisory-db.tar.gz
head -1 "$target_dir/advisory-db/SNAPSHOT" >&2
cargo audit --db "$target_dir/advisory-db" --no-fetch --stale --deny unsound \
  --ignore RUSTSEC-2023-0071

step "deploy/: rendered, validated against Kubernetes' schemas, policies, Dockerfile"
scripts/deploy-check.sh

step "cargo clippy (native)"
cargo clippy --locked --workspace --all-targets -- -D warnings

step "cargo clippy (wasm front end)"
cargo clippy --locked -p parallax-frontend --features hydrate --target wasm32-unknown-unknown -- -D warnings

step "cargo test --workspace"
cargo test --locked --workspace 2>&1 | tee "$logs/cargo-test.log"

step "the server's feature kubernetes: clippy and its tests"
cargo clippy --locked -p parallax-server --features kubernetes --lib --tests -- -D warnings
# Its unit tests, and `parallax serve --render-hosts kubernetes` against a stand-in API server.
cargo test --locked -p parallax-server --features kubernetes --lib pool::kubernetes 2>&1 | tee -a "$logs/cargo-test.log"
cargo test --locked -p parallax-server --features kubernetes --test kubernetes 2>&1 | tee -a "$logs/cargo-test.log"

step "web bundle (wasm-bindgen + wasm-opt)"
scripts/build-web.sh

step "Playwright in Chromium"
PARALLAX_E2E_LOGS=$logs scripts/e2e.sh

rust_passed=$(grep -o '[0-9]* passed' "$logs/cargo-test.log" | awk '{s+=$1} END {print s+0}')
rust_failed=$(grep -o '[0-9]* failed' "$logs/cargo-test.log" | awk '{s+=$1} END {print s+0}')
e2e_passed=$(grep -Eo '^ *[0-9]+ passed' "$logs/playwright.log" | awk '{s+=$1} END {print s+0}')
step "done"
echo "$(( rust_passed + e2e_passed )) passed, ${rust_failed} failed"
