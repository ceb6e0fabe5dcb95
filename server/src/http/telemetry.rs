//! What the coordinator measured: `/metrics` for Prometheus (public as scrapers expect, or behind
//! `--metrics-token`) and
//! the last hour of the pool for the operator's charts (`/v1/pool/history`, signed in).

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use parallax_core::api::PoolHistory;

use crate::accounts::keys::secret_matches;
use crate::base::error::{AppError, ErrorBody};
use crate::http::auth::{self, Caller};
use crate::state::AppState;
use crate::telemetry::history::INTERVAL;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/v1/pool/history", get(history_handler))
}

/// With `--metrics-token`, only for the scraper that presents it.
#[utoipa::path(get, path = "/metrics", operation_id = "getMetrics", tag = "service",
    security((), ("metrics_token" = [])),
    responses((status = 200, description = "OpenMetrics text: the pool, sessions, spaces, broadcast and frame times", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 401, description = "With --metrics-token: that token is missing or wrong", body = crate::base::error::ErrorBody)))]
pub(crate) async fn metrics_handler(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, AppError> {
    if let Some(expected) = &state.metrics_token {
        let given = auth::bearer(&headers)?;
        if !secret_matches(given, expected) {
            return Err(AppError::Unauthorized(
                "/metrics needs the token given with --metrics-token".into(),
            ));
        }
    }
    let census = state.spaces.census().await;
    let text = state
        .metrics
        .encode(
            &state.sessions.pool_status(),
            state.sessions.count_by_status(),
            census,
        )
        .map_err(|e| AppError::Internal(e.into()))?;
    Ok((
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    ))
}

/// The last hour of the pool, every 30 s, for the operator's charts: the hosts per size, and
/// how long selections took to reach members and hosts took to render a frame.
#[utoipa::path(get, path = "/v1/pool/history", operation_id = "getPoolHistory", tag = "service",
    security(("access_token" = []), ("session_cookie" = [])),
    responses((status = 200, body = PoolHistory), (status = 401, body = ErrorBody),
        (status = 403, description = "A guest's sign-in", body = ErrorBody)))]
pub(crate) async fn history_handler(
    State(state): State<AppState>,
    _caller: Caller,
) -> Json<PoolHistory> {
    let samples = state
        .metrics
        .history
        .last_hour(state.sessions.now(), state.sessions.pool_status());
    Json(PoolHistory {
        interval_seconds: INTERVAL.as_secs(),
        samples,
    })
}
