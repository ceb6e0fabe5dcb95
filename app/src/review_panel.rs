//! The tablet's design-review panel: the shown model's part tree (searchable, each group
//! collapsible) with hide, isolate, tint, highlight and point at each part or group, "Show all",
//! a section plane and the exploded view. Every change writes the space's `review` property,
//! which every headset renders on its own session. A group's setting reaches every part in it.

use leptos::prelude::*;
#[cfg(feature = "hydrate")]
use leptos::task::spawn_local;
use parallax_core::api;
use parallax_core::review::{CutPlane, Pointer, Review, parent_path};
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

/// One part or group of the tree, as a row of the list.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    name: String,
    path: String,
    depth: usize,
    /// It has parts within it.
    group: bool,
    /// The centre of its bounds, in model space: where pointing at it points.
    centre: Option<[f32; 3]>,
}

/// What the panel knows of the shown model: its part tree, depth first, and its bounds in model
/// space.
#[derive(Debug, Clone, Default, PartialEq)]
struct Parts {
    rows: Vec<Row>,
    bounds: Option<([f32; 3], [f32; 3])>,
}

/// The rows of `nodes` (the endpoint's `parts`, or a part's `children`) and all within them.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn rows_of(nodes: &[api::Part], depth: usize, rows: &mut Vec<Row>) {
    for node in nodes {
        rows.push(Row {
            name: node.name.clone(),
            path: node.path.clone(),
            depth,
            group: !node.children.is_empty(),
            centre: node
                .bounds
                .map(|b| std::array::from_fn(|i| (b.min[i] + b.max[i]) / 2.0)),
        });
        // Importers keep trees at most 64 deep.
        rows_of(&node.children, depth + 1, rows);
    }
}

/// Whether the row at `path` shows: with a search, when it or a part within it matches; without,
/// when no group around it is collapsed.
fn shown(
    path: &str,
    rows: &[Row],
    needle: &str,
    collapsed: &std::collections::BTreeSet<String>,
) -> bool {
    if needle.is_empty() {
        let mut group = parent_path(path);
        while let Some(at) = group {
            if collapsed.contains(at) {
                return false;
            }
            group = parent_path(at);
        }
        return true;
    }
    let within = format!("{path}/");
    rows.iter()
        .filter(|row| row.path == path || row.path.starts_with(&within))
        .any(|row| row.name.to_lowercase().contains(needle))
}

#[component]
pub(crate) fn ReviewPanel(state: SpaceState) -> impl IntoView {
    let parts = RwSignal::new(Parts::default());
    let search = RwSignal::new(String::new());
    let collapsed = RwSignal::new(false);
    let closed_groups = RwSignal::new(std::collections::BTreeSet::<String>::new());
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let Some(model) = state.selected.get() else {
            parts.set(Parts::default());
            return;
        };
        spawn_local(async move {
            let path = format!("/v1/models/{model}/parts");
            let Ok(answer) = crate::rest::get_as::<api::Parts>(&path).await else {
                return;
            };
            let mut rows = Vec::new();
            rows_of(&answer.parts, 0, &mut rows);
            let bounds = answer.bounds.map(|b| (b.min, b.max));
            parts.set(Parts { rows, bounds });
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
                        .review
                        .get()
                        .pointer
                        .map(|pointer| {
                            let at = pointer.part.unwrap_or_else(|| "a point".into());
                            let by = pointer.by.unwrap_or_default();
                            view! {
                                <p class="pointing" role="status">
                                    {format!("{by} points at {at}")}
                                    <button
                                        type="button"
                                        on:click=move |_| update(state, |review| review.pointer = None)
                                    >
                                        "Stop pointing"
                                    </button>
                                </p>
                            }
                        })
                }}
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
                                        review.set_highlighted(&part, true);
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
                            let rows = parts.get().rows;
                            let closed = closed_groups.get();
                            rows.iter()
                                .filter(|row| shown(&row.path, &rows, &needle, &closed))
                                .map(|row| {
                                    let open = !closed.contains(&row.path);
                                    view! {
                                        <PartRow row=row.clone() open state all=parts closed=closed_groups />
                                    }
                                })
                                .collect_view()
                        }}
                    </ul>
                </Show>
            </section>
        </Show>
    }
}

#[component]
fn PartRow(
    row: Row,
    /// For a group: whether its parts are listed.
    open: bool,
    state: SpaceState,
    all: RwSignal<Parts>,
    closed: RwSignal<std::collections::BTreeSet<String>>,
) -> impl IntoView {
    let Row {
        name,
        path,
        depth,
        group,
        centre,
    } = row;
    let look = {
        let path = path.clone();
        Signal::derive(move || state.review.get().look_of(&path))
    };
    // Each button's change to the review, for this row's part.
    let set_hidden = {
        let path = path.clone();
        move |hidden: bool| {
            let path = path.clone();
            update(state, move |review| review.set_hidden(&path, hidden));
        }
    };
    let set_highlighted = {
        let path = path.clone();
        move |lit: bool| {
            let path = path.clone();
            update(state, move |review| review.set_highlighted(&path, lit));
        }
    };
    let toggle_tint = {
        let path = path.clone();
        move |_| {
            let path = path.clone();
            update(state, move |review| {
                let part = review.parts.entry(path).or_default();
                part.tint = if part.tint.is_some() {
                    None
                } else {
                    Some(TINT)
                };
                review.parts.retain(|_, part| *part != Default::default());
            });
        }
    };
    let isolate = {
        let path = path.clone();
        move |_| {
            let roots: Vec<String> = all
                .get_untracked()
                .rows
                .into_iter()
                .filter(|row| row.depth == 0)
                .map(|row| row.path)
                .collect();
            let path = path.clone();
            update(state, move |review| {
                review.isolate(&path, roots.iter().map(String::as_str));
            });
        }
    };
    let point = {
        let path = path.clone();
        move |_| {
            let Some(target) = centre else { return };
            let part = Some(path.clone());
            update(state, move |review| {
                review.pointer = Some(Pointer {
                    target,
                    origin: None,
                    part,
                    by: None,
                });
            });
        }
    };
    let toggle_open = {
        let path = path.clone();
        move |_| {
            closed.update(|closed| {
                if !closed.remove(&path) {
                    closed.insert(path.clone());
                }
            })
        }
    };
    let hidden = move || look.get().hidden;
    let tinted = move || look.get().tint.is_some();
    let lit = move || look.get().highlighted;
    let label = name.clone();
    view! {
        <li
            class="part"
            class:group=group
            style=format!("--depth: {depth}")
            data-part=path.clone()
            data-hidden=move || hidden().to_string()
        >
            {group
                .then(|| {
                    view! {
                        <button
                            type="button"
                            class="expander"
                            aria-label=format!("List the parts of {label}")
                            aria-expanded=open.to_string()
                            on:click=toggle_open
                        >
                            {if open { "▾" } else { "▸" }}
                        </button>
                    }
                })}
            <span class="part-name" title=path.clone()>{name.clone()}</span>
            <button
                type="button"
                aria-label=format!("Hide {name}")
                aria-pressed=move || hidden().to_string()
                on:click=move |_| set_hidden(!hidden())
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
                on:click=toggle_tint
            >
                "Tint"
            </button>
            <button
                type="button"
                aria-label=format!("Highlight {name}")
                aria-pressed=move || lit().to_string()
                on:click=move |_| set_highlighted(!lit())
            >
                "Highlight"
            </button>
            <button type="button" aria-label=format!("Point at {name}") on:click=point>
                "Point"
            </button>
        </li>
    }
}
