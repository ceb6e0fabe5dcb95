//! HS256, the one signature our access tokens carry, as a `jsonwebtoken` crypto provider.
//! `jsonwebtoken`'s own RustCrypto provider signs with every algorithm JWTs know, so it compiles
//! RSA (with an advisory that has no fix, RUSTSEC-2023-0071) and three elliptic curves that
//! Parallax never uses; this one knows HMAC-SHA256 and refuses everything else.

use hmac::{Hmac, Mac};
use jsonwebtoken::Algorithm;
use jsonwebtoken::crypto::{CryptoProvider, JwkUtils, JwtSigner, JwtVerifier};
use jsonwebtoken::errors::{ErrorKind, Result};

/// What `signature`'s traits return.
type Signed<T> = std::result::Result<T, signature::Error>;
use sha2::Sha256;
use signature::{Signer, Verifier};

type HmacSha256 = Hmac<Sha256>;

/// A key for HMAC-SHA256, signing and checking.
struct Hs256(HmacSha256);

impl Hs256 {
    fn new(algorithm: &Algorithm, secret: &[u8]) -> Result<Self> {
        if *algorithm != Algorithm::HS256 {
            return Err(ErrorKind::InvalidAlgorithm.into());
        }
        HmacSha256::new_from_slice(secret)
            .map(Self)
            .map_err(|_| ErrorKind::InvalidKeyFormat.into())
    }

    fn mac(&self, message: &[u8]) -> HmacSha256 {
        let mut mac = self.0.clone();
        mac.update(message);
        mac
    }
}

impl Signer<Vec<u8>> for Hs256 {
    fn try_sign(&self, message: &[u8]) -> Signed<Vec<u8>> {
        Ok(self.mac(message).finalize().into_bytes().to_vec())
    }
}

impl Verifier<Vec<u8>> for Hs256 {
    /// In constant time (`verify_slice`), so a signature cannot be guessed byte by byte.
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Signed<()> {
        self.mac(message)
            .verify_slice(signature)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtSigner for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for Hs256 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

static PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: |algorithm, key| {
        Ok(Box::new(Hs256::new(algorithm, key.try_get_hmac_secret()?)?))
    },
    verifier_factory: |algorithm, key| {
        Ok(Box::new(Hs256::new(algorithm, key.try_get_hmac_secret()?)?))
    },
    // Parallax reads no JSON Web Keys; these are never called.
    jwk_utils: JwkUtils::new_unimplemented(),
};

/// Makes HS256 this process's `jsonwebtoken` provider. Idempotent.
pub fn install() {
    // Already installed (by an earlier coordinator in this process) is as good.
    let _ = PROVIDER.install_default();
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Claims {
        sub: String,
        exp: u64,
    }

    #[test]
    fn tokens_signed_with_the_secret_verify_and_others_do_not() {
        install();
        let claims = Claims {
            sub: "acct".into(),
            exp: u64::MAX / 2,
        };
        let token = jsonwebtoken::encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(b"s1"),
        )
        .unwrap();
        let checked = jsonwebtoken::decode::<Claims>(
            &token,
            &DecodingKey::from_secret(b"s1"),
            &Validation::default(),
        )
        .unwrap();
        assert_eq!(checked.claims, claims);
        assert!(
            jsonwebtoken::decode::<Claims>(
                &token,
                &DecodingKey::from_secret(b"s2"),
                &Validation::default()
            )
            .is_err()
        );
        // A token claiming another algorithm is refused, not checked some other way.
        let mut validation = Validation::new(Algorithm::RS256);
        validation.algorithms = vec![Algorithm::RS256];
        let rs256 = jsonwebtoken::encode(
            &Header::new(Algorithm::RS256),
            &claims,
            &EncodingKey::from_secret(b"s1"),
        );
        assert!(rs256.is_err());
        assert!(
            jsonwebtoken::decode::<Claims>(&token, &DecodingKey::from_secret(b"s1"), &validation)
                .is_err()
        );
    }
}
