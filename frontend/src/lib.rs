//! The browser entry point: hydrates the pages the server rendered. All UI lives in `parallax-app`.
//!
//! # Layout
//! - this file: `hydrate()`, which `scripts/build-web.sh` exports to the page's script.
#![recursion_limit = "256"]

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(parallax_app::App);
}
