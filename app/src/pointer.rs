//! Where a pointer event happened, read the same way in both builds.

/// Where a pointer event happened in the page's viewport (CSS pixels). web-sys reads it as `i32`
/// in its stable API and as `f64` under `web_sys_unstable_apis`, which the browser build sets for
/// WebXR and WebCodecs; the server build compiles the same handlers without it.
#[allow(clippy::useless_conversion)]
pub(crate) fn client_point(ev: &leptos::ev::MouseEvent) -> (f64, f64) {
    (f64::from(ev.client_x()), f64::from(ev.client_y()))
}
