//! `/v1/render/{account}/{session}` on a render host: a session's exclusive render connection
//! (its `renderUrl`).
//!
//! Opened with the session's render ticket in the URL (`?ticket=…`, as `renderUrl` gives it),
//! which the host checks and the coordinator confirms; then `hello` with the codecs the device
//! decodes. No account token or cookie is ever read here. Then the device sends poses, the model to load and its placement, and gets a
//! frame for each change, at most the host's target fps: H.264 from an encoder of this
//! connection's own, or JPEG. Frames are latest-wins: messages that queued up while a frame was
//! rendering or waiting for its turn are applied together and answered with one frame, so a slow
//! device never builds a backlog — and that happens before encoding: every encoded frame is sent.
//! When the view comes to rest, an H.264 connection whose last frame was coarser than a JPEG gets
//! the picture once more as a sharp key frame. On disconnect the scene is simply dropped: the next
//! device starts from a clean slate.

use std::sync::Arc;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::get;
use futures_util::FutureExt;
use glam::{Mat4, Quat, Vec3};
use parallax_core::device::{
    Codec, DeviceMessage, Extent, EyeView, Hit, HitPolicy, HostMessage, Placement, Pose,
    SESSION_TAKEN,
};
use parallax_core::host::Admission;
use parallax_core::protocol::{
    CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_POLICY_VIOLATION, CLOSE_UNSUPPORTED_DATA, HELLO_TIMEOUT,
    close_reason,
};
use parallax_core::review::Review;
use parallax_core::session::{SessionId, SessionSize};
use parallax_core::{ChangeNumber, FrameHeader, ModelId};
use parallax_render::pick::{Ray, cast_shown};
use parallax_render::renderer::MAX_VIEWPORT_SIDE;
use parallax_render::{Eye, VideoEncoder, View};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until, timeout};
use tokio_util::task::AbortOnDropHandle;

use crate::host::{Host, Loaded};
use crate::net;
use crate::worker::{Frame, RawFrame};

pub fn router() -> Router<Arc<Host>> {
    Router::new().route(
        "/v1/render/{account_id}/{session_id}",
        get(render_ws_handler),
    )
}

/// `?ticket=…` of a render connection's URL.
#[derive(serde::Deserialize)]
struct RenderQuery {
    ticket: Option<String>,
}

async fn render_ws_handler(
    ws: WebSocketUpgrade,
    State(host): State<Arc<Host>>,
    Path((account, session)): Path<(String, String)>,
    Query(query): Query<RenderQuery>,
) -> Response {
    // A browser sends the coordinator's cookie here too (cookies do not tell ports apart): it is
    // never read. The ticket alone opens the connection.
    net::small_messages(ws)
        .on_upgrade(move |socket| connect(socket, host, account, session, query.ticket))
}

/// How many picks a device may have being cast at once.
const MAX_PICKS: usize = 8;

/// How long poses must stop before the view counts as at rest and gets its sharp frame.
const REST: std::time::Duration = std::time::Duration::from_millis(200);

struct Close(u16, String);

fn policy(reason: impl Into<String>) -> Close {
    Close(CLOSE_POLICY_VIOLATION, reason.into())
}

async fn connect(
    mut socket: WebSocket,
    host: Arc<Host>,
    account: String,
    session: String,
    ticket: Option<String>,
) {
    let Close(code, reason) = match run(&mut socket, &host, account, session, ticket).await {
        Ok(close) | Err(close) => close,
    };
    let frame = CloseFrame {
        code,
        reason: close_reason(&reason).into(),
    };
    // The device may be gone already; nobody is left to tell then.
    let _ = socket.send(Message::Close(Some(frame))).await;
}

