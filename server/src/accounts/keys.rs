//! Accounts and the secrets kept for them: an account's key (only its Argon2 hash is stored)
//! and the host secret render hosts register with.

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::base::store::{AccountRecord, Store};

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
            .hash_password(hashed.as_bytes(), &salt()?)
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

/// A fresh random salt for Argon2.
fn salt() -> Result<SaltString, argon2::password_hash::Error> {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    SaltString::encode_b64(&bytes)
}

pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buffer);
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `given` is `secret`, compared in constant time (as hashes), so its bytes cannot be
/// timed out of us.
pub fn secret_matches(given: &str, secret: &str) -> bool {
    Sha256::digest(given.as_bytes()) == Sha256::digest(secret.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_secret_matches() {
        assert!(secret_matches("s3cret", "s3cret"));
        assert!(!secret_matches("s3cre", "s3cret"));
        assert!(!secret_matches("", "s3cret"));
    }
}
