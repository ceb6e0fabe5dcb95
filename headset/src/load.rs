//! `parallax-headset load`: many simulated headsets in one space, measured.
//!
//! Every device joins the space as a headset, follows it over its own space WebSocket (acks,
//! resume) and, with `render`, holds its own render connection and loads each selection itself.
//! A driver selects a different model every `every`; the report says how long each selection
//! took to reach each device (and its first frame of the new model), and whether any device
//! missed a selection or saw one twice.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures_util::{StreamExt, stream};
use parallax_core::api::SpaceView;
use parallax_core::device::{Codec, HostMessage, Pose};
use parallax_core::space::Role;
use parallax_core::space_protocol::SpaceEvent;
use serde::Serialize;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::render::{RenderConnection, RenderEvent};
use crate::space::{ClientError, Coordinator, Join, Membership, SpaceConnection, SpaceUpdate};

/// What to simulate.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    pub space: String,
    /// The join code, for a private space that exists already.
    pub code: Option<String>,
    pub devices: usize,
    /// Each device also holds a render session and loads every selection on it.
    pub render: bool,
    /// How long selections are made for.
    pub duration: Duration,
    /// Time between two selections.
    pub every: Duration,
    /// Devices joining at once.
    pub concurrency: usize,
    /// With `render`: poses each device streams per second, as head tracking does (0: one
    /// pose per loaded model).
    pub pose_rate: u32,
    /// With `render`: the frame size asked for.
    pub viewport: (u32, u32),
    /// With `render`: the frame formats offered (the host picks the best).
    pub codecs: Vec<Codec>,
    /// Writes design reviews (a different part of the bracket hidden each time) instead of
    /// selections: how fast a review reaches a frame on every headset.
    pub review: bool,
}

/// The parts of the bracket, one of which each review hides.
const BRACKET_PARTS: [&str; 4] = ["Base plate", "Upright", "Gussets", "Bolt bosses"];

/// Latency figures in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Summary {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Summary {
    /// Nearest-rank percentiles of `samples` (any order); `None` if there are none.
    pub fn of(samples: &mut [Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            // Milliseconds to the microsecond.
            (samples[rank - 1].as_secs_f64() * 1e6).round() / 1e3
        };
        Some(Self {
            p50: at(0.50),
            p95: at(0.95),
            p99: at(0.99),
            max: at(1.0),
        })
    }
}

/// The result, as `--json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub devices: usize,
    /// Selections the driver made.
    pub selections: usize,
    /// Selection events the devices received.
    pub messages: usize,
    /// Selections a device never received.
    pub lost: usize,
    /// Selections a device received more than once.
    pub duplicated: usize,
    /// Driver's write sent → event received, every device and selection.
    pub broadcast_ms: Option<Summary>,
    /// First frames of a new selection the devices received (one per device and selection).
    pub frames: usize,
    /// Driver's write sent → first frame of the new model, every device and selection.
    pub frame_ms: Option<Summary>,
}

/// Where a run is, for a progress display.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Progress {
    Joined {
        devices: usize,
        of: usize,
    },
    Running {
        elapsed: Duration,
        selections: usize,
    },
    Leaving,
}

/// What a device tells the collector.
#[derive(Debug)]
enum Seen {
    Selection {
        device: usize,
        change: u64,
        at: Instant,
    },
    Frame {
        device: usize,
        change: u64,
        at: Instant,
    },
}

