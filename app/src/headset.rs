//! `/headset`: a browser headset. It holds a WebSocket to the coordinator and shows the frames
//! rendered for it; whatever the tablet selects appears here.

use leptos::prelude::*;
use parallax_core::ModelSummary;

/// What the page shows; the live client (browser only) writes it.
#[derive(Clone, Copy)]
pub(crate) struct HeadsetView {
    pub status: RwSignal<String>,
    pub model: RwSignal<Option<ModelSummary>>,
    /// Object URL of the newest JPEG frame.
    pub frame_url: RwSignal<Option<String>>,
    pub frames: RwSignal<u64>,
    /// Change number of the selection the shown frame belongs to.
    pub change: RwSignal<u64>,
}

#[component]
pub fn HeadsetPage() -> impl IntoView {
    let view = HeadsetView {
        status: RwSignal::new("Connecting…".to_string()),
        model: RwSignal::new(None),
        frame_url: RwSignal::new(None),
        frames: RwSignal::new(0),
        change: RwSignal::new(0),
    };
    #[cfg(feature = "hydrate")]
    crate::live::start(view);

    let model_name = move || {
        view.model
            .get()
            .map(|m| m.name)
            .unwrap_or_else(|| "Waiting for a tablet to pick a model".to_string())
    };
    let model_id = move || view.model.get().map(|m| m.id.0).unwrap_or_default();

    view! {
        <main class="headset">
            <div class="viewport">
                <img
                    class="frame"
                    alt=model_name
                    src=move || view.frame_url.get()
                    data-frame=move || view.frames.get().to_string()
                    data-change=move || view.change.get().to_string()
                    data-model=model_id
                    class:empty=move || view.frame_url.get().is_none()
                />
            </div>
            <footer class="hud">
                <span class="status" data-status=move || view.status.get()>
                    {move || view.status.get()}
                </span>
                <span class="model">{model_name}</span>
                <span class="frames">{move || format!("{} frames", view.frames.get())}</span>
            </footer>
        </main>
    }
}
