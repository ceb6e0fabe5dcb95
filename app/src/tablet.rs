//! `/`: the tablet console. Lists the catalog; "Show" puts a model on every headset.

use leptos::prelude::*;
use parallax_core::{ModelId, ModelSummary};

use crate::api::{ShowModel, list_catalog};

#[component]
pub fn TabletPage() -> impl IntoView {
    let show = ServerAction::<ShowModel>::new();
    // Refetch after every selection so the "showing" badge follows.
    let catalog = Resource::new(move || show.version().get(), |_| list_catalog());

    view! {
        <header class="topbar">
            <div class="brand">
                <span class="logo" aria-hidden="true">"◆"</span>
                <h1>"Parallax"</h1>
            </div>
            <nav>
                <a href="/headset" target="_blank">"Open a headset view"</a>
            </nav>
        </header>
        <main class="tablet">
            <h2>"Models"</h2>
            <p class="hint">"Pick a model: every headset in the space shows it."</p>
            {move || {
                show.value()
                    .get()
                    .and_then(Result::err)
                    .map(|e| view! { <p class="error" role="alert">{e.to_string()}</p> })
            }}
            <Suspense fallback=|| view! { <p class="empty">"Loading the catalog…"</p> }>
                {move || Suspend::new(async move {
                    match catalog.await {
                        Ok(catalog) => {
                            let showing = catalog.showing.clone();
                            view! {
                                <ul class="model-grid">
                                    {catalog
                                        .models
                                        .into_iter()
                                        .map(|model| {
                                            let is_showing = showing.as_ref() == Some(&model.id);
                                            view! { <ModelCard model is_showing show /> }
                                        })
                                        .collect_view()}
                                </ul>
                            }
                                .into_any()
                        }
                        Err(e) => {
                            view! {
                                <p class="error" role="alert">
                                    "The catalog could not be loaded: " {e.to_string()}
                                </p>
                            }
                                .into_any()
                        }
                    }
                })}
            </Suspense>
        </main>
    }
}

#[component]
fn ModelCard(
    model: ModelSummary,
    is_showing: bool,
    show: ServerAction<ShowModel>,
) -> impl IntoView {
    let ModelSummary {
        id,
        name,
        triangles,
    } = model;
    let ModelId(id) = id;
    let card_id = id.clone();
    let thumbnail = format!("/v1/models/{id}/thumbnail.png");
    view! {
        <li class="model-card" class:showing=is_showing data-model=card_id>
            <img class="thumbnail" src=thumbnail alt=name.clone() loading="lazy" width="480" height="360" />
            <h3>{name}</h3>
            <p class="meta">{crate::format_count(triangles)} " triangles"</p>
            // A form, so "Show" works even before the page has hydrated.
            <ActionForm action=show>
                <input type="hidden" name="model_id" value=id />
                <button type="submit" disabled=move || show.pending().get()>
                    {if is_showing { "Showing" } else { "Show" }}
                </button>
            </ActionForm>
        </li>
    }
}

#[cfg(test)]
mod tests {
    use crate::format_count;

    #[test]
    fn counts_get_thousands_separators() {
        assert_eq!(format_count(7), "7");
        assert_eq!(format_count(1068), "1,068");
        assert_eq!(format_count(20_000_000), "20,000,000");
    }
}