/// What this device has asked for. Dropped with the connection: the clean slate.
struct Scene {
    model: Option<(ModelId, Arc<Loaded>)>,
    placement: Placement,
    pose: Option<Pose>,
    /// Something changed since the last frame.
    dirty: bool,
    frames: u64,
    /// This connection's H.264 encoder; `None` sends JPEG. Away only while it encodes.
    video: Option<VideoEncoder>,
    codec: Codec,
    /// When the last video frame's pose counts as at rest, if its sharp frame is still owed.
    rest: Option<Instant>,
    /// What the design review shows (`set_review`).
    review: Arc<Review>,
    /// The model being fetched, if one is.
    loading: Option<Loading>,
    /// Picks being cast, each answering when done; stopped with the connection.
    picks: JoinSet<HostMessage>,
}

/// A model being fetched for the device: what its fetch reports, and the fetch, stopped when the
/// device asks for another model or goes.
struct Loading {
    model: ModelId,
    events: mpsc::UnboundedReceiver<LoadEvent>,
    /// Its coarse form is shown and the device, which has a pose, has not had a frame of it yet:
    /// the full mesh waits for that frame, so the coarse picture is seen once at least.
    coarse_owed: bool,
    /// Its coarse form is what the scene shows.
    coarse_shown: bool,
    _fetch: AbortOnDropHandle<()>,
}

/// What a model's fetch reports, in this order: its coarse form (if it has one), the mesh's
/// download progress, then the mesh or why there is none.
enum LoadEvent {
    Progress(u8),
    Coarse(Arc<Loaded>),
    Done(Result<Arc<Loaded>, String>),
}

impl Loading {
    /// Starts fetching `model` for a session of `target`: from the host's memory if it is
    /// there, else its coarse form first (small: on screen in a moment) and then its mesh.
    fn start(host: Arc<Host>, target: &Target, model: ModelId) -> Self {
        let (tell, events) = mpsc::unbounded_channel();
        let (account, size, id) = (target.account.clone(), target.size, model.clone());
        let fetch = async move {
            if let Some(loaded) = host.cached(&account, &id).await {
                let _ = tell.send(LoadEvent::Done(Ok(loaded)));
                return;
            }
            // Without a coarse form, or without the coordinator's, the mesh is simply shown
            // when it comes; a refusal is the mesh's to tell.
            match host.coarse(&account, &id, size).await {
                Ok(Some(coarse)) => {
                    let _ = tell.send(LoadEvent::Coarse(coarse));
                }
                Ok(None) => {}
                Err(e) => tracing::debug!(model = %id, "no coarse form: {e}"),
            }
            let progress = {
                let tell = tell.clone();
                move |percent| {
                    let _ = tell.send(LoadEvent::Progress(percent));
                }
            };
            let done = host.model(&account, &id, size, progress).await;
            let _ = tell.send(LoadEvent::Done(done));
        };
        Self {
            model,
            events,
            coarse_owed: false,
            coarse_shown: false,
            _fetch: AbortOnDropHandle::new(tokio::spawn(fetch)),
        }
    }
}

/// The next event of the fetch under way; never, without one.
async fn next_load(loading: &mut Option<Loading>) -> LoadEvent {
    match loading {
        Some(loading) => loading.events.recv().await.unwrap_or_else(|| {
            LoadEvent::Done(Err("the render host stopped fetching the model".into()))
        }),
        None => std::future::pending().await,
    }
}

impl Scene {
    fn new(codec: Codec, host: &Host) -> Self {
        let fps = 1.0 / host.frame_interval.as_secs_f32().max(1e-3);
        Self {
            model: None,
            placement: Placement::default(),
            pose: None,
            dirty: false,
            frames: 0,
            video: (codec == Codec::H264).then(|| VideoEncoder::new(fps, host.bitrate)),
            codec,
            rest: None,
            review: Arc::default(),
            loading: None,
            picks: JoinSet::new(),
        }
    }
}

/// The session this connection serves.
struct Target {
    /// The account the session is leased on: it may load only models that account sees.
    account: String,
    size: SessionSize,
}

