//! `/spaces/:name/headset`: a browser headset in a space. It joins as a headset, gets its own
//! render session, holds the render connection and shows the frames streamed to it; it loads
//! whatever the space selects. Drag to orbit, wheel or pinch to zoom (poses), tap to pick a part.
//! Overlay: session state, lease time left, fps, pose-to-frame latency. Where WebXR is available,
//! "Enter VR" hands the camera to the headset's own viewer pose (`xr`).

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::headset_state::{Gesture, HeadsetState, XrMode};

#[component]
pub fn SpaceHeadsetPage() -> impl IntoView {
    let params = use_params_map();
    let name = Signal::derive(move || params.read().get("name").unwrap_or_default());
    let state = HeadsetState::new(name);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        leptos::task::spawn_local(async move {
            state
                .xr_available
                .set(crate::xr::supported(XrMode::Vr).await);
            state
                .ar_available
                .set(crate::xr::supported(XrMode::Ar).await);
        });
    });
    // This device's alignment to the space's room, kept from an earlier visit.
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| state.alignment.set(crate::xr::saved_alignment(&name.get())));
    // Aligning: the next two selects in VR touch the room's marks.
    let align = move |_| {
        state.align_problem.set(None);
        state.marks.set(Some(Vec::new()));
    };
    let enter = move |mode: XrMode| {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            if let Err(e) = crate::xr::enter(state, mode).await {
                state.session.set(format!("Could not enter {mode}: {e}"));
            }
        });
        #[cfg(not(feature = "hydrate"))]
        let _ = (state, mode);
    };
    #[cfg(feature = "hydrate")]
    crate::render_live::start(state);

    // Pointer gestures: a drag orbits, a short press without moving picks, two fingers pinch to
    // zoom.
    let pressed = StoredValue::new(None::<(f64, f64, bool)>);
    let fingers = StoredValue::new(Vec::<(i32, f64, f64)>::new());
    let gesture = move |g: Gesture| {
        #[cfg(feature = "hydrate")]
        crate::render_live::gesture(g);
        #[cfg(not(feature = "hydrate"))]
        let _ = g;
    };
    let spread = move || {
        fingers.with_value(|f| match f.as_slice() {
            [a, b, ..] => Some((a.1 - b.1).hypot(a.2 - b.2)),
            _ => None,
        })
    };
    let on_down = move |ev: leptos::ev::PointerEvent| {
        let (x, y) = crate::pointer::client_point(&ev);
        fingers.update_value(|f| {
            f.retain(|(id, ..)| *id != ev.pointer_id());
            f.push((ev.pointer_id(), x, y));
        });
        // A second finger makes it a pinch: no orbit, no tap.
        let single = fingers.with_value(Vec::len) == 1;
        pressed.set_value(single.then_some((x, y, false)));
    };
    let on_move = move |ev: leptos::ev::PointerEvent| {
        let (nx, ny) = crate::pointer::client_point(&ev);
        let before = spread();
        fingers.update_value(|f| {
            if let Some(finger) = f.iter_mut().find(|(id, ..)| *id == ev.pointer_id()) {
                (finger.1, finger.2) = (nx, ny);
            }
        });
        if let (Some(before), Some(after)) = (before, spread()) {
            if before > 0.0 && (after / before - 1.0).abs() > 0.01 {
                gesture(Gesture::Zoom((after / before) as f32));
            }
            return;
        }
        let Some((x, y, _)) = pressed.get_value() else {
            return;
        };
        if (nx - x).abs() + (ny - y).abs() >= 2.0 {
            gesture(Gesture::Orbit(
                ((x - nx) * 0.4) as f32,
                ((ny - y) * 0.4) as f32,
            ));
            pressed.set_value(Some((nx, ny, true)));
        }
    };
    let lift = move |ev: &leptos::ev::PointerEvent| {
        fingers.update_value(|f| f.retain(|(id, ..)| *id != ev.pointer_id()));
    };
    let on_up = move |ev: leptos::ev::PointerEvent| {
        lift(&ev);
        let Some((_, _, dragged)) = pressed.get_value() else {
            return;
        };
        pressed.set_value(None);
        if dragged {
            return;
        }
        if let Some((fx, fy)) = tap_fraction(&ev) {
            gesture(Gesture::Tap(fx, fy));
        }
    };
    let on_cancel = move |ev: leptos::ev::PointerEvent| {
        lift(&ev);
        pressed.set_value(None);
    };
    // A new size (a phone turned, a window resized): ask for frames that fit it.
    let resized = window_event_listener(leptos::ev::resize, move |_| {
        gesture(Gesture::Orbit(0.0, 0.0));
    });
    on_cleanup(move || resized.remove());
    let on_wheel = move |ev: leptos::ev::WheelEvent| {
        ev.prevent_default();
        gesture(Gesture::Zoom(if ev.delta_y() > 0.0 {
            0.9
        } else {
            1.0 / 0.9
        }));
    };

    view! {
        <main class="headset">
            <crate::console::SecureContextNotice />
            {move || {
                state
                    .blocked
                    .get()
                    .map(|message| view! { <p class="blocked" role="alert">{message}</p> })
            }}
            <div class="viewport">
                <canvas
                    class="frame"
                    node_ref=state.canvas
                    role="img"
                    aria-label=move || state.loaded.get().unwrap_or_else(|| "Waiting for a tablet to pick a model".into())
                    width="0"
                    height="0"
                    data-frame=move || state.frames.get().to_string()
                    data-model=move || state.drawn.get().unwrap_or_default()
                    data-codec=move || state.codec.get().map(|c| c.name())
                    class:empty=move || state.frames.get() == 0
                    on:pointerdown=on_down
                    on:pointermove=on_move
                    on:pointerup=on_up
                    on:pointercancel=on_cancel
                    on:wheel=on_wheel
                />
            </div>
            <footer class="hud">
                <span class="status" data-status=move || state.session.get()>
                    {move || state.session.get()}
                </span>
                <span class="model">
                    {move || state.loaded.get().unwrap_or_else(|| "Waiting for a tablet to pick a model".into())}
                </span>
                {move || state.picked.get().map(|part| view! { <span class="picked">{format!("Picked: {part}")}</span> })}
                <span class="codec" data-codec=move || state.codec.get().map(|c| c.name())>
                    {move || state.codec.get().map(|c| c.to_string()).unwrap_or_default()}
                </span>
                <span class="fps">{move || format!("{:.0} fps", state.fps.get())}</span>
                <span class="latency">
                    {move || state.latency_ms.get().map_or_else(|| "– ms".to_string(), |ms| format!("{ms:.0} ms"))}
                </span>
                <span class="lease">
                    {move || state.lease_left.get().map(|m| format!("{m} min left")).unwrap_or_default()}
                </span>
                <span class="connection" data-connection=move || state.space.connection.get()>
                    {move || state.space.connection.get()}
                </span>
                {move || {
                    (state.xr_available.get() && !state.xr.get())
                        .then(|| view! { <button type="button" class="enter-vr" on:click=move |_| enter(XrMode::Vr)>"Enter VR"</button> })
                }}
                {move || {
                    (state.ar_available.get() && !state.xr.get())
                        .then(|| view! { <button type="button" class="enter-ar" on:click=move |_| enter(XrMode::Ar)>"Enter AR"</button> })
                }}
                {move || {
                    state.xr.get().then(|| {
                        let text = if state.see_through.get() {
                            "In AR: the model stands in the room, your head moves the camera"
                        } else {
                            "In VR: your head moves the camera"
                        };
                        view! { <span class="xr" role="status">{text}</span> }
                    })
                }}
                {move || {
                    state.xr_available.get().then(|| {
                        let aligned = state.alignment.get();
                        let label = if aligned.is_some() { "Re-align to the room" } else { "Align to the room" };
                        view! {
                            <span class="room" role="status" data-aligned=aligned.is_some().to_string()>
                                {alignment_status(state)}
                            </span>
                            <button type="button" class="align" on:click=align>{label}</button>
                        }
                    })
                }}
                {move || {
                    // The others in the shared room, by name; where their heads are (room
                    // coordinates, for tools and tests) in `data-heads`.
                    let me = state.space.member.get().map(|(id, _)| id);
                    let others: Vec<_> = state
                        .space
                        .presence
                        .get()
                        .into_values()
                        .filter(|p| Some(&p.member) != me.as_ref())
                        .collect();
                    (!others.is_empty()).then(|| {
                        let names: Vec<&str> = others.iter().map(|p| p.device.as_str()).collect();
                        let heads = serde_json::to_string(
                            &others.iter().map(|p| (&p.device, p.presence.head)).collect::<Vec<_>>(),
                        )
                        .unwrap_or_default();
                        view! {
                            <span class="present" data-heads=heads>
                                {format!("In the room: {}", names.join(", "))}
                            </span>
                        }
                    })
                }}
            </footer>
        </main>
    }
}

