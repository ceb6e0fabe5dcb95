//! What the page's live connections share: their socket URL, how a conversation ends, the
//! welcome watchdog and the reconnect backoff; and the page's hooks for tests and benchmarks.
//! Browser only.

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;

use futures_util::future::{Either, select};
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use wasm_bindgen::JsValue;

const FIRST_BACKOFF_MS: u32 = 250;
const MAX_BACKOFF_MS: u32 = 3_000;
/// A connection that has not been welcomed by then is given up and tried again: a socket closed
/// while it was still opening can leave the browser's side waiting forever.
const WELCOME_WITHIN_MS: u32 = 5_000;

/// Why a conversation ended.
pub(crate) enum Ended {
    /// The connection dropped: try again.
    Dropped(String),
    /// The server ended it for good (left, removed, refused, taken): stop and say why.
    Closed(String),
}

/// Runs one conversation, which sets `welcomed` once the server has answered its hello; one not
/// welcomed within [`WELCOME_WITHIN_MS`] counts as dropped.
pub(crate) async fn welcomed_in_time(
    conversation: impl Future<Output = Ended>,
    welcomed: &Rc<Cell<bool>>,
) -> Ended {
    let watchdog = async {
        TimeoutFuture::new(WELCOME_WITHIN_MS).await;
        if welcomed.get() {
            std::future::pending::<()>().await;
        }
    };
    match select(std::pin::pin!(conversation), std::pin::pin!(watchdog)).await {
        Either::Left((ended, _)) => ended,
        Either::Right(((), _)) => Ended::Dropped("no welcome in time".into()),
    }
}

/// How long to wait before the next try: doubling up to [`MAX_BACKOFF_MS`], short again after a
/// conversation that had been welcomed (it worked until now).
pub(crate) struct Backoff(u32);

impl Default for Backoff {
    fn default() -> Self {
        Self(FIRST_BACKOFF_MS)
    }
}

impl Backoff {
    pub(crate) async fn wait(&mut self, was_welcomed: bool) {
        if was_welcomed {
            self.0 = FIRST_BACKOFF_MS;
        }
        // Anywhere in the second half of the wait: after a coordinator restart every page would
        // otherwise come back in the same millisecond.
        let half = self.0 / 2;
        TimeoutFuture::new(half + (js_sys::Math::random() * f64::from(half)) as u32).await;
        self.0 = (self.0 * 2).min(MAX_BACKOFF_MS);
    }
}

/// `ws://host/path` (or `wss://` on https) for the page's own origin.
pub(crate) fn socket_url(path: &str) -> Result<String, String> {
    let location = window().location();
    let protocol = location.protocol().map_err(|e| format!("{e:?}"))?;
    let host = location.host().map_err(|e| format!("{e:?}"))?;
    let scheme = if protocol == "https:" { "wss" } else { "ws" };
    Ok(format!("{scheme}://{host}{path}"))
}

/// A hook of the page's, `window.<name>`: a switch a test sets, or what the page shows tests and
/// benchmarks (where the model is, frame latencies). Plain page globals, not a browser API.
pub(crate) fn hook(name: &str) -> JsValue {
    js_sys::Reflect::get(&window(), &name.into()).unwrap_or_default()
}

/// Sets the page's hook `window.<name>` (see [`hook`]).
pub(crate) fn set_hook(name: &str, value: &JsValue) {
    let _ = js_sys::Reflect::set(&window(), &name.into(), value);
}
