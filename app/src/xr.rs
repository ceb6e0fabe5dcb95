//! WebXR on a headset's own browser: "Enter VR" (or "Enter AR", over the room) starts an
//! immersive session. Each XR frame the viewer's pose — both eyes' views and projections — goes
//! to the render connection in place of drag and wheel (no faster than frames come back), and
//! the newest streamed frame, both eyes side by side, is drawn on the session's WebGL layer:
//! each half into its eye's viewport, reprojected from where that eye was when the frame was
//! asked for to where it is now (planar late-stage reprojection, `parallax_core::reproject`), so
//! the model stays put in the room between frames. A headset that shows one picture (one view
//! with an area of the layer) gets one frame from the head's centre. In AR the frames carry
//! their coverage, and the layer is clear (premultiplied) wherever the model is not.
//!
//! WebXR through web-sys' typed bindings (unstable in web-sys: the wasm build sets
//! `web_sys_unstable_apis`). Browser only.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Array, Object};
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{
    HtmlCanvasElement, WebGl2RenderingContext as Gl, WebGlContextAttributes, WebGlProgram,
    WebGlTexture, WebGlUniformLocation, XrFrame, XrHandedness, XrInputSource, XrInputSourceEvent,
    XrReferenceSpace, XrReferenceSpaceType, XrRenderStateInit, XrRigidTransform, XrSession,
    XrSessionInit, XrSessionMode, XrSpace, XrSystem, XrTargetRayMode, XrView, XrWebGlLayer,
};

use parallax_core::device::XrPlacement;
use parallax_core::reproject::{self, XrEye};
use parallax_core::room::{Alignment, Grip, RoomPlacement};
use parallax_core::space_protocol::PRESENCE_HZ;

use crate::headset_state::{HeadsetState, XrMode};
use crate::live::{hook, set_hook};
use crate::render_live::{Viewer, viewer};

#[wasm_bindgen]
extern "C" {
    /// An `XRSession` with what the WebXR AR module adds, which web-sys does not bind.
    #[wasm_bindgen(extends = XrSession)]
    type ArSession;
    /// How the display shows the layer over the room: `opaque`, `alpha-blend` or `additive`.
    #[wasm_bindgen(method, getter, js_name = environmentBlendMode)]
    fn environment_blend_mode(this: &ArSession) -> Option<String>;
}

/// What `XRSession.requestAnimationFrame` calls: the time and the `XRFrame`.
type FrameCallback = Closure<dyn FnMut(f64, XrFrame)>;

/// What an `XRSession`'s input events call.
type InputListener = Closure<dyn FnMut(XrInputSourceEvent)>;

/// The largest frame asked for, per eye.
const MAX_SIDE: f64 = 1280.0;

/// `navigator.xr`, where the browser has WebXR.
fn xr_system() -> Option<XrSystem> {
    Some(window().navigator().xr()).filter(|xr| !xr.is_undefined() && !xr.is_null())
}

fn session_mode(mode: XrMode) -> XrSessionMode {
    match mode {
        XrMode::Vr => XrSessionMode::ImmersiveVr,
        XrMode::Ar => XrSessionMode::ImmersiveAr,
    }
}

fn message(error: JsValue) -> String {
    error
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| error.as_string())
        .unwrap_or_else(|| format!("{error:?}"))
}

/// Whether this browser can start an immersive session in `mode`.
pub(crate) async fn supported(mode: XrMode) -> bool {
    let Some(xr) = xr_system() else {
        return false;
    };
    xr.is_session_supported(session_mode(mode))
        .await
        .is_ok_and(|yes| yes.value_of())
}

/// Starts an immersive session in `mode` and runs it until the headset ends it.
pub(crate) async fn enter(state: HeadsetState, mode: XrMode) -> Result<(), String> {
    start(state, mode).await.map_err(message)
}

