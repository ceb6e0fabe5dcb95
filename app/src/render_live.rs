//! The browser headset's render connection, opened with the render ticket in the session's
//! `renderUrl` (read anew before every connection: a ticket is short-lived; the page's cookie is
//! never used by the host), hello, load what the space selects, poses from the page's gestures, frames shown as they come, picks.
//! Reconnects after a drop; stops with a message when the session is taken or has ended.
//! Browser only.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender, unbounded};
use futures_util::{SinkExt, StreamExt, stream};
use gloo_net::websocket::{Message, WebSocketError, futures::WebSocket};
use gloo_timers::future::TimeoutFuture;
use leptos::prelude::*;
use leptos::task::spawn_local;
use parallax_core::ModelId;
use parallax_core::api::{SessionProperties, SpaceView};
use parallax_core::device::{
    Codec, DeviceMessage, Extent, EyeView, HitPolicy, HostMessage, MAX_ZOOM, OrbitPose, Placement,
    Pose, SESSION_TAKEN, XrPlacement,
};
use parallax_core::protocol::FrameHeader;
use parallax_core::reproject::XrEye;
use parallax_core::review::{Pointer, Review};
use parallax_core::room::{Alignment, RoomPlacement};

use crate::headset_state::{Gesture, HeadsetState, ShownFrame};
use crate::live::{Backoff, Ended, welcomed_in_time};
use crate::rest;
use crate::space_state::membership;
use crate::video::VideoSink;

/// Largest frame asked for.
const MAX_WIDTH: f64 = 1280.0;
const MAX_HEIGHT: f64 = 720.0;

/// Poses a WebXR session may have asked for and not yet seen answered...
const MAX_IN_FLIGHT: usize = 2;
/// ...counting only those asked for this recently (ms): a pose the host merged into a later one
/// is answered by that one's frame, but one lost with a dropped frame must not stall the next.
const IN_FLIGHT_LIMIT_MS: f64 = 500.0;

/// A test switch: while `window.parallaxHoldPoses` is true a WebXR session asks for no frames,
/// so the page keeps drawing the last one (reprojected to where the head is now).
fn held() -> bool {
    crate::live::hook("parallaxHoldPoses").is_truthy()
}

enum Command {
    Gesture(Gesture),
    Load(String),
    Place(Placement),
    Review(Box<Review>),
    /// `None` when the WebXR session ended: back to the orbit camera.
    Viewer(Option<Box<Viewer>>),
    /// A headset's pointing ray (origin, direction) in its tracking space: point at what it meets.
    RayCast([f32; 3], [f32; 3]),
}

/// A WebXR viewer's pose in its session's `local` space, and the frame size one eye needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Viewer {
    pub position: [f32; 3],
    pub orientation: [f32; 4],
    pub fov_y_degrees: f32,
    pub width: u32,
    pub height: u32,
    /// Each eye's tracking → eye transform and projection, when the headset has two: the host
    /// then draws both, side by side.
    pub eyes: Option<[XrEye; 2]>,
    /// How the headset's tracking space lines up with the room (aligned, or the room before
    /// it, ahead of where the session started)...
    pub room: Alignment,
    /// ...and where the space puts the model in that room.
    pub placement: RoomPlacement,
    /// A see-through display: frames on a transparent background, with their coverage.
    pub coverage: bool,
}

thread_local! {
    static COMMANDS: RefCell<Option<UnboundedSender<Command>>> = const { RefCell::new(None) };
}

fn send(command: Command) {
    COMMANDS.with(|commands| {
        if let Some(tx) = commands.borrow().as_ref() {
            let _ = tx.unbounded_send(command);
        }
    });
}

/// Hands a gesture to the render connection.
pub(crate) fn gesture(gesture: Gesture) {
    send(Command::Gesture(gesture));
}

/// Casts a headset's pointing ray (tracking space) into the model on the render connection; a
/// part it meets is pointed at for everyone in the space.
pub(crate) fn ray_cast(origin: [f32; 3], direction: [f32; 3]) {
    send(Command::RayCast(origin, direction));
}

/// Hands the WebXR viewer's pose to the render connection: it replaces the orbit camera (until
/// `None`, when the session ended).
pub(crate) fn viewer(viewer: Option<Viewer>) {
    send(Command::Viewer(viewer.map(Box::new)));
}