/// Runs the load; `progress` hears how far it is.
pub async fn run(
    coordinator: &Coordinator,
    config: &LoadConfig,
    progress: impl Fn(Progress),
) -> Result<LoadReport, ClientError> {
    let models = catalog_models(coordinator).await?;
    // The driver writes as a tablet member of a space that exists, or as the owner of the space
    // it creates.
    let (tablet, creator) = match coordinator.space(&config.space).await {
        Ok(_) => {
            let tablet = coordinator
                .join(
                    &config.space,
                    &Join {
                        device: "parallax-load driver",
                        role: Role::Tablet,
                        code: config.code.as_deref(),
                        render_session: false,
                    },
                )
                .await?;
            (Some(tablet), None)
        }
        Err(ClientError::NotFound(_)) => {
            // The first device creates it: every seat is a simulated headset.
            let template = if config.devices >= 100 {
                "large"
            } else {
                "default"
            };
            let name = device_name(0);
            let first = coordinator
                .create(
                    &config.space,
                    template,
                    json!({}),
                    &headset(&name, None, config),
                )
                .await?;
            (None, Some(first))
        }
        Err(e) => return Err(e),
    };
    let code = config
        .code
        .clone()
        .or_else(|| creator.as_ref().and_then(|c| c.join_code.clone()));

    let (seen_tx, mut seen_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let joined = std::sync::atomic::AtomicUsize::new(0);
    let mut devices = Vec::with_capacity(config.devices);
    let mut creator = creator;
    let mut joins = stream::iter(0..config.devices)
        .map(|i| {
            let code = code.clone();
            let joined = &joined;
            let progress = &progress;
            let created = if i == 0 { creator.take() } else { None };
            async move {
                let device = match created {
                    Some(membership) => Device::attach(coordinator, config, 0, membership).await,
                    None => Device::join(coordinator, config, i, code.as_deref()).await,
                };
                let n = joined.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                progress(Progress::Joined {
                    devices: n,
                    of: config.devices,
                });
                device
            }
        })
        .buffer_unordered(config.concurrency.max(1));
    let mut failure = None;
    while let Some(device) = joins.next().await {
        match device {
            Ok(device) => devices.push(device),
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    drop(joins);
    if let Some(e) = failure {
        leave_all(devices).await;
        return Err(e);
    }
    let tasks: Vec<_> = devices
        .into_iter()
        .map(|device| tokio::spawn(device.follow(seen_tx.clone(), stop_rx.clone())))
        .collect();
    drop(seen_tx);

    // Select a different model (or write a review) every `every`, remembering when each write
    // was sent.
    let write = |patch: serde_json::Value| async {
        match &tablet {
            Some(tablet) => tablet.write(patch, None).await,
            None => coordinator.write_space(&config.space, &patch, None).await,
        }
    };
    if config.review {
        // Reviews of the bracket: every headset loads it first.
        write(json!({ "selectedModel": "bracket", "review": {} })).await?;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let mut sent: HashMap<u64, Instant> = HashMap::new();
    let mut last_change = coordinator.space(&config.space).await?["change"].as_u64();
    let started = Instant::now();
    let mut tick = tokio::time::interval(config.every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut round = 0;
    while started.elapsed() < config.duration {
        tick.tick().await;
        round += 1;
        let patch = if config.review {
            let part = BRACKET_PARTS[round % BRACKET_PARTS.len()];
            json!({ "review": { "parts": { part: { "hidden": true } } } })
        } else {
            json!({ "selectedModel": models[round % models.len()] })
        };
        let at = Instant::now();
        let space = write(patch).await?;
        let change = space["change"].as_u64().ok_or_else(|| {
            ClientError::Protocol("no change number in the write's answer".into())
        })?;
        // Selecting what is already selected changes nothing and tells nobody.
        if last_change != Some(change) {
            sent.insert(change, at);
        }
        last_change = Some(change);
        progress(Progress::Running {
            elapsed: started.elapsed(),
            selections: sent.len(),
        });
    }
    // Time for the last selection (and its frames) to arrive.
    tokio::time::sleep(if config.render {
        Duration::from_secs(3)
    } else {
        Duration::from_secs(1)
    })
    .await;
    progress(Progress::Leaving);
    let _ = stop_tx.send(true);
    let mut outcome = Ok(());
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => outcome = outcome.and(Err(e)),
            Err(e) => outcome = outcome.and(Err(ClientError::Protocol(e.to_string()))),
        }
    }
    if let Some(tablet) = &tablet {
        tablet.leave().await?;
    }
    outcome?;

    let mut selections = Vec::new();
    let mut frames = Vec::new();
    let mut received: HashSet<(usize, u64)> = HashSet::new();
    let mut framed: HashSet<(usize, u64)> = HashSet::new();
    let (mut messages, mut duplicated) = (0, 0);
    while let Some(seen) = seen_rx.recv().await {
        match seen {
            Seen::Selection { device, change, at } => {
                let Some(sent_at) = sent.get(&change) else {
                    continue; // A selection made by someone else.
                };
                messages += 1;
                if !received.insert((device, change)) {
                    duplicated += 1;
                    continue;
                }
                selections.push(at - *sent_at);
            }
            Seen::Frame { device, change, at } => {
                if let Some(sent_at) = sent.get(&change)
                    && framed.insert((device, change))
                {
                    frames.push(at - *sent_at);
                }
            }
        }
    }
    let lost = config.devices * sent.len() - received.len();
    Ok(LoadReport {
        devices: config.devices,
        selections: sent.len(),
        messages,
        lost,
        duplicated,
        frames: frames.len(),
        broadcast_ms: Summary::of(&mut selections),
        frame_ms: Summary::of(&mut frames),
    })
}

/// Model ids to cycle through: the catalog's, at least two.
async fn catalog_models(coordinator: &Coordinator) -> Result<Vec<String>, ClientError> {
    let list = coordinator.models().await?;
    let models: Vec<String> = list["models"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["id"].as_str().map(str::to_string))
        .collect();
    if models.len() < 2 {
        return Err(ClientError::NotFound(
            "the catalog needs at least two models to switch between".into(),
        ));
    }
    Ok(models)
}

async fn leave_all(devices: Vec<Device>) {
    stream::iter(devices)
        .for_each_concurrent(32, |device| async move {
            let _ = device.membership.leave().await;
        })
        .await;
}

/// One simulated headset.
struct Device {
    index: usize,
    pose_rate: u32,
    viewport: (u32, u32),
    membership: Membership,
    space: SpaceConnection,
    render: Option<RenderConnection>,
}

impl Device {
    async fn join(
        coordinator: &Coordinator,
        config: &LoadConfig,
        index: usize,
        code: Option<&str>,
    ) -> Result<Self, ClientError> {
        let name = device_name(index);
        let membership = coordinator
            .join(&config.space, &headset(&name, code, config))
            .await?;
        Self::attach(coordinator, config, index, membership).await
    }

    /// Connects a joined device: its render connection (with `render`) and its space socket.
    async fn attach(
        coordinator: &Coordinator,
        config: &LoadConfig,
        index: usize,
        membership: Membership,
    ) -> Result<Self, ClientError> {
        let render = if config.render {
            let url = membership.render_url(Duration::from_secs(120)).await?;
            Some({
                let mut render =
                    RenderConnection::connect_offering(&url, coordinator.trust(), &config.codecs)
                        .await?;
                // Many simulated headsets share this machine with the hosts: none decodes
                // (as none decodes its JPEGs), so the figures are the system's, not ours.
                render.decode_video(false);
                render
            })
        } else {
            None
        };
        let space = membership.connect().await?;
        Ok(Self {
            index,
            pose_rate: config.pose_rate,
            viewport: config.viewport,
            membership,
            space,
            render,
        })
    }

    /// Follows the space until told to stop; then says bye and leaves.
    async fn follow(
        mut self,
        seen: mpsc::UnboundedSender<Seen>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<(), ClientError> {
        // The change of the selection being loaded, and whether its first frame is still due.
        let mut awaiting: Option<u64> = None;
        let mut loaded = false;
        let mut pose_id = 0;
        let mut extent = None;
        let mut azimuth = 30.0_f32;
        let (width, height) = self.viewport;
        let mut poses = tokio::time::interval(Duration::from_secs_f64(
            1.0 / f64::from(self.pose_rate.max(1)),
        ));
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                update = self.space.next() => match update {
                    Ok(SpaceUpdate::Event { change, event: SpaceEvent::Selection { model, .. }, .. }) => {
                        let _ = seen.send(Seen::Selection { device: self.index, change, at: Instant::now() });
                        if let (Some(render), Some(model)) = (self.render.as_mut(), model) {
                            render.load(model.as_str()).await?;
                            awaiting = Some(change);
                            loaded = false;
                        }
                    }
                    Ok(SpaceUpdate::Event { change, event: SpaceEvent::Review { review }, .. }) => {
                        let _ = seen.send(Seen::Selection { device: self.index, change, at: Instant::now() });
                        if let Some(render) = self.render.as_mut() {
                            render.set_review(review).await?;
                            awaiting = Some(change);
                        }
                    }
                    Ok(SpaceUpdate::Snapshot(space)) => {
                        if let (Some(render), Some(model)) = (self.render.as_mut(), selected(&space)) {
                            render.load(&model).await?;
                        }
                    }
                    Ok(SpaceUpdate::Event { .. } | SpaceUpdate::Presence { .. }) => {}
                    Err(e) if SpaceConnection::is_drop(&e) => {
                        self.space.resume_within(Duration::from_secs(30)).await?;
                    }
                    Err(e) => return Err(e),
                },
                event = next_render(&mut self.render) => match event? {
                    // A big model's coarse form is its first picture.
                    RenderEvent::Message(
                        HostMessage::LoadCoarse { extent: e, .. } | HostMessage::LoadDone { extent: e, .. },
                    ) => {
                        extent = Some(e.unwrap_or_default());
                        pose_id += 1;
                        let pose = Pose::orbit(&e.unwrap_or_default(), azimuth, 20.0, 1.0)
                            .pose(pose_id, width, height);
                        if let Some(render) = self.render.as_mut() {
                            render.pose(pose).await?;
                        }
                        loaded = true;
                    }
                    RenderEvent::Frame { .. } if loaded => {
                        if let Some(change) = awaiting.take() {
                            let _ = seen.send(Seen::Frame { device: self.index, change, at: Instant::now() });
                        }
                    }
                    _ => {}
                },
                _ = poses.tick(), if self.pose_rate > 0 && extent.is_some() => {
                    azimuth = (azimuth + 0.5) % 360.0;
                    pose_id += 1;
                    let pose = Pose::orbit(&extent.unwrap_or_default(), azimuth, 20.0, 1.0)
                        .pose(pose_id, width, height);
                    if let Some(render) = self.render.as_mut() {
                        render.pose(pose).await?;
                    }
                }
            }
        }
        if let Some(render) = self.render {
            let _ = render.bye().await;
        }
        let _ = self.space.bye().await;
        self.membership.leave().await
    }
}

fn device_name(index: usize) -> String {
    format!("parallax-load {index}")
}

/// How a simulated headset joins.
fn headset<'a>(name: &'a str, code: Option<&'a str>, config: &LoadConfig) -> Join<'a> {
    Join {
        device: name,
        role: Role::Headset,
        code,
        render_session: config.render,
    }
}

/// The next event of the render connection, if there is one; never resolves without it.
async fn next_render(render: &mut Option<RenderConnection>) -> Result<RenderEvent, ClientError> {
    match render {
        Some(render) => render.next().await,
        None => std::future::pending().await,
    }
}

/// The selected model in a space's snapshot.
fn selected(space: &SpaceView) -> Option<String> {
    space
        .properties
        .selected_model
        .as_ref()
        .map(|m| m.to_string())
}

/// The report as a table for people.
pub fn table(report: &LoadReport) -> String {
    let row = |name: &str, summary: &Option<Summary>| match summary {
        Some(s) => format!(
            "{name:<14} {:>9.2} {:>9.2} {:>9.2} {:>9.2}\n",
            s.p50, s.p95, s.p99, s.max
        ),
        None => format!("{name:<14} {:>9} {:>9} {:>9} {:>9}\n", "-", "-", "-", "-"),
    };
    format!(
        "devices {}  selections {}  messages {}  lost {}  duplicated {}  frames {}\n\
         {:<14} {:>9} {:>9} {:>9} {:>9}\n{}{}",
        report.devices,
        report.selections,
        report.messages,
        report.lost,
        report.duplicated,
        report.frames,
        "latency ms",
        "p50",
        "p95",
        "p99",
        "max",
        row("broadcast", &report.broadcast_ms),
        row("first frame", &report.frame_ms),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let s = Summary::of(&mut samples).unwrap();
        assert_eq!((s.p50, s.p95, s.p99, s.max), (50.0, 95.0, 99.0, 100.0));
        assert_eq!(Summary::of(&mut []), None);
    }
}