async fn start(state: HeadsetState, mode: XrMode) -> Result<(), JsValue> {
    let xr = xr_system().ok_or("this browser has no WebXR")?;
    // `local-floor`: the floor at y = 0, so a room's marks and a table's height mean the same
    // on every headset; `local` where a device has no floor.
    let features = XrSessionInit::new();
    features.set_optional_features(&["local-floor".into(), "local".into()]);
    let session = xr
        .request_session_with_options(session_mode(mode), &features)
        .await?;
    // Over the room unless the display shows none of it (an AR session on an opaque display):
    // then frames come on a transparent background with their coverage, and what the model does
    // not cover stays clear. An additive display (light added to the room) needs the black the
    // premultiplied colour has there; alpha blending needs the coverage.
    let blend = session
        .unchecked_ref::<ArSession>()
        .environment_blend_mode();
    let see_through = mode == XrMode::Ar && blend.as_deref() != Some("opaque");

    // WebGL 2 on a canvas of its own, made for the headset's compositor.
    let canvas: HtmlCanvasElement = document().create_element("canvas")?.dyn_into()?;
    let options = WebGlContextAttributes::new();
    options.set_xr_compatible(true);
    let gl: Gl = canvas
        .get_context_with_context_options("webgl2", &options)?
        .ok_or("no WebGL 2 for the headset's layer")?
        .dyn_into()?;
    let layer = XrWebGlLayer::new_with_web_gl2_rendering_context(&session, &gl)?;
    let render_state = XrRenderStateInit::new();
    render_state.set_base_layer(Some(&layer));
    session.update_render_state_with_state(&render_state);
    let space = match session
        .request_reference_space(XrReferenceSpaceType::LocalFloor)
        .await
    {
        Ok(space) => space,
        Err(_) => {
            session
                .request_reference_space(XrReferenceSpaceType::Local)
                .await?
        }
    };
    let screen = Screen::new(&gl)?;
    let markers = Markers::new(&gl)?;
    let kept: Rc<Kept> = Rc::default();

    // While aligning, each select (a trigger pulled, a pinch) touches a mark where the pointer
    // is; two make the room. Otherwise a select points at the part the pointer's ray meets.
    let on_select = InputListener::new({
        let space = space.clone();
        move |event: XrInputSourceEvent| {
            if state.marks.get_untracked().is_some() {
                touch_mark(state, &event, &space);
            } else if let Some((origin, direction)) =
                ray_of(&event.frame(), &event.input_source(), &space)
            {
                crate::render_live::ray_cast(origin, direction);
            }
        }
    });
    // Aligned, a squeeze (or a pinch held) takes the model, and it follows the hand until let go.
    let on_squeeze = InputListener::new({
        let (space, kept) = (space.clone(), kept.clone());
        move |event: XrInputSourceEvent| take(state, &event, &space, &kept.grab)
    });
    let on_release = InputListener::new({
        let (space, kept) = (space.clone(), kept.clone());
        move |event: XrInputSourceEvent| {
            // Only the hand that took it lets it go. Taken out before the browser is asked
            // anything: a call that throws must not leave the cell borrowed.
            let hand = event.input_source();
            let taken = {
                let mut grab = kept.grab.borrow_mut();
                match grab.as_ref() {
                    Some(g) if Object::is(&g.source, &hand) => grab.take(),
                    _ => None,
                }
            };
            if let Some(mut grab) = taken {
                // Where the hand let go, as the event's own frame has it: animation frames
                // come as fast as the device draws, and the last may be a step behind.
                follow(state, &mut grab, &event.frame(), &space);
                state.space.write(serde_json::json!({ "room": grab.now }));
            }
        }
    });
    for (name, listener) in [
        ("select", &on_select),
        ("squeezestart", &on_squeeze),
        ("squeezeend", &on_release),
    ] {
        session.add_event_listener_with_callback(name, listener.as_ref().unchecked_ref())?;
    }
    // They live as long as the session object that holds them.
    on_select.forget();
    on_squeeze.forget();
    on_release.forget();

    state.xr.set(true);
    state.see_through.set(see_through);
    let running = Rc::new(Cell::new(true));
    let on_end = Closure::<dyn FnMut()>::new({
        let running = running.clone();
        move || {
            running.set(false);
            state.xr.set(false);
            state.see_through.set(false);
            viewer(None);
        }
    });
    session.add_event_listener_with_callback("end", on_end.as_ref().unchecked_ref())?;
    on_end.forget(); // Lives as long as the session object that holds it.

    // The frame loop: a closure that schedules itself for the next XR frame.
    let tick: Rc<RefCell<Option<FrameCallback>>> = Rc::default();
    let again = tick.clone();
    *tick.borrow_mut() = Some(Closure::new({
        let session = session.clone();
        move |_time: f64, frame: XrFrame| {
            if !running.get() {
                again.borrow_mut().take(); // Ends the loop; drops this closure.
                return;
            }
            if let Some(next) = again.borrow().as_ref() {
                session.request_animation_frame(next.as_ref().unchecked_ref());
            }
            let drawing = (&screen, &markers);
            if let Err(e) = on_frame(state, &frame, &space, &layer, &gl, drawing, &kept) {
                leptos::logging::warn!("XR frame: {}", message(e));
            }
        }
    }));
    if let Some(first) = tick.borrow().as_ref() {
        session.request_animation_frame(first.as_ref().unchecked_ref());
    }
    Ok(())
}

