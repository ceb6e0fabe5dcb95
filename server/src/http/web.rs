//! The Leptos pages, the static web bundle, and the certificate authority devices trust.

use std::path::Path;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use leptos_axum::{LeptosRoutes, generate_route_list};
use parallax_app::{App, shell};
use tower_http::services::ServeDir;

use parallax_core::api::TrustNotes;

use crate::base::error::{AppError, ErrorBody, Result};
use crate::state::AppState;

/// Pages, `/ca.crt`, and files from the site root (`/pkg/…`).
pub fn router(state: &AppState, site_root: &Path) -> Router<AppState> {
    let options = state.leptos.clone();
    Router::new()
        .route("/ca.crt", get(ca_certificate))
        .route("/v1/trust", get(trust_handler))
        .leptos_routes(state, generate_route_list(App), move || {
            shell(options.clone())
        })
        .fallback_service(ServeDir::new(site_root))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            sign_in_first,
        ))
}

/// The pages only an account uses: the console's spaces and the pool.
const ACCOUNT_PAGES: [&str; 3] = ["/", "/spaces", "/pool"];

/// A visitor who is not signed in (no sign-in, or one that ended) asking for an account's page
/// is sent to sign in first, and back here after it (`/sign-in?next=…`), instead of a page of
/// empty lists and an error.
async fn sign_in_first(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let page = request.method() == axum::http::Method::GET
        && ACCOUNT_PAGES.contains(&request.uri().path());
    let signed_in = crate::http::auth::session_cookie(request.headers())
        .is_some_and(|token| state.tokens.verify(&token).is_ok());
    if page && !signed_in {
        let here = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let query = serde_urlencoded::to_string([("next", here)]).unwrap_or_default();
        return axum::response::Redirect::to(&format!("/sign-in?{query}")).into_response();
    }
    next.run(request).await
}

/// `GET /v1/trust`: what the authority devices trust may sign, and when and why it replaced an
/// earlier one (devices that trusted that one must trust this one); the `/trust` page shows it.
/// Public, as `/ca.crt` is: a device reads it before it trusts anything here.
#[utoipa::path(get, path = "/v1/trust", operation_id = "getTrust", tag = "trust", security(()),
    responses((status = 200, body = TrustNotes)))]
pub(crate) async fn trust_handler(State(state): State<AppState>) -> axum::Json<TrustNotes> {
    let notes = state.tls.as_ref().and_then(|tls| tls.authority_notes());
    axum::Json(match notes {
        Some((may_sign, replaced)) => TrustNotes {
            authority: true,
            may_sign: Some(may_sign),
            replaced,
        },
        None => TrustNotes {
            authority: false,
            may_sign: None,
            replaced: None,
        },
    })
}

/// `GET /ca.crt`: the certificate authority that issued this coordinator's certificate, for
/// devices to trust once (the `/trust` page says how). Public: a CA certificate is no secret,
/// and a device must fetch it before it trusts anything here.
#[utoipa::path(get, path = "/ca.crt", operation_id = "getCaCertificate", tag = "trust", security(()),
    responses((status = 200, description = "The authority's certificate, PEM", content_type = "application/x-x509-ca-cert", body = String),
        (status = 404, description = "No authority of its own: the operator's certificate, or plain HTTP", body = ErrorBody)))]
pub(crate) async fn ca_certificate(State(state): State<AppState>) -> Result<Response> {
    match state.tls.as_ref().and_then(|tls| tls.ca_pem()) {
        Some(pem) => Ok((
            [
                (header::CONTENT_TYPE, "application/x-x509-ca-cert"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"parallax-ca.crt\"",
                ),
            ],
            pem.to_string(),
        )
            .into_response()),
        None if state.tls.is_some() => Err(AppError::not_found(
            "this coordinator serves its operator's certificate; devices trust the authority \
             that issued it",
        )),
        None => Err(AppError::not_found(
            "this coordinator serves plain HTTP (--tls off): there is no certificate to trust",
        )),
    }
}