async fn run(
    socket: &mut WebSocket,
    host: &Arc<Host>,
    account: String,
    session: String,
    ticket: Option<String>,
) -> Result<Close, Close> {
    let id = SessionId::parse(&session).map_err(|e| policy(e.to_string()))?;
    let first = match timeout(HELLO_TIMEOUT, socket.recv()).await {
        Err(_) => return Err(policy("no hello within 10 seconds")),
        Ok(Some(Ok(message))) => parse(message)?,
        Ok(_) => return Err(Close(CLOSE_GOING_AWAY, "connection lost".into())),
    };
    let Some(DeviceMessage::Hello { codecs }) = first else {
        return Err(policy("the first message must be hello"));
    };
    let codec = Codec::choose(&codecs, &Codec::PREFERENCE)
        .ok_or_else(|| policy("no frame format in common: this host sends h264 or jpeg"))?;
    let ticket = ticket.filter(|t| !t.is_empty()).ok_or_else(|| {
        policy("a render connection opens with its ticket: use the session's renderUrl as given")
    })?;
    let size = match host.admit(&account, id.as_str(), &ticket).await {
        Admission::Admitted { size } => size,
        Admission::Refused { reason } => return Err(policy(reason)),
    };
    let target = Target { account, size };
    let slot = host.claim().ok_or_else(|| policy(SESSION_TAKEN))?;
    send(
        socket,
        HostMessage::Welcome {
            session: id.to_string(),
            codec,
        },
    )
    .await?;

    let mut scene = Scene::new(codec, host);
    let mut next_frame = Instant::now();
    loop {
        let due = scene.dirty && scene.pose.is_some();
        let rest = scene.rest.filter(|_| !due);
        tokio::select! {
            // The session's end first, then a due frame: messages that arrive meanwhile are
            // merged after it.
            biased;
            () = slot.ended.cancelled() => {
                return Ok(Close(CLOSE_GOING_AWAY, "the session has ended".into()));
            }
            // Paced: a frame at most every frame interval, whatever the pose rate.
            () = sleep_until(next_frame), if due => {
                if let Some(pose) = scene.pose {
                    next_frame = Instant::now() + host.frame_interval;
                    scene.dirty = false;
                    render(socket, host, &mut scene, pose).await?;
                    if let Some(loading) = &mut scene.loading {
                        loading.coarse_owed = false;
                    }
                }
            }
            () = sleep_until(rest.unwrap_or_else(Instant::now)), if rest.is_some() => {
                scene.rest = None;
                if let Some(pose) = scene.pose {
                    refine(socket, &mut scene, pose).await?;
                }
            }
            Some(answer) = scene.picks.join_next(), if !scene.picks.is_empty() => {
                let answer = answer.unwrap_or_else(|_| error("PickFailed", "the ray cast failed"));
                send(socket, answer).await?;
            }
            event = next_load(&mut scene.loading), if !scene.loading.as_ref().is_some_and(|l| l.coarse_owed) => {
                loaded(socket, &mut scene, event).await?;
            }
            message = socket.recv() => {
                let Some(Ok(message)) = message else {
                    return Err(Close(CLOSE_GOING_AWAY, "connection lost".into()));
                };
                if let Some(close) = apply(socket, host, &target, &mut scene, message).await? {
                    return Ok(close);
                }
                // Latest wins: take everything that queued up meanwhile before rendering once.
                while let Some(Some(Ok(message))) = socket.recv().now_or_never() {
                    if let Some(close) = apply(socket, host, &target, &mut scene, message).await? {
                        return Ok(close);
                    }
                }
            }
        }
    }
}

/// `None` for control frames; a close for binary or unreadable messages.
fn parse(message: Message) -> Result<Option<DeviceMessage>, Close> {
    match message {
        Message::Text(text) => DeviceMessage::parse(text.as_str())
            .map(Some)
            .map_err(|e| Close(CLOSE_UNSUPPORTED_DATA, e.to_string())),
        Message::Binary(_) => Err(Close(
            CLOSE_UNSUPPORTED_DATA,
            "binary messages are not accepted from devices; send JSON text".into(),
        )),
        Message::Close(_) => Err(Close(CLOSE_NORMAL, "closed by the device".into())),
        Message::Ping(_) | Message::Pong(_) => Ok(None),
    }
}

