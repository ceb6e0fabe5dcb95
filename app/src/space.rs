//! `/spaces/:name`: a tablet inside a space. The catalog with "Show to everyone", the live roster
//! (who, which role, which status, who is the arbiter, each headset's render session and its
//! frame rate), the join code. Live over the space
//! WebSocket; it reconnects and resumes by itself and says so meanwhile.

use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_params_map;
use parallax_core::api::{MemberRender, Model, Models};
use parallax_core::device::Placement;
use parallax_core::space::{Member, MemberStatus, Role, SelectPolicy};
use serde_json::json;

use crate::console::{Failure, Topbar};
use crate::format::format_count;
use crate::rest;
use crate::review_panel::ReviewPanel;
use crate::space_state::{SpaceState, membership};

#[component]
pub fn SpacePage() -> impl IntoView {
    let params = use_params_map();
    let name = Signal::derive(move || params.read().get("name").unwrap_or_default());
    let state = SpaceState::new(name);
    let models: RwSignal<Vec<Model>> = RwSignal::new(Vec::new());
    // Each headset's render session (state, device, fps) by member id, polled: it is telemetry
    // from the hosts' heartbeats, not an event of the space.
    let render: RwSignal<Vec<MemberRender>> = RwSignal::new(Vec::new());
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let space = name.get();
        spawn_local(async move {
            let path = format!("/v1/spaces/{space}/render");
            loop {
                if let Ok(answer) = rest::get_as::<parallax_core::api::RenderRoster>(&path).await {
                    // Gone with the page: stop.
                    if render.try_set(answer.members).is_some() {
                        break;
                    }
                }
                gloo_timers::future::TimeoutFuture::new(RENDER_POLL_MS).await;
                if name.try_get_untracked().is_none_or(|now| now != space) {
                    break;
                }
            }
        });
    });
    // Where this page is served from, for the join link's QR code (known in the browser only).
    let origin = RwSignal::new(None::<String>);
    Effect::new(move |_| origin.set(window().location().origin().ok()));
    Effect::new(move |_| {
        let space = name.get();
        spawn_local(async move {
            match membership(state, &space, "tablet", "Browser tablet").await {
                Ok(_) => {
                    #[cfg(feature = "hydrate")]
                    spawn_local(crate::space_live::follow(state));
                }
                Err(e) => {
                    state.connection.set("Not connected".into());
                    state.problem.set(Some(e));
                }
            }
        });
        spawn_local(async move {
            match rest::get_as::<Models>("/v1/models").await {
                Ok(list) => models.set(list.models),
                Err(e) => state.problem.set(Some(e)),
            }
            #[cfg(feature = "hydrate")]
            follow_conversions(models).await;
        });
    });

    // Why this tablet cannot select, if it cannot: the policy says only the arbiter may.
    let blocked = move || {
        if state.select_policy.get() != SelectPolicy::ArbiterOnly {
            return None;
        }
        let (me, _) = state.member.get()?;
        let arbiter = state.arbiter.get();
        let members = state.members.get();
        (arbiter.as_deref() != Some(me.as_str())).then(|| {
            let who = members
                .iter()
                .find(|m| Some(&m.id) == arbiter.as_ref())
                .map_or_else(|| "another tablet".to_string(), |m| m.device.clone());
            format!("In this space only the arbiter ({who}) may choose what everyone sees.")
        })
    };

    view! {
        <Topbar />
        <main class="space">
            <header class="space-head">
                <div>
                    <h2>{move || name.get()}</h2>
                    <span
                        class="connection"
                        role="status"
                        data-connection=move || state.connection.get()
                    >
                        {move || state.connection.get()}
                    </span>
                </div>
                {move || {
                    state
                        .join_code
                        .get()
                        .map(|code| {
                            view! {
                                <div class="join">
                                    <span class="label">"Join code"</span>
                                    <span class="join-code" aria-label="Join code">{code.clone()}</span>
                                    <a href=format!("/join?code={code}")>"Join link for another device"</a>
                                    {move || {
                                        origin
                                            .get()
                                            .and_then(|origin| join_qr(&format!("{origin}/join?code={code}")))
                                            .map(|svg| {
                                                view! {
                                                    <div
                                                        class="qr"
                                                        role="img"
                                                        aria-label="QR code of the join link"
                                                        inner_html=svg
                                                    ></div>
                                                }
                                            })
                                    }}
                                </div>
                            }
                        })
                }}
            </header>
            {move || state.problem.get().map(|error| view! { <Failure error /> })}
            <div class="space-body">
                <section class="catalog" aria-label="Models">
                    <h3>"Models"</h3>
                    {move || blocked().map(|why| view! { <p class="notice" role="note">{why}</p> })}
                    <Upload models />
                    <PlacementControls state />
                    <ReviewPanel state />
                    <ul class="model-grid">
                        {move || {
                            models
                                .get()
                                .into_iter()
                                .map(|model| view! { <CatalogCard model state /> })
                                .collect_view()
                        }}
                    </ul>
                </section>
                <aside class="roster" aria-label="Members">
                    <h3>{move || format!("Members ({})", state.member_count.get())}</h3>
                    <ul>
                        {move || {
                            let arbiter = state.arbiter.get();
                            state
                                .members
                                .get()
                                .into_iter()
                                .map(|m| {
                                    let is_arbiter = arbiter.as_deref() == Some(m.id.as_str());
                                    let id = m.id.clone();
                                    let render = Signal::derive(move || {
                                        render.get().into_iter().find(|r| r.member == id)
                                    });
                                    view! { <RosterRow member=m is_arbiter render /> }
                                })
                                .collect_view()
                        }}
                    </ul>
                    <crate::room_map::RoomMap state />
                </aside>
            </div>
        </main>
    }
}

