//! The stage: what the space shows and the frame of it that every headset receives.
//!
//! The first slice has one space, `default`; the spaces issue replaces this with real spaces.
//! Selections go through [`parallax_core::Selection`], are stored before they take effect, and
//! are published on a `watch` channel: each headset connection reads the newest value only, so a
//! slow device skips stale frames instead of queueing them.

use std::sync::Arc;

use parallax_core::{ChangeNumber, ModelId, ModelSummary, Selection};
use thiserror::Error;
use tokio::sync::{Mutex, watch};

use crate::catalog::{Catalog, CatalogError};
use crate::render_worker::RenderWorker;
use crate::store::Store;

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
    /// Where models and their meshes come from.
    catalog: Arc<Catalog>,
    /// Held across the store write and the render so selections publish in order.
    selection: Mutex<Selection>,
    showing: watch::Sender<Showing>,
}

impl Stage {
    /// Restores the stored selection and renders its frame.
    pub async fn open(
        store: Store,
        renderer: RenderWorker,
        catalog: Arc<Catalog>,
    ) -> Result<Self, StageError> {
        let (selection, shown) = match store.selection(DEFAULT_SPACE).await? {
            Some((model, change)) => match store.model(&model).await? {
                Some(record) => (
                    Selection::restore(Some(model), change),
                    Some(record.summary),
                ),
                None => (Selection::restore(None, change), None),
            },
            None => (Selection::default(), None),
        };
        let stage = Self {
            store,
            renderer,
            catalog,
            selection: Mutex::new(selection.clone()),
            showing: watch::Sender::new(Showing {
                change: selection.change(),
                ..Showing::default()
            }),
        };
        if let Some(summary) = shown {
            let showing = stage.render(summary, selection.change()).await;
            stage.showing.send_replace(showing);
        }
        Ok(stage)
    }

    /// The catalog, and what is showing.
    pub async fn catalog(&self) -> Result<(Vec<ModelSummary>, Option<ModelId>), CatalogError> {
        let models = self.catalog.list().await?;
        let showing = self.shown().await;
        Ok((
            models.into_iter().map(|record| record.summary).collect(),
            showing,
        ))
    }

    /// Shows `model` on every headset. Selecting the model already shown changes nothing.
    pub async fn show(&self, model: ModelId) -> Result<ChangeNumber, StageError> {
        let Some(record) = self.store.model(&model).await? else {
            return Err(StageError::UnknownModel(model));
        };
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
        let showing = self.render(record.summary, change).await;
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

    /// The model on screen now.
    pub async fn shown(&self) -> Option<ModelId> {
        self.selection.lock().await.model().cloned()
    }

    /// The frame of `summary`'s model, for the selection `change`.
    async fn render(&self, summary: ModelSummary, change: ChangeNumber) -> Showing {
        let model = &summary.id;
        let frame = match self.catalog.mesh(model).await {
            Ok(mesh) => self.renderer.render(model.clone(), mesh).await,
            Err(e) => Err(e.to_string()),
        };
        match frame {
            Ok(jpeg) => Showing {
                change,
                model: Some(summary),
                frame: Some(Arc::from(jpeg)),
                error: None,
            },
            Err(e) => {
                tracing::error!(%model, "rendering failed: {e}");
                let error = Some(format!("rendering {} failed: {e}", summary.name));
                Showing {
                    change,
                    model: Some(summary),
                    frame: None,
                    error,
                }
            }
        }
    }
}
