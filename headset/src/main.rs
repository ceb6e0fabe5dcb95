//! `parallax-headset`: a headset on the command line, and a load generator of many.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use parallax_core::device::{Codec, HostMessage, Pose};
use parallax_core::review::Review;
use parallax_core::space::Role;
use parallax_core::space_protocol::SpaceEvent;
use parallax_core::trust::Trust;
use parallax_headset::load::{self, LoadConfig, Progress};
use parallax_headset::{
    ClientError, Coordinator, Join, Picture, RenderConnection, RenderEvent, SpaceConnection,
    SpaceUpdate,
};
use tokio::time::Instant;

#[derive(Debug, Parser)]
#[command(
    name = "parallax-headset",
    version,
    about = "A Parallax headset on the command line, and a load generator of many"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where and as whom.
#[derive(Debug, Args)]
struct Connection {
    /// The coordinator, e.g. https://showroom.local:3000.
    #[arg(
        long,
        env = "PARALLAX_SERVER",
        default_value = "https://localhost:3000"
    )]
    server: String,
    /// The certificate authorities to trust for https:// and wss://, as PEM: the coordinator's
    /// /ca.crt, or the system's bundle for a publicly issued certificate.
    #[arg(long, env = "PARALLAX_CA")]
    ca: Option<std::path::PathBuf>,
    /// The account id (`parallax account create` prints it).
    #[arg(long, env = "PARALLAX_ACCOUNT")]
    account: String,
    /// The account key.
    #[arg(long, env = "PARALLAX_KEY", hide_env_values = true)]
    key: String,
    /// The space.
    #[arg(long)]
    space: String,
    /// The space's join code, if it is private.
    #[arg(long)]
    code: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Join a space as one headset: lease a render session, follow what the space shows, print
    /// state changes, fps and latency; Ctrl-C leaves cleanly.
    Join {
        #[command(flatten)]
        connection: Connection,
        /// The name the roster shows.
        #[arg(long, default_value = "parallax-headset")]
        device: String,
        /// Write each received frame here: `frame-<n>.jpg` for JPEG, `frame-<n>.png` decoded
        /// from H.264.
        #[arg(long)]
        frames: Option<PathBuf>,
        /// The frame format to ask for, `h264` or `jpeg`; default: the host's best.
        #[arg(long, value_parser = codec)]
        codec: Option<Codec>,
        /// Viewport of the frames asked for.
        #[arg(long, default_value_t = 1280)]
        width: u32,
        #[arg(long, default_value_t = 720)]
        height: u32,
        /// Ask for both eyes of a headset, side by side in each frame (each `--width × --height`),
        /// this far apart in the model's units (64 for a part in millimetres).
        #[arg(long, num_args = 0..=1, default_missing_value = "64")]
        stereo: Option<f32>,
    },
    /// Simulate many headsets in one space (created if missing) and measure how selections
    /// reach them.
    Load {
        #[command(flatten)]
        connection: Connection,
        /// Headsets to simulate.
        #[arg(long, default_value_t = 100)]
        devices: usize,
        /// Each headset also holds a render session and loads every selection on it.
        #[arg(long)]
        render: bool,
        /// How long to make selections, e.g. 30s or 2m.
        #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
        duration: Duration,
        /// Time between two selections.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        every: Duration,
        /// With --render: poses per second each headset streams, as head tracking does (0: one
        /// pose per loaded model).
        #[arg(long, default_value_t = 0)]
        pose_rate: u32,
        /// With --render: the frame size, WIDTHxHEIGHT.
        #[arg(long, default_value = "1280x720", value_parser = viewport)]
        viewport: (u32, u32),
        /// With --render: the frame format to ask for, `h264` or `jpeg`; default: the host's best.
        #[arg(long, value_parser = codec)]
        codec: Option<Codec>,
        /// Write design reviews of the bracket (a different part hidden each time) instead of
        /// selections.
        #[arg(long)]
        review: bool,
        /// Print one JSON object instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Join {
            connection,
            device,
            frames,
            width,
            height,
            stereo,
            codec,
        } => {
            let codecs = codec.map_or(Codec::PREFERENCE.to_vec(), |c| vec![c]);
            let view = View {
                size: (width, height),
                stereo,
                codecs,
            };
            join(&connection, &device, frames, view).await
        }
        Command::Load {
            connection,
            devices,
            render,
            duration,
            every,
            pose_rate,
            viewport,
            codec,
            review,
            json,
        } => {
            let coordinator = sign_in(&connection).await?;
            let config = LoadConfig {
                space: connection.space,
                code: connection.code,
                devices,
                render,
                duration,
                every,
                concurrency: 32,
                pose_rate,
                viewport,
                codecs: codec.map_or(Codec::PREFERENCE.to_vec(), |c| vec![c]),
                review,
            };
            let report = run_load(&coordinator, &config).await?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", load::table(&report));
            }
            Ok(())
        }
    }
}

