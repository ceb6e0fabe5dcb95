//! Render hosts' credentials: one per host, so a host can register only as itself and an
//! operator can revoke one without touching the others.
//!
//! - A host on another machine gets `NAME.SECRET` from `parallax host add NAME` (printed once;
//!   only the SHA-256 of the secret is stored: the secret is 256 random bits, so a slow hash
//!   would add nothing but CPU on every registration). It reads it from a file or the
//!   environment, never from its command line.
//! - A host the coordinator starts itself (`standard-N`, `premium-N`) gets `NAME.HMAC(NAME)`
//!   under a key kept in the database: nothing to store per host, every replica can check it,
//!   and a host left running for the next coordinator (`--on-stop keep-hosts`) still has a
//!   valid one.
//!
//! Comparisons are constant-time (`subtle`).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use hmac::{Hmac, Mac};
use parallax_core::pool::HostId;
use parallax_core::time::Timestamp;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::accounts::keys::random_hex;
use crate::base::store::{HostCredentialRecord, Store};

/// The key local hosts' credentials are made with.
const LOCAL_KEY_SETTING: &str = "local_host_key";
/// How often revocations are read: a revoked host is dropped within this (and one heartbeat).
const REVOCATION_CHECK: Duration = Duration::from_secs(2);

/// Who a credential says a host is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostIdentity {
    /// One the coordinator started (its name is the pool's: `standard-N`, `premium-N`).
    Local(HostId),
    /// One added by the operator with `parallax host add`.
    Remote(HostId),
}

impl HostIdentity {
    pub fn name(&self) -> &HostId {
        match self {
            Self::Local(name) | Self::Remote(name) => name,
        }
    }
}

/// Checks hosts' credentials and follows revocations.
#[derive(Clone)]
pub struct HostCredentials {
    store: Store,
    local_key: Arc<[u8]>,
    /// The names of revoked hosts, as last read.
    revoked: watch::Sender<Arc<HashSet<String>>>,
    /// Remote credentials already checked, by the hash of the whole credential: a host's
    /// registration and every mesh it fetches need no database read.
    known: Arc<RwLock<HashSet<[u8; 32]>>>,
}

impl HostCredentials {
    /// Reads (making once) the local hosts' key.
    pub async fn load(store: &Store) -> anyhow::Result<Self> {
        let key = store
            .setting_or_insert(LOCAL_KEY_SETTING, &random_hex(32))
            .await
            .context("reading the local hosts' key")?;
        let revoked = store
            .revoked_host_credentials()
            .await
            .context("reading revoked hosts")?;
        Ok(Self {
            store: store.clone(),
            local_key: key.into_bytes().into(),
            revoked: watch::Sender::new(Arc::new(revoked.into_iter().collect())),
            known: Arc::default(),
        })
    }

    /// The credential of the local host `host`.
    pub fn local_credential(&self, host: &HostId) -> String {
        format!("{host}.{}", hex(&self.local_mac(host)))
    }

    fn local_mac(&self, host: &HostId) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.local_key).expect("HMAC takes any key length");
        mac.update(b"parallax local render host\0");
        mac.update(host.as_str().as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Who `credential` belongs to; `None` for a wrong, unknown or revoked one.
    pub async fn verify(&self, credential: &str) -> Option<HostIdentity> {
        let (name, secret) = credential.trim().split_once('.')?;
        if is_local_name(name) {
            let host = HostId::new(name);
            let expected = hex(&self.local_mac(&host));
            return bool::from(expected.as_bytes().ct_eq(secret.as_bytes()))
                .then_some(HostIdentity::Local(host));
        }
        if self.is_revoked(name) {
            return None;
        }
        let whole: [u8; 32] = Sha256::digest(credential.trim().as_bytes()).into();
        let known = self
            .known
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&whole);
        if !known {
            let record = self.store.host_credential(name).await.ok()??;
            if record.revoked_at.is_some() || !secret_matches_hash(secret, &record.secret_hash) {
                return None;
            }
            self.known
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(whole);
        }
        Some(HostIdentity::Remote(HostId::new(name)))
    }

    /// Whether host `name`'s credential is revoked (as last read).
    pub fn is_revoked(&self, name: &str) -> bool {
        self.revoked.borrow().contains(name)
    }

    /// The revoked names, as they change.
    pub fn revocations(&self) -> watch::Receiver<Arc<HashSet<String>>> {
        self.revoked.subscribe()
    }

    /// Reads revocations every [`REVOCATION_CHECK`] until `shutdown` (`parallax host revoke` may
    /// run on another machine, or while this coordinator runs).
    pub async fn follow_revocations(self, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                () = tokio::time::sleep(REVOCATION_CHECK) => {}
                () = shutdown.cancelled() => return,
            }
            match self.store.revoked_host_credentials().await {
                Ok(revoked) => {
                    let revoked: HashSet<String> = revoked.into_iter().collect();
                    self.revoked.send_if_modified(|held| {
                        let changed = **held != revoked;
                        if changed {
                            *held = Arc::new(revoked);
                        }
                        changed
                    });
                }
                Err(e) => tracing::warn!("could not read revoked render hosts: {e}"),
            }
        }
    }
}

/// Whether `host` is one the coordinator started (no operator's host may have such a name).
pub fn is_local_host(host: &HostId) -> bool {
    is_local_name(host.as_str())
}

