//! Accounts and the secrets kept for them: an account's key (only its Argon2 hash is stored).

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use rand::RngCore;
use sha2::{Digest, Sha256};

use parallax_core::time::Timestamp;

use crate::base::store::{AccountRecord, Store};

/// A new account's credentials. The key is shown once and only its hash is stored.
pub struct NewAccount {
    pub id: String,
    pub key: String,
}

/// Creates an account named `name`.
pub async fn create_account(store: &Store, name: &str) -> anyhow::Result<NewAccount> {
    let id = uuid::Uuid::new_v4().to_string();
    let (key, key_hash) = new_key().await?;
    store
        .insert_account(&id, name, &key_hash)
        .await
        .context("storing the account")?;
    Ok(NewAccount { id, key })
}

/// Gives account `id` a new key; the old one stops working at once (tokens issued with it run
/// out as usual).
pub async fn rotate_key(store: &Store, id: &str, now: Timestamp) -> anyhow::Result<NewAccount> {
    let account = existing(store, id).await?;
    if account.revoked_at.is_some() {
        anyhow::bail!("account {id} is revoked: it cannot have a key again");
    }
    let (key, key_hash) = new_key().await?;
    if !store
        .set_account_key(id, &key_hash, now)
        .await
        .context("storing the new key")?
    {
        anyhow::bail!("account {id} was revoked meanwhile");
    }
    Ok(NewAccount {
        id: id.to_string(),
        key,
    })
}

/// Revokes account `id`: its key and every token issued to it stop working (within seconds on
/// a running coordinator). Its sessions, uploads and spaces stay on record. True if it was
/// revoked just now, false if it already was.
pub async fn revoke(store: &Store, id: &str, now: Timestamp) -> anyhow::Result<bool> {
    let account = existing(store, id).await?;
    store
        .revoke_account(id, now)
        .await
        .context("revoking the account")?;
    Ok(account.revoked_at.is_none())
}

async fn existing(store: &Store, id: &str) -> anyhow::Result<AccountRecord> {
    store
        .account(id)
        .await
        .context("reading the account")?
        .ok_or_else(|| anyhow::anyhow!("there is no account {id}"))
}

/// A new account key and its Argon2 hash.
async fn new_key() -> anyhow::Result<(String, String)> {
    let key = random_hex(32);
    let hashed = key.clone();
    let key_hash = tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(hashed.as_bytes(), &salt()?)
            .map(|hash| hash.to_string())
    })
    .await?
    .map_err(|e| anyhow::anyhow!("hashing the account key: {e}"))?;
    Ok((key, key_hash))
}

/// Argon2 checks at once: each takes a core for tens of milliseconds on purpose, so a flood of
/// sign-ins must queue here, not starve every other request of the blocking pool.
static KEY_CHECKS: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    tokio::sync::Semaphore::new(cores)
});
/// How long a key check waits for its turn before the caller is told to come back.
const KEY_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Too many key checks are waiting: the caller should try again shortly.
#[derive(Debug)]
pub struct KeyChecksBusy;

impl From<KeyChecksBusy> for crate::base::error::AppError {
    fn from(_: KeyChecksBusy) -> Self {
        Self::TooManyRequests {
            what: "too many sign-ins at once",
            retry_after: std::time::Duration::from_secs(1),
        }
    }
}

/// Checks `key` against the stored hash of `account`, off the async threads (Argon2 is slow on
/// purpose), at most one per core at once. A revoked account's key never matches.
pub async fn verify_key(account: &AccountRecord, key: &str) -> Result<bool, KeyChecksBusy> {
    if account.revoked_at.is_some() {
        return Ok(false);
    }
    let permit = tokio::time::timeout(KEY_CHECK_WAIT, KEY_CHECKS.acquire())
        .await
        .map_err(|_| KeyChecksBusy)?
        .map_err(|_| KeyChecksBusy)?;
    let (hash, key) = (account.key_hash.clone(), key.to_string());
    let matched = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(key.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false);
    drop(permit);
    Ok(matched)
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

/// Whether `given` is `secret`, compared in constant time (`subtle`, on their hashes, so not
/// even the length shows), so its bytes cannot be timed out of us.
pub fn secret_matches(given: &str, secret: &str) -> bool {
    use subtle::ConstantTimeEq;
    Sha256::digest(given.as_bytes())
        .as_slice()
        .ct_eq(Sha256::digest(secret.as_bytes()).as_slice())
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn key_checks_wait_their_turn_and_a_flood_is_told_to_come_back() {
        let hash = tokio::task::spawn_blocking(|| {
            Argon2::default()
                .hash_password(b"k", &salt().unwrap())
                .unwrap()
                .to_string()
        })
        .await
        .unwrap();
        let account = AccountRecord {
            id: "a".into(),
            name: "a".into(),
            key_hash: hash,
            created_at: String::new(),
            key_rotated_at: None,
            revoked_at: None,
        };
        assert!(verify_key(&account, "k").await.unwrap());
        assert!(!verify_key(&account, "x").await.unwrap());
        // Every core busy with a check for longer than a caller waits: it hears "later", at once
        // after the wait, and the check after the flood goes through again.
        let all = KEY_CHECKS.available_permits() as u32;
        let busy = KEY_CHECKS.acquire_many(all).await.unwrap();
        let started = std::time::Instant::now();
        assert!(verify_key(&account, "k").await.is_err());
        assert!(started.elapsed() >= KEY_CHECK_WAIT);
        drop(busy);
        assert!(verify_key(&account, "k").await.unwrap());
    }

    #[test]
    fn only_the_exact_secret_matches() {
        assert!(secret_matches("s3cret", "s3cret"));
        assert!(!secret_matches("s3cre", "s3cret"));
        assert!(!secret_matches("", "s3cret"));
    }
}