fn viewport(text: &str) -> Result<(u32, u32), String> {
    let (w, h) = text
        .split_once('x')
        .ok_or_else(|| format!("{text}: expected WIDTHxHEIGHT, e.g. 1280x720"))?;
    let side = |s: &str| {
        s.parse::<u32>()
            .ok()
            .filter(|n| (1..=4096).contains(n))
            .ok_or_else(|| format!("{text}: each side is 1 to 4096 pixels"))
    };
    Ok((side(w)?, side(h)?))
}

async fn sign_in(connection: &Connection) -> anyhow::Result<Coordinator> {
    let trust = match &connection.ca {
        Some(path) => Some(Trust::from_file(path)?),
        None => None,
    };
    Coordinator::sign_in_trusting(
        &connection.server,
        &connection.account,
        &connection.key,
        trust,
    )
    .await
    .with_context(|| format!("signing in to {}", connection.server))
}

/// The load run, with a progress bar on stderr (hidden when stderr is not a terminal).
async fn run_load(
    coordinator: &Coordinator,
    config: &LoadConfig,
) -> anyhow::Result<load::LoadReport> {
    let bar = ProgressBar::new(config.devices as u64).with_style(
        ProgressStyle::with_template("{prefix:>8} [{bar:40}] {pos}/{len} {msg}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix("joining");
    let seconds = config.duration.as_secs().max(1);
    let report = load::run(coordinator, config, |progress| match progress {
        Progress::Joined { devices, .. } => bar.set_position(devices as u64),
        Progress::Running {
            elapsed,
            selections,
        } => {
            if bar.prefix() != "running" {
                bar.set_prefix("running");
                bar.set_length(seconds);
                bar.set_position(0);
            }
            bar.set_position(elapsed.as_secs().min(seconds));
            bar.set_message(format!("{selections} selections"));
        }
        Progress::Leaving => bar.set_prefix("leaving"),
    })
    .await;
    bar.finish_and_clear();
    report.with_context(|| format!("load on space {}", config.space))
}

/// Frames and their latency over the last report period.
#[derive(Default)]
struct Meter {
    frames: u32,
    latencies: Vec<Duration>,
}

/// What `join` asks its render session for.
struct View {
    size: (u32, u32),
    stereo: Option<f32>,
    codecs: Vec<Codec>,
}

fn codec(name: &str) -> Result<Codec, String> {
    serde_json::from_value(serde_json::Value::from(name))
        .map_err(|_| format!("{name} is not a codec: h264 or jpeg"))
}

/// How long the model asked for last takes to show: its first frame, and its first in full
/// detail (after `load_done`; a big model shows a coarse form first).
struct LoadTimer {
    model: String,
    asked: Instant,
    /// Its coarse form or `load_done` has come: frames from now on are of it.
    shown: bool,
    /// `load_done` has come.
    done: bool,
    /// Frames seen of it: before `load_done`, and after.
    first: bool,
    full: bool,
}

impl LoadTimer {
    fn new(model: &str) -> Self {
        Self {
            model: model.to_string(),
            asked: Instant::now(),
            shown: false,
            done: false,
            first: false,
            full: false,
        }
    }

    /// A frame came: said when it is the model's first, or its first in full detail.
    fn frame(&mut self) {
        let ms = self.asked.elapsed().as_secs_f64() * 1000.0;
        if !self.shown {
            return;
        }
        if !self.first {
            self.first = true;
            println!("first frame of {} after {ms:.0} ms", self.model);
        }
        if self.done && !self.full {
            self.full = true;
            println!("first full-detail frame of {} after {ms:.0} ms", self.model);
        }
    }
}

/// `" after N ms"` since the model asked for last was asked for.
fn since(timer: &Option<LoadTimer>) -> String {
    timer.as_ref().map_or_else(String::new, |t| {
        format!(" after {:.0} ms", t.asked.elapsed().as_secs_f64() * 1000.0)
    })
}

async fn join(
    connection: &Connection,
    device: &str,
    frames: Option<PathBuf>,
    view: View,
) -> anyhow::Result<()> {
    let View {
        size: (width, height),
        stereo,
        codecs,
    } = view;
    if let Some(dir) = &frames {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let coordinator = sign_in(connection).await?;
    let join = Join {
        device,
        role: Role::Headset,
        code: connection.code.as_deref(),
        render_session: true,
    };
    let membership = coordinator
        .join(&connection.space, &join)
        .await
        .with_context(|| format!("joining space {}", connection.space))?;
    println!(
        "joined space {} as member {}",
        membership.space, membership.id
    );
    let session = membership.render_session.as_ref().map(|s| {
        let field = |name: &str| s[name].as_str().unwrap_or_default().to_string();
        (field("id"), field("size"), field("status"))
    });
    if let Some((id, size, status)) = &session {
        println!("render session {id} ({size}): {status}");
    }
    let url = membership.render_url(Duration::from_secs(300)).await?;
    println!("render session ready: {url}");
    let mut render = RenderConnection::connect_offering(&url, coordinator.trust(), &codecs).await?;
    println!("frames come as {}", render.codec());
    let mut space = membership.connect().await?;

    let mut extent = None;
    let mut loading: Option<LoadTimer> = None;
    let mut azimuth = 0.0_f32;
    let mut pose_id = 0_u64;
    let mut sent: Vec<(u64, Instant)> = Vec::new();
    let mut meter = Meter::default();
    let mut poses = tokio::time::interval(Duration::from_millis(33));
    let mut reports = tokio::time::interval(Duration::from_secs(3));
    reports.tick().await;
    let mut last_report = Instant::now();
    // One listener for the whole conversation: one made anew each turn of the loop misses a
    // Ctrl-C that comes while the loop is busy with a frame.
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let ended = loop {
        tokio::select! {
            _ = &mut ctrl_c => break None,
            update = space.next() => match update {
                Ok(SpaceUpdate::Snapshot(snapshot)) => {
                    match snapshot.properties.selected_model.as_ref().map(|m| m.as_str()) {
                        Some(model) => {
                            println!("the space shows {model}");
                            render.load(model).await?;
                            loading = Some(LoadTimer::new(model));
                        }
                        None => println!("the space shows nothing yet"),
                    }
                    if snapshot.properties.review != Review::default() {
                        render.set_review(snapshot.properties.review.clone()).await?;
                    }
                }
                Ok(SpaceUpdate::Event { change, event, .. }) => match event {
                    SpaceEvent::Selection { model: Some(model), .. } => {
                        println!("change {change}: the space shows {model}");
                        render.load(model.as_str()).await?;
                        loading = Some(LoadTimer::new(model.as_str()));
                    }
                    SpaceEvent::Selection { model: None, .. } => {
                        println!("change {change}: the space shows nothing");
                    }
                    SpaceEvent::Roster { members } => {
                        println!("change {change}: {} members", members.len());
                    }
                    SpaceEvent::Arbiter { member } => {
                        println!("change {change}: arbiter {}", member.as_deref().unwrap_or("none"));
                    }
                    SpaceEvent::Review { review } => {
                        println!("change {change}: review with {} part overrides, {} cut planes", review.parts.len(), review.cut_planes.len());
                        render.set_review(review).await?;
                    }
                    SpaceEvent::Pick { pick } => {
                        println!("change {change}: {} picked {}", pick.by, pick.part.as_deref().unwrap_or("nothing"));
                    }
                    SpaceEvent::Room { room } => {
                        let [x, y, z] = room.position;
                        println!("change {change}: the model stands at ({x:.2}, {y:.2}, {z:.2}) m in the room, turned {:.0}°, {:.2} m across", room.yaw_degrees, room.size);
                    }
                    SpaceEvent::Tap | SpaceEvent::Custom { .. } => {}
                },
                Ok(SpaceUpdate::Presence { .. }) => {}
                Err(e) if SpaceConnection::is_drop(&e) => {
                    println!("space connection dropped ({e}); resuming");
                    space.resume_within(Duration::from_secs(60)).await?;
                    println!("space connection resumed at sequence {}", space.last_seq());
                }
                Err(e) => return Err(e.into()),
            },
            event = render.next() => match event {
                Ok(RenderEvent::Frame { header, picture, .. }) => {
                    meter.frames += 1;
                    if let Some(timer) = &mut loading {
                        timer.frame();
                    }
                    if let Some(i) = sent.iter().position(|(id, _)| *id == header.pose) {
                        meter.latencies.push(sent[i].1.elapsed());
                        sent.drain(..=i);
                    }
                    if let Some(dir) = &frames {
                        write_picture(dir, header.frame, &picture)?;
                    }
                }
                Ok(RenderEvent::Skipped { reason, .. }) => eprintln!("{reason}"),
                Ok(RenderEvent::Message(HostMessage::LoadCoarse { model, triangles, extent: e })) => {
                    println!("showing {model} coarse: {triangles} triangles{}", since(&loading));
                    if let Some(timer) = &mut loading {
                        timer.shown = true;
                    }
                    extent = e.or(Some(Default::default()));
                }
                Ok(RenderEvent::Message(HostMessage::LoadDone { model, triangles, extent: e })) => {
                    println!("loaded {model}: {triangles} triangles{}", since(&loading));
                    if let Some(timer) = &mut loading {
                        (timer.shown, timer.done) = (true, true);
                    }
                    extent = e.or(Some(Default::default()));
                }
                Ok(RenderEvent::Message(HostMessage::LoadFailed { model, reason })) => {
                    println!("could not load {model}: {reason}");
                }
                Ok(RenderEvent::Message(HostMessage::Error { code, message })) => {
                    eprintln!("render host: {code}: {message}");
                }
                Ok(RenderEvent::Message(_)) => {}
                Err(e @ (ClientError::SessionEnded(_) | ClientError::Closed { .. })) => break Some(e),
                Err(e) => return Err(e.into()),
            },
            _ = poses.tick(), if extent.is_some() => {
                // A slow orbit, one turn in 12 s, as a head moving around the model would.
                azimuth = (azimuth + 1.0) % 360.0;
                pose_id += 1;
                let camera = Pose::orbit(&extent.unwrap_or_default(), azimuth, 20.0, 1.0);
                let mut pose = camera.pose(pose_id, width, height);
                pose.views = stereo.map(|separation| camera.stereo_views(separation, width, height));
                render.pose(pose).await?;
                sent.push((pose_id, Instant::now()));
                if sent.len() > 256 {
                    sent.remove(0);
                }
            }
            _ = reports.tick() => {
                let seconds = last_report.elapsed().as_secs_f64();
                last_report = Instant::now();
                let mut latencies = std::mem::take(&mut meter.latencies);
                let fps = f64::from(std::mem::take(&mut meter.frames)) / seconds;
                match load::Summary::of(&mut latencies) {
                    Some(s) => println!(
                        "{fps:.1} fps, pose to frame p50 {:.0} ms, p95 {:.0} ms",
                        s.p50, s.p95
                    ),
                    None => println!("{fps:.1} fps"),
                }
            }
        }
    };
    match ended {
        Some(e) => {
            println!("{e}");
            let _ = space.bye().await;
            membership.leave().await?;
        }
        None => {
            let _ = render.bye().await;
            let _ = space.bye().await;
            membership.leave().await?;
            println!("left space {}", membership.space);
        }
    }
    Ok(())
}

/// Writes a frame's picture into `dir`: a JPEG as it came, a decoded video frame as PNG.
fn write_picture(dir: &std::path::Path, frame: u64, picture: &Picture) -> anyhow::Result<()> {
    let (path, bytes) = match picture {
        Picture::Jpeg(jpeg) => (dir.join(format!("frame-{frame}.jpg")), jpeg.clone()),
        Picture::H264(access_unit) => {
            (dir.join(format!("frame-{frame}.h264")), access_unit.clone())
        }
        Picture::Rgba {
            width,
            height,
            pixels,
        } => {
            let mut png = Vec::new();
            let mut encoder = png::Encoder::new(&mut png, *width, *height);
            encoder.set_color(png::ColorType::Rgba);
            encoder.set_depth(png::BitDepth::Eight);
            encoder.set_compression(png::Compression::Fast);
            let mut writer = encoder.write_header()?;
            writer.write_image_data(pixels)?;
            writer.finish()?;
            (dir.join(format!("frame-{frame}.png")), png)
        }
    };
    std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))
}