/// A transform's position.
fn position_of(transform: &XrRigidTransform) -> [f32; 3] {
    let p = transform.position();
    [p.x(), p.y(), p.z()].map(|v| v as f32)
}

/// A transform's orientation, a quaternion (x, y, z, w).
fn orientation_of(transform: &XrRigidTransform) -> [f32; 4] {
    let q = transform.orientation();
    [q.x(), q.y(), q.z(), q.w()].map(|v| v as f32)
}

/// A 4×4 matrix as WebXR gives it (column-major), if it is one.
fn matrix(values: Vec<f32>) -> Option<[f32; 16]> {
    values.try_into().ok()
}

/// A select while aligning: a mark touched where the input's pointer is. The second mark makes
/// the room, kept on this device for this space; marks that make none say why and start over.
fn touch_mark(state: HeadsetState, event: &XrInputSourceEvent, space: &XrSpace) {
    let Some(mut marks) = state.marks.get_untracked() else {
        return;
    };
    let ray = event.input_source().target_ray_space();
    match event.frame().get_pose(&ray, space) {
        Some(pose) => marks.push(position_of(&pose.transform())),
        None => {
            state
                .align_problem
                .set(Some("the pointer is not tracked".into()));
            return;
        }
    }
    let [first, second] = marks[..] else {
        state.marks.set(Some(marks));
        return;
    };
    match Alignment::from_marks(first, second) {
        Ok(room) => {
            save_alignment(&state.space.name.get_untracked(), &room);
            state.alignment.set(Some(room));
            state.align_problem.set(None);
            state.marks.set(None);
        }
        Err(e) => {
            state.align_problem.set(Some(e.to_string()));
            state.marks.set(Some(Vec::new()));
        }
    }
}

/// What the frame loop keeps from one XR frame to the next.
#[derive(Default)]
struct Kept {
    /// Before the headset aligns to the room: the room ahead of where the head first looks.
    start_room: Cell<Option<Alignment>>,
    /// When this headset last said where its wearer is (ms).
    said: Cell<f64>,
    /// The model in the wearer's hand.
    grab: RefCell<Option<Grab>>,
}

/// The model taken by a hand: where the hand and the model were when it took it, where the model
/// is now, and when that was last written to the space (ms).
struct Grab {
    source: XrInputSource,
    from: Grip,
    start: RoomPlacement,
    now: RoomPlacement,
    written: f64,
}

/// How often a carried model's place is written to the space: the others follow at this rate,
/// the wearer every frame.
const CARRY_HZ: f64 = 10.0;

/// A hand's grip space (else its pointer's) in `space`, as a position and orientation.
fn hand_pose(
    frame: &XrFrame,
    source: &XrInputSource,
    space: &XrSpace,
) -> Option<([f32; 3], [f32; 4])> {
    let grip = source
        .grip_space()
        .unwrap_or_else(|| source.target_ray_space());
    let transform = frame.get_pose(&grip, space)?.transform();
    Some((position_of(&transform), orientation_of(&transform)))
}

/// A squeeze: the hand takes the model, if this headset is aligned to the room (a move in a
/// room of its own would mean something else to everyone else).
fn take(
    state: HeadsetState,
    event: &XrInputSourceEvent,
    space: &XrSpace,
    grab: &RefCell<Option<Grab>>,
) {
    let Some(room) = state.alignment.get_untracked() else {
        return;
    };
    let source = event.input_source();
    if let Some((position, orientation)) = hand_pose(&event.frame(), &source, space) {
        let start = state.space.room.get_untracked();
        *grab.borrow_mut() = Some(Grab {
            source,
            from: room.grip_of(position, orientation),
            start,
            now: start,
            written: 0.0,
        });
    }
}

/// The model in a hand goes where the hand went: at once here, and to the space (so to every
/// headset) at most [`CARRY_HZ`] times a second.
fn carry(state: HeadsetState, frame: &XrFrame, space: &XrSpace, grab: &RefCell<Option<Grab>>) {
    // Out of the cell while the browser is asked where the hand is (a call that throws must not
    // leave it borrowed), and back after.
    let Some(mut held) = grab.borrow_mut().take() else {
        return;
    };
    if follow(state, &mut held, frame, space) {
        let now = js_sys::Date::now();
        if now - held.written >= 1000.0 / CARRY_HZ {
            held.written = now;
            state.space.write(serde_json::json!({ "room": held.now }));
        }
    }
    *grab.borrow_mut() = Some(held);
}

