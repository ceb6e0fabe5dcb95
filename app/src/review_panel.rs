//! The tablet's design-review panel: the shown model's parts (searchable, collapsible) with hide,
//! isolate, tint and highlight each, "Show all", a section plane and the exploded view. Every
//! change writes the space's `review` property, which every headset renders on its own session.

use leptos::prelude::*;
#[cfg(feature = "hydrate")]
use leptos::task::spawn_local;
use parallax_core::review::{CutPlane, PartOverride, Review};
use serde_json::json;

use crate::space_state::SpaceState;

/// The tint a tablet gives a part: a red that no sample uses.
const TINT: [f32; 3] = [0.85, 0.05, 0.05];

/// Reads the review the space shows, changes it with `change`, and writes it back.
fn update(state: SpaceState, change: impl FnOnce(&mut Review)) {
    let mut review = state.review.get_untracked();
    change(&mut review);
    state.write(json!({ "review": review }));
}

/// What the panel knows of the shown model: its parts' names and its bounds in model space.
#[derive(Debug, Clone, Default, PartialEq)]
struct Parts {
    names: Vec<String>,
    bounds: Option<([f32; 3], [f32; 3])>,
}

#[component]
pub(crate) fn ReviewPanel(state: SpaceState) -> impl IntoView {
    let parts = RwSignal::new(Parts::default());
    let search = RwSignal::new(String::new());
    let collapsed = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let Some(model) = state.selected.get() else {
            parts.set(Parts::default());
            return;
        };
        spawn_local(async move {
            let Ok(answer) = crate::rest::get(&format!("/v1/models/{model}/parts")).await else {
                return;
            };
            let names = answer["parts"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["name"].as_str().map(str::to_string))
                .collect();
            let corner = |name: &str| serde_json::from_value(answer["bounds"][name].clone()).ok();
            let bounds = corner("min").zip(corner("max"));
            parts.set(Parts { names, bounds });
        });
    });
    // The section plane: across X, at this fraction of the model's width.
    let section_at = RwSignal::new(0.5_f32);
    let section = move |on: bool, at: f32| {
        let Some((min, max)) = parts.get_untracked().bounds else {
            return;
        };
        update(state, |review| {
            review.cut_planes.clear();
            if on {
                let mut point: [f32; 3] = std::array::from_fn(|i| (min[i] + max[i]) / 2.0);
                point[0] = min[0] + (max[0] - min[0]) * at;
                review.cut_planes.push(CutPlane {
                    point,
                    normal: [1.0, 0.0, 0.0],
                });
            }
        });
    };
    let cutting = move || !state.review.get().cut_planes.is_empty();
    view! {
        <Show when=move || state.selected.get().is_some()>
            <section class="review" aria-label="Design review">
                <div class="review-head">
                    <h4>"Design review"</h4>
                    <button type="button" on:click=move |_| collapsed.update(|c| *c = !*c)>
                        {move || if collapsed.get() { "Show parts" } else { "Hide parts" }}
                    </button>
                    <button
                        type="button"
                        on:click=move |_| update(state, |review| review.parts.clear())
                    >
                        "Show all"
                    </button>
                </div>
                <div class="review-controls">
                    <label class="inline">
                        <input
                            type="checkbox"
                            prop:checked=cutting
                            on:change=move |ev| section(event_target_checked(&ev), section_at.get_untracked())
                        />
                        " Section"
                    </label>
                    <input
                        type="range"
                        aria-label="Section position"
                        min="0"
                        max="1"
                        step="0.05"
                        prop:value=move || section_at.get().to_string()
                        on:change=move |ev| {
                            let at = event_target_value(&ev).parse().unwrap_or(0.5);
                            section_at.set(at);
                            if cutting() {
                                section(true, at);
                            }
                        }
                    />
                    <label class="inline">
                        "Explode "
                        <input
                            type="range"
                            aria-label="Explode"
                            min="0"
                            max="1"
                            step="0.1"
                            prop:value=move || state.review.get().explode.to_string()
                            on:change=move |ev| {
                                let explode: f32 = event_target_value(&ev).parse().unwrap_or(0.0);
                                update(state, |review| review.explode = explode.clamp(0.0, 1.0));
                            }
                        />
                    </label>
                </div>
                {move || {
                    state
                        .pick
                        .get()
                        .and_then(|pick| pick.part.map(|part| (pick.by, part)))
                        .map(|(by, part)| {
                            let highlight = {
                                let part = part.clone();
                                move |_| {
                                    let part = part.clone();
                                    update(state, move |review| {
                                        review.parts.entry(part).or_default().highlighted = true;
                                    });
                                }
                            };
                            view! {
                                <p class="picked" role="status">
                                    {format!("{by} picked {part}")}
                                    <button type="button" on:click=highlight>
                                        "Highlight for everyone"
                                    </button>
                                </p>
                            }
                        })
                }}
                <Show when=move || !collapsed.get()>
                    <input
                        type="search"
                        aria-label="Find a part"
                        placeholder="Find a part"
                        prop:value=move || search.get()
                        on:input=move |ev| search.set(event_target_value(&ev))
                    />
                    <ul class="parts">
                        {move || {
                            let needle = search.get().to_lowercase();
                            parts
                                .get()
                                .names
                                .into_iter()
                                .filter(|name| name.to_lowercase().contains(&needle))
                                .map(|name| view! { <PartRow name state all=parts /> })
                                .collect_view()
                        }}
                    </ul>
                </Show>
            </section>
        </Show>
    }
}

