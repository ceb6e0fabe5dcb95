//! Signing a browser in and out: the account key is traded once for an access token kept in an
//! HTTP-only, same-site cookie, which the API and the WebSockets accept in place of a bearer
//! token. Plain form posts with redirects, so they work before the page has hydrated.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::Extension;
use axum::extract::rejection::FormRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use parallax_core::api::{Joining, Me};
use parallax_core::space::Role;
use serde::Deserialize;
use url::{Position, Url};

use crate::accounts::keys;
use crate::accounts::tokens::TOKEN_LIFETIME;
use crate::base::error::{AppError, ErrorBody};
use crate::http::auth::{SESSION_COOKIE, Visitor};
use crate::spaces::space::Joiner;
use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/browser/sign-in", post(sign_in_handler))
        .route("/v1/browser/sign-out", post(sign_out_handler))
        .route("/v1/browser/me", get(me_handler))
        .route("/v1/browser/join", post(join_handler))
}

/// The body of a guest's join.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GuestJoin {
    /// The space's join code, as shown in the room (any case; dashes or none).
    #[schema(example = "K7QM-2XPD")]
    code: String,
    /// The device's name (as for a join; space at its ends is dropped).
    #[schema(max_length = 128, example = "Visitor's phone")]
    device: String,
    role: Role,
}

/// A guest joins a space with its join code alone (no account key): as a member, with a
/// headset's render session leased on the space owner's account, and signed in with a token
/// that reaches only that space (a cookie). The answer is a join's.
#[utoipa::path(post, path = "/v1/browser/join", operation_id = "joinAsGuest", tag = "browser", security(()),
    request_body = GuestJoin,
    responses(
        (status = 201, body = Joining, headers(("Set-Cookie" = String, description = "The guest's sign-in"))),
        (status = 400, description = "Not the body's form, or not a device name", body = ErrorBody),
        (status = 403, description = "No space has that join code", body = ErrorBody),
        (status = 404, description = "The space went as the guest joined", body = ErrorBody),
        (status = 409, description = "The space is full", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 429, description = "Too many wrong codes from this address, or the owner's limit of sessions", body = ErrorBody),
        (status = 503, description = "No render host for a headset", body = ErrorBody)))]
pub(crate) async fn join_handler(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    jar: CookieJar,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response, AppError> {
    let join: GuestJoin = crate::http::contract::body(&headers, &bytes)?;
    // Served without connection info (in-process tests), every caller is one address.
    let peer = peer.map_or(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        |Extension(ConnectInfo(peer))| peer.ip(),
    );
    let forwarded = headers.get("x-forwarded-for").and_then(|v| v.to_str().ok());
    let client = state.join_attempts.client(peer, forwarded);
    state.join_attempts.admit(client)?;
    let code = join.code.trim();
    let Some((space, owner)) = state.spaces.by_code(code).await else {
        return Err(AppError::client(
            StatusCode::FORBIDDEN,
            "WrongJoinCode",
            "no space has that join code: check it with whoever runs the room",
        ));
    };
    let joiner = Joiner {
        device: join.device.trim().to_string(),
        role: join.role,
        code: Some(code.to_string()),
        render_session: true,
    };
    let (view, member) = state.spaces.join(&owner, &space, joiner).await?;
    let (token, _) = state.tokens.issue_guest(&owner, &space)?;
    let secure = is_https(&headers, &state);
    let answer = crate::http::spaces::joined(&state, &headers, view, member)?;
    Ok((jar.add(session_cookie(token, secure)), answer).into_response())
}

/// Who this browser is signed in as: `{"account", "guestOf"}` (`guestOf`: the one space a guest
/// reaches); 401 when it is not.
#[utoipa::path(get, path = "/v1/browser/me", operation_id = "getMe", tag = "browser",
    security(("access_token" = []), ("session_cookie" = [])),
    responses((status = 200, body = Me), (status = 401, description = "Not signed in, or the sign-in ended", body = ErrorBody)))]
pub(crate) async fn me_handler(visitor: Visitor) -> Json<Me> {
    Json(Me {
        account: visitor.claims.sub,
        guest_of: visitor.claims.space,
    })
}

/// The sign-in form.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub(crate) struct SignIn {
    /// The account's id.
    account: String,
    /// The account's key.
    key: String,
    /// Where to go once signed in: a path on this site (anything else goes to `/`).
    #[serde(default)]
    next: Option<String>,
}