/// Moves the model in `held` to where its hand is in `frame`, here at once; whether it moved
/// (not when the hand's pose is unknown, nor beyond where the room allows: there it stays
/// where it was last).
fn follow(state: HeadsetState, held: &mut Grab, frame: &XrFrame, space: &XrSpace) -> bool {
    let Some(room) = state.alignment.get_untracked() else {
        return false;
    };
    let Some((position, orientation)) = hand_pose(frame, &held.source, space) else {
        return false;
    };
    let moved = held
        .start
        .carried(held.from, room.grip_of(position, orientation));
    if moved.problem().is_some() {
        return false;
    }
    held.now = moved;
    state.space.room.set(moved);
    true
}

/// An input source's pointing ray in `space`: origin and direction.
fn ray_of(
    frame: &XrFrame,
    source: &XrInputSource,
    space: &XrSpace,
) -> Option<([f32; 3], [f32; 3])> {
    let pose = frame.get_pose(&source.target_ray_space(), space)?;
    let m = matrix(pose.transform().matrix())?;
    // Column-major: the ray runs along the pose's −Z from its origin.
    Some(([m[12], m[13], m[14]], [-m[8], -m[9], -m[10]]))
}

/// Where the wearer points: the right-hand pointer's ray (a controller's or a hand's), else the
/// first tracked pointer's, as origin and direction in `space`.
fn pointing_ray(frame: &XrFrame, space: &XrSpace) -> Option<([f32; 3], [f32; 3])> {
    let sources = frame.session().input_sources();
    let mut pointers: Vec<XrInputSource> = (0..sources.length())
        .filter_map(|i| sources.get(i))
        .filter(|source| source.target_ray_mode() == XrTargetRayMode::TrackedPointer)
        .collect();
    pointers.sort_by_key(|source| source.handedness() != XrHandedness::Right);
    pointers
        .iter()
        .find_map(|source| ray_of(frame, source, space))
}

/// Where this device keeps its alignment to `space`'s room.
fn alignment_key(space: &str) -> String {
    format!("parallax.room.{space}")
}

/// This device's alignment to `space`'s room, if it aligned before.
pub(crate) fn saved_alignment(space: &str) -> Option<Alignment> {
    let storage = window().local_storage().ok()??;
    let text = storage.get_item(&alignment_key(space)).ok()??;
    serde_json::from_str(&text).ok()
}

fn save_alignment(space: &str, room: &Alignment) {
    if let (Ok(Some(storage)), Ok(text)) = (window().local_storage(), serde_json::to_string(room)) {
        let _ = storage.set_item(&alignment_key(space), &text);
    }
}

