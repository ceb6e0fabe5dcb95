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

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use parallax_core::host::HostCommand;
use parallax_core::pool::HostId;
use parallax_core::space::MemberId;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::base::redacted;
use crate::base::store::LoggedEvent;

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
}

impl Replication {
    /// Connects to NATS at `url` as a new replica; over TLS verified against `ca` (PEM) when
    /// given, which then is required.
    pub async fn connect(url: &str, ca: Option<&Path>) -> anyhow::Result<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        let mut options = async_nats::ConnectOptions::new().name(format!("parallax-{id}"));
        if let Some(ca) = ca {
            options = options
                .add_root_certificates(ca.to_path_buf())
                .require_tls(true);
        }
        let nats = tokio::time::timeout(CONNECT, options.connect(url))
            .await
            .map_err(|_| anyhow::anyhow!("no answer within {CONNECT:?}"))
            .and_then(|connected| connected.map_err(anyhow::Error::from))
            .with_context(|| format!("connecting to NATS at {}", redacted(url)))?;
        Ok(Self { id, nats })
    }

    /// Every space's events, as the other replicas publish them.
    pub async fn subscribe(&self) -> anyhow::Result<async_nats::Subscriber> {
        self.nats
            .subscribe(ALL_SPACES)
            .await
            .context("subscribing to the spaces' events")
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
        if let Err(e) = self.nats.publish(subject.clone(), payload.into()).await {
            tracing::warn!(subject, "publishing {what} on NATS: {e}");
        }
    }
}

/// The next message of `subscriber`, decoded; `None` when it ends or at shutdown.
pub async fn next_message<T: serde::de::DeserializeOwned>(
    subscriber: &mut async_nats::Subscriber,
    shutdown: &CancellationToken,
) -> Option<Result<T, serde_json::Error>> {
    use futures_util::StreamExt;
    let message = tokio::select! {
        message = subscriber.next() => message?,
        () = shutdown.cancelled() => return None,
    };
    Some(serde_json::from_slice(&message.payload))
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

        // Trusting the authority that issued the server's certificate: events go through.
        let replica = Replication::connect(&server.url, Some(&authority.ca_file))
            .await
            .unwrap();
        let mut events = replica.subscribe().await.unwrap();
        let other = Replication::connect(&server.url, Some(&authority.ca_file))
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
        let refused = Replication::connect(&server.url, Some(&stranger.ca_file)).await;
        let refused = refused
            .err()
            .expect("a server the given CA did not issue was trusted");
        let said = format!("{refused:#}");
        assert!(said.contains("UnknownIssuer"), "{said}");
    }

    #[test]
    fn a_nats_url_is_shown_without_its_password() {
        let shown = redacted("nats://parallax:s3cret@nats.local:4222");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.ends_with("@nats.local:4222"), "{shown}");
        assert!(!redacted("not a url s3cret").contains("s3cret"));
    }
}
