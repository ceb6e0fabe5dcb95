//! The tablet's room map: the shared room seen from above (the marks' midpoint at the centre,
//! the first mark to the left of the second), where the model stands (its footprint and which
//! way it is turned) and each aligned headset's wearer (where they stand and look). Drag the
//! model, or use the buttons, to move it for every aligned headset. Where the wearers are comes
//! only while they are shown on a visible page (`space_live::show_map`); in a large space, only
//! once asked for.

use leptos::prelude::*;
use parallax_core::room::{RoomPlacement, SIZE_RANGE};
use serde_json::json;

use crate::space_state::SpaceState;

/// Half the side of the square the map shows (m).
const HALF_SIDE: f32 = 3.0;

/// How far one press of an arrow moves the model (m), and turns it (°).
const NUDGE: f32 = 0.1;
const TURN: f32 = 15.0;

/// `placement` written as the space's `room`.
fn write(state: SpaceState, placement: RoomPlacement) {
    state.write(json!({ "room": placement }));
}

#[component]
pub(crate) fn RoomMap(state: SpaceState) -> impl IntoView {
    // Where the wearers are: shown unless the space is large (a thousand tablets need not all
    // follow them), or as the checkbox says.
    let wanted = RwSignal::new(None::<bool>);
    let wearers_shown = move || wanted.get().unwrap_or(!state.large.get());
    // The space sends them only while they are shown on a visible page.
    #[cfg(feature = "hydrate")]
    {
        let visible = RwSignal::new(!document().hidden());
        let listener = window_event_listener(leptos::ev::visibilitychange, move |_| {
            visible.set(!document().hidden());
        });
        Effect::new(move |_| {
            let on = wearers_shown() && visible.get();
            // The space's first answer is the whole room: what was here before is superseded.
            state.presence.set(Default::default());
            crate::space_live::show_map(on);
        });
        on_cleanup(move || {
            listener.remove();
            crate::space_live::show_map(false);
        });
    }
    // While the model is dragged: where it would go (room x, z).
    let dragged = RwSignal::new(None::<(f32, f32)>);
    let moved = move |change: fn(&mut RoomPlacement)| {
        let mut placement = state.room.get_untracked();
        change(&mut placement);
        write(state, placement);
    };
    let at = on_map;
    let on_down = move |ev: leptos::ev::PointerEvent| {
        let Some((x, z)) = at(&ev) else { return };
        let placement = state.room.get_untracked();
        let [px, _, pz] = placement.position;
        // On the model's footprint (or near a small one): it follows the pointer.
        if (x - px).hypot(z - pz) <= (placement.size / 2.0).max(0.2) {
            dragged.set(Some((x, z)));
        }
    };
    let on_move = move |ev: leptos::ev::PointerEvent| {
        if dragged.get_untracked().is_some()
            && let Some(point) = at(&ev)
        {
            dragged.set(Some(point));
        }
    };
    let on_up = move |_| {
        if let Some((x, z)) = dragged.get_untracked() {
            dragged.set(None);
            let mut placement = state.room.get_untracked();
            placement.position = [x, placement.position[1], z];
            write(state, placement);
        }
    };
    let footprint = move || {
        let placement = state.room.get();
        let [x, _, z] = placement.position;
        let (x, z) = dragged.get().unwrap_or((x, z));
        let r = placement.size / 2.0;
        // The model's +X as turned (counter-clockwise seen from above: towards −Z).
        let yaw = placement.yaw_degrees.to_radians();
        let (dx, dz) = (yaw.cos() * r, -yaw.sin() * r);
        view! {
            <g class="model" data-x=format!("{x:.2}") data-z=format!("{z:.2}")>
                <circle cx=x cy=z r=r />
                <line x1=x y1=z x2=x + dx y2=z + dz />
            </g>
        }
    };
    let wearers = move || {
        // None while hidden, whatever was still on its way when they were.
        let shown = wearers_shown();
        state
            .presence
            .get()
            .into_values()
            .filter(move |_| shown)
            .map(|p| {
                let [x, _, z] = p.presence.head;
                let [fx, fz] = p.presence.facing();
                view! {
                    <g class="wearer" data-device=p.device.clone()>
                        <circle cx=x cy=z r=0.12 />
                        <line x1=x y1=z x2=x + fx * 0.4 y2=z + fz * 0.4 />
                        <text x=x + 0.18 y=z - 0.18>{p.device.clone()}</text>
                    </g>
                }
            })
            .collect_view()
    };
    let view_box = format!(
        "{} {} {} {}",
        -HALF_SIDE,
        -HALF_SIDE,
        2.0 * HALF_SIDE,
        2.0 * HALF_SIDE
    );
    view! {
        <section class="room-map" aria-label="Room">
            <h3>"Room"</h3>
            <label class="wearers-toggle">
                <input
                    type="checkbox"
                    prop:checked=wearers_shown
                    on:change=move |ev| wanted.set(Some(event_target_checked(&ev)))
                />
                " Show who is where"
            </label>
            <svg
                viewBox=view_box
                role="img"
                aria-label="The room from above: the model and who is where"
                on:pointerdown=on_down
                on:pointermove=on_move
                on:pointerup=on_up
                on:pointerleave=on_up
            >
                <line class="axis" x1=-0.4 y1=0 x2=0.4 y2=0 />
                <circle class="mark" cx=-0.4 cy=0 r=0.04 />
                <circle class="mark second" cx=0.4 cy=0 r=0.04 />
                {footprint}
                {wearers}
            </svg>
            <div class="room-controls" role="group" aria-label="Move the model in the room">
                <button type="button" aria-label="Move left" on:click=move |_| moved(|p| p.position[0] -= NUDGE)>"←"</button>
                <button type="button" aria-label="Move right" on:click=move |_| moved(|p| p.position[0] += NUDGE)>"→"</button>
                <button type="button" aria-label="Move away" on:click=move |_| moved(|p| p.position[2] -= NUDGE)>"↑"</button>
                <button type="button" aria-label="Move closer" on:click=move |_| moved(|p| p.position[2] += NUDGE)>"↓"</button>
                <button type="button" aria-label="Turn the model left" on:click=move |_| moved(|p| p.yaw_degrees += TURN)>"⟲"</button>
                <button type="button" aria-label="Turn the model right" on:click=move |_| moved(|p| p.yaw_degrees -= TURN)>"⟳"</button>
                <button type="button" aria-label="Show it larger" on:click=move |_| moved(|p| p.size = (p.size * 1.25).min(*SIZE_RANGE.end()))>"+"</button>
                <button type="button" aria-label="Show it smaller" on:click=move |_| moved(|p| p.size = (p.size / 1.25).max(*SIZE_RANGE.start()))>"−"</button>
                <span class="meta">
                    {move || {
                        let p = state.room.get();
                        let [x, y, z] = p.position;
                        format!("({x:.1}, {y:.1}, {z:.1}) m, {:.0}°, {:.2} m across", p.yaw_degrees, p.size)
                    }}
                </span>
            </div>
            <p class="hint">"The dots are the two marks each headset touched, the first on the left."</p>
        </section>
    }
}

/// Where on the map (room x, z) a pointer event on it is.
#[cfg(feature = "hydrate")]
fn on_map(ev: &leptos::ev::PointerEvent) -> Option<(f32, f32)> {
    use leptos::wasm_bindgen::JsCast;
    let map = ev
        .current_target()?
        .dyn_into::<leptos::web_sys::Element>()
        .ok()?;
    let rect = map.get_bounding_client_rect();
    (rect.width() > 0.0 && rect.height() > 0.0).then(|| {
        let (x, y) = crate::pointer::client_point(ev);
        let (fx, fy) = (
            (x - rect.left()) / rect.width(),
            (y - rect.top()) / rect.height(),
        );
        let side = 2.0 * HALF_SIDE;
        (fx as f32 * side - HALF_SIDE, fy as f32 * side - HALF_SIDE)
    })
}

#[cfg(not(feature = "hydrate"))]
fn on_map(_: &leptos::ev::PointerEvent) -> Option<(f32, f32)> {
    None
}