/// Joins, waits for the render session, and holds its connection once the page is live.
pub(crate) fn start(state: HeadsetState) {
    Effect::new(move |started: Option<()>| {
        if started.is_none() {
            let (tx, rx) = unbounded();
            COMMANDS.with(|commands| *commands.borrow_mut() = Some(tx));
            spawn_local(run(state, rx));
            spawn_local(still(state));
        }
    });
    // The headset loads each selection itself, on its own render connection, and places it
    // where the space says.
    Effect::new(move |_| {
        if let Some(model) = state.space.selected.get() {
            send(Command::Load(model));
        }
    });
    Effect::new(move |_| send(Command::Place(state.space.transform.get())));
    Effect::new(move |_| send(Command::Review(Box::new(state.space.review.get()))));
}

/// Frames answer poses: a headset that does not move gets none, and its fps reads 0, not the
/// rate of its last movement.
async fn still(state: HeadsetState) {
    let mut drawn = 0;
    loop {
        TimeoutFuture::new(1_000).await;
        let Some(now) = state.frames.try_get_untracked() else {
            return; // The page is gone.
        };
        if now == drawn {
            state.fps.set(0.0);
        }
        drawn = now;
    }
}

async fn run(state: HeadsetState, mut commands: UnboundedReceiver<Command>) {
    let space = state.space.name.get_untracked();
    let view = match membership(state.space, &space, "headset", "Browser headset").await {
        Ok(view) => view,
        Err(e) => {
            state.session.set("Not joined".into());
            state.blocked.set(Some(e.message));
            return;
        }
    };
    spawn_local(crate::space_live::follow(state.space));
    let mut backoff = Backoff::default();
    loop {
        // Each connection with a fresh ticket: the last one may have run out meanwhile.
        let url = match render_url(state, &view).await {
            Ok(url) => url,
            Err(message) => {
                state.blocked.set(Some(message));
                return;
            }
        };
        let welcomed = Rc::new(Cell::new(false));
        let conversation = converse(state, &url, &mut commands, welcomed.clone());
        match welcomed_in_time(conversation, &welcomed).await {
            Ended::Closed(message) => {
                state.session.set("Disconnected".into());
                state.blocked.set(Some(message));
                return;
            }
            Ended::Dropped(reason) => {
                leptos::logging::warn!("render connection dropped: {reason}");
                state.session.set("Reconnecting…".into());
                backoff.wait(welcomed.get()).await;
            }
        }
    }
}

/// Waits until this headset's render session is Ready; its `renderUrl`.
async fn render_url(state: HeadsetState, view: &SpaceView) -> Result<String, String> {
    let me = state
        .space
        .member
        .get_untracked()
        .map(|(id, _)| id)
        .unwrap_or_default();
    let session = view
        .members
        .iter()
        .flatten()
        .find(|m| m.id == me)
        .and_then(|m| m.render_session.clone())
        .ok_or("This headset has no render session.")?;
    let account = rest::get_as::<parallax_core::api::Me>("/v1/browser/me")
        .await
        .map_err(|e| e.message)?
        .account;
    let path = format!("/accounts/{account}/sessions/{session}?api-version=2021-01-01");
    loop {
        match rest::get_as::<SessionProperties>(&path).await {
            Ok(properties) => {
                state.session.set(properties.status.clone());
                let left = i64::from(properties.max_lease_time_minutes)
                    - i64::try_from(properties.elapsed_time_minutes).unwrap_or(i64::MAX);
                state.lease_left.set(Some(left));
                if let Some(url) = properties.render_url {
                    return Ok(url);
                }
                let status = properties.status;
                if matches!(status.as_str(), "Error" | "Stopped" | "Expired") {
                    return Err(format!("The render session is {status}."));
                }
                TimeoutFuture::new(500).await;
            }
            // Polled too often: ARR's limit, wait it out.
            Err(e) if e.status == 429 => TimeoutFuture::new(2_000).await,
            Err(e) => return Err(e.message),
        }
    }
}

/// Where the camera is, around the loaded model.
struct Camera {
    extent: Option<Extent>,
    azimuth: f32,
    elevation: f32,
    zoom: f32,
    next_pose: u64,
    next_pick: u64,
    /// Poses sent, when and for which eyes, to time and reproject the frames that answer them.
    sent: VecDeque<(u64, ShownFrame)>,
    /// The newest pose a frame answered: a later frame of the same pose (the sharper one sent
    /// when the view rests) shows the same view.
    answered: Option<(u64, ShownFrame)>,
    /// Frames in the current one-second window, and when it started.
    window: (u32, f64),
    /// The WebXR viewer, once a session runs: its head moves the camera instead.
    viewer: Option<Viewer>,
    /// Frames received on this connection, and the number of the newest one drawn.
    received: u64,
    painted: Rc<Cell<u64>>,
    /// The H.264 decoder, when the host sends H.264.
    video: Option<VideoSink>,
    /// The ray cast last asked for, and its origin in model space: what it meets is pointed at.
    pointing: Option<(u64, [f32; 3])>,
}