/// `/sign-in?error=…` with a message a person can act on.
fn back_to_sign_in(message: &str) -> Response {
    let query = serde_urlencoded::to_string([("error", message)]).unwrap_or_default();
    Redirect::to(&format!("/sign-in?{query}")).into_response()
}

/// A browser signs in with the account's id and key, as a form post: it gets the session cookie
/// and goes to `next`; a wrong key goes back to `/sign-in` with the reason in `?error=`.
#[utoipa::path(post, path = "/v1/browser/sign-in", operation_id = "signIn", tag = "browser", security(()),
    request_body(content = SignIn, content_type = "application/x-www-form-urlencoded"),
    responses((status = 303, description = "Signed in: `Set-Cookie` and on to `next`; or not: back to `/sign-in?error=…`"),
        (status = 400, description = "A field is missing", body = ErrorBody),
        (status = 415, description = "Not sent as a form", body = ErrorBody)))]
pub(crate) async fn sign_in_handler(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    form: Result<Form<SignIn>, FormRejection>,
) -> Result<Response, AppError> {
    let Form(form) = form?;
    Ok(sign_in(&state, jar, &headers, form).await)
}

async fn sign_in(state: &AppState, jar: CookieJar, headers: &HeaderMap, form: SignIn) -> Response {
    let (account_id, key) = (form.account.trim(), form.key.trim());
    if account_id.is_empty() || key.is_empty() {
        return back_to_sign_in("Enter the account id and its key.");
    }
    let account = match state.store().account(account_id).await {
        Ok(account) => account,
        Err(e) => {
            tracing::error!("reading an account to sign in: {e}");
            return back_to_sign_in("Signing in is not possible right now; try again.");
        }
    };
    let valid = match &account {
        Some(account) => match keys::verify_key(account, key).await {
            Ok(valid) => valid,
            Err(_) => return back_to_sign_in("Many people are signing in at once; try again."),
        },
        None => false,
    };
    if !valid {
        return back_to_sign_in("That account id and key do not match. Check both and try again.");
    }
    let token = match state.tokens.issue(account_id) {
        Ok((token, _)) => token,
        Err(e) => {
            tracing::error!("issuing a browser's token: {e}");
            return back_to_sign_in("Signing in is not possible right now; try again.");
        }
    };
    let cookie = session_cookie(token, is_https(headers, state));
    let next = on_this_site(form.next.as_deref());
    (jar.add(cookie), Redirect::to(&next)).into_response()
}

/// Where to go once signed in: `next` if a browser would take it to a page of this site, else
/// `/` — never an open redirect. Judged by resolving it as browsers do (WHATWG URL parsing), not by
/// its first characters: `//evil.example` and `/\evil.example` both lead off the site.
fn on_this_site(next: Option<&str>) -> String {
    let site = Url::parse("http://this-site.invalid/").expect("a valid base URL");
    next.and_then(|next| site.join(next).ok())
        .filter(|url| url.origin() == site.origin())
        .map(|url| url[Position::BeforePath..].to_string())
        .unwrap_or_else(|| "/".into())
}

/// Whether the browser reached us over https (directly, or through a proxy that says so).
fn is_https(headers: &HeaderMap, state: &AppState) -> bool {
    crate::http::arr::origin(headers, state).starts_with("https:")
}

/// The browser's session: the access token, HTTP-only and same-site, for as long as it is valid;
/// `Secure` (never sent over plain http) when the browser reached us over https.
fn session_cookie(token: String, secure: bool) -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, token))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .max_age(time::Duration::seconds(TOKEN_LIFETIME.as_secs() as i64))
        .build()
}

/// Signs the browser out: its token is refused from now on (here at once, on every replica within
/// seconds), not merely forgotten by the browser.
#[utoipa::path(post, path = "/v1/browser/sign-out", operation_id = "signOut", tag = "browser",
    security((), ("session_cookie" = [])),
    responses((status = 303, description = "Signed out (the cookie's token is refused from now on): on to `/sign-in`"),
        (status = 503, description = "The sign-out could not be stored; nothing changed", body = ErrorBody)))]
pub(crate) async fn sign_out_handler(State(state): State<AppState>, jar: CookieJar) -> Response {
    if let Some(token) = jar.get(SESSION_COOKIE).map(|c| c.value().to_string())
        && let Err(e) = state.tokens.sign_out(state.store(), &token).await
    {
        tracing::error!("signing a browser out: {e:#}");
        return AppError::unavailable(
            "ServiceUnavailable",
            "Signing out is not possible right now; try again.",
        )
        .into_response();
    }
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    (jar, Redirect::to("/sign-in")).into_response()
}