/// Applies one message; returns a close to end the conversation with.
async fn apply(
    socket: &mut WebSocket,
    host: &Arc<Host>,
    target: &Target,
    scene: &mut Scene,
    message: Message,
) -> Result<Option<Close>, Close> {
    let Some(message) = parse(message)? else {
        return Ok(None);
    };
    match message {
        DeviceMessage::Hello { .. } => {
            return Err(policy("hello was already received on this connection"));
        }
        DeviceMessage::Bye => return Ok(Some(Close(CLOSE_NORMAL, "bye".into()))),
        DeviceMessage::SetReview(review) => match review.problem() {
            Some(problem) => send(socket, error("BadReview", problem)).await?,
            None => {
                scene.review = Arc::new(review);
                scene.dirty = true;
            }
        },
        DeviceMessage::Keyframe => {
            if let Some(video) = &mut scene.video {
                video.request_keyframe();
                // A frame that can be decoded, even if nothing moved.
                scene.dirty = true;
            }
        }
        DeviceMessage::Pick {
            id,
            x,
            y,
            policy,
            max_hits,
        } => {
            match aim_through(scene, x, y).and_then(|ray| pick(scene, id, ray, policy, max_hits)) {
                Err(answer) => send(socket, answer).await?,
                Ok(_) if scene.picks.len() >= MAX_PICKS => {
                    let busy = format!(
                        "{MAX_PICKS} picks are being cast already: wait for an answer first"
                    );
                    send(socket, error("TooManyPicks", busy)).await?;
                }
                Ok(cast) => {
                    scene.picks.spawn(cast);
                }
            }
        }
        DeviceMessage::RayCast { .. } if message.problem(MAX_VIEWPORT_SIDE).is_some() => {
            let problem = message.problem(MAX_VIEWPORT_SIDE).unwrap_or_default();
            send(socket, error("BadPick", problem)).await?;
        }
        DeviceMessage::RayCast {
            id,
            origin,
            direction,
            policy,
            max_hits,
        } => match pick(scene, id, aimed(origin, direction), policy, max_hits) {
            Err(answer) => send(socket, answer).await?,
            Ok(_) if scene.picks.len() >= MAX_PICKS => {
                let busy =
                    format!("{MAX_PICKS} picks are being cast already: wait for an answer first");
                send(socket, error("TooManyPicks", busy)).await?;
            }
            Ok(cast) => {
                scene.picks.spawn(cast);
            }
        },
        DeviceMessage::Pose(pose) => match pose.problem(MAX_VIEWPORT_SIDE).or_else(|| {
            let frame_width = pose.width * if pose.views.is_some() { 2 } else { 1 };
            let odd = !frame_width.is_multiple_of(2) || !pose.height.is_multiple_of(2);
            (scene.codec == Codec::H264 && odd).then(|| {
                format!(
                    "H.264 frames need an even width and height, not {frame_width}x{}",
                    pose.height
                )
            })
        }) {
            Some(problem) => send(socket, error("BadPose", problem)).await?,
            None => {
                scene.pose = Some(pose);
                scene.dirty = true;
            }
        },
        DeviceMessage::SetTransform(placement) => {
            if let Some(problem) = placement.problem() {
                send(socket, error("BadTransform", problem)).await?;
            } else {
                scene.placement = placement;
                scene.dirty = true;
            }
        }
        DeviceMessage::LoadModel { model } => {
            send(
                socket,
                HostMessage::LoadProgress {
                    model: model.clone(),
                    percent: 0,
                },
            )
            .await?;
            // The model being fetched already: that fetch goes on (starting it again would
            // throw away what it has downloaded).
            if scene.loading.as_ref().is_some_and(|l| l.model == model) {
                return Ok(None);
            }
            // Another model asked for meanwhile is no longer wanted: its fetch stops, and its
            // coarse form, if shown, goes with it.
            if let Some(abandoned) = scene.loading.take() {
                drop_coarse(scene, &abandoned);
            }
            scene.loading = Some(Loading::start(host.clone(), target, model));
        }
    }
    Ok(None)
}

