//! The OpenAPI 3 document of the HTTP API, generated from the handlers' annotations and served
//! at `/openapi.json`.

use axum::routing::get;
use axum::{Json, Router};
use parallax_core::protocol::SESSION_COOKIE;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::{api, arr, browser, conversions, telemetry, web};
use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Parallax",
        description = "Self-hosted coordinator for shared multi-device rendering. The session API \
            keeps the shape of Azure Remote Rendering's (2021-01-01), plus a queue and render URLs."
    ),
    paths(
        arr::token_handler,
        arr::create_handler,
        arr::properties_handler,
        arr::update_handler,
        arr::action_handler,
        arr::list_handler,
        arr::usage_handler,
        arr::usage_csv_handler,
        arr::legacy_create_handler,
        arr::legacy_properties_handler,
        arr::legacy_update_handler,
        arr::legacy_stop_handler,
        arr::legacy_list_handler,
        conversions::create_handler,
        conversions::get_handler,
        conversions::list_handler,
        api::health_handler,
        api::ping_handler,
        document_handler,
        telemetry::metrics_handler,
        web::trust_handler,
        browser::sign_in_handler,
        browser::sign_out_handler,
        browser::me_handler,
        web::ca_certificate,
    ),
    modifiers(&Security),
    tags(
        (name = "auth", description = "Trade an account key for an access token"),
        (name = "sessions", description = "Render sessions, as ARR's session API (api-version 2021-01-01)"),
        (name = "conversions", description = "Model conversions into the catalog, as ARR's conversion API (api-version 2021-01-01)"),
        (name = "legacy", description = "The older /v1 session calls of ARR's Learn module"),
        (name = "service", description = "Liveness, metrics and this document"),
        (name = "browser", description = "Signing a browser in and out (a session cookie in place of a bearer token)"),
        (name = "trust", description = "The certificate authority devices trust, and what it may sign"),
    )
)]
pub struct ApiDoc;

/// Declares the two bearer schemes: the account key (`<account id>:<key>`) for the token call,
/// and the access token for everything else.
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme("account_key", bearer("`<account id>:<account key>`"));
        components.add_security_scheme(
            "access_token",
            bearer("The AccessToken from the token call"),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "A browser's sign-in: the access token, set by the sign-in",
            ))),
        );
        components.add_security_scheme(
            "metrics_token",
            bearer("The token given with --metrics-token, when one was"),
        );
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "service", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of the HTTP API", body = Object)))]
async fn document_handler() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(document_handler))
}
