//! What `/metrics` serves in the OpenMetrics text format Prometheus scrapes: the render pool per size, render
//! sessions by state, spaces and their members, connected space sockets, how long space events
//! take from the write that caused them to their member's socket, and how long hosts take to
//! render a frame. `history` keeps the last hour of the same for the operator's charts.

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::telemetry::history::History;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SizeLabel {
    size: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

/// What the server measures as it runs; the rest is read from its state at each scrape.
pub struct Metrics {
    registry: Registry,
    /// A space event, from the write that caused it until its member's socket has it (seconds).
    broadcast: Histogram,
    /// A host's mean time to render and encode a frame, per heartbeat (seconds).
    frames: Histogram,
    /// The same measurements over the last hour, for the operator's charts.
    pub history: History,
    pool_hosts: Family<SizeLabel, Gauge>,
    pool_idle: Family<SizeLabel, Gauge>,
    pool_leased: Family<SizeLabel, Gauge>,
    pool_queued: Family<SizeLabel, Gauge>,
    pool_capacity: Family<SizeLabel, Gauge>,
    pool_unavailable: Family<SizeLabel, Gauge>,
    sessions: Family<StatusLabel, Gauge>,
    spaces: Gauge,
    members: Family<StatusLabel, Gauge>,
    space_sockets: Gauge,
    /// Replicas: NATS messages dropped for a missing, wrong or stale signature.
    nats_rejected: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("parallax");
        // 0.25 ms to about 1 s.
        let broadcast = Histogram::new([
            0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
        ]);
        registry.register(
            "space_event_delivery_seconds",
            "From the write that caused a space event to its member's socket",
            broadcast.clone(),
        );
        // 1 ms to about 1 s.
        let frames = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
        ]);
        registry.register(
            "render_frame_seconds",
            "A render host's mean time to render and encode a frame, per heartbeat",
            frames.clone(),
        );
        let family = |registry: &mut Registry, name: &str, help: &str| {
            let family = Family::<SizeLabel, Gauge>::default();
            registry.register(name, help, family.clone());
            family
        };
        let pool_hosts = family(&mut registry, "pool_hosts", "Render hosts registered");
        let pool_idle = family(
            &mut registry,
            "pool_idle_hosts",
            "Render hosts booted and free",
        );
        let pool_leased = family(&mut registry, "pool_leased_hosts", "Render hosts leased");
        let pool_queued = family(
            &mut registry,
            "pool_queued_sessions",
            "Sessions waiting for a host",
        );
        let pool_capacity = family(
            &mut registry,
            "pool_capacity_hosts",
            "Most render hosts at once",
        );
        let pool_unavailable = family(
            &mut registry,
            "pool_unavailable",
            "1 while render hosts of the size cannot be started (their pods do not start)",
        );
        let sessions = Family::<StatusLabel, Gauge>::default();
        registry.register(
            "render_sessions",
            "Render sessions by state",
            sessions.clone(),
        );
        let spaces = Gauge::default();
        registry.register("spaces", "Spaces", spaces.clone());
        let members = Family::<StatusLabel, Gauge>::default();
        registry.register("space_members", "Space members by status", members.clone());
        let space_sockets = Gauge::default();
        registry.register(
            "space_sockets",
            "Members connected to their space",
            space_sockets.clone(),
        );
        let nats_rejected = Counter::default();
        registry.register(
            "nats_messages_rejected",
            "Replicas: NATS messages dropped for a missing, wrong or stale signature",
            nats_rejected.clone(),
        );
        Self {
            nats_rejected,
            registry,
            broadcast,
            frames,
            history: History::default(),
            pool_hosts,
            pool_idle,
            pool_leased,
            pool_queued,
            pool_capacity,
            pool_unavailable,
            sessions,
            spaces,
            members,
            space_sockets,
        }
    }
}

/// What the spaces hold at a scrape.
#[derive(Debug, Default)]
pub struct Census {
    pub spaces: usize,
    pub sockets: usize,
    pub members: BTreeMap<String, usize>,
}

impl Metrics {
    /// The OpenMetrics text of everything measured, with the pool (`pool_status`), the render
    /// sessions by state and the spaces as they are now.
    pub fn encode(
        &self,
        pool: &[parallax_core::api::SizeStatus],
        sessions: BTreeMap<&'static str, usize>,
        census: Census,
    ) -> Result<String, std::fmt::Error> {
        let gauge = i64::from;
        for size in pool {
            let label = SizeLabel {
                size: size.size.clone(),
            };
            self.pool_hosts.get_or_create(&label).set(gauge(size.hosts));
            self.pool_idle.get_or_create(&label).set(gauge(size.idle));
            self.pool_leased
                .get_or_create(&label)
                .set(gauge(size.leased));
            self.pool_queued
                .get_or_create(&label)
                .set(gauge(size.queued));
            self.pool_capacity
                .get_or_create(&label)
                .set(gauge(size.capacity));
            self.pool_unavailable
                .get_or_create(&label)
                .set(i64::from(size.unavailable.is_some()));
        }
        self.sessions.clear();
        for (status, count) in sessions {
            let label = StatusLabel {
                status: status.to_string(),
            };
            self.sessions.get_or_create(&label).set(count as i64);
        }
        self.spaces.set(census.spaces as i64);
        self.space_sockets.set(census.sockets as i64);
        self.members.clear();
        for (status, count) in census.members {
            let label = StatusLabel { status };
            self.members.get_or_create(&label).set(count as i64);
        }
        let mut text = String::new();
        encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// What replicas count the NATS messages they drop on.
    pub fn nats_rejected(&self) -> Counter {
        self.nats_rejected.clone()
    }

    /// A space event reached its member's socket `took` after its write.
    pub fn delivered(&self, took: Duration) {
        self.broadcast.observe(took.as_secs_f64());
        self.history.delivered(took);
    }

    /// A render host rendered its frames in `took` each, on average, since its last heartbeat.
    pub fn frame(&self, took: Duration) {
        self.frames.observe(took.as_secs_f64());
        self.history.frame(took);
    }
}
