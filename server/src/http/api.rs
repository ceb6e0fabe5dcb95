//! The service's own probes under `/v1`: health and ping.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::base::error::{AppError, Result};
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/health", get(health_handler))
        .route("/v1/ping", get(ping_handler))
}

/// The cheapest answer the server can give: a liveness probe, and the baseline the API
/// benchmarks compare against.
#[utoipa::path(get, path = "/v1/ping", tag = "service", responses((status = 200, body = String, example = "pong")))]
pub(crate) async fn ping_handler() -> &'static str {
    "pong"
}

/// Liveness plus the renderer's state: 503 when frames cannot be rendered.
#[utoipa::path(get, path = "/v1/health", tag = "service",
    responses((status = 200, description = "Up, with the render adapter and the render pool per size"), (status = 503, description = "No GPU adapter could be opened", body = crate::base::error::ErrorBody)))]
pub(crate) async fn health_handler(State(state): State<AppState>) -> Result<Json<Value>> {
    let unopened = Ok("not opened yet: it opens with the first thumbnail".to_string());
    match state.renderer.adapter().unwrap_or(&unopened) {
        Ok(adapter) => Ok(Json(json!({
            "status": "ok",
            "renderer": adapter,
            "pool": state.sessions.pool_status(),
            "hosts": state.sessions.host_status(),
        }))),
        Err(e) => Err(AppError::unavailable(
            "RendererUnavailable",
            format!("renderer unavailable: {e}"),
        )),
    }
}