impl Camera {
    fn viewport() -> (u32, u32) {
        let window = window();
        let width = window
            .inner_width()
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(MAX_WIDTH);
        let height = window
            .inner_height()
            .ok()
            .and_then(|v| v.as_f64())
            .unwrap_or(MAX_HEIGHT);
        // The page's aspect, at most 1280×720, leaving room for the overlay bar; even sides, as
        // H.264's 4:2:0 pictures need.
        let (w, h) = (width.max(2.0), (height - 48.0).max(2.0));
        let scale = (MAX_WIDTH / w).min(MAX_HEIGHT / h).min(1.0);
        let even = |side: f64| ((side * scale) as u32 & !1).max(2);
        (even(w), even(h))
    }

    /// A ray cast of a pointing ray in the XR session's tracking space, cast in model space.
    fn ray_cast(&mut self, origin: [f32; 3], direction: [f32; 3]) -> Option<DeviceMessage> {
        let (extent, viewer) = (self.extent?, self.viewer?);
        let placed = XrPlacement::new(&extent, &viewer.room, &viewer.placement);
        let (origin, direction) = placed.ray_to_model(origin, direction);
        self.next_pick += 1;
        self.pointing = Some((self.next_pick, origin));
        Some(DeviceMessage::RayCast {
            id: self.next_pick,
            origin,
            direction,
            policy: HitPolicy::Closest,
            max_hits: 1,
        })
    }

    fn pose(&mut self) -> Option<Pose> {
        let extent = self.extent?;
        self.next_pose += 1;
        let sent = ShownFrame {
            eyes: self.viewer.and_then(|v| v.eyes),
            sent_ms: js_sys::Date::now(),
            coverage: false,
        };
        self.sent.push_back((self.next_pose, sent));
        if self.sent.len() > 64 {
            self.sent.pop_front();
        }
        Some(match self.viewer {
            Some(v) => {
                let placed = XrPlacement::new(&extent, &v.room, &v.placement);
                let camera = OrbitPose::of_viewer(
                    &extent,
                    &placed,
                    v.position,
                    v.orientation,
                    v.fov_y_degrees,
                );
                let mut pose = camera.pose(self.next_pose, v.width, v.height);
                pose.views = v
                    .eyes
                    .map(|eyes| eyes.map(|eye| EyeView::of_xr(&placed, eye.view, eye.projection)));
                pose.coverage = v.coverage;
                pose
            }
            None => {
                let (width, height) = Self::viewport();
                Pose::orbit(&extent, self.azimuth, self.elevation, self.zoom).pose(
                    self.next_pose,
                    width,
                    height,
                )
            }
        })
    }
}

async fn converse(
    state: HeadsetState,
    url: &str,
    commands: &mut UnboundedReceiver<Command>,
    welcomed: Rc<Cell<bool>>,
) -> Ended {
    let socket = match WebSocket::open(url) {
        Ok(socket) => socket,
        Err(e) => return Ended::Dropped(e.to_string()),
    };
    let (mut outgoing, incoming) = socket.split();
    let say = |m: DeviceMessage| Message::Text(m.to_json());
    let codecs = crate::video::codecs().await;
    if let Err(e) = outgoing.send(say(DeviceMessage::Hello { codecs })).await {
        return Ended::Dropped(e.to_string());
    }
    let mut camera = Camera {
        extent: None,
        azimuth: 30.0,
        elevation: 20.0,
        zoom: 1.0,
        next_pose: 0,
        next_pick: 0,
        sent: VecDeque::new(),
        answered: None,
        window: (0, js_sys::Date::now()),
        viewer: None,
        received: 0,
        painted: Rc::default(),
        video: None,
        pointing: None,
    };
    let mut events = stream::select(
        incoming.map(Input::Host),
        commands.by_ref().map(Input::Page),
    );
    while let Some(event) = events.next().await {
        let reply = match event {
            Input::Host(Ok(Message::Text(text))) => match HostMessage::parse(&text) {
                Ok(message) => {
                    if matches!(message, HostMessage::Welcome { .. }) {
                        welcomed.set(true);
                    }
                    on_message(state, &mut camera, message)
                }
                Err(_) => None,
            },
            Input::Host(Ok(Message::Bytes(bytes))) => on_frame(state, &mut camera, &bytes),
            Input::Host(Err(WebSocketError::ConnectionClose(close))) => {
                if close.reason.contains(SESSION_TAKEN) {
                    return Ended::Closed("This session already has a connected device.".into());
                }
                if close.reason.contains("session has ended") {
                    return Ended::Closed("The render session has ended.".into());
                }
                return Ended::Dropped(close.reason);
            }
            Input::Host(Err(e)) => return Ended::Dropped(e.to_string()),
            Input::Page(Command::Load(model)) => Some(DeviceMessage::LoadModel {
                model: ModelId::new(model),
            }),
            Input::Page(Command::Place(placement)) => Some(DeviceMessage::SetTransform(placement)),
            Input::Page(Command::Review(review)) => Some(DeviceMessage::SetReview(*review)),
            Input::Page(Command::Gesture(gesture)) => on_gesture(state, &mut camera, gesture),
            Input::Page(Command::RayCast(origin, direction)) => camera.ray_cast(origin, direction),
            Input::Page(Command::Viewer(viewer)) => {
                camera.viewer = viewer.map(|v| *v);
                // Every XR frame brings a pose; ask no faster than frames come back.
                let now = js_sys::Date::now();
                let in_flight = camera
                    .sent
                    .iter()
                    .filter(|(_, sent)| now - sent.sent_ms < IN_FLIGHT_LIMIT_MS)
                    .count();
                if camera.viewer.is_some() && (in_flight >= MAX_IN_FLIGHT || held()) {
                    None
                } else {
                    camera.pose().map(DeviceMessage::Pose)
                }
            }
        };
        if let Some(message) = reply
            && let Err(e) = outgoing.send(say(message)).await
        {
            return Ended::Dropped(e.to_string());
        }
    }
    Ended::Dropped("the connection closed".into())
}