#[component]
fn PartRow(name: String, state: SpaceState, all: RwSignal<Parts>) -> impl IntoView {
    let look = {
        let name = name.clone();
        Signal::derive(move || {
            state
                .review
                .get()
                .parts
                .get(&name)
                .copied()
                .unwrap_or_default()
        })
    };
    let toggle = {
        let name = name.clone();
        move |change: fn(&mut PartOverride)| {
            let name = name.clone();
            update(state, move |review| {
                let part = review.parts.entry(name.clone()).or_default();
                change(part);
                if *part == PartOverride::default() {
                    review.parts.remove(&name);
                }
            });
        }
    };
    let isolate = {
        let name = name.clone();
        move |_| {
            let others = all.get_untracked().names;
            let name = name.clone();
            update(state, move |review| {
                for other in others {
                    let part = review.parts.entry(other.clone()).or_default();
                    part.hidden = other != name;
                }
            });
        }
    };
    let (hide, tint, highlight) = (toggle.clone(), toggle.clone(), toggle);
    let hidden = move || look.get().hidden;
    let tinted = move || look.get().tint.is_some();
    let lit = move || look.get().highlighted;
    view! {
        <li class="part" data-part=name.clone() data-hidden=move || hidden().to_string()>
            <span class="part-name">{name.clone()}</span>
            <button
                type="button"
                aria-label=format!("Hide {name}")
                aria-pressed=move || hidden().to_string()
                on:click=move |_| hide(|p| p.hidden = !p.hidden)
            >
                {move || if hidden() { "Show" } else { "Hide" }}
            </button>
            <button type="button" aria-label=format!("Isolate {name}") on:click=isolate>
                "Isolate"
            </button>
            <button
                type="button"
                aria-label=format!("Tint {name}")
                aria-pressed=move || tinted().to_string()
                on:click=move |_| tint(|p| p.tint = if p.tint.is_some() { None } else { Some(TINT) })
            >
                "Tint"
            </button>
            <button
                type="button"
                aria-label=format!("Highlight {name}")
                aria-pressed=move || lit().to_string()
                on:click=move |_| highlight(|p| p.highlighted = !p.highlighted)
            >
                "Highlight"
            </button>
        </li>
    }
}
