//! The coordinator's REST API from the browser. The session cookie authenticates every call
//! (same origin); a member token goes in `Parallax-Member`. On the server (SSR) there is no
//! browser to call from: pages only call these from effects and event handlers.

// JSON as it goes on the wire: a request's body, built with `json!` where only some fields are
// written (a properties patch), and an answer until [`call_as`] reads it as its type.
use serde_json::Value;

/// A refused or failed call, as a person should read it.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status (0: the request did not get through).
    pub status: u16,
    /// The API's error code, e.g. `NotArbiter`.
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl ApiError {
    pub fn signed_out(&self) -> bool {
        self.status == 401
    }
}

/// `method path` with an optional JSON body, as `member` if given.
#[cfg(feature = "hydrate")]
pub async fn call(
    method: &str,
    path: &str,
    body: Option<&Value>,
    member: Option<&str>,
) -> Result<Value, ApiError> {
    use gloo_net::http::RequestBuilder;

    let offline = |e: gloo_net::Error| ApiError {
        status: 0,
        code: "Offline".into(),
        message: format!("The coordinator could not be reached ({e})."),
    };
    let mut request = RequestBuilder::new(path).method(method.parse().unwrap_or_default());
    if let Some(member) = member {
        request = request.header("Parallax-Member", member);
    }
    let response = match body {
        Some(body) => request.json(body).map_err(offline)?.send().await,
        None => request.send().await,
    }
    .map_err(offline)?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if (200..300).contains(&status) {
        // Free-form until the caller reads it as its type ([`call_as`]); a 204 has no body.
        return Ok(serde_json::from_str(&text).unwrap_or(Value::Null));
    }
    Err(
        match serde_json::from_str::<parallax_core::api::ErrorBody>(&text) {
            Ok(body) => ApiError {
                status,
                code: body.error.code,
                message: body.error.message,
            },
            Err(_) => ApiError {
                status,
                code: String::new(),
                message: format!("The coordinator answered {status}."),
            },
        },
    )
}

#[cfg(not(feature = "hydrate"))]
pub async fn call(
    _method: &str,
    _path: &str,
    _body: Option<&Value>,
    _member: Option<&str>,
) -> Result<Value, ApiError> {
    Err(ApiError {
        status: 0,
        code: "NotInBrowser".into(),
        message: "only the browser calls the API".into(),
    })
}

/// `GET path`, read as the API's type `T` (`parallax_core::api`): an answer without a field the
/// page needs is an error it shows, not an empty cell.
pub async fn get_as<T: serde::de::DeserializeOwned>(path: &str) -> Result<T, ApiError> {
    call_as("GET", path, None, None).await
}

/// [`call`], its answer read as the API's type `T`, as [`get_as`] reads it.
pub async fn call_as<T: serde::de::DeserializeOwned>(
    method: &str,
    path: &str,
    body: Option<&Value>,
    member: Option<&str>,
) -> Result<T, ApiError> {
    let value = call(method, path, body, member).await?;
    serde_json::from_value(value).map_err(|e| ApiError {
        status: 200,
        code: "UnexpectedAnswer".into(),
        message: format!("The coordinator's answer to {method} {path} was not understood ({e})."),
    })
}

/// The membership (member id, member token) this browser holds in `space` as `role` (`tablet`
/// or `headset`), kept across reloads.
pub fn member(role: &str, space: &str) -> Option<(String, String)> {
    let stored = storage()?.get_item(&key(role, space)).ok().flatten()?;
    let (id, token) = stored.split_once(':')?;
    Some((id.to_string(), token.to_string()))
}

pub fn remember_member(role: &str, space: &str, id: &str, token: &str) {
    if let Some(storage) = storage() {
        let _ = storage.set_item(&key(role, space), &format!("{id}:{token}"));
    }
}

pub fn forget_member(role: &str, space: &str) {
    if let Some(storage) = storage() {
        let _ = storage.remove_item(&key(role, space));
    }
}

fn key(role: &str, space: &str) -> String {
    format!("parallax.{role}.{space}")
}

#[cfg(feature = "hydrate")]
fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

#[cfg(not(feature = "hydrate"))]
fn storage() -> Option<NoStorage> {
    None
}

/// What SSR has instead of `localStorage`: nothing.
#[cfg(not(feature = "hydrate"))]
struct NoStorage;

#[cfg(not(feature = "hydrate"))]
impl NoStorage {
    fn get_item(&self, _: &str) -> Result<Option<String>, ()> {
        Ok(None)
    }
    fn set_item(&self, _: &str, _: &str) -> Result<(), ()> {
        Ok(())
    }
    fn remove_item(&self, _: &str) -> Result<(), ()> {
        Ok(())
    }
}