/// What the room line says: the marks to touch while aligning, why the last try failed, or
/// where the model stands.
fn alignment_status(state: HeadsetState) -> String {
    let problem = state.align_problem.get();
    match (state.marks.get(), state.alignment.get()) {
        (Some(marks), _) => {
            let next = if marks.is_empty() { "first" } else { "second" };
            let why = problem.map(|p| format!("{p}. ")).unwrap_or_default();
            format!("{why}Aligning: touch the {next} mark and pull the trigger (or pinch)")
        }
        (None, Some(room)) => format!("Aligned to the room: marks {:.2} m apart", room.separation),
        (None, None) => "Not aligned: the model stands in front of you".into(),
    }
}

/// Where a tap landed, as fractions of the frame's width and height.
#[cfg(feature = "hydrate")]
fn tap_fraction(ev: &leptos::ev::PointerEvent) -> Option<(f32, f32)> {
    use leptos::wasm_bindgen::JsCast;
    let target = ev.target()?.dyn_into::<leptos::web_sys::Element>().ok()?;
    let rect = target.get_bounding_client_rect();
    (rect.width() > 0.0 && rect.height() > 0.0).then(|| {
        let (x, y) = crate::pointer::client_point(ev);
        let (fx, fy) = (
            (x - rect.left()) / rect.width(),
            (y - rect.top()) / rect.height(),
        );
        (fx as f32, fy as f32)
    })
}

#[cfg(not(feature = "hydrate"))]
fn tap_fraction(_: &leptos::ev::PointerEvent) -> Option<(f32, f32)> {
    None
}
