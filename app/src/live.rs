//! What the page's live connections share. Browser only.

use leptos::prelude::*;

/// `ws://host/path` (or `wss://` on https) for the page's own origin.
pub(crate) fn socket_url(path: &str) -> Result<String, String> {
    let location = window().location();
    let protocol = location.protocol().map_err(|e| format!("{e:?}"))?;
    let host = location.host().map_err(|e| format!("{e:?}"))?;
    let scheme = if protocol == "https:" { "wss" } else { "ws" };
    Ok(format!("{scheme}://{host}{path}"))
}