/// How often the catalog is asked again while one of its models is being converted.
#[cfg(feature = "hydrate")]
const CONVERSION_POLL_MS: u32 = 1_500;

/// Asks for the catalog again while any model in it is `Converting`, so a STEP upload's card
/// turns into its thumbnail (or says why it failed) when its conversion ends.
#[cfg(feature = "hydrate")]
async fn follow_conversions(models: RwSignal<Vec<Model>>) {
    loop {
        gloo_timers::future::TimeoutFuture::new(CONVERSION_POLL_MS).await;
        let Some(converting) =
            models.try_with_untracked(|list| list.iter().any(|m| m.status == "Converting"))
        else {
            // The page is gone.
            return;
        };
        if !converting {
            continue;
        }
        if let Ok(list) = rest::get_as::<Models>("/v1/models").await
            && models.try_set(list.models).is_some()
        {
            return;
        }
    }
}

#[component]
fn CatalogCard(model: Model, state: SpaceState) -> impl IntoView {
    let id = model.id.to_string();
    let name = model.name;
    let triangles = model.triangles;
    let size = model.size_bytes.map(format_bytes);
    let thumbnail = model.thumbnail_url;
    let status = model.status;
    let ready = status == "Ready";
    let failure = model.failure;
    let picture = match status.as_str() {
        "Ready" => view! {
            <img class="thumbnail" src=thumbnail alt=name.clone() loading="lazy" width="480" height="360" />
        }
        .into_any(),
        "Converting" => {
            // How far, once the converter has said; until then a bar that only says "busy".
            let done = model.progress.map(f64::from);
            let bar = match done {
                Some(done) => view! {
                    <progress aria-label=format!("Converting {name}") max="1" value=done></progress>
                }
                .into_any(),
                None => view! { <progress aria-label=format!("Converting {name}")></progress> }.into_any(),
            };
            let said = done.map_or_else(
                || "Converting…".to_string(),
                |done| format!("Converting… {:.0} %", done * 100.0),
            );
            view! {
                <div class="thumbnail pending" role="status">
                    {bar}
                    <span>{said}</span>
                </div>
            }
            .into_any()
        }
        _ => view! {
            <div class="thumbnail failed" role="alert">
                {format!("Could not be converted: {}", failure.unwrap_or_default())}
            </div>
        }
        .into_any(),
    };
    let card_id = id.clone();
    let is_showing = {
        let id = id.clone();
        move || state.selected.get().as_deref() == Some(id.as_str())
    };
    let showing = is_showing.clone();
    let show = move |_| state.write(json!({ "selectedModel": id }));
    view! {
        <li class="model-card" class:showing=showing data-model=card_id data-status=status>
            {picture}
            <h4>{name.clone()}</h4>
            <p class="meta">
                {ready.then(|| format!("{} triangles", format_count(triangles)))}
                {size.map(|size| if ready { format!(" · {size}") } else { size })}
            </p>
            <button
                type="button"
                on:click=show
                aria-label=format!("Show {name} to everyone")
                disabled=move || !ready || state.member.get().is_none()
            >
                {move || if is_showing() { "Showing to everyone" } else { "Show to everyone" }}
            </button>
        </li>
    }
}

