//! Signing a browser in and out: the account key is traded once for an access token kept in an
//! HTTP-only, same-site cookie, which the API and the WebSockets accept in place of a bearer
//! token. Plain form posts with redirects, so they work before the page has hydrated.

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::accounts::{self, Caller, SESSION_COOKIE, TOKEN_LIFETIME};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/browser/sign-in", post(sign_in_handler))
        .route("/v1/browser/sign-out", post(sign_out_handler))
        .route("/v1/browser/me", get(me_handler))
}

/// Who this browser is signed in as: `{"account"}`; 401 when it is not.
async fn me_handler(caller: Caller) -> Json<Value> {
    Json(json!({ "account": caller.account }))
}

#[derive(Debug, Deserialize)]
struct SignIn {
    account: String,
    key: String,
    /// Where to go once signed in (a path on this site).
    #[serde(default)]
    next: Option<String>,
}

/// `/sign-in?error=…` with a message a person can act on.
fn back_to_sign_in(message: &str) -> Response {
    let query = serde_urlencoded::to_string([("error", message)]).unwrap_or_default();
    Redirect::to(&format!("/sign-in?{query}")).into_response()
}

async fn sign_in_handler(
    State(state): State<AppState>,
    jar: CookieJar,
    Form(form): Form<SignIn>,
) -> Response {
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
        Some(account) => accounts::verify_key(account, key).await,
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
    let cookie = Cookie::build((SESSION_COOKIE, token))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .max_age(time::Duration::seconds(TOKEN_LIFETIME.as_secs() as i64))
        .build();
    // Only a path on this site: never an open redirect.
    let next = form
        .next
        .filter(|n| n.starts_with('/') && !n.starts_with("//"))
        .unwrap_or_else(|| "/".into());
    (jar.add(cookie), Redirect::to(&next)).into_response()
}

async fn sign_out_handler(jar: CookieJar) -> Response {
    let jar = jar.remove(Cookie::build(SESSION_COOKIE).path("/"));
    (jar, Redirect::to("/sign-in")).into_response()
}
