//! Server functions behind the pages. Their bodies run on the server, where they reach the
//! coordinator through the [`Backend`] the server provides as context.

use leptos::prelude::*;
use parallax_core::{ChangeNumber, ModelId, ModelSummary};
use serde::{Deserialize, Serialize};

/// The model catalog as the tablet shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Catalog {
    pub models: Vec<ModelSummary>,
    /// The model the space shows now, if any.
    pub showing: Option<ModelId>,
}

/// Lists the models and says which one the headsets show.
#[server(name = ListCatalog, endpoint = "catalog")]
pub async fn list_catalog() -> Result<Catalog, ServerFnError> {
    backend::get()?.catalog().await.map_err(ServerFnError::new)
}

/// Shows `model_id` on every headset. Returns the space's change number after the selection.
#[server(endpoint = "show_model")]
pub async fn show_model(model_id: String) -> Result<ChangeNumber, ServerFnError> {
    backend::get()?
        .show(ModelId::new(model_id))
        .await
        .map_err(ServerFnError::new)
}

#[cfg(feature = "ssr")]
pub use backend::Backend;

#[cfg(feature = "ssr")]
pub mod backend {
    //! What the server provides to server functions.

    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;

    use leptos::prelude::*;
    use parallax_core::{ChangeNumber, ModelId};

    use super::Catalog;

    pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

    /// The coordinator as server functions see it. Errors are messages fit to show a person.
    pub trait Backend: Send + Sync + 'static {
        fn catalog(&self) -> BoxFuture<'_, Result<Catalog, String>>;
        fn show(&self, model: ModelId) -> BoxFuture<'_, Result<ChangeNumber, String>>;
    }

    /// The backend the server provided for this request.
    pub fn get() -> Result<Arc<dyn Backend>, ServerFnError> {
        use_context::<Arc<dyn Backend>>()
            .ok_or_else(|| ServerFnError::new("the server provided no backend"))
    }
}
