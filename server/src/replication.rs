//! What coordinator replicas say to each other (docs/SCALING.md): Postgres is the log, NATS the
//! doorbell.
//!
//! Spaces:
//! A replica changes a space under the row's lock and commits the change with its events, each
//! numbered in the space's sequence, in one transaction: one order, no gaps. After the commit it
//! delivers them to its own members and publishes them on NATS (`parallax.space.<name>`). Every
//! replica delivers what it hears to its connected members in sequence order: what it delivered
//! already is dropped, what it missed (NATS is at most once) is read from the log. The log also
//! answers a member that resumes on another replica with its last sequence.
//!
//! Every replica says it is alive in the `replicas` table every [`HEARTBEAT`]; the members held by
//! one silent for [`SILENCE`] are made `ready` by whichever replica notices, under the row lock,
//! so they may resume elsewhere and time out if they do not.
//!
//! The render pool: a host command (a reset) made on one replica goes to the replica holding
//! the host's link, on `parallax.host.<id>` (`crate::pool`).
//!
//! NATS is not trusted with more than delivery: a replica connects with credentials (and refuses
//! a server that lets anyone in, unless told `--nats-insecure`), and signs every message it
//! publishes with a key the replicas share through the database (HMAC-SHA256 over the subject,
//! the time it was sent, a random id and the payload, in headers). A message without a valid
//! signature, sent more than [`MAX_AGE`] ago, or with an id seen already (a replay), is dropped
//! and counted in `/metrics`: a client of the NATS server that cannot read the database cannot
//! command a host or close a member.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use parallax_core::host::HostCommand;
use parallax_core::pool::HostId;
use parallax_core::space::MemberId;
use prometheus_client::metrics::counter::Counter;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::accounts::keys::random_hex;
use crate::base::redacted;
use crate::base::store::{LoggedEvent, Store};
use crate::config::NatsOptions;

type HmacSha256 = Hmac<sha2::Sha256>;

/// The setting holding the key replicas sign their NATS messages with.
const SIGNING_KEY_SETTING: &str = "nats_signing_key";
/// The header with the time a message was sent (ms since the Unix epoch).
const SENT_HEADER: &str = "Parallax-Sent";
/// The header with a message's signature.
const SIGNATURE_HEADER: &str = "Parallax-Signature";
/// The header with a message's own random id: one seen already is a replay.
const NONCE_HEADER: &str = "Parallax-Nonce";
/// A message sent longer ago than this (or this far ahead, by a replica's clock) is dropped: a
/// replay of a recorded one, or a replica whose clock is off.
const MAX_AGE: Duration = Duration::from_secs(30);

/// How often a replica says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// A replica not heard from for this long is taken for dead: its members become `ready`.
pub const SILENCE: Duration = Duration::from_secs(5);
/// How often a replica compares what it delivered with the log, for NATS messages it missed.
pub const CATCH_UP: Duration = Duration::from_secs(1);

/// How long a replica waits for NATS when it starts.
const CONNECT: Duration = Duration::from_secs(10);

/// The NATS subject of space `name`'s events.
fn subject(name: &str) -> String {
    format!("parallax.space.{name}")
}

/// Every space's subject.
const ALL_SPACES: &str = "parallax.space.*";

/// The NATS subject of space `name`'s presence: ephemeral, never in the log.
fn presence_subject(name: &str) -> String {
    format!("parallax.presence.{name}")
}

/// Every space's presence.
const ALL_PRESENCE: &str = "parallax.presence.*";

/// Presence that changed on one replica, for the members of its space on the others.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PresenceNews {
    pub space: String,
    pub replica: String,
    pub members: Vec<parallax_core::space_protocol::MemberPresence>,
    #[serde(default)]
    pub gone: Vec<String>,
}

/// The subject of host `id`'s commands, for the replica holding its link.
fn host_subject(id: &HostId) -> String {
    format!("parallax.host.{id}")
}

/// Every host's commands.
const ALL_HOSTS: &str = "parallax.host.*";

/// Which replica holds a member's socket, and which of its connections it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub replica: String,
    pub connection: u64,
}

/// A member whose socket must close, wherever it is connected; except `keep`, its newest one.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Close {
    pub member: MemberId,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<Holder>,
}

