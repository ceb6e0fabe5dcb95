//! The Leptos pages, their server functions, and the static web bundle.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use parallax_app::api::{Backend, Catalog, backend::BoxFuture};
use parallax_app::{App, shell};
use parallax_core::{ChangeNumber, ModelId};
use tower_http::services::ServeDir;

use crate::AppState;
use crate::stage::Stage;

/// Pages, server functions under `/api`, and files from the site root (`/pkg/…`).
pub fn router(state: &AppState, site_root: &Path) -> Router<AppState> {
    let backend: Arc<dyn Backend> = Arc::new(StageBackend(state.stage.clone()));
    let options = state.leptos.clone();
    Router::new()
        .leptos_routes_with_context(
            state,
            generate_route_list(App),
            move || provide_context(backend.clone()),
            move || shell(options.clone()),
        )
        .fallback_service(ServeDir::new(site_root))
}

/// Server functions reach the stage through this.
struct StageBackend(Arc<Stage>);

impl Backend for StageBackend {
    fn catalog(&self) -> BoxFuture<'_, Result<Catalog, String>> {
        Box::pin(async move {
            let (models, showing) = self.0.catalog().await.map_err(|e| {
                tracing::error!("catalog failed: {e}");
                "the catalog is unavailable right now".to_string()
            })?;
            Ok(Catalog { models, showing })
        })
    }

    fn show(&self, model: ModelId) -> BoxFuture<'_, Result<ChangeNumber, String>> {
        Box::pin(async move { self.0.show(model).await.map_err(|e| e.to_string()) })
    }
}
