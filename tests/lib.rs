//! Helpers for Parallax's integration tests: a real coordinator on a real port with its own
//! SQLite file, and the few calls a tablet makes.
//!
//! # Layout
//! - this file: [`TestServer`], [`decode_jpeg`], [`within`].
//! - `tests/`: one file per user-visible flow.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use parallax_server::AppState;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A coordinator serving on `127.0.0.1:<free port>` until dropped or [`TestServer::stop`]ped.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a coordinator on the data dir `data_dir` (the database lives there).
    pub async fn start(data_dir: &Path) -> Self {
        // Tests exercise the API and sockets; the pages render without the wasm bundle.
        let state = AppState::open(data_dir, &data_dir.join("site"))
            .await
            .expect("the coordinator opens its data dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            parallax_server::run(listener, state, async {
                let _ = stopped.await;
            })
            .await
            .expect("the coordinator runs until stopped");
        });
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Selects `model` the way a tablet script does; returns the JSON answer and its status.
    pub async fn select(&self, model: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .put(format!("{}/v1/selection", self.url()))
            .json(&json!({ "modelId": model }))
            .send()
            .await
            .expect("the coordinator answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    /// Shuts down gracefully and waits until the coordinator has closed its database.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            within(task)
                .await
                .expect("the coordinator task ends cleanly");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A fresh data dir.
pub fn data_dir() -> TempDir {
    tempfile::tempdir().expect("a temp dir")
}

/// Awaits `future`, failing the test if it takes more than five seconds.
pub async fn within<F: Future>(future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(5), future)
        .await
        .expect("answered within 5 s")
}

/// Decodes a JPEG frame, returning (width, height, RGB pixels).
pub fn decode_jpeg(jpeg: &[u8]) -> (u16, u16, Vec<u8>) {
    let mut decoder = jpeg_decoder::Decoder::new(jpeg);
    let pixels = decoder.decode().expect("a decodable JPEG");
    let info = decoder.info().expect("image info");
    (info.width, info.height, pixels)
}