/// One XR frame: the viewer's pose to the render connection, the newest frame to each eye.
fn on_frame(
    state: HeadsetState,
    frame: &XrFrame,
    space: &XrReferenceSpace,
    layer: &XrWebGlLayer,
    gl: &Gl,
    (screen, markers): (&Screen, &Markers),
    kept: &Kept,
) -> Result<(), JsValue> {
    let (start_room, said) = (&kept.start_room, &kept.said);
    let Some(pose) = frame.get_viewer_pose(space) else {
        return Ok(()); // Tracking lost for now.
    };
    let transform = pose.transform();
    let (head, turn) = (position_of(&transform), orientation_of(&transform));
    carry(state, frame, space, &kept.grab);
    let shared = state.space.room.get_untracked();
    // Aligned, the wearer is somewhere in the shared room: say where, at most 15 times a second.
    let now = js_sys::Date::now();
    if let Some(aligned) = state.alignment.get_untracked()
        && now - said.get() >= 1000.0 / f64::from(PRESENCE_HZ)
    {
        said.set(now);
        let ray = pointing_ray(frame, space);
        let presence = aligned.presence_of(head, turn, ray);
        // A sample the space would refuse (tracking glitches) is skipped, not sent.
        if presence.problem().is_none() {
            crate::space_live::send_presence(presence);
        }
    }
    let (room, placement) = match (state.alignment.get_untracked(), start_room.get()) {
        (Some(aligned), _) => (aligned, shared),
        (None, Some(start)) => (start, shared.unaligned()),
        (None, None) => {
            let start = Alignment::before_aligning(head, turn);
            start_room.set(Some(start));
            (start, shared.unaligned())
        }
    };
    // Where the model's centre is in tracking space, and the head: for tests and tools that
    // check where the room puts it (`window.parallaxXrAnchor`, `window.parallaxXrHead`).
    let anchor = XrPlacement::anchor_of(&room, &placement);
    let point = |p: [f32; 3]| Array::of3(&p[0].into(), &p[1].into(), &p[2].into());
    set_hook("parallaxXrAnchor", &point(anchor));
    set_hook("parallaxXrHead", &point(head));
    // The views the layer shows, each with its viewport (x, y, width, height): a device that
    // shows one picture may still list a second view, with no area (the emulator does).
    let views: Vec<(XrView, [f64; 4])> = pose
        .views()
        .iter()
        .filter_map(|view| {
            let area = layer.get_viewport(&view)?;
            let area = [area.x(), area.y(), area.width(), area.height()].map(f64::from);
            (area[2] > 0.0 && area[3] > 0.0).then_some((view, area))
        })
        .collect();
    let Some((first, [_, _, width, height])) = views.first() else {
        return Ok(());
    };
    let (width, height) = (*width, *height);
    // Vertical field of view from the first eye's projection: m[5] = 1 / tan(fov / 2).
    let projection = matrix(first.projection_matrix()).ok_or("a projection that is no 4×4")?;
    let fov_y_degrees = (2.0 * (1.0 / projection[5]).atan()).to_degrees();
    let scale = (MAX_SIDE / width.max(height)).min(1.0);
    // A headset's two eyes, each as WebXR gives it; anything else is drawn from the head's centre.
    let eye = |view: &XrView| -> Option<XrEye> {
        Some(XrEye {
            view: matrix(view.transform().inverse().matrix())?,
            projection: matrix(view.projection_matrix())?,
        })
    };
    let eyes = match views.as_slice() {
        [(left, _), (right, _)] => eye(left).zip(eye(right)).map(|(l, r)| [l, r]),
        _ => None,
    };
    // Even sides, as H.264's 4:2:0 pictures need.
    let even = |side: f64| (((side * scale) as u32) & !1).max(2);
    let eye_width = f64::from(even(width));
    viewer(Some(Viewer {
        position: head,
        orientation: turn,
        fov_y_degrees: if fov_y_degrees.is_finite() {
            fov_y_degrees
        } else {
            90.0
        },
        width: eye_width as u32,
        height: even(height),
        eyes,
        room,
        placement,
        coverage: state.see_through.get_untracked(),
    }));

    // The newest streamed frame (the page's canvas holds it) becomes the texture, with the eyes
    // it was rendered for.
    let frames = state.frames.get_untracked();
    if frames != screen.uploaded.get()
        && let Some(canvas) = state.canvas.get_untracked()
        && canvas.width() > 0
    {
        screen.upload(gl, &canvas)?;
        screen.uploaded.set(frames);
        let shown = state.shown.get_untracked();
        screen.rendered.set(shown.and_then(|s| s.eyes));
        screen.coverage.set(shown.is_some_and(|s| s.coverage));
        if let Some(shown) = shown {
            record_drawn_latency(js_sys::Date::now() - shown.sent_ms);
        }
    }
    gl.bind_framebuffer(Gl::FRAMEBUFFER, layer.framebuffer().as_ref());
    // Over the room, what the model does not cover is clear (premultiplied: colour 0 too).
    let see_through = state.see_through.get_untracked();
    let clear = if see_through { 0.0 } else { 1.0 };
    gl.clear_color(0.0, 0.0, 0.0, clear);
    gl.clear(Gl::COLOR_BUFFER_BIT | Gl::DEPTH_BUFFER_BIT);
    // The others in the shared room, drawn here over the streamed frame: no round trip.
    let me = state.space.member.get_untracked().map(|(id, _)| id);
    let others: Vec<([f32; 16], Option<[f32; 16]>)> = match state.alignment.get_untracked() {
        Some(aligned) => state
            .space
            .presence
            .get_untracked()
            .values()
            .filter(|p| Some(&p.member) != me.as_ref())
            .map(|p| aligned.markers_of(&p.presence))
            .collect(),
        None => Vec::new(),
    };
    // A frame asked for two eyes comes back twice as wide: each eye gets its half.
    let halves = eyes.is_some()
        && state
            .canvas
            .get_untracked()
            .is_some_and(|c| f64::from(c.width()) >= 2.0 * eye_width - 1.0);
    let reproject = hook("parallaxReproject").as_bool() != Some(false);
    for (i, (view, [x, y, width, height])) in views.iter().enumerate() {
        gl.viewport(*x as i32, *y as i32, *width as i32, *height as i32);
        // From where this eye is now to where it was when its half of the frame was rendered.
        let homography = match (reproject, screen.rendered.get(), eyes) {
            (true, Some(then), Some(now)) => {
                reproject::homography(&then[i.min(1)], &now[i.min(1)], anchor)
                    .unwrap_or(reproject::IDENTITY)
            }
            _ => reproject::IDENTITY,
        };
        match (halves, i) {
            (true, 0) => screen.draw(gl, (0.0, 0.5), &homography, see_through),
            (true, _) => screen.draw(gl, (0.5, 0.5), &homography, see_through),
            (false, _) => screen.draw(gl, (0.0, 1.0), &reproject::IDENTITY, see_through),
        }
        if !others.is_empty()
            && let Some(now) = eye(view)
        {
            markers.draw(gl, &now, &others);
        }
    }
    Ok(())
}