/// What a replica publishes after a commit.
#[derive(Debug, Serialize, Deserialize)]
pub struct Published {
    pub space: String,
    pub replica: String,
    /// `(seq, change, event JSON)`, in order.
    pub events: Vec<(u64, u64, String)>,
    #[serde(default)]
    pub closes: Vec<Close>,
}

impl Published {
    pub fn logged(&self) -> Vec<LoggedEvent> {
        self.events
            .iter()
            .map(|(seq, change, event)| LoggedEvent {
                seq: *seq,
                change: *change,
                event: event.clone(),
            })
            .collect()
    }
}

/// This replica's name and its NATS connection.
pub struct Replication {
    pub id: String,
    nats: async_nats::Client,
    /// What messages are signed with.
    key: Vec<u8>,
    /// Messages dropped for their signature.
    rejected: Counter,
    /// The ids of the messages taken within the last 2 × [`MAX_AGE`].
    seen: std::sync::Mutex<Seen>,
}

/// Message ids taken, with when each was sent (ms), and when those too old to matter were last
/// let go: once a second, not on every message (presence brings dozens a second).
#[derive(Default)]
struct Seen {
    ids: std::collections::HashMap<String, u64>,
    pruned: u64,
}

impl Replication {
    /// Connects to the NATS server `nats` names as a new replica: with its credentials, over
    /// TLS verified against its authority when one is given (TLS is then required). A server
    /// that lets anyone in is refused unless `nats.insecure`. Messages are signed with the key
    /// in `store` (made there by the first replica); those dropped are counted on `rejected`.
    pub async fn connect(
        nats: &NatsOptions,
        store: &Store,
        rejected: Counter,
    ) -> anyhow::Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let shown = shown(&nats.url);
        let mut options = async_nats::ConnectOptions::new().name(format!("parallax-{id}"));
        if let Some(ca) = &nats.ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        // The URL's user and password, or token (async-nats does not read them from it itself).
        let address: async_nats::ServerAddr = nats
            .url
            .parse()
            .with_context(|| format!("reading the NATS URL {shown}"))?;
        match (address.username(), address.password()) {
            (Some(user), Some(password)) => {
                let decode = |text: &str| {
                    percent_encoding::percent_decode_str(text)
                        .decode_utf8_lossy()
                        .into_owned()
                };
                options = options.user_and_password(decode(user), decode(password));
            }
            (Some(token), None) => {
                let token = percent_encoding::percent_decode_str(token).decode_utf8_lossy();
                options = options.token(token.into_owned());
            }
            _ => {}
        }
        if let Some(creds) = &nats.creds {
            options = options
                .credentials_file(creds)
                .await
                .with_context(|| format!("reading the NATS credentials {}", creds.display()))?;
        }
        if let Some(file) = &nats.nkey_file {
            let seed = std::fs::read_to_string(file)
                .with_context(|| format!("reading the NKey seed {}", file.display()))?;
            options = options.nkey(seed.trim().to_string());
        }
        let client = tokio::time::timeout(CONNECT, options.connect(nats.url.as_str()))
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {CONNECT:?}"))
            .and_then(|connected| connected.map_err(anyhow::Error::from))
            .with_context(|| format!("connecting to NATS at {shown}"))?;
        if !client.server_info().auth_required && !nats.insecure {
            anyhow::bail!(
                "the NATS server at {shown} lets anyone connect, and whoever does could read every \
                 space's events: give it users (docs.nats.io: Securing NATS) and put the \
                 replicas' in --nats (nats://USER:PASS@HOST:PORT), --nats-creds or --nats-nkey-file; \
                 or, on a network only the replicas reach, pass --nats-insecure"
            );
        }
        let key = store
            .setting_or_insert(SIGNING_KEY_SETTING, &random_hex(32))
            .await
            .context("reading the replicas' signing key")?;
        Ok(Self {
            id,
            nats: client,
            key: key.into_bytes(),
            rejected,
            seen: std::sync::Mutex::default(),
        })
    }

    /// The signature of `payload` on `subject`, sent at `sent` (ms since the Unix epoch) with
    /// the id `nonce`.
    fn mac(&self, subject: &str, sent: u64, nonce: &str, payload: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key");
        for part in [
            subject.as_bytes(),
            sent.to_string().as_bytes(),
            nonce.as_bytes(),
        ] {
            mac.update(part);
            mac.update(b"\n");
        }
        mac.update(payload);
        mac
    }

    /// Whether `message` was signed by a replica, and recently: why not, if it was not.
    fn check(&self, message: &async_nats::Message) -> Result<(), &'static str> {
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_string())
        };
        let (Some(sent), Some(nonce), Some(signature)) = (
            header(SENT_HEADER),
            header(NONCE_HEADER),
            header(SIGNATURE_HEADER),
        ) else {
            return Err("unsigned");
        };
        let sent: u64 = sent.parse().map_err(|_| "a malformed time")?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| "a malformed signature")?;
        self.mac(message.subject.as_str(), sent, &nonce, &message.payload)
            .verify_slice(&signature)
            .map_err(|_| "a wrong signature")?;
        let now = now_ms();
        let max_age = MAX_AGE.as_millis() as u64;
        if now.abs_diff(sent) > max_age {
            return Err("stale (replayed, or a replica's clock is off)");
        }
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if now.abs_diff(seen.pruned) >= 1000 {
            seen.ids.retain(|_, at| now.abs_diff(*at) <= 2 * max_age);
            seen.pruned = now;
        }
        if seen.ids.insert(nonce, sent).is_some() {
            return Err("replayed");
        }
        Ok(())
    }

    /// The next message of `subscriber` that a replica signed, decoded; `None` when it ends or
    /// at shutdown. Others are dropped and counted.
    pub async fn next_message<T: serde::de::DeserializeOwned>(
        &self,
        subscriber: &mut async_nats::Subscriber,
        shutdown: &CancellationToken,
    ) -> Option<Result<T, serde_json::Error>> {
        use futures_util::StreamExt;
        loop {
            let message = tokio::select! {
                message = subscriber.next() => message?,
                () = shutdown.cancelled() => return None,
            };
            match self.check(&message) {
                Ok(()) => return Some(serde_json::from_slice(&message.payload)),
                Err(why) => {
                    self.rejected.inc();
                    tracing::warn!(subject = %message.subject, "dropped a NATS message: {why}");
                }
            }
        }
    }

    /// Every space's events, as the other replicas publish them.
    pub async fn subscribe(&self) -> anyhow::Result<async_nats::Subscriber> {
        self.nats
            .subscribe(ALL_SPACES)
            .await
            .context("subscribing to the spaces' events")
    }

    /// Every space's presence, as the other replicas publish it.
    pub async fn subscribe_presence(&self) -> anyhow::Result<async_nats::Subscriber> {
        self.nats
            .subscribe(ALL_PRESENCE)
            .await
            .context("subscribing to the spaces' presence")
    }

    /// Tells the other replicas where this one's members are: lost, it is superseded by the
    /// next (at most once, as presence is).
    pub async fn publish_presence(&self, news: &PresenceNews) {
        self.publish_json(presence_subject(&news.space), news, "presence")
            .await;
    }

    /// Commands for hosts, for whichever replica holds their links.
    pub async fn subscribe_host_commands(&self) -> anyhow::Result<async_nats::Subscriber> {
        self.nats
            .subscribe(ALL_HOSTS)
            .await
            .context("subscribing to host commands")
    }

    /// Sends `command` to the replica holding host `id`'s link.
    pub async fn host_command(&self, id: &HostId, command: &HostCommand) {
        self.publish_json(host_subject(id), &(id, command), "a host command")
            .await;
    }

    /// Tells the other replicas about a commit: its events and the sockets to close.
    pub async fn publish(&self, space: &str, events: &[LoggedEvent], closes: Vec<Close>) {
        let published = Published {
            space: space.to_string(),
            replica: self.id.clone(),
            events: events
                .iter()
                .map(|e| (e.seq, e.change, e.event.clone()))
                .collect(),
            closes,
        };
        // Lost, it is read from the log: by the next message's gap, or the catch-up.
        self.publish_json(subject(space), &published, "space events")
            .await;
    }

    /// Publishes `message` as JSON on `subject`; a failure is logged as about `what`.
    async fn publish_json(&self, subject: String, message: &impl Serialize, what: &str) {
        let payload = match serde_json::to_vec(message) {
            Ok(payload) => payload,
            Err(e) => {
                tracing::error!("encoding {what}: {e}");
                return;
            }
        };
        let sent = now_ms();
        let nonce = random_hex(16);
        let signature = self
            .mac(&subject, sent, &nonce, &payload)
            .finalize()
            .into_bytes();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(SENT_HEADER, sent.to_string().as_str());
        headers.insert(NONCE_HEADER, nonce.as_str());
        headers.insert(SIGNATURE_HEADER, URL_SAFE_NO_PAD.encode(signature).as_str());
        if let Err(e) = self
            .nats
            .publish_with_headers(subject.clone(), headers, payload.into())
            .await
        {
            tracing::warn!(subject, "publishing {what} on NATS: {e}");
        }
    }
}

