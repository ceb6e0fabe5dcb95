//! What a browser headset's page knows — its render session, the frames drawn, fps and
//! latency, what was picked, whether WebXR runs — and the gestures it asks its render connection
//! for. The page writes gestures; the render connection and the WebXR session write the rest.

use leptos::prelude::*;

use crate::space_state::SpaceState;

/// What the page shows; the render connection (browser only) writes it.
#[derive(Clone, Copy)]
pub(crate) struct HeadsetState {
    pub space: SpaceState,
    /// The render session's state as ARR names it, or why there is none.
    pub session: RwSignal<String>,
    /// Minutes of lease left.
    pub lease_left: RwSignal<Option<i64>>,
    /// Where frames are drawn.
    pub canvas: NodeRef<leptos::html::Canvas>,
    /// Frames drawn so far.
    pub frames: RwSignal<u64>,
    /// The model the drawn frame shows.
    pub drawn: RwSignal<Option<String>>,
    pub fps: RwSignal<f64>,
    /// The codec the frames come in, once the render host said.
    pub codec: RwSignal<Option<parallax_core::device::Codec>>,
    pub latency_ms: RwSignal<Option<f64>>,
    /// The model the frames show.
    pub loaded: RwSignal<Option<String>>,
    /// The part a tap hit.
    pub picked: RwSignal<Option<String>>,
    /// A message that replaces the view (e.g. the session is taken).
    pub blocked: RwSignal<Option<String>>,
    /// This browser can start an immersive WebXR session.
    pub xr_available: RwSignal<bool>,
    /// Whether it can start one over the room (`immersive-ar`: passthrough or see-through).
    pub ar_available: RwSignal<bool>,
    /// The running session shows the room around the model: frames come with their coverage.
    pub see_through: RwSignal<bool>,
    /// A WebXR session runs: the head's pose drives the camera.
    pub xr: RwSignal<bool>,
    /// How this headset's tracking space lines up with the space's room, once it aligned (kept
    /// on the device, per space): then the model stands where the room has it.
    pub alignment: RwSignal<Option<parallax_core::room::Alignment>>,
    /// While aligning: the marks touched so far, in tracking coordinates.
    pub marks: RwSignal<Option<Vec<[f32; 3]>>>,
    /// Why the last alignment failed, to say so.
    pub align_problem: RwSignal<Option<String>>,
    /// What the drawn frame was rendered for: each eye's view and projection (a stereo frame),
    /// and when its pose was sent (ms). Browser only.
    #[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
    pub shown: RwSignal<Option<ShownFrame>>,
}

/// The pose a drawn frame answers, as the page sent it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ShownFrame {
    pub eyes: Option<[parallax_core::reproject::XrEye; 2]>,
    pub sent_ms: f64,
    /// The frame carries its coverage below its colour (a see-through display's frame).
    pub coverage: bool,
}

/// The immersive sessions a headset can start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XrMode {
    /// `immersive-vr`: the model in the headset's own dark room.
    Vr,
    /// `immersive-ar`: the model in the real room, over passthrough or on a see-through display.
    Ar,
}

impl std::fmt::Display for XrMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            XrMode::Vr => "VR",
            XrMode::Ar => "AR",
        })
    }
}

/// What the page asks of its render connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Gesture {
    /// Turn the camera by (degrees around, degrees up).
    Orbit(f32, f32),
    /// Multiply the zoom.
    Zoom(f32),
    /// Pick at this fraction of the view's width and height.
    Tap(f32, f32),
}

impl HeadsetState {
    /// A headset in space `name`, before it joined.
    pub(crate) fn new(name: Signal<String>) -> Self {
        Self {
            space: SpaceState::new(name),
            session: RwSignal::new("Joining…".into()),
            lease_left: RwSignal::new(None),
            canvas: NodeRef::new(),
            frames: RwSignal::new(0),
            drawn: RwSignal::new(None),
            fps: RwSignal::new(0.0),
            codec: RwSignal::new(None),
            latency_ms: RwSignal::new(None),
            loaded: RwSignal::new(None),
            picked: RwSignal::new(None),
            blocked: RwSignal::new(None),
            xr_available: RwSignal::new(false),
            ar_available: RwSignal::new(false),
            see_through: RwSignal::new(false),
            xr: RwSignal::new(false),
            alignment: RwSignal::new(None),
            marks: RwSignal::new(None),
            align_problem: RwSignal::new(None),
            shown: RwSignal::new(None),
        }
    }
}