/// Other wearers, drawn in each eye over the streamed frame: a head and a pointing ray, each a
/// box (core's `Alignment::markers_of` places them), shaded by how its faces turn.
struct Markers {
    program: WebGlProgram,
    cube: web_sys::WebGlVertexArrayObject,
    projection: Option<WebGlUniformLocation>,
    view: Option<WebGlUniformLocation>,
    model: Option<WebGlUniformLocation>,
    color: Option<WebGlUniformLocation>,
}

const MARKER_VERTEX: &str = "#version 300 es
in vec3 corner;
uniform mat4 projection;
uniform mat4 view;
uniform mat4 model;
out vec3 seen;
void main() {
    vec4 at = view * model * vec4(corner, 1.0);
    seen = at.xyz;
    gl_Position = projection * at;
}";

const MARKER_FRAGMENT: &str = "#version 300 es
precision highp float;
in vec3 seen;
uniform vec3 color;
out vec4 shade;
void main() {
    vec3 normal = normalize(cross(dFdx(seen), dFdy(seen)));
    shade = vec4(color * (0.55 + 0.45 * abs(normal.z)), 1.0);
}";

/// What another wearer's head is drawn in (their ray a little darker): a blue no model part
/// or highlight uses.
const MARKER_COLOR: [f32; 3] = [0.1, 0.65, 1.0];

impl Markers {
    fn new(gl: &Gl) -> Result<Self, JsValue> {
        let program = link(gl, MARKER_VERTEX, MARKER_FRAGMENT)?;
        // A unit cube centred on the origin: 12 triangles.
        let faces: [[[f32; 3]; 4]; 6] = [
            [[-1., -1., 1.], [1., -1., 1.], [1., 1., 1.], [-1., 1., 1.]],
            [
                [1., -1., -1.],
                [-1., -1., -1.],
                [-1., 1., -1.],
                [1., 1., -1.],
            ],
            [
                [-1., -1., -1.],
                [-1., -1., 1.],
                [-1., 1., 1.],
                [-1., 1., -1.],
            ],
            [[1., -1., 1.], [1., -1., -1.], [1., 1., -1.], [1., 1., 1.]],
            [[-1., 1., 1.], [1., 1., 1.], [1., 1., -1.], [-1., 1., -1.]],
            [
                [-1., -1., -1.],
                [1., -1., -1.],
                [1., -1., 1.],
                [-1., -1., 1.],
            ],
        ];
        let corners: Vec<f32> = faces
            .iter()
            .flat_map(|[a, b, c, d]| [a, b, c, a, c, d])
            .flat_map(|corner| corner.map(|v| v * 0.5))
            .collect();
        let cube = gl.create_vertex_array().ok_or("no vertex array")?;
        gl.bind_vertex_array(Some(&cube));
        let buffer = gl.create_buffer().ok_or("no buffer")?;
        gl.bind_buffer(Gl::ARRAY_BUFFER, Some(&buffer));
        gl.buffer_data_with_array_buffer_view(
            Gl::ARRAY_BUFFER,
            &js_sys::Float32Array::from(&corners[..]),
            Gl::STATIC_DRAW,
        );
        let location = gl.get_attrib_location(&program, "corner") as u32;
        gl.enable_vertex_attrib_array(location);
        gl.vertex_attrib_pointer_with_i32(location, 3, Gl::FLOAT, false, 0, 0);
        gl.bind_vertex_array(None);
        let uniform = |name: &str| gl.get_uniform_location(&program, name);
        Ok(Self {
            projection: uniform("projection"),
            view: uniform("view"),
            model: uniform("model"),
            color: uniform("color"),
            program,
            cube,
        })
    }

