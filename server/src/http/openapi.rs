//! The OpenAPI 3 document of the HTTP API, generated from the handlers' annotations and served
//! at `/openapi.json`.

use axum::routing::get;
use axum::{Json, Router};
use parallax_core::protocol::SESSION_COOKIE;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::http::{api, arr, browser, conversions, hosts, models, spaces, telemetry, web};
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
        browser::join_handler,
        spaces::templates_handler,
        spaces::list_handler,
        spaces::create_handler,
        spaces::get_handler,
        spaces::properties_handler,
        spaces::join_handler,
        spaces::leave_handler,
        spaces::render_handler,
        spaces::space_ws_handler,
        models::list_handler,
        models::upload_handler,
        models::model_handler,
        models::delete_handler,
        models::thumbnail_handler,
        models::parts_handler,
        telemetry::history_handler,
        hosts::mesh_handler,
        hosts::host_ws_handler,
    ),
    components(schemas(
        parallax_core::space_protocol::SpaceClientMessage,
        parallax_core::space_protocol::SpaceServerMessage,
        parallax_core::device::DeviceMessage,
        parallax_core::device::HostMessage,
        parallax_core::host::HostReport,
        parallax_core::host::HostCommand,
    )),
    modifiers(&Security),
    tags(
        (name = "auth", description = "Trade an account key for an access token"),
        (name = "sessions", description = "Render sessions, as ARR's session API (api-version 2021-01-01)"),
        (name = "conversions", description = "Model conversions into the catalog, as ARR's conversion API (api-version 2021-01-01)"),
        (name = "legacy", description = "The older /v1 session calls of ARR's Learn module"),
        (name = "service", description = "Liveness, metrics and this document"),
        (name = "browser", description = "Signing a browser in and out (a session cookie in place of a bearer token)"),
        (name = "trust", description = "The certificate authority devices trust, and what it may sign"),
        (name = "spaces", description = "Shared spaces, after Xbox MPSD's sessions: templates, members, properties, the headsets' render sessions"),
        (name = "models", description = "The model catalog: samples and uploads, their thumbnails and parts"),
        (name = "hosts", description = "What render hosts fetch, with their own credential"),
        (name = "sockets", description = "WebSocket upgrades; their messages are this document's schemas named for them"),
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
                "A browser's sign-in: an account's (set by the sign-in) or a guest's (set by a join \
                 with a code), which reaches only its space",
            ))),
        );
        components.add_security_scheme(
            "member_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "Parallax-Member",
                "A member's token, from its join: acts as that member of the space",
            ))),
        );
        components.add_security_scheme(
            "host_credential",
            bearer("A render host's own credential (`parallax host add`)"),
        );
        components.add_security_scheme(
            "metrics_token",
            bearer("The token given with --metrics-token, when one was"),
        );
    }
}

/// The document, as `/openapi.json` serves it and `parallax openapi` prints it.
pub fn document() -> serde_json::Value {
    DOCUMENT.clone()
}

/// Made once: the document is public, and large.
static DOCUMENT: std::sync::LazyLock<serde_json::Value> = std::sync::LazyLock::new(|| {
    let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    spell_links(&mut document);
    document
});

/// utoipa 5.5 writes a link's fields in Rust's spelling (`operation_id`), which no OpenAPI tool
/// reads: they are renamed to the specification's (`operationId`), or the links would be lost.
fn spell_links(document: &mut serde_json::Value) {
    let operations = document["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(serde_json::Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    for operation in operations {
        let links = operation
            .get_mut("responses")
            .and_then(serde_json::Value::as_object_mut)
            .into_iter()
            .flat_map(|responses| responses.values_mut())
            .filter_map(|response| response.get_mut("links")?.as_object_mut())
            .flat_map(|links| links.values_mut())
            .filter_map(serde_json::Value::as_object_mut);
        for link in links {
            for (rust, spec) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(value) = link.remove(rust) {
                    link.insert(spec.into(), value);
                }
            }
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", operation_id = "getOpenApiDocument", tag = "service", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document of the HTTP API", body = Object)))]
async fn document_handler() -> Json<&'static serde_json::Value> {
    Json(&DOCUMENT)
}

pub fn router() -> Router<AppState> {
    Router::new().route("/openapi.json", get(document_handler))
}
