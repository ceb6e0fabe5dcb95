//! Who is calling: the access token of a request (a bearer token, or a browser's session
//! cookie), checked, as the extractors route handlers take — [`Caller`] for the account's own
//! calls, [`Visitor`] for a space's, where a guest of that space is let in too.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
pub use parallax_core::protocol::SESSION_COOKIE;

use crate::accounts::tokens::Claims;
use crate::base::error::AppError;
use crate::state::AppState;

/// The caller of a session call, from its `Authorization: Bearer <token>` header.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: String,
    pub token_id: String,
}

impl Caller {
    /// Refuses callers whose token belongs to another account than the one in the path.
    pub fn require_account(&self, account: &str) -> Result<(), AppError> {
        if self.account == account {
            Ok(())
        } else {
            Err(AppError::forbidden(format!(
                "this access token is for another account than {account}"
            )))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = AppError;

    /// The account's own tokens only: a guest's token is refused here.
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let visitor = Visitor::from_request_parts(parts, state).await?;
        if let Some(space) = &visitor.claims.space {
            return Err(AppError::forbidden(format!(
                "a guest's sign-in reaches only space {space}"
            )));
        }
        Ok(visitor.caller())
    }
}

/// The caller of a space's routes: the account, or a guest of that space.
#[derive(Debug, Clone)]
pub struct Visitor {
    pub claims: Claims,
}

impl Visitor {
    /// Refuses a guest a session of another space.
    pub fn use_session(&self, session: &str) -> Result<(), AppError> {
        if self.claims.reaches_session(session) {
            Ok(())
        } else {
            Err(AppError::forbidden(
                "a guest's sign-in reaches only its space's render sessions",
            ))
        }
    }

    /// The account this visitor acts for.
    pub fn caller(&self) -> Caller {
        Caller {
            account: self.claims.sub.clone(),
            token_id: self.claims.jti.clone(),
        }
    }
}

impl FromRequestParts<AppState> for Visitor {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, AppError> {
        let token = access_token(&parts.headers)?;
        Ok(Self {
            claims: state.tokens.verify(&token)?,
        })
    }
}

/// The access token of a request: its bearer token, or else a browser's session cookie.
pub fn access_token(headers: &HeaderMap) -> Result<String, AppError> {
    if headers.contains_key(header::AUTHORIZATION) {
        return bearer(headers).map(str::to_string);
    }
    session_cookie(headers).ok_or_else(|| {
        AppError::Unauthorized(
            "an Authorization: Bearer header (or a signed-in browser's cookie) is required".into(),
        )
    })
}

/// The access token in a browser's session cookie, if it sent one.
pub fn session_cookie(headers: &HeaderMap) -> Option<String> {
    axum_extra::extract::CookieJar::from_headers(headers)
        .get(SESSION_COOKIE)
        .map(|c| c.value().to_string())
        .filter(|v| !v.is_empty())
}

/// The credential in an `Authorization: Bearer …` header.
pub fn bearer(headers: &HeaderMap) -> Result<&str, AppError> {
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        AppError::Unauthorized("an Authorization: Bearer header is required".into())
    })?;
    value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            AppError::Unauthorized("the Authorization header must be 'Bearer <token>'".into())
        })
}