/// Names the coordinator gives the hosts it starts: no operator's host may have one.
fn is_local_name(name: &str) -> bool {
    ["standard-", "premium-"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `secret`'s SHA-256 is `hash` (hex), compared in constant time.
fn secret_matches_hash(secret: &str, hash: &str) -> bool {
    let given = hex(&Sha256::digest(secret.as_bytes()));
    bool::from(given.as_bytes().ct_eq(hash.as_bytes()))
}

/// Why a host name cannot be added.
fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-');
    if !valid {
        anyhow::bail!(
            "a host name is 1 to 63 lower-case letters, digits and '-', not starting with '-': \
             {name:?}"
        );
    }
    if is_local_name(name) {
        anyhow::bail!(
            "{name:?}: names starting with standard- or premium- are the coordinator's own hosts'"
        );
    }
    Ok(())
}

/// `parallax host add NAME`: a new host's credential, shown once.
pub async fn add(store: &Store, name: &str, now: Timestamp) -> anyhow::Result<String> {
    check_name(name)?;
    let secret = random_hex(32);
    let hash = hex(&Sha256::digest(secret.as_bytes()));
    if !store
        .insert_host_credential(name, &hash, now)
        .await
        .context("storing the host's credential")?
    {
        anyhow::bail!("there is a host named {name} already (revoked names stay taken)");
    }
    Ok(format!("{name}.{secret}"))
}

/// `parallax host list`.
pub async fn list(store: &Store) -> anyhow::Result<Vec<HostCredentialRecord>> {
    store
        .host_credentials()
        .await
        .context("reading the hosts' credentials")
}

/// `parallax host revoke NAME`: true if revoked just now, false if it already was.
pub async fn revoke(store: &Store, name: &str, now: Timestamp) -> anyhow::Result<bool> {
    let record = store
        .host_credential(name)
        .await
        .context("reading the host's credential")?
        .ok_or_else(|| anyhow::anyhow!("there is no host named {name}"))?;
    store
        .revoke_host_credential(name, now)
        .await
        .context("revoking the host")?;
    Ok(record.revoked_at.is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("parallax.db")).await.unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn a_host_credential_names_its_host_and_only_it() {
        let (_dir, store) = store().await;
        let credentials = HostCredentials::load(&store).await.unwrap();
        let now = Timestamp::from_millis(1);
        let gpu = add(&store, "gpu-1", now).await.unwrap();
        let other = add(&store, "gpu-2", now).await.unwrap();
        assert!(gpu.starts_with("gpu-1."));
        assert_eq!(
            credentials.verify(&gpu).await,
            Some(HostIdentity::Remote(HostId::new("gpu-1")))
        );
        // Another host's secret under this name, a changed byte, no secret: nobody.
        let (_, other_secret) = other.split_once('.').unwrap();
        assert_eq!(
            credentials.verify(&format!("gpu-1.{other_secret}")).await,
            None
        );
        let mut changed = gpu.clone().into_bytes();
        *changed.last_mut().unwrap() ^= 1;
        assert_eq!(
            credentials
                .verify(&String::from_utf8(changed).unwrap())
                .await,
            None
        );
        assert_eq!(credentials.verify("gpu-1").await, None);
        assert_eq!(credentials.verify("").await, None);
        // Only the hash is stored.
        let stored = store.host_credential("gpu-1").await.unwrap().unwrap();
        assert!(!gpu.contains(&stored.secret_hash));
        // Names taken, reserved or unreadable.
        assert!(add(&store, "gpu-1", now).await.is_err());
        assert!(add(&store, "standard-1", now).await.is_err());
        assert!(add(&store, "GPU 3", now).await.is_err());
    }

    #[tokio::test]
    async fn local_hosts_have_credentials_of_their_name() {
        let (_dir, store) = store().await;
        let credentials = HostCredentials::load(&store).await.unwrap();
        let one = credentials.local_credential(&HostId::new("standard-1"));
        assert_eq!(
            credentials.verify(&one).await,
            Some(HostIdentity::Local(HostId::new("standard-1")))
        );
        // Its secret does not make another local host.
        let (_, mac) = one.split_once('.').unwrap();
        assert_eq!(credentials.verify(&format!("standard-2.{mac}")).await, None);
        // Another coordinator on the same database agrees (replicas, a restart).
        let again = HostCredentials::load(&store).await.unwrap();
        assert!(again.verify(&one).await.is_some());
    }

    #[tokio::test]
    async fn a_revoked_host_no_longer_verifies() {
        let (_dir, store) = store().await;
        let credentials = HostCredentials::load(&store).await.unwrap();
        let now = Timestamp::from_millis(1);
        let gpu = add(&store, "gpu-1", now).await.unwrap();
        assert!(credentials.verify(&gpu).await.is_some());
        assert!(revoke(&store, "gpu-1", now).await.unwrap());
        assert!(!revoke(&store, "gpu-1", now).await.unwrap(), "already");
        let stop = CancellationToken::new();
        let mut revocations = credentials.revocations();
        tokio::spawn(credentials.clone().follow_revocations(stop.clone()));
        tokio::time::timeout(Duration::from_secs(10), revocations.changed())
            .await
            .expect("read within seconds")
            .unwrap();
        assert!(credentials.is_revoked("gpu-1"));
        assert_eq!(credentials.verify(&gpu).await, None);
        stop.cancel();
    }
}