    /// Draws each of `others` (a head's and a ray's placement) as `eye` sees them.
    fn draw(&self, gl: &Gl, eye: &XrEye, others: &[([f32; 16], Option<[f32; 16]>)]) {
        gl.use_program(Some(&self.program));
        gl.bind_vertex_array(Some(&self.cube));
        gl.enable(Gl::DEPTH_TEST);
        gl.uniform_matrix4fv_with_f32_array(self.projection.as_ref(), false, &eye.projection);
        gl.uniform_matrix4fv_with_f32_array(self.view.as_ref(), false, &eye.view);
        for (head, ray) in others {
            let [r, g, b] = MARKER_COLOR;
            for (model, dim) in std::iter::once((head, 1.0)).chain(ray.iter().map(|r| (r, 0.7))) {
                gl.uniform_matrix4fv_with_f32_array(self.model.as_ref(), false, model);
                gl.uniform3f(self.color.as_ref(), r * dim, g * dim, b * dim);
                gl.draw_arrays(Gl::TRIANGLES, 0, 36);
            }
        }
        gl.disable(Gl::DEPTH_TEST);
        gl.bind_vertex_array(None);
    }
}

/// Keeps the last 256 times from a pose sent to its frame drawn in the headset (ms) in
/// `window.parallaxXrDrawnMs`, for the benchmark that reads them.
fn record_drawn_latency(ms: f64) {
    const KEY: &str = "parallaxXrDrawnMs";
    let list = hook(KEY).dyn_into::<Array>().unwrap_or_else(|_| {
        let list = Array::new();
        set_hook(KEY, &list);
        list
    });
    list.push(&ms.into());
    if list.length() > 256 {
        list.shift();
    }
}

/// A full-view triangle textured with the newest frame, reprojected.
struct Screen {
    program: WebGlProgram,
    texture: WebGlTexture,
    area: Option<WebGlUniformLocation>,
    homography: Option<WebGlUniformLocation>,
    coverage_uniform: Option<WebGlUniformLocation>,
    see_through: Option<WebGlUniformLocation>,
    /// The page's frame count when the texture was last filled...
    uploaded: Cell<u64>,
    /// ...the eyes that frame was rendered for (a stereo frame)...
    rendered: Cell<Option<[XrEye; 2]>>,
    /// ...and whether it carries its coverage below its colour.
    coverage: Cell<bool>,
}

const VERTEX: &str = "#version 300 es
out vec2 ndc;
void main() {
    vec2 corner = vec2(float((gl_VertexID << 1) & 2), float(gl_VertexID & 2));
    ndc = corner * 2.0 - 1.0;
    gl_Position = vec4(ndc, 0.0, 1.0);
}";

const FRAGMENT: &str = "#version 300 es
precision highp float;
in vec2 ndc;
uniform sampler2D frame;
// The part of the frame across this eye: its left edge and width (a stereo frame: one half).
uniform vec2 area;
// This eye's view now (NDC) -> the frame as rendered (homogeneous NDC).
uniform mat3 homography;
// The frame is twice as tall: the colour (premultiplied) above, its coverage below as grey.
uniform bool coverage;
// Drawn over the room: what the model does not cover stays clear.
uniform bool see_through;
// Premultiplied, as the layer is composited.
out vec4 color;
void main() {
    vec3 at = homography * vec3(ndc, 1.0);
    vec2 uv = at.xy / at.z * 0.5 + 0.5;
    if (at.z <= 0.0 || any(lessThan(uv, vec2(0.0))) || any(greaterThan(uv, vec2(1.0)))) {
        // Not in the frame: nothing to show there.
        color = vec4(0.0, 0.0, 0.0, see_through ? 0.0 : 1.0);
        return;
    }
    vec2 st = vec2(area.x + uv.x * area.y, 1.0 - uv.y);
    if (!coverage) {
        color = vec4(texture(frame, st).rgb, 1.0);
        return;
    }
    // Each half sampled within itself: linear filtering never mixes colour and coverage rows.
    float texel = 0.5 / float(textureSize(frame, 0).y);
    vec3 rgb = texture(frame, vec2(st.x, min(st.y * 0.5, 0.5 - texel))).rgb;
    float cover = texture(frame, vec2(st.x, max(0.5 + st.y * 0.5, 0.5 + texel))).r;
    // The codec's noise about 0 and 1 (JPEG rings up to 0.12 a few pixels from a hard edge)
    // made exactly clear and exactly solid; between, as sent (see-through parts are 0.3). And
    // no colour beyond the coverage (premultiplied: a halo would be light added to the room).
    cover = cover < 0.16 ? 0.0 : (cover > 0.84 ? 1.0 : cover);
    color = see_through ? vec4(min(rgb, vec3(cover)), cover) : vec4(rgb, 1.0);
}";

