//! The service's own probes under `/v1`: health and ping.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use parallax_core::api::Health;

use crate::accounts::keys::secret_matches;
use crate::base::error::{AppError, Result};
use crate::http::auth;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/health", get(health_handler))
        .route("/v1/ping", get(ping_handler))
}

/// The cheapest answer the server can give: a liveness probe, and the baseline the API
/// benchmarks compare against.
#[utoipa::path(get, path = "/v1/ping", operation_id = "ping", tag = "service", responses((status = 200, body = String, example = "pong")))]
pub(crate) async fn ping_handler() -> &'static str {
    "pong"
}

/// Liveness plus the renderer's state: 503 when frames cannot be rendered. Anyone may ask whether
/// the service is up; the adapter, the pool and each host's endpoint and process are for an
/// account's token or the operator's `--metrics-token`.
#[utoipa::path(get, path = "/v1/health", operation_id = "health", tag = "service",
    security((), ("access_token" = []), ("session_cookie" = []), ("metrics_token" = [])),
    responses((status = 200, description = "Up; for an account or the operator also the render adapter, the pool per size and the hosts", body = Health), (status = 503, description = "No GPU adapter could be opened", body = crate::base::error::ErrorBody)))]
pub(crate) async fn health_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Health>> {
    let unopened = Ok("not opened yet: it opens with the first thumbnail".to_string());
    let renderer = state.catalog.renderer();
    let operator = auth::bearer(&headers).is_ok_and(|b| {
        state
            .metrics_token
            .as_ref()
            .is_some_and(|token| secret_matches(b, token))
    }) || auth::access_token(&headers)
        .ok()
        .and_then(|token| state.tokens.verify(&token).ok())
        .is_some_and(|claims| claims.space.is_none());
    match renderer.as_ref().unwrap_or(&unopened) {
        Ok(_) if !operator => Ok(Json(Health {
            status: "ok".into(),
            renderer: None,
            pool: None,
            hosts: None,
        })),
        Ok(adapter) => Ok(Json(Health {
            status: "ok".into(),
            renderer: Some(adapter.clone()),
            pool: Some(state.sessions.pool_status()),
            hosts: Some(state.sessions.host_status()),
        })),
        Err(_) if !operator => Err(AppError::unavailable(
            "RendererUnavailable",
            "the renderer is unavailable",
        )),
        Err(e) => Err(AppError::unavailable(
            "RendererUnavailable",
            format!("renderer unavailable: {e}"),
        )),
    }
}