/// Tells the device how the load of the model it asked for last goes, and shows what came.
async fn loaded(socket: &mut WebSocket, scene: &mut Scene, event: LoadEvent) -> Result<(), Close> {
    let Some(model) = scene.loading.as_ref().map(|l| l.model.clone()) else {
        return Ok(());
    };
    let (shown, message) = match event {
        LoadEvent::Progress(percent) => {
            return send(socket, HostMessage::LoadProgress { model, percent }).await;
        }
        LoadEvent::Coarse(coarse) => {
            let posed = scene.pose.is_some();
            if let Some(loading) = &mut scene.loading {
                loading.coarse_owed = posed;
                loading.coarse_shown = true;
            }
            let (triangles, extent) = described(&coarse);
            let message = HostMessage::LoadCoarse {
                model: model.clone(),
                triangles,
                extent,
            };
            (coarse, message)
        }
        LoadEvent::Done(Err(reason)) => {
            if let Some(failed) = scene.loading.take() {
                drop_coarse(scene, &failed);
            }
            return send(socket, HostMessage::LoadFailed { model, reason }).await;
        }
        LoadEvent::Done(Ok(full)) => {
            scene.loading = None;
            // Picks are cast through an index, built meanwhile: it is ready long before anyone
            // can point at the model.
            let warm = full.clone();
            tokio::spawn(async move { warm.picks().await });
            let (triangles, extent) = described(&full);
            send(
                socket,
                HostMessage::LoadProgress {
                    model: model.clone(),
                    percent: 100,
                },
            )
            .await?;
            let message = HostMessage::LoadDone {
                model: model.clone(),
                triangles,
                extent,
            };
            (full, message)
        }
    };
    scene.model = Some((model, shown));
    scene.dirty = true;
    if let Some(video) = &mut scene.video {
        video.request_keyframe();
    }
    send(socket, message).await
}

/// Takes the coarse form of `loading`'s model off the screen if it is there: its load was
/// given up or failed, and it is not the model.
fn drop_coarse(scene: &mut Scene, loading: &Loading) {
    if loading.coarse_shown
        && scene
            .model
            .as_ref()
            .is_some_and(|(id, _)| *id == loading.model)
    {
        scene.model = None;
        scene.dirty = true;
    }
}

/// What the device is told of a model shown: its triangles and its bounds.
fn described(loaded: &Loaded) -> (u64, Option<Extent>) {
    let mesh = &loaded.mesh;
    let extent = mesh.bounds().map(|b| Extent {
        min: b.min.to_array(),
        max: b.max.to_array(),
    });
    (mesh.drawn_triangles(), extent)
}

fn view_of(pose: &Pose) -> View {
    View {
        eye: Vec3::from(pose.position),
        target: Vec3::from(pose.target),
        up: Vec3::from(pose.up),
        fov_y: pose.fov_y_degrees.to_radians(),
        width: pose.width,
        height: pose.height,
    }
}

/// The eyes a pose is drawn for: its two views, or the one of its camera.
fn eyes_of(pose: &Pose) -> Vec<Eye> {
    match &pose.views {
        Some(views) => views.iter().map(eye_of).collect(),
        None => vec![Eye::of(&view_of(pose))],
    }
}

/// A WebXR view as the renderer takes it: its position for the lighting, and its projection with
/// OpenGL's depth range −1..1 moved to wgpu's 0..1.
fn eye_of(view: &EyeView) -> Eye {
    let to_wgpu_depth = Mat4::from_cols_array(&[
        1.0, 0.0, 0.0, 0.0, //
        0.0, 1.0, 0.0, 0.0, //
        0.0, 0.0, 0.5, 0.0, //
        0.0, 0.0, 0.5, 1.0,
    ]);
    let space_to_eye = Mat4::from_cols_array(&view.view);
    Eye {
        position: space_to_eye.inverse().transform_point3(Vec3::ZERO),
        view_projection: to_wgpu_depth * Mat4::from_cols_array(&view.projection) * space_to_eye,
    }
}

