//! What every WebSocket (and connection) the server accepts has in common.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::base::error::AppError;
use crate::spaces::outlet::Upgraded;

/// A WebSocket upgrade whose socket the handler gets as it is, for [`crate::spaces::outlet`] to share
/// (axum's extractor hands out only its own `WebSocket`). HTTP/1.1, RFC 6455.
pub(crate) struct RawUpgrade {
    on_upgrade: OnUpgrade,
    accept: String,
}

impl<S: Send + Sync> FromRequestParts<S> for RawUpgrade {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let has = |name: header::HeaderName, token: &str| {
            parts.headers.get_all(name).iter().any(|value| {
                value
                    .as_bytes()
                    .split(|&b| b == b',')
                    .any(|v| v.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
            })
        };
        if parts.method != Method::GET
            || !has(header::CONNECTION, "upgrade")
            || !has(header::UPGRADE, "websocket")
        {
            return Err(AppError::client(
                StatusCode::UPGRADE_REQUIRED,
                "UpgradeRequired",
                "this is a WebSocket: send a GET with Connection: upgrade and Upgrade: websocket",
            ));
        }
        if !has(header::SEC_WEBSOCKET_VERSION, "13") {
            return Err(AppError::bad_request(
                "Sec-WebSocket-Version must be 13",
                Some("Sec-WebSocket-Version"),
            ));
        }
        let key = parts
            .headers
            .get(header::SEC_WEBSOCKET_KEY)
            .ok_or_else(|| {
                AppError::bad_request(
                    "the Sec-WebSocket-Key header is missing",
                    Some("Sec-WebSocket-Key"),
                )
            })?;
        let accept = derive_accept_key(key.as_bytes());
        let on_upgrade = parts.extensions.remove::<OnUpgrade>().ok_or_else(|| {
            AppError::bad_request("this connection cannot be upgraded to a WebSocket", None)
        })?;
        Ok(Self { on_upgrade, accept })
    }
}

impl RawUpgrade {
    /// Answers 101 Switching Protocols; `then` gets the socket once the answer is sent.
    pub(crate) fn on_upgrade<F, Fut>(self, then: F) -> Response
    where
        F: FnOnce(Upgraded) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        tokio::spawn(async move {
            match self.on_upgrade.await {
                Ok(upgraded) => then(TokioIo::new(upgraded)).await,
                Err(e) => tracing::debug!("a WebSocket upgrade did not complete: {e}"),
            }
        });
        (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (header::CONNECTION, HeaderValue::from_static("upgrade")),
                (header::UPGRADE, HeaderValue::from_static("websocket")),
                (
                    header::SEC_WEBSOCKET_ACCEPT,
                    HeaderValue::from_str(&self.accept).expect("base64 is a header value"),
                ),
            ],
        )
            .into_response()
    }
}
