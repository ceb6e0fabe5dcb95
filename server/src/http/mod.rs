//! The HTTP and WebSocket edge: every route the coordinator serves. Handlers decode the
//! request, call the part of [`AppState`] it is about, and encode the answer; errors leave as
//! [`AppError`](crate::base::error::AppError)'s JSON.
//!
//! - `api`: health and ping; `arr`: Azure Remote Rendering's session REST API and token service;
//!   `conversions`: its conversion REST API; `openapi`: the OpenAPI document of them all.
//! - `auth`: who is calling (bearer token or session cookie) as extractors; `browser`: signing a
//!   browser in and out, and guests joining by code.
//! - `models`: the model catalog; `spaces`: spaces' REST API and member sockets; `upgrade`: the
//!   WebSocket upgrade the space sockets take.
//! - `hosts`: render hosts' link and mesh downloads; `telemetry`: `/metrics` and the pool's
//!   last hour; `web`: Leptos pages and static files.

mod api;
mod arr;
pub(crate) mod auth;
pub(crate) mod browser;
mod contract;
mod conversions;
mod hosts;
mod models;
mod openapi;
mod params;
mod spaces;
mod telemetry;
mod upgrade;
mod web;

use std::time::Duration;

use axum::Router;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::state::AppState;

pub use openapi::document;

/// The whole HTTP surface: API, WebSockets, pages and static files.
pub fn app(state: AppState) -> Router {
    let https = state.tls.is_some();
    let site_root = std::path::PathBuf::from(state.leptos.site_root.as_ref());
    let http = api::router().layer(TimeoutLayer::with_status_code(
        axum::http::StatusCode::REQUEST_TIMEOUT,
        Duration::from_secs(30),
    ));
    let http = http.merge(arr::router().merge(conversions::router()).layer(
        TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            Duration::from_secs(30),
        ),
    ));
    Router::new()
        .merge(http)
        .merge(models::router(state.max_upload_bytes))
        .merge(hosts::router())
        .merge(spaces::router())
        .merge(browser::router())
        .merge(telemetry::router())
        .merge(openapi::router())
        .merge(web::router(&state, &site_root))
        .layer(axum::middleware::from_fn(correlation_vector))
        .layer(axum::middleware::from_fn(move |request, next| {
            strict_transport(https, request, next)
        }))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Over TLS, every response tells browsers to come back over https only (HSTS, a year), so a
/// browser that reached the coordinator once never sends its cookie over plain http to it again.
async fn strict_transport(
    https: bool,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut response = next.run(request).await;
    if https {
        response.headers_mut().insert(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            axum::http::HeaderValue::from_static("max-age=31536000"),
        );
    }
    response
}

/// Every response carries an `MS-CV` correlation header, as ARR's did: the client's own if it
/// sent a sane one, else a fresh one, so one request can be followed through client and server
/// logs.
async fn correlation_vector(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    const HEADER: &str = "ms-cv";
    let given = request
        .headers()
        .get(HEADER)
        .filter(|v| {
            v.len() <= 128
                && v.to_str()
                    .is_ok_and(|s| s.chars().all(|c| c.is_ascii_graphic()))
        })
        .cloned();
    let value = given.or_else(|| {
        let fresh = uuid::Uuid::new_v4().simple().to_string();
        axum::http::HeaderValue::from_str(&fresh[..22]).ok()
    });
    let mut response = next.run(request).await;
    if let Some(value) = value {
        response.headers_mut().insert(HEADER, value);
    }
    response
}