fn transform_of(placement: &Placement) -> Mat4 {
    Mat4::from_scale_rotation_translation(
        Vec3::splat(placement.scale),
        Quat::from_array(placement.rotation).normalize(),
        Vec3::from(placement.position),
    )
}

/// The ray through pixel (`x`, `y`) of the last pose, or why there is none.
fn aim_through(scene: &Scene, x: f32, y: f32) -> Result<Ray, HostMessage> {
    let Some(pose) = scene.pose else {
        return Err(error(
            "NoPose",
            "send a pose before picking: the pick ray starts from it",
        ));
    };
    view_of(&pose).ray_through(x, y).ok_or_else(|| {
        error(
            "BadPick",
            format!(
                "({x}, {y}) is outside the {}x{} viewport",
                pose.width, pose.height
            ),
        )
    })
}

/// A ray cast's ray, its direction made a unit vector (checked finite and non-zero).
fn aimed(origin: [f32; 3], direction: [f32; 3]) -> Ray {
    Ray {
        origin: Vec3::from(origin),
        direction: Vec3::from(direction).normalize(),
    }
}

/// ARR's spatial queries: what `ray` meets, in the model as the design review shows it now. The
/// answer at once where there is nothing to cast against (no model), else the cast to run,
/// which answers when done: on a big model whose pick index is still being built, it tests every
/// triangle, and the connection's frames go on meanwhile.
fn pick(
    scene: &Scene,
    id: u64,
    ray: Ray,
    policy: HitPolicy,
    max_hits: u32,
) -> Result<impl Future<Output = HostMessage> + Send + 'static, HostMessage> {
    let Some((model, loaded)) = scene.model.clone() else {
        return Err(HostMessage::PickResult {
            id,
            model: None,
            hits: Vec::new(),
        });
    };
    let transform = transform_of(&scene.placement);
    let review = scene.review.clone();
    Ok(cast(
        loaded,
        model,
        (id, ray, policy, max_hits),
        transform,
        review,
    ))
}

/// Casts `ray` for pick `id` on `loaded` (`model`), placed by `transform` and shown as `review`
/// shows it; answers with up to `max_hits` hits as `policy` asks.
async fn cast(
    loaded: Arc<Loaded>,
    model: ModelId,
    (id, ray, policy, max_hits): (u64, Ray, HitPolicy, u32),
    transform: Mat4,
    review: Arc<Review>,
) -> HostMessage {
    let mesh = loaded.mesh.clone();
    // Through the index once it is built (right after the model is on screen); a pick that comes
    // sooner tests every triangle, which finds the same hits, rather than wait for it.
    let picks = loaded.picks_now();
    let found = tokio::task::spawn_blocking(move || {
        let hits = match picks {
            Some(picks) => picks.cast(&mesh, transform, ray, &review, policy),
            None => cast_shown(&mesh, transform, ray, &review, policy == HitPolicy::Any),
        };
        let parts: Vec<Option<String>> = hits
            .iter()
            .map(|hit| hit.part.map(|p| mesh.path_of(p)))
            .collect();
        (hits, parts)
    })
    .await;
    let Ok((mut hits, mut parts)) = found else {
        return error("PickFailed", "the ray cast failed");
    };
    let keep = match policy {
        HitPolicy::All => max_hits as usize,
        HitPolicy::Closest | HitPolicy::Any => 1,
    };
    hits.truncate(keep);
    parts.truncate(keep);
    let hits = hits
        .into_iter()
        .zip(parts)
        .map(|(hit, part)| Hit {
            part,
            triangle: hit.triangle as u64,
            position: hit.position.to_array(),
            normal: hit.normal.to_array(),
            distance: hit.distance,
        })
        .collect();
    HostMessage::PickResult {
        id,
        model: Some(model),
        hits,
    }
}