enum Input {
    Host(Result<Message, WebSocketError>),
    Page(Command),
}

fn on_message(
    state: HeadsetState,
    camera: &mut Camera,
    message: HostMessage,
) -> Option<DeviceMessage> {
    match message {
        HostMessage::Welcome { codec, .. } => {
            state.session.set("Connected".into());
            state.codec.set(Some(codec));
            camera.video = match codec {
                Codec::H264 => VideoSink::new(state)
                    .inspect_err(|e| leptos::logging::warn!("no video decoder: {e:?}"))
                    .ok(),
                Codec::Jpeg => None,
            };
            // A fresh connection has an empty scene: place and load what the space shows.
            send(Command::Place(state.space.transform.get_untracked()));
            send(Command::Review(Box::new(
                state.space.review.get_untracked(),
            )));
            state
                .space
                .selected
                .get_untracked()
                .map(|model| DeviceMessage::LoadModel {
                    model: ModelId::new(model),
                })
        }
        // A coarse form comes first for a big model: framed as the whole model, as it will be.
        HostMessage::LoadCoarse { model, extent, .. }
        | HostMessage::LoadDone { model, extent, .. } => {
            camera.extent = Some(extent.unwrap_or_default());
            state.loaded.set(Some(model.0));
            camera.pose().map(DeviceMessage::Pose)
        }
        HostMessage::LoadFailed { model, reason } => {
            // A coarse form shown of it is gone with it.
            if state.loaded.get_untracked().as_deref() == Some(model.as_str()) {
                state.loaded.set(None);
            }
            state
                .session
                .set(format!("Could not load {model}: {reason}"));
            None
        }
        HostMessage::PickResult { id, hits, .. } => {
            let named = hits.first().map(|hit| {
                hit.part
                    .clone()
                    .unwrap_or_else(|| format!("triangle {}", hit.triangle))
            });
            state
                .picked
                .set(Some(named.unwrap_or_else(|| "nothing".into())));
            // The tablets see what this headset points at, and can show it to everyone.
            let hit = hits.first();
            state.space.write(serde_json::json!({
                "pick": {
                    "part": hit.and_then(|h| h.part.clone()),
                    "position": hit.map(|h| h.position),
                }
            }));
            // A headset's ray that met a part points at it, for everyone, from where it came: a
            // write of its own, so a pointer refused (not the arbiter) never takes the pick with it.
            let pointed = camera.pointing.take_if(|(asked, _)| *asked == id);
            if let (Some((_, origin)), Some(hit)) = (pointed, hit) {
                let mut review = state.space.review.get_untracked();
                review.pointer = Some(Pointer {
                    target: hit.position,
                    origin: Some(origin),
                    part: hit.part.clone(),
                    by: None,
                });
                state.space.write(serde_json::json!({ "review": review }));
            }
            None
        }
        HostMessage::LoadProgress { .. } | HostMessage::Error { .. } => None,
    }
}

