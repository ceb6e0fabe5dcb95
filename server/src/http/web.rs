//! The Leptos pages and the static web bundle.

use std::path::Path;

use axum::Router;
use leptos_axum::{LeptosRoutes, generate_route_list};
use parallax_app::{App, shell};
use tower_http::services::ServeDir;

use crate::state::AppState;

/// Pages, and files from the site root (`/pkg/…`).
pub fn router(state: &AppState, site_root: &Path) -> Router<AppState> {
    let options = state.leptos.clone();
    Router::new()
        .leptos_routes(state, generate_route_list(App), move || {
            shell(options.clone())
        })
        .fallback_service(ServeDir::new(site_root))
}
