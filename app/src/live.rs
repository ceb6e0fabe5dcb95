//! The browser headset's connection: `hello`, then selections as JSON and frames as binary,
//! reconnecting with backoff when the socket drops. Browser only.

use futures_util::{SinkExt, StreamExt};
use gloo_net::websocket::{Message, futures::WebSocket};
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use leptos::task::spawn_local;
use parallax_core::{ClientMessage, Follower, FrameHeader, ServerMessage};

use crate::headset::HeadsetView;

const MAX_BACKOFF_MS: u32 = 5_000;

/// Starts the connection loop once the page is live.
pub(crate) fn start(view: HeadsetView) {
    Effect::new(move |started: Option<()>| {
        if started.is_none() {
            spawn_local(run(view));
        }
    });
}

async fn run(view: HeadsetView) {
    let mut follower = Follower::default();
    let mut backoff_ms = 250;
    loop {
        match converse(view, &mut follower).await {
            Ok(()) => backoff_ms = 250,
            Err(reason) => leptos::logging::warn!("headset connection: {reason}"),
        }
        view.status.set("Reconnecting…".to_string());
        TimeoutFuture::new(backoff_ms).await;
        backoff_ms = (backoff_ms * 2).min(MAX_BACKOFF_MS);
    }
}

/// One conversation, until the socket closes.
async fn converse(view: HeadsetView, follower: &mut Follower) -> Result<(), String> {
    let socket = WebSocket::open(&socket_url("/v1/headset/ws")?).map_err(|e| e.to_string())?;
    let (mut outgoing, mut incoming) = socket.split();
    let hello = ClientMessage::Hello {
        token: None,
        device: Some("browser headset".to_string()),
    };
    outgoing
        .send(Message::Text(hello.to_json()))
        .await
        .map_err(|e| e.to_string())?;

    while let Some(message) = incoming.next().await {
        match message.map_err(|e| e.to_string())? {
            Message::Text(text) => match ServerMessage::parse(&text).map_err(|e| e.to_string())? {
                ServerMessage::Welcome { .. } => view.status.set("Connected".to_string()),
                ServerMessage::Selection { change, model } => {
                    if follower.handle_update(change) {
                        view.model.set(model);
                    }
                }
                ServerMessage::Error { message, .. } => view.status.set(message),
            },
            Message::Bytes(bytes) => {
                let (header, jpeg) = FrameHeader::decode(&bytes).map_err(|e| e.to_string())?;
                // A frame of an older selection than the one shown is stale: drop it.
                if follower.seen().is_some_and(|seen| header.change < seen) {
                    continue;
                }
                show_frame(view, jpeg)?;
                view.change.set(header.change.0);
                view.frames.update(|n| *n += 1);
            }
        }
    }
    Ok(())
}

fn show_frame(view: HeadsetView, jpeg: &[u8]) -> Result<(), String> {
    show_jpeg(view.frame_url, jpeg)
}

/// Puts `jpeg` in `frame_url` (an object URL), releasing the frame it replaces.
pub(crate) fn show_jpeg(frame_url: RwSignal<Option<String>>, jpeg: &[u8]) -> Result<(), String> {
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(jpeg));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("image/jpeg");
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options)
        .map_err(|e| format!("{e:?}"))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|e| format!("{e:?}"))?;
    if let Some(old) = frame_url.get_untracked() {
        // The old frame's bytes stay alive until their URL is revoked.
        let _ = web_sys::Url::revoke_object_url(&old);
    }
    frame_url.set(Some(url));
    Ok(())
}

/// `ws://host/path` (or `wss://` on https) for the page's own origin.
pub(crate) fn socket_url(path: &str) -> Result<String, String> {
    let location = window().location();
    let protocol = location.protocol().map_err(|e| format!("{e:?}"))?;
    let host = location.host().map_err(|e| format!("{e:?}"))?;
    let scheme = if protocol == "https:" { "wss" } else { "ws" };
    Ok(format!("{scheme}://{host}{path}"))
}