/// A NATS URL for messages and logs: without its password, or its token (what NATS takes a
/// user name without a password for).
fn shown(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_none() && !parsed.username().is_empty() => {
            let _ = parsed.set_username("…");
            parsed.to_string()
        }
        _ => redacted(url),
    }
}

/// Now, in ms since the Unix epoch, by this machine's clock (replicas compare theirs).
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
#[path = "../tests/support/nats.rs"]
mod nats;

#[cfg(test)]
mod tests {
    use super::nats;
    use super::*;
    use crate::tls::{Tls, TlsSetup};

    #[tokio::test]
    async fn nats_over_tls_is_verified_against_the_authority_given() {
        let local = TlsSetup::Local {
            names: vec!["coordinator.invalid".into()],
            host_domains: crate::tls::scope::Scope::parse(["localhost"]).unwrap(),
        };
        let ours = tempfile::tempdir().unwrap();
        let authority = Tls::open(ours.path(), &local).unwrap().unwrap();
        let issued = authority.issue_for_host("localhost").unwrap();
        let (cert, key) = (ours.path().join("nats.crt"), ours.path().join("nats.key"));
        std::fs::write(&cert, &issued.cert).unwrap();
        std::fs::write(&key, &issued.key).unwrap();
        let server = nats::NatsServer::start_with_tls(&cert, &key);
        let store = Store::open(&ours.path().join("parallax.db")).await.unwrap();
        let options = |ca: &std::path::Path| NatsOptions {
            url: server.url.clone(),
            ca: Some(ca.to_path_buf()),
            // A server of the test's own, open to any client that trusts its certificate.
            insecure: true,
            ..NatsOptions::default()
        };

        // Trusting the authority that issued the server's certificate: events go through.
        let replica =
            Replication::connect(&options(&authority.ca_file), &store, Counter::default())
                .await
                .unwrap();
        let mut events = replica.subscribe().await.unwrap();
        let other = Replication::connect(&options(&authority.ca_file), &store, Counter::default())
            .await
            .unwrap();
        other.nats.flush().await.unwrap();
        replica.nats.flush().await.unwrap();
        other.publish("lobby", &[], Vec::new()).await;
        let message = tokio::time::timeout(Duration::from_secs(5), {
            use futures_util::StreamExt;
            events.next()
        })
        .await
        .unwrap()
        .unwrap();
        let published: Published = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(
            (published.space.as_str(), published.replica),
            ("lobby", other.id.clone())
        );

        // A server another authority issued is refused.
        let elsewhere = tempfile::tempdir().unwrap();
        let stranger = Tls::open(elsewhere.path(), &local).unwrap().unwrap();
        let refused =
            Replication::connect(&options(&stranger.ca_file), &store, Counter::default()).await;
        let refused = refused
            .err()
            .expect("a server the given CA did not issue was trusted");
        let said = format!("{refused:#}");
        assert!(said.contains("UnknownIssuer"), "{said}");
    }