/// A WebGL 2 program of the `vertex` and `fragment` shaders' sources; an error says what the
/// driver said.
fn link(gl: &Gl, vertex: &str, fragment: &str) -> Result<WebGlProgram, JsValue> {
    let shader = |kind: u32, source: &str| -> Result<_, JsValue> {
        let shader = gl.create_shader(kind).ok_or("no shader")?;
        gl.shader_source(&shader, source);
        gl.compile_shader(&shader);
        if gl
            .get_shader_parameter(&shader, Gl::COMPILE_STATUS)
            .as_bool()
            != Some(true)
        {
            return Err(gl.get_shader_info_log(&shader).unwrap_or_default().into());
        }
        Ok(shader)
    };
    let program = gl.create_program().ok_or("no program")?;
    gl.attach_shader(&program, &shader(Gl::VERTEX_SHADER, vertex)?);
    gl.attach_shader(&program, &shader(Gl::FRAGMENT_SHADER, fragment)?);
    gl.link_program(&program);
    if gl
        .get_program_parameter(&program, Gl::LINK_STATUS)
        .as_bool()
        != Some(true)
    {
        return Err(gl.get_program_info_log(&program).unwrap_or_default().into());
    }
    Ok(program)
}

impl Screen {
    fn new(gl: &Gl) -> Result<Self, JsValue> {
        let program = link(gl, VERTEX, FRAGMENT)?;
        let texture = gl.create_texture().ok_or("no texture")?;
        gl.bind_texture(Gl::TEXTURE_2D, Some(&texture));
        for (parameter, value) in [
            (Gl::TEXTURE_MIN_FILTER, Gl::LINEAR),
            (Gl::TEXTURE_MAG_FILTER, Gl::LINEAR),
            (Gl::TEXTURE_WRAP_S, Gl::CLAMP_TO_EDGE),
            (Gl::TEXTURE_WRAP_T, Gl::CLAMP_TO_EDGE),
        ] {
            gl.tex_parameteri(Gl::TEXTURE_2D, parameter, value as i32);
        }
        let uniform = |name: &str| gl.get_uniform_location(&program, name);
        Ok(Self {
            area: uniform("area"),
            homography: uniform("homography"),
            coverage_uniform: uniform("coverage"),
            see_through: uniform("see_through"),
            program,
            texture,
            uploaded: Cell::new(u64::MAX),
            rendered: Cell::new(None),
            coverage: Cell::new(false),
        })
    }

    fn upload(&self, gl: &Gl, canvas: &HtmlCanvasElement) -> Result<(), JsValue> {
        gl.bind_texture(Gl::TEXTURE_2D, Some(&self.texture));
        gl.tex_image_2d_with_u32_and_u32_and_html_canvas_element(
            Gl::TEXTURE_2D,
            0,
            Gl::RGBA as i32,
            Gl::RGBA,
            Gl::UNSIGNED_BYTE,
            canvas,
        )
    }

    /// Draws the part of the frame from `left` (0–1) `width` wide across the viewport, through
    /// `homography` (column-major; from the viewport's NDC to the frame's); over the room when
    /// `see_through`.
    fn draw(&self, gl: &Gl, (left, width): (f32, f32), homography: &[f32; 9], see_through: bool) {
        gl.use_program(Some(&self.program));
        gl.uniform2f(self.area.as_ref(), left, width);
        gl.uniform1i(
            self.coverage_uniform.as_ref(),
            i32::from(self.coverage.get()),
        );
        gl.uniform1i(self.see_through.as_ref(), i32::from(see_through));
        gl.uniform_matrix3fv_with_f32_array(self.homography.as_ref(), false, homography);
        gl.active_texture(Gl::TEXTURE0);
        gl.bind_texture(Gl::TEXTURE_2D, Some(&self.texture));
        gl.draw_arrays(Gl::TRIANGLES, 0, 3);
    }
}
