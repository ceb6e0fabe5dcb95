//! The stage: what the space shows and the frame of it that every headset receives.
//!
//! The first slice has one space, `default`; the spaces issue replaces this with real spaces.
//! Selections go through [`parallax_core::Selection`], are stored before they take effect, and
//! are published on a `watch` channel: each headset connection reads the newest value only, so a
//! slow device skips stale frames instead of queueing them.

use std::collections::HashMap;
use std::sync::Arc;

use parallax_core::{ChangeNumber, ModelId, ModelSummary, Selection};
use parallax_render::Mesh;
use parallax_render::samples::SAMPLES;
use thiserror::Error;
use tokio::sync::{Mutex, watch};

use crate::render_worker::RenderWorker;
use crate::store::{ModelSource, Store};

/// The only space of the first slice.
pub const DEFAULT_SPACE: &str = "default";

/// What headsets are shown right now.
#[derive(Debug, Clone, Default)]
pub struct Showing {
    pub change: ChangeNumber,
    pub model: Option<ModelSummary>,
    /// The JPEG frame of `model`; `None` before the first selection or if rendering failed.
    pub frame: Option<Arc<[u8]>>,
    /// Why there is no frame, when rendering failed.
    pub error: Option<String>,
}

#[derive(Debug, Error)]
pub enum StageError {
    #[error("there is no model with id `{0}` in the catalog")]
    UnknownModel(ModelId),
    #[error("the store failed: {0}")]
    Store(#[from] sqlx::Error),
}

pub struct Stage {
    store: Store,
    renderer: RenderWorker,
    /// Meshes by id: what the render thread draws.
    meshes: HashMap<ModelId, (ModelSummary, Arc<Mesh>)>,
    /// Held across the store write and the render so selections publish in order.
    selection: Mutex<Selection>,
    showing: watch::Sender<Showing>,
}

impl Stage {
    /// Registers the sample models, restores the stored selection and renders its frame.
    pub async fn open(store: Store, renderer: RenderWorker) -> Result<Self, StageError> {
        let mut meshes = HashMap::new();
        for sample in SAMPLES {
            let mesh = (sample.build)();
            let summary = ModelSummary {
                id: ModelId::new(sample.id),
                name: sample.name.to_string(),
                triangles: mesh.triangles(),
            };
            store.upsert_model(&summary, ModelSource::Sample).await?;
            meshes.insert(summary.id.clone(), (summary, Arc::new(mesh)));
        }
        let stored = store.selection(DEFAULT_SPACE).await?;
        let selection = match stored {
            Some((model, change)) if meshes.contains_key(&model) => {
                Selection::restore(Some(model), change)
            }
            Some((_, change)) => Selection::restore(None, change),
            None => Selection::default(),
        };
        let stage = Self {
            store,
            renderer,
            meshes,
            selection: Mutex::new(selection.clone()),
            showing: watch::Sender::new(Showing {
                change: selection.change(),
                ..Showing::default()
            }),
        };
        if let Some(model) = selection.model() {
            let showing = stage.render(model, selection.change()).await;
            stage.showing.send_replace(showing);
        }
        Ok(stage)
    }

    /// The catalog as stored, and what is showing.
    pub async fn catalog(&self) -> Result<(Vec<ModelSummary>, Option<ModelId>), StageError> {
        let models = self.store.models().await?;
        let showing = self.selection.lock().await.model().cloned();
        Ok((models, showing))
    }

    /// Shows `model` on every headset. Selecting the model already shown changes nothing.
    pub async fn show(&self, model: ModelId) -> Result<ChangeNumber, StageError> {
        if !self.meshes.contains_key(&model) {
            return Err(StageError::UnknownModel(model));
        }
        let mut selection = self.selection.lock().await;
        let mut next = selection.clone();
        let Some(change) = next.handle_select(model.clone()) else {
            return Ok(selection.change());
        };
        // Stored first: if the write fails, nothing has changed anywhere.
        self.store
            .save_selection(DEFAULT_SPACE, &model, change)
            .await?;
        *selection = next;
        let showing = self.render(&model, change).await;
        self.showing.send_replace(showing);
        Ok(change)
    }

    /// A view of what is showing that wakes on every change.
    pub fn subscribe(&self) -> watch::Receiver<Showing> {
        self.showing.subscribe()
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    async fn render(&self, model: &ModelId, change: ChangeNumber) -> Showing {
        let (summary, mesh) = &self.meshes[model];
        let (frame, error) = match self.renderer.render(model.clone(), mesh.clone()).await {
            Ok(jpeg) => (Some(Arc::from(jpeg)), None),
            Err(e) => {
                tracing::error!(%model, "rendering failed: {e}");
                (
                    None,
                    Some(format!("rendering {} failed: {e}", summary.name)),
                )
            }
        };
        Showing {
            change,
            model: Some(summary.clone()),
            frame,
            error,
        }
    }
}
