//! Access tokens, shaped like ARR's token service: an account key is traded for a short-lived
//! signed token (HS256, with a secret kept in the database), and every call carries it.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use parallax_core::space::space_of_headset_session;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::accounts::hs256;
use crate::accounts::keys::random_hex;
use crate::base::clock::Clock;
use crate::base::error::AppError;
use crate::base::store::Store;
use parallax_core::time::Timestamp;

/// How long an access token is valid, as ARR's were.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
const SECRET_SETTING: &str = "token_signing_secret";

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

    /// Whether this token may use render session `session` (a guest: exactly its space's
    /// headsets' sessions).
    pub fn reaches_session(&self, session: &str) -> bool {
        self.space
            .as_deref()
            .is_none_or(|s| space_of_headset_session(session) == Some(s))
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
    /// Accounts revoked by an operator (`parallax account revoke`, another process): their
    /// tokens are refused however long they have left. Read again every [`REVOCATION_CHECK`].
    revoked: Arc<RwLock<HashSet<String>>>,
    /// Tokens whose browser signed out (by `jti`), here or on another replica: refused for the
    /// rest of their life.
    signed_out: Arc<RwLock<HashSet<String>>>,
}

/// How often a running coordinator reads which accounts were revoked.
pub const REVOCATION_CHECK: Duration = Duration::from_secs(2);

impl Tokens {
    pub async fn load(store: &Store, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        hs256::install();
        let secret = store
            .setting_or_insert(SECRET_SETTING, &random_hex(32))
            .await
            .context("loading the token signing secret")?;
        let mut validation = Validation::new(Algorithm::HS256);
        // `exp` is checked in `verify` against our clock, not the library's reading of the OS's.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let revoked = store
            .revoked_accounts()
            .await
            .context("reading revoked accounts")?;
        let signed_out = store
            .signed_out_tokens(clock.now())
            .await
            .context("reading signed-out tokens")?;
        Ok(Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
            clock,
            revoked: Arc::new(RwLock::new(revoked.into_iter().collect())),
            signed_out: Arc::new(RwLock::new(signed_out.into_iter().collect())),
        })
    }

    /// Reads the revoked accounts and the signed-out tokens from `store` every
    /// [`REVOCATION_CHECK`] until `shutdown`.
    pub async fn follow_revocations(self, store: Store, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(REVOCATION_CHECK) => {}
                () = shutdown.cancelled() => return,
            }
            match store.revoked_accounts().await {
                Ok(revoked) => {
                    *self.revoked.write().unwrap_or_else(|p| p.into_inner()) =
                        revoked.into_iter().collect();
                }
                Err(e) => tracing::warn!("could not read revoked accounts: {e}"),
            }
            match store.signed_out_tokens(self.clock.now()).await {
                Ok(signed_out) => {
                    *self.signed_out.write().unwrap_or_else(|p| p.into_inner()) =
                        signed_out.into_iter().collect();
                }
                Err(e) => tracing::warn!("could not read signed-out tokens: {e}"),
            }
        }
    }

    /// Signs `token` out: refused from now on, here at once and on every replica within
    /// [`REVOCATION_CHECK`]. A token that does not verify is already worth nothing.
    pub async fn sign_out(&self, store: &Store, token: &str) -> anyhow::Result<()> {
        let Ok(claims) = self.verify(token) else {
            return Ok(());
        };
        store
            .sign_out_token(&claims.jti, Timestamp::from_millis(claims.exp * 1000))
            .await
            .context("storing a sign-out")?;
        self.signed_out
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(claims.jti);
        Ok(())
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
        if self
            .revoked
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&claims.sub)
        {
            return Err(AppError::Unauthorized("the account was revoked".into()));
        }
        if self
            .signed_out
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&claims.jti)
        {
            return Err(AppError::Unauthorized(
                "this sign-in was signed out: sign in again".into(),
            ));
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest_of(space: &str) -> Claims {
        Claims {
            sub: "acct".into(),
            iat: 0,
            exp: 1,
            jti: "t".into(),
            space: Some(space.into()),
        }
    }

    #[test]
    fn a_guest_reaches_exactly_its_own_spaces_headset_sessions() {
        let lab = guest_of("lab");
        assert!(lab.reaches_session("lab-0123456789ab"));
        // Another space whose name starts the same, and names that are no headset's session.
        for other in [
            "lab-2-0123456789ab",
            "lab-x",
            "lab",
            "lab-",
            "lab-0123456789AB",
            "labs-0123456789ab",
        ] {
            assert!(!lab.reaches_session(other), "{other}");
        }
        assert!(guest_of("lab-2").reaches_session("lab-2-0123456789ab"));
        let owner = Claims {
            space: None,
            ..guest_of("lab")
        };
        assert!(owner.reaches_session("anything"));
    }
}
