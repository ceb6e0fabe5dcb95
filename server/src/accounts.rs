//! Accounts and their access tokens, shaped like ARR's token service: an account key is traded
//! for a short-lived signed token, and every session call carries that token.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::AppState;
use crate::clock::Clock;
use crate::error::AppError;
use crate::store::{AccountRecord, Store};

/// How long an access token is valid, as ARR's were.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
const SECRET_SETTING: &str = "token_signing_secret";
const HOST_SECRET_SETTING: &str = "host_secret";

/// A new account's credentials. The key is shown once and only its hash is stored.
pub struct NewAccount {
    pub id: String,
    pub key: String,
}

/// Creates an account named `name`.
pub async fn create_account(store: &Store, name: &str) -> anyhow::Result<NewAccount> {
    let id = uuid::Uuid::new_v4().to_string();
    let key = random_hex(32);
    let hashed = key.clone();
    let key_hash = tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(hashed.as_bytes(), &SaltString::generate(&mut OsRng))
            .map(|hash| hash.to_string())
    })
    .await?
    .map_err(|e| anyhow::anyhow!("hashing the account key: {e}"))?;
    store
        .insert_account(&AccountRecord {
            id: id.clone(),
            name: name.to_string(),
            key_hash,
        })
        .await
        .context("storing the account")?;
    Ok(NewAccount { id, key })
}

/// The secret render hosts register with, made on first use.
pub async fn stored_host_secret(store: &Store) -> anyhow::Result<String> {
    store
        .setting_or_insert(HOST_SECRET_SETTING, &random_hex(32))
        .await
        .context("reading the host secret")
}

/// Checks `key` against the stored hash of `account`, off the async threads (Argon2 is slow on
/// purpose).
pub async fn verify_key(account: &AccountRecord, key: &str) -> bool {
    let (hash, key) = (account.key_hash.clone(), key.to_string());
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(key.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

/// What an access token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    /// The account id.
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
    /// Identifies this token: the "caller" the polling limit is kept for.
    pub jti: String,
    /// A guest's token (someone who joined with a space's code, not with the account key)
    /// reaches only this space: its members, properties, socket, and its headsets' sessions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space: Option<String>,
}

impl Claims {
    /// Whether this token may act in `space`.
    pub fn reaches_space(&self, space: &str) -> bool {
        self.space.as_deref().is_none_or(|s| s == space)
    }

    /// Whether this token may use render session `session` (a guest: its space's headsets'
    /// sessions, which are named `{space}-{member}`).
    pub fn reaches_session(&self, session: &str) -> bool {
        self.space.as_deref().is_none_or(|s| {
            session
                .strip_prefix(s)
                .is_some_and(|rest| rest.starts_with('-'))
        })
    }
}

/// Signs and checks access tokens with a secret kept in the database, so tokens stay valid
/// across restarts.
#[derive(Clone)]
pub struct Tokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    /// Expiry is judged by the coordinator's clock, like leases.
    clock: Arc<dyn Clock>,
}

impl Tokens {
    pub async fn load(store: &Store, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let secret = store
            .setting_or_insert(SECRET_SETTING, &random_hex(32))
            .await
            .context("loading the token signing secret")?;
        let mut validation = Validation::new(Algorithm::HS256);
        // `exp` is checked in `verify` against our clock, not the library's reading of the OS's.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            clock,
        })
    }

    /// A token for `account`; returns it with its expiry (Unix seconds).
    pub fn issue(&self, account: &str) -> anyhow::Result<(String, u64)> {
        self.sign(account, None)
    }

    /// A guest's token: `account`'s, but only for `space` (see [`Claims::space`]).
    pub fn issue_guest(&self, account: &str, space: &str) -> anyhow::Result<(String, u64)> {
        self.sign(account, Some(space.to_string()))
    }

    fn sign(&self, account: &str, space: Option<String>) -> anyhow::Result<(String, u64)> {
        let now = self.clock.now().as_millis() / 1000;
        let claims = Claims {
            sub: account.to_string(),
            iat: now,
            exp: now + TOKEN_LIFETIME.as_secs(),
            jti: uuid::Uuid::new_v4().to_string(),
            space,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok((token, claims.exp))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, AppError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| AppError::Unauthorized("the access token is not valid".into()))?;
        if self.clock.now().as_millis() / 1000 >= claims.exp {
            return Err(AppError::Unauthorized(
                "the access token has expired".into(),
            ));
        }
        Ok(claims)
    }
}

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
    /// Refuses a guest of another space.
    pub fn enter(&self, space: &str) -> Result<(), AppError> {
        if self.claims.reaches_space(space) {
            Ok(())
        } else {
            Err(AppError::forbidden(format!(
                "a guest's sign-in does not reach space {space}"
            )))
        }
    }

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

/// The browser's session cookie: an access token, HTTP-only, same-site strict.
pub const SESSION_COOKIE: &str = "parallax_session";

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

fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}
