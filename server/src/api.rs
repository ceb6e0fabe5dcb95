//! The JSON API under `/v1`: health, the catalog, and the space's selection.

use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::routing::get;
use axum::{Json, Router};
use parallax_core::{ChangeNumber, ModelId, ModelSummary};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{AppError, Result};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/health", get(health_handler))
        .route("/v1/ping", get(ping_handler))
        .route("/v1/selection", get(selection_handler).put(select_handler))
}

/// The cheapest answer the server can give: a liveness probe, and the baseline the API
/// benchmarks compare against.
#[utoipa::path(get, path = "/v1/ping", tag = "service", responses((status = 200, body = String, example = "pong")))]
pub(crate) async fn ping_handler() -> &'static str {
    "pong"
}

/// Liveness plus the renderer's state: 503 when frames cannot be rendered.
#[utoipa::path(get, path = "/v1/health", tag = "service",
    responses((status = 200, description = "Up, with the render adapter and the render pool per size"), (status = 503, description = "No GPU adapter could be opened", body = crate::error::ErrorBody)))]
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

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SelectionBody {
    change: ChangeNumber,
    model: Option<ModelSummary>,
}

async fn selection_handler(State(state): State<AppState>) -> Json<SelectionBody> {
    let showing = state.stage.subscribe().borrow().clone();
    Json(SelectionBody {
        change: showing.change,
        model: showing.model,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SelectRequest {
    model_id: String,
}

async fn select_handler(
    State(state): State<AppState>,
    request: std::result::Result<Json<SelectRequest>, JsonRejection>,
) -> Result<Json<SelectionBody>> {
    let Json(request) = request?;
    if request.model_id.trim().is_empty() {
        return Err(AppError::bad_request(
            "modelId must not be empty",
            Some("modelId"),
        ));
    }
    state.stage.show(ModelId::new(request.model_id)).await?;
    Ok(selection_handler(State(state)).await)
}