#[component]
fn RosterRow(
    member: Member,
    is_arbiter: bool,
    render: Signal<Option<MemberRender>>,
) -> impl IntoView {
    let status = match member.status {
        MemberStatus::Reserved => "reserved",
        MemberStatus::Ready => "ready",
        MemberStatus::Active => "active",
        MemberStatus::Inactive => "inactive",
    };
    let role = match member.role {
        Role::Tablet => "tablet",
        Role::Headset => "headset",
    };
    view! {
        <li class="member" data-role=role data-status=status>
            <span class="device">{member.device}</span>
            <span class="role">{role}</span>
            {is_arbiter.then(|| view! { <span class="badge">"arbiter"</span> })}
            <span class=format!("status {status}")>{status}</span>
            {member
                .render_session
                .map(|session| {
                    view! {
                        <span class="session" title=format!("render session {session}")>
                            {move || render_summary(render.get().as_ref())}
                        </span>
                    }
                })}
        </li>
    }
}

/// `2_400_000` → `2.3 MB` (binary units, as file managers show them).
fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// How often the roster asks how the headsets' render sessions are doing.
#[cfg(feature = "hydrate")]
const RENDER_POLL_MS: u32 = 2_000;

/// "render session Ready · 30 fps · 6 ms a frame", "… · no device connected", "… Starting".
fn render_summary(render: Option<&MemberRender>) -> String {
    let Some(render) = render else {
        return "render session".into();
    };
    let status = &render.status;
    if status != "Ready" {
        return format!("render session {status}");
    }
    if !render.device {
        return "render session Ready · no device connected".into();
    }
    let fps = render.fps;
    if fps < 0.5 {
        // Frames answer poses: a headset that does not move gets none.
        return "render session Ready · connected, still".into();
    }
    match render.frame_ms {
        Some(ms) => format!("render session Ready · {fps:.0} fps · {ms:.0} ms a frame"),
        None => format!("render session Ready · {fps:.0} fps"),
    }
}