/// Shows a frame; returns a message for the host when the video decoder needs a key frame.
fn on_frame(state: HeadsetState, camera: &mut Camera, bytes: &[u8]) -> Option<DeviceMessage> {
    let Ok((header, data)) = FrameHeader::decode(bytes) else {
        return None;
    };
    camera.received += 1;
    // Frames come after the load they show was reported, so this is the frame's model.
    let model = state.loaded.get_untracked();
    let painting = (camera.received, model.clone());
    let painted = camera.painted.clone();
    let now = js_sys::Date::now();
    let mut shown = None;
    if let Some(i) = camera.sent.iter().position(|(id, _)| *id == header.pose) {
        let sent = camera.sent[i].1;
        state.latency_ms.set(Some(now - sent.sent_ms));
        shown = Some(sent);
        camera.answered = Some((header.pose, sent));
        camera.sent.drain(..=i);
    } else if let Some((pose, sent)) = camera.answered
        && pose == header.pose
    {
        shown = Some(sent);
    }
    // What the frame itself says it carries.
    let shown = shown.map(|sent| ShownFrame {
        coverage: header.coverage,
        ..sent
    });
    let mut reply = None;
    match (header.codec, camera.video.as_mut()) {
        (Codec::H264, Some(video)) => {
            if video.decode(&header, data, model, shown) {
                reply = Some(DeviceMessage::Keyframe);
            }
        }
        (Codec::H264, None) => {}
        (Codec::Jpeg, _) => spawn_local(paint(state, data.to_vec(), painting, shown, painted)),
    }
    camera.window.0 += 1;
    let elapsed = now - camera.window.1;
    if elapsed >= 1000.0 {
        state.fps.set(f64::from(camera.window.0) * 1000.0 / elapsed);
        camera.window = (0, now);
    }
    reply
}

/// Decodes `jpeg` off the main thread and draws it on the page's canvas, unless a later frame
/// (`number` counts this connection's frames) was drawn first.
async fn paint(
    state: HeadsetState,
    jpeg: Vec<u8>,
    (number, model): (u64, Option<String>),
    shown: Option<ShownFrame>,
    painted: Rc<Cell<u64>>,
) {
    use wasm_bindgen::JsCast;
    let decoded = async {
        let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(jpeg.as_slice()));
        let options = web_sys::BlobPropertyBag::new();
        options.set_type("image/jpeg");
        let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options)?;
        let decoded = window().create_image_bitmap_with_blob(&blob)?.await?;
        decoded.dyn_into::<web_sys::ImageBitmap>()
    };
    let bitmap = match decoded.await {
        Ok(bitmap) => bitmap,
        Err(e) => return leptos::logging::warn!("a frame did not decode: {e:?}"),
    };
    let Some(canvas) = state.canvas.get_untracked() else {
        return bitmap.close();
    };
    if number > painted.get() {
        painted.set(number);
        if canvas.width() != bitmap.width() || canvas.height() != bitmap.height() {
            canvas.set_width(bitmap.width());
            canvas.set_height(bitmap.height());
        }
        let context = canvas
            .get_context("2d")
            .ok()
            .flatten()
            .and_then(|c| c.dyn_into::<web_sys::CanvasRenderingContext2d>().ok());
        if let Some(context) = context
            && context
                .draw_image_with_image_bitmap(&bitmap, 0.0, 0.0)
                .is_ok()
        {
            state.drawn.set(model);
            state.shown.set(shown);
            state.frames.update(|n| *n += 1);
        }
    }
    bitmap.close();
}

fn on_gesture(state: HeadsetState, camera: &mut Camera, gesture: Gesture) -> Option<DeviceMessage> {
    match gesture {
        Gesture::Orbit(around, up) => {
            camera.azimuth = (camera.azimuth + around) % 360.0;
            camera.elevation = (camera.elevation + up).clamp(-85.0, 85.0);
            camera.pose().map(DeviceMessage::Pose)
        }
        Gesture::Zoom(factor) => {
            camera.zoom = (camera.zoom * factor).clamp(0.2, MAX_ZOOM);
            camera.pose().map(DeviceMessage::Pose)
        }
        Gesture::Tap(fx, fy) => {
            camera.extent?;
            let (width, height) = Camera::viewport();
            camera.next_pick += 1;
            state.picked.set(None);
            Some(DeviceMessage::Pick {
                id: camera.next_pick,
                x: fx * width as f32,
                y: fy * height as f32,
                policy: HitPolicy::Closest,
                max_hits: 1,
            })
        }
    }
}
