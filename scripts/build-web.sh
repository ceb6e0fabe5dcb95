#!/usr/bin/env bash
# Builds the browser bundle into target/site: the hydrating wasm (wasm-bindgen + wasm-opt), the
# stylesheet and public/. Does what `cargo leptos build` would, without its 15-minute install.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/end2end/node_modules/.bin:$HOME/.cargo/bin:$PATH"

target_dir=${CARGO_TARGET_DIR:-target}
site=target/site
wasm="$target_dir/wasm32-unknown-unknown/wasm-release/parallax_frontend.wasm"

cargo build --locked -p parallax-frontend --lib --features hydrate \
  --target wasm32-unknown-unknown --profile wasm-release
mkdir -p "$site/pkg"
wasm-bindgen --target web --no-typescript --out-dir "$site/pkg" --out-name parallax "$wasm"
# binaryen's wasm-opt from npm; Debian's v108 silently breaks the bundle (see SETUP notes).
wasm-opt -Oz --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-reference-types --enable-multivalue --enable-mutable-globals \
  -o "$site/pkg/parallax_bg.wasm" "$site/pkg/parallax_bg.wasm"
cp style/main.css "$site/pkg/parallax.css"
cp -R public/. "$site/"
printf 'web bundle: %s (%s KiB wasm)\n' "$site" "$(( $(stat -c %s "$site/pkg/parallax_bg.wasm") / 1024 ))" >&2
