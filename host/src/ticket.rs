//! Render tickets: what opens a session's render connection, in place of any account token or
//! cookie, so a render host never holds a credential worth stealing.
//!
//! A ticket names one session (its account and id) and an expiry, signed with Ed25519 by the
//! coordinator, which alone holds the private key. A host gets the public key when it registers
//! and checks tickets itself; it can verify them but never mint one. The text form is
//! `BASE64URL(claims JSON).BASE64URL(signature)`, carried in the session's `renderUrl`
//! (`?ticket=…`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

/// What a ticket says: this session, until then.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketClaims {
    pub account: String,
    pub session: String,
    /// When the session was created (Unix ms): a later session of the same id is another one,
    /// which this ticket does not open (the coordinator checks).
    pub created: u64,
    /// Unix seconds after which it no longer opens anything.
    pub exp: u64,
}

/// Why a ticket opens nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("the render ticket is unreadable: open the session's renderUrl as it was given")]
    Malformed,
    #[error("the render ticket's signature is not this coordinator's")]
    Forged,
    #[error("the render ticket has expired: ask for the session's properties (renderUrl) again")]
    Expired,
    #[error("the render ticket is for another session")]
    OtherSession,
}

/// Mints tickets (the coordinator).
pub struct TicketSigner {
    pair: Ed25519KeyPair,
}

impl TicketSigner {
    /// A new private key, PKCS#8, to store.
    pub fn generate() -> anyhow::Result<Vec<u8>> {
        let document = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| anyhow::anyhow!("could not make a ticket key"))?;
        Ok(document.as_ref().to_vec())
    }

    /// The signer of the PKCS#8 key `pkcs8`.
    pub fn from_pkcs8(pkcs8: &[u8]) -> anyhow::Result<Self> {
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8)
            .map_err(|e| anyhow::anyhow!("the stored ticket key is unreadable: {e}"))?;
        Ok(Self { pair })
    }

    /// The public key hosts verify with, base64url.
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.pair.public_key().as_ref())
    }

    /// A ticket for `claims`.
    pub fn mint(&self, claims: &TicketClaims) -> String {
        let body = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(claims).expect("ticket claims always serialize"));
        let signature = self.pair.sign(body.as_bytes());
        format!("{body}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

/// Checks tickets (hosts and the coordinator).
#[derive(Debug, Clone)]
pub struct TicketVerifier {
    public_key: Vec<u8>,
}

impl TicketVerifier {
    /// The verifier of the base64url public key `key`.
    pub fn from_public_key(key: &str) -> Result<Self, TicketError> {
        let public_key = URL_SAFE_NO_PAD
            .decode(key)
            .map_err(|_| TicketError::Malformed)?;
        if public_key.len() != 32 {
            return Err(TicketError::Malformed);
        }
        Ok(Self { public_key })
    }

    /// The claims of `ticket` if it is signed with this key, unexpired at `now` (Unix seconds;
    /// `None` leaves expiry to the coordinator, whose clock counts), and for `account`/`session`.
    pub fn verify(
        &self,
        ticket: &str,
        account: &str,
        session: &str,
        now: Option<u64>,
    ) -> Result<TicketClaims, TicketError> {
        let (body, signature) = ticket.split_once('.').ok_or(TicketError::Malformed)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TicketError::Malformed)?;
        UnparsedPublicKey::new(&ED25519, &self.public_key)
            .verify(body.as_bytes(), &signature)
            .map_err(|_| TicketError::Forged)?;
        let claims: TicketClaims = URL_SAFE_NO_PAD
            .decode(body)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or(TicketError::Malformed)?;
        if now.is_some_and(|now| claims.exp <= now) {
            return Err(TicketError::Expired);
        }
        if claims.account != account || claims.session != session {
            return Err(TicketError::OtherSession);
        }
        Ok(claims)
    }
}

/// Now, in Unix seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> TicketSigner {
        TicketSigner::from_pkcs8(&TicketSigner::generate().unwrap()).unwrap()
    }

    fn claims(session: &str, exp: u64) -> TicketClaims {
        TicketClaims {
            account: "acct".into(),
            session: session.into(),
            created: 5,
            exp,
        }
    }

    #[test]
    fn a_ticket_opens_its_own_session_until_it_expires() {
        let signer = signer();
        let verifier = TicketVerifier::from_public_key(&signer.public_key()).unwrap();
        let ticket = signer.mint(&claims("a", 100));
        assert_eq!(
            verifier.verify(&ticket, "acct", "a", Some(99)),
            Ok(claims("a", 100))
        );
        assert_eq!(
            verifier.verify(&ticket, "acct", "a", Some(100)),
            Err(TicketError::Expired)
        );
        assert!(
            verifier.verify(&ticket, "acct", "a", None).is_ok(),
            "expiry left to the coordinator"
        );
        assert_eq!(
            verifier.verify(&ticket, "acct", "b", Some(99)),
            Err(TicketError::OtherSession)
        );
        assert_eq!(
            verifier.verify(&ticket, "other", "a", Some(99)),
            Err(TicketError::OtherSession)
        );
    }

    #[test]
    fn a_ticket_of_another_key_or_altered_opens_nothing() {
        let (ours, theirs) = (signer(), signer());
        let verifier = TicketVerifier::from_public_key(&ours.public_key()).unwrap();
        let forged = theirs.mint(&claims("a", 100));
        assert_eq!(
            verifier.verify(&forged, "acct", "a", Some(1)),
            Err(TicketError::Forged)
        );
        // Session "a"'s signature on session "b"'s claims.
        let genuine = ours.mint(&claims("a", 100));
        let other_body = ours.mint(&claims("b", 100));
        let spliced = format!(
            "{}.{}",
            other_body.split_once('.').unwrap().0,
            genuine.split_once('.').unwrap().1
        );
        assert_eq!(
            verifier.verify(&spliced, "acct", "b", Some(1)),
            Err(TicketError::Forged)
        );
        for junk in ["", "x", "a.b", "..."] {
            assert!(
                verifier.verify(junk, "acct", "a", Some(1)).is_err(),
                "{junk:?}"
            );
        }
    }
}
