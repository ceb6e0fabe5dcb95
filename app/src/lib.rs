//! `parallax-app` holds every page of Parallax's web app as Leptos components. The server renders
//! them (`ssr` feature) and the browser hydrates them (`hydrate` feature, via `parallax-frontend`).
//!
//! Pages talk to the coordinator through its REST API and WebSockets, as any client does; the
//! browser's session cookie carries the credentials.
//!
//! # Layout
//! - `console`: `/` and `/spaces` (the account's spaces; create one), `/sign-in`, and `/join` (also
//!   `/headset`): a guest joins a space with its code.
//! - `space`: `/spaces/:name`, a tablet in a space: catalog, "Show to everyone", live roster,
//!   placement; `upload` (hydrate only) sends model files with progress.
//! - `space_state`: what a page in a space knows of it, and joining it; `space_live` (hydrate
//!   only) keeps it current over the space WebSocket.
//! - `space_headset`: `/spaces/:name/headset`, a browser headset in a space; `headset_state` is
//!   what it shows, `render_live` (hydrate only) its render connection, `xr` (hydrate only) its
//!   WebXR session.
//! - `pool`: `/pool`, the operator's render sessions (extend, stop), pool health, the last
//!   hour as charts (`chart`), and usage with a CSV download.
//! - `live` (hydrate only): what the live connections share; `rest`: the API calls;
//!   `format`: numbers as people read them; `pointer`: where a pointer event happened.

mod chart;
mod console;
mod format;
mod headset_state;
#[cfg(feature = "hydrate")]
mod live;
mod pointer;
mod pool;
#[cfg(feature = "hydrate")]
mod render_live;
mod rest;
mod review_panel;
mod room_map;
mod space;
mod space_headset;
#[cfg(feature = "hydrate")]
mod space_live;
mod space_state;
#[cfg(feature = "hydrate")]
mod upload;
#[cfg(feature = "hydrate")]
mod video;
#[cfg(feature = "hydrate")]
mod xr;

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::path;

/// The HTML document around the app; the server renders it for every page route.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <meta name="color-scheme" content="dark" />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body>
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    // Effects only run in the browser, so this flips once the page is interactive. End-to-end
    // tests wait for it: clicks before hydration would be lost.
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));

    view! {
        <Stylesheet id="leptos" href="/pkg/parallax.css" />
        <Title text="Parallax" />
        <Router>
            <div class="app" data-hydrated=move || hydrated.get().to_string()>
                <Routes fallback=|| view! { <p class="empty">"Page not found."</p> }>
                    <Route path=path!("") view=console::SpacesPage />
                    <Route path=path!("/headset") view=console::JoinPage />
                    <Route path=path!("/sign-in") view=console::SignInPage />
                    <Route path=path!("/join") view=console::JoinPage />
                    <Route path=path!("/trust") view=console::TrustPage />
                    <Route path=path!("/spaces") view=console::SpacesPage />
                    <Route path=path!("/spaces/:name") view=space::SpacePage />
                    <Route path=path!("/spaces/:name/headset") view=space_headset::SpaceHeadsetPage />
                    <Route path=path!("/pool") view=pool::PoolPage />
                </Routes>
            </div>
        </Router>
    }
}