    /// A store in a folder of its own, and how a replica reaches NATS at `url`.
    async fn store_and_options(url: &str) -> (tempfile::TempDir, Store, NatsOptions) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("parallax.db")).await.unwrap();
        let options = NatsOptions {
            url: url.to_string(),
            ..NatsOptions::default()
        };
        (dir, store, options)
    }

    #[tokio::test]
    async fn a_nats_server_that_lets_anyone_in_is_refused_unless_the_operator_says_so() {
        let open = nats::NatsServer::open();
        let (_dir, store, options) = store_and_options(&open.url).await;
        let refused = Replication::connect(&options, &store, Counter::default())
            .await
            .err()
            .expect("an open NATS server was used");
        assert!(
            format!("{refused:#}").contains("--nats-insecure"),
            "{refused:#}"
        );
        let insecure = NatsOptions {
            insecure: true,
            ..options
        };
        Replication::connect(&insecure, &store, Counter::default())
            .await
            .unwrap();
        // With a user, the same server asks for credentials: accepted as it is.
        let guarded = nats::NatsServer::with_user();
        let options = NatsOptions {
            url: guarded.url.clone(),
            insecure: false,
            ..insecure
        };
        Replication::connect(&options, &store, Counter::default())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn messages_without_a_replicas_signature_are_dropped_and_counted() {
        use futures_util::StreamExt;
        let server = nats::NatsServer::with_user();
        let (_dir, store, options) = store_and_options(&server.url).await;
        let rejected = Counter::default();
        let replica = Replication::connect(&options, &store, rejected.clone())
            .await
            .unwrap();
        let mut commands = replica.subscribe_host_commands().await.unwrap();
        replica.nats.flush().await.unwrap();
        // A client of the NATS server, with its credentials but not the database's key.
        let intruder = async_nats::ConnectOptions::with_user_and_password(
            "parallax".into(),
            server.password.clone().unwrap(),
        )
        .connect(server.url.as_str())
        .await
        .unwrap();
        let host = HostId::new("standard-1");
        let forged = serde_json::to_vec(&(&host, HostCommand::Reset)).unwrap();
        let subject = host_subject(&host);
        intruder
            .publish(subject.clone(), forged.clone().into())
            .await
            .unwrap();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(SENT_HEADER, now_ms().to_string().as_str());
        headers.insert(NONCE_HEADER, "x");
        headers.insert(SIGNATURE_HEADER, URL_SAFE_NO_PAD.encode([0u8; 32]).as_str());
        intruder
            .publish_with_headers(subject.clone(), headers, forged.clone().into())
            .await
            .unwrap();
        // A replica's own message, recorded and sent again a minute later: a replay.
        let signed = |sent: u64, nonce: &str| {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(SENT_HEADER, sent.to_string().as_str());
            headers.insert(NONCE_HEADER, nonce);
            let signature = replica.mac(&subject, sent, nonce, &forged).finalize();
            let signature = URL_SAFE_NO_PAD.encode(signature.into_bytes());
            headers.insert(SIGNATURE_HEADER, signature.as_str());
            headers
        };
        intruder
            .publish_with_headers(
                subject.clone(),
                signed(now_ms() - 60_000, "a"),
                forged.clone().into(),
            )
            .await
            .unwrap();
        // And one sent at once, twice: the second is a replay.
        let fresh = signed(now_ms(), "b");
        for _ in 0..2 {
            intruder
                .publish_with_headers(subject.clone(), fresh.clone(), forged.clone().into())
                .await
                .unwrap();
        }
        intruder.flush().await.unwrap();
        // Then a replica's own command: the only one that comes through.
        let other = Replication::connect(&options, &store, Counter::default())
            .await
            .unwrap();
        other.host_command(&host, &HostCommand::Reset).await;
        other.nats.flush().await.unwrap();
        let shutdown = CancellationToken::new();
        let mut next = async || {
            tokio::time::timeout(
                Duration::from_secs(5),
                replica.next_message::<(HostId, HostCommand)>(&mut commands, &shutdown),
            )
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        };
        // The first of the fresh pair (signed as a replica signs) comes through, then the
        // replica's own.
        assert_eq!(next().await, (host.clone(), HostCommand::Reset));
        assert_eq!(next().await, (host, HostCommand::Reset));
        assert_eq!(
            rejected.get(),
            4,
            "unsigned, wrongly signed, stale and replayed"
        );
        // Nothing else is waiting.
        assert!(
            tokio::time::timeout(Duration::from_millis(200), commands.next())
                .await
                .is_err()
        );
    }

    #[test]
    fn a_nats_url_is_shown_without_its_password() {
        let password = shown("nats://parallax:s3cret@nats.local:4222");
        assert!(!password.contains("s3cret"), "{password}");
        assert!(password.ends_with("@nats.local:4222"), "{password}");
        assert!(!shown("not a url s3cret").contains("s3cret"));
        let token = shown("nats://s3cr3t-token@nats.local:4222");
        assert!(!token.contains("s3cr3t"), "{token}");
        assert!(token.ends_with("@nats.local:4222"), "{token}");
    }
}