/// "Upload a model": files go to the catalog with a progress bar; a bad file says why.
#[component]
fn Upload(models: RwSignal<Vec<Model>>) -> impl IntoView {
    let progress = RwSignal::new(None::<f64>);
    let outcome = RwSignal::new(None::<Result<String, String>>);
    let chosen = move |ev: leptos::ev::Event| {
        #[cfg(feature = "hydrate")]
        {
            use leptos::wasm_bindgen::JsCast;
            let Some(input) = ev
                .target()
                .and_then(|t| t.dyn_into::<leptos::web_sys::HtmlInputElement>().ok())
            else {
                return;
            };
            outcome.set(None);
            let finished = move |result: Result<Model, String>| match result {
                Ok(model) => {
                    let name = model.name.clone();
                    let converting = model.status == "Converting";
                    models.update(|list| {
                        if !list.iter().any(|m| m.id == model.id) {
                            list.push(model);
                        }
                    });
                    // The catalog is asked again until its conversion ends (`follow_conversions`).
                    let done = if converting {
                        format!("{name} is being converted; it can be shown once it is ready.")
                    } else {
                        format!("{name} is in the catalog.")
                    };
                    outcome.set(Some(Ok(done)));
                }
                Err(message) => outcome.set(Some(Err(message))),
            };
            if let Err(e) = crate::upload::send(&input, progress, finished) {
                outcome.set(Some(Err(e)));
            }
            input.set_value("");
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (ev, models);
    };
    view! {
        <div class="upload">
            <label class="upload-button">
                "Upload a model (STEP, glTF, GLB, STL, OBJ)"
                <input
                    type="file"
                    multiple
                    accept=".step,.stp,.gltf,.glb,.bin,.stl,.obj,.png,.jpg,.jpeg,.json"
                    on:change=chosen
                />
            </label>
            {move || {
                progress
                    .get()
                    .map(|p| {
                        view! {
                            <progress max="1" value=p aria-label="Upload progress"></progress>
                        }
                    })
            }}
            {move || match outcome.get() {
                Some(Ok(done)) => Some(view! { <p class="done" role="status">{done}</p> }.into_any()),
                Some(Err(why)) => {
                    Some(view! { <p class="error" role="alert">{format!("Upload failed: {why}")}</p> }.into_any())
                }
                None => None,
            }}
        </div>
    }
}

/// The join link as an SVG QR code another device's camera can open.
fn join_qr(link: &str) -> Option<String> {
    let code = qrcode::QrCode::new(link.as_bytes()).ok()?;
    Some(
        code.render::<qrcode::render::svg::Color>()
            .min_dimensions(132, 132)
            .dark_color(qrcode::render::svg::Color("#0b0f16"))
            .light_color(qrcode::render::svg::Color("#ffffff"))
            .build(),
    )
}

/// The model's turn about the vertical axis, in degrees, from its rotation.
fn yaw_degrees(placement: &Placement) -> f32 {
    let [_, y, _, w] = placement.rotation;
    (2.0 * y.atan2(w)).to_degrees()
}

/// A placement turned by `yaw` degrees about the vertical axis and scaled by `scale`.
fn placed(yaw: f32, scale: f32) -> Placement {
    let half = yaw.to_radians() / 2.0;
    Placement {
        rotation: [0.0, half.sin(), 0.0, half.cos()],
        scale,
        ..Placement::default()
    }
}

/// Rotate, scale, reset: where every headset places the shown model.
#[component]
fn PlacementControls(state: SpaceState) -> impl IntoView {
    let place = move |change: fn(f32, f32) -> (f32, f32)| {
        let now = state.transform.get_untracked();
        let (yaw, scale) = change(yaw_degrees(&now), now.scale);
        state.write(json!({ "transform": placed(yaw, scale.clamp(0.1, 10.0)) }));
    };
    view! {
        <div class="placement" role="group" aria-label="Placement">
            <span class="label">"Placement"</span>
            <button type="button" aria-label="Turn left" on:click=move |_| place(|y, s| (y + 15.0, s))>"⟲ 15°"</button>
            <button type="button" aria-label="Turn right" on:click=move |_| place(|y, s| (y - 15.0, s))>"⟳ 15°"</button>
            <button type="button" aria-label="Larger" on:click=move |_| place(|y, s| (y, s * 1.25))>"+"</button>
            <button type="button" aria-label="Smaller" on:click=move |_| place(|y, s| (y, s / 1.25))>"−"</button>
            <button type="button" aria-label="Reset placement" on:click=move |_| place(|_, _| (0.0, 1.0))>"Reset"</button>
            <span class="meta" data-yaw=move || format!("{:.0}", yaw_degrees(&state.transform.get()))>
                {move || {
                    let t = state.transform.get();
                    format!("{:.0}°, ×{:.2}", yaw_degrees(&t), t.scale)
                }}
            </span>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_sizes_read_as_a_person_would() {
        assert_eq!(format_bytes(684), "684 bytes");
        assert_eq!(format_bytes(48_484), "47.3 KB");
        assert_eq!(format_bytes(2_400_000), "2.3 MB");
    }

    #[test]
    fn a_turn_and_a_scale_round_trip_through_the_placement() {
        let p = placed(45.0, 2.0);
        assert!((yaw_degrees(&p) - 45.0).abs() < 1e-3);
        assert_eq!(p.scale, 2.0);
        assert!((yaw_degrees(&placed(-90.0, 1.0)) + 90.0).abs() < 1e-3);
        assert_eq!(yaw_degrees(&Placement::default()), 0.0);
    }
}