async fn render(
    socket: &mut WebSocket,
    host: &Host,
    scene: &mut Scene,
    pose: Pose,
) -> Result<(), Close> {
    let transform = transform_of(&scene.placement);
    let started = std::time::Instant::now();
    let model = scene
        .model
        .as_ref()
        .map(|(id, loaded)| (id.clone(), loaded.mesh.clone()));
    let request = Frame {
        eyes: eyes_of(&pose),
        size: (pose.width, pose.height),
        transform,
        review: scene.review.clone(),
        coverage: pose.coverage,
    };
    let frame = match scene.video.take() {
        None => host
            .worker
            .render_jpeg(model, request)
            .await
            .map(|jpeg| (jpeg, true)),
        Some(video) => {
            let rendered = host.worker.render_raw(model, request).await;
            let (video, encoded) = match rendered {
                Ok(RawFrame::Rgba(image)) => encode(video, move |v| v.encode(&image)).await?,
                Ok(RawFrame::I420(picture)) => {
                    encode(video, move |v| v.encode_i420(picture)).await?
                }
                Err(e) => (video, Err(e)),
            };
            scene.video = Some(video);
            scene.rest = Some(Instant::now() + REST);
            encoded.map(|frame| (frame.bytes, frame.key))
        }
    };
    match frame {
        Ok((bytes, key)) => {
            host.frame_sent(started.elapsed());
            send_frame(socket, scene, (pose, key), &bytes).await
        }
        Err(e) => send(socket, error("RenderFailed", e)).await,
    }
}

/// The view came to rest: the last picture again, sharper, if it went out blurred.
async fn refine(socket: &mut WebSocket, scene: &mut Scene, pose: Pose) -> Result<(), Close> {
    let Some(video) = scene.video.take() else {
        return Ok(());
    };
    let (video, encoded) = encode(video, VideoEncoder::refine).await?;
    scene.video = Some(video);
    match encoded {
        Ok(Some(frame)) => send_frame(socket, scene, (pose, frame.key), &frame.bytes).await,
        Ok(None) => Ok(()),
        Err(e) => send(socket, error("RenderFailed", e)).await,
    }
}

/// Runs `job` on the connection's encoder off the async runtime (encoding takes milliseconds),
/// and hands the encoder back with what it made.
async fn encode<T: Send + 'static>(
    mut video: VideoEncoder,
    job: impl FnOnce(&mut VideoEncoder) -> Result<T, parallax_render::VideoError> + Send + 'static,
) -> Result<(VideoEncoder, Result<T, String>), Close> {
    tokio::task::spawn_blocking(move || {
        let encoded = job(&mut video).map_err(|e| e.to_string());
        (video, encoded)
    })
    .await
    .map_err(|_| Close(CLOSE_GOING_AWAY, "the video encoder failed".into()))
}

/// Sends `bytes`, the frame that answers `pose` (a key frame when `key`).
async fn send_frame(
    socket: &mut WebSocket,
    scene: &mut Scene,
    (pose, key): (Pose, bool),
    bytes: &[u8],
) -> Result<(), Close> {
    scene.frames += 1;
    let header = FrameHeader {
        frame: scene.frames,
        pose: pose.id,
        change: ChangeNumber(0),
        codec: scene.codec,
        key,
        coverage: pose.coverage,
    };
    socket
        .send(Message::Binary(header.encode_with(bytes).into()))
        .await
        .map_err(|_| Close(CLOSE_GOING_AWAY, "connection lost".into()))
}

fn error(code: &str, message: impl Into<String>) -> HostMessage {
    HostMessage::Error {
        code: code.into(),
        message: message.into(),
    }
}

async fn send(socket: &mut WebSocket, message: HostMessage) -> Result<(), Close> {
    socket
        .send(Message::Text(message.to_json().into()))
        .await
        .map_err(|_| Close(CLOSE_GOING_AWAY, "connection lost".into()))
}
