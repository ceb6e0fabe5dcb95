//! Render tickets, minted here: what a device opens its render connection with instead of any
//! account token or cookie (see `parallax_host::ticket`). The Ed25519 key is made once and kept
//! in the database, so every replica mints tickets every host accepts; hosts get only the public
//! key, at registration.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use parallax_core::session::{RenderSession, SessionKey};
use parallax_core::time::Timestamp;
use parallax_host::ticket::{TicketClaims, TicketError, TicketSigner, TicketVerifier, unix_now};

use crate::base::store::Store;

/// How long a ticket opens its session's render connection: long enough to connect after
/// reading `renderUrl`, short enough that one seen by the wrong eyes is soon worthless. A
/// connection once open lasts as long as the session.
pub const TICKET_LIFETIME: Duration = Duration::from_secs(5 * 60);
const KEY_SETTING: &str = "render_ticket_key";

/// Mints and checks render tickets.
#[derive(Clone)]
pub struct RenderTickets {
    signer: Arc<TicketSigner>,
    verifier: TicketVerifier,
}

impl RenderTickets {
    /// Reads (making once) the signing key in `store`.
    pub async fn load(store: &Store) -> anyhow::Result<Self> {
        let made = STANDARD.encode(TicketSigner::generate()?);
        let stored = store
            .setting_or_insert(KEY_SETTING, &made)
            .await
            .context("reading the render ticket key")?;
        let pkcs8 = STANDARD
            .decode(stored)
            .context("the stored render ticket key is not base64")?;
        let signer = TicketSigner::from_pkcs8(&pkcs8)?;
        let verifier = TicketVerifier::from_public_key(&signer.public_key())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Self {
            signer: Arc::new(signer),
            verifier,
        })
    }

    /// A ticket for `session`'s render connection, valid for [`TICKET_LIFETIME`].
    pub fn mint(&self, session: &RenderSession) -> String {
        self.signer.mint(&TicketClaims {
            account: session.account.clone(),
            session: session.id.to_string(),
            created: session.created_at.as_millis(),
            exp: unix_now() + TICKET_LIFETIME.as_secs(),
        })
    }

    /// Whether `ticket` opens `session` now: signed here, unexpired, for it; answers when the
    /// session it was made for was created (the caller checks it is still that one).
    pub fn check(&self, ticket: &str, session: &SessionKey) -> Result<Timestamp, TicketError> {
        self.verifier
            .verify(
                ticket,
                &session.account,
                session.id.as_str(),
                Some(unix_now()),
            )
            .map(|claims| Timestamp::from_millis(claims.created))
    }

    /// What hosts verify tickets with.
    pub fn public_key(&self) -> String {
        self.signer.public_key()
    }
}
