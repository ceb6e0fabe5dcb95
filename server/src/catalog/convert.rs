//! Turning an upload's files into what the catalog serves: the mesh in the transfer form render
//! hosts load (`.parallax-mesh`), its parts list (`.parallax-parts.json`) and a thumbnail, all
//! written beside the files.
//!
//! `parallax serve` does this in a child process (`parallax prepare-model`, one at a time, with a
//! time limit): importing a few MB of untrusted bytes and drawing them on lavapipe takes a few
//! times the file's size in memory, which a long-running coordinator would otherwise keep (glibc
//! keeps what its threads freed; docs/BENCHMARKS.md, soak), and a crash or a hang on a hostile
//! file must not take the coordinator down. Tests' coordinators, which have no `parallax` binary
//! to start, run the same steps on a thread of their own.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use parallax_core::ModelId;
use parallax_host::RenderWorker;
use parallax_render::samples::SAMPLES;
use parallax_render::{ImportError, ImportedModel, Mesh, import};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::sync::Semaphore;

use crate::catalog::files::{THUMBNAIL, write_atomically};
use crate::catalog::parts::{PARTS, parts_file};

/// The imported mesh's file name in a model's folder: hidden, so no upload can be called that.
pub const MESH: &str = ".parallax-mesh";

/// A conversion that takes longer than this is stopped and the upload refused.
const TIME_LIMIT: Duration = Duration::from_secs(300);

/// The exit code of `parallax prepare-model` when the file is not a model it can read.
const EXIT_INVALID: u8 = 3;

/// What a conversion made of a model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Prepared {
    pub triangles: u64,
    /// `gltf`, `stl` or `obj`; `None` for a sample.
    pub format: Option<String>,
    /// The GPU adapter the thumbnail was drawn on.
    pub adapter: String,
}

#[derive(Debug, Error)]
pub enum ConvertError {
    #[error("{file}: {source}")]
    Invalid { file: String, source: ImportError },
    /// The child's own words about a file it could not read.
    #[error("{0}")]
    InvalidReported(String),
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What to convert: a file in a folder (the files it names lie beside it), or a sample.
#[derive(Debug, Clone)]
pub enum Source {
    File { folder: PathBuf, file: String },
    Sample { folder: PathBuf, id: ModelId },
}

impl Source {
    fn folder(&self) -> &Path {
        match self {
            Source::File { folder, .. } | Source::Sample { folder, .. } => folder,
        }
    }
}

/// Where conversions run.
#[derive(Clone)]
pub enum Converter {
    /// `EXE prepare-model …` child processes, one at a time.
    Child {
        exe: PathBuf,
        one_at_a_time: Arc<Semaphore>,
        /// The adapter the last child drew on, or why it could not open one.
        adapter: Arc<Mutex<Option<Result<String, String>>>>,
    },
    /// On this process's threads, thumbnails on `renderer` (tests).
    InProcess(RenderWorker),
}

impl Converter {
    pub fn child(exe: PathBuf) -> Self {
        Self::Child {
            exe,
            one_at_a_time: Arc::new(Semaphore::new(1)),
            adapter: Arc::new(Mutex::new(None)),
        }
    }

    /// The adapter thumbnails are drawn on, or why there is none; `None` before the first.
    pub fn adapter(&self) -> Option<Result<String, String>> {
        match self {
            Converter::Child { adapter, .. } => {
                adapter.lock().unwrap_or_else(|e| e.into_inner()).clone()
            }
            Converter::InProcess(renderer) => renderer.adapter().cloned(),
        }
    }

    /// Writes [`MESH`] and [`PARTS`] (for a file) and [`THUMBNAIL`] into the source's folder.
    pub async fn prepare(&self, source: Source) -> Result<Prepared, ConvertError> {
        match self {
            Converter::Child {
                exe,
                one_at_a_time,
                adapter,
            } => {
                let _turn = one_at_a_time
                    .acquire()
                    .await
                    .map_err(|_| ConvertError::Failed("the coordinator is stopping".into()))?;
                let result = run_child(exe, &source).await;
                let seen = match &result {
                    Ok(prepared) => Some(Ok(prepared.adapter.clone())),
                    Err(ConvertError::Failed(e)) if e.contains("GPU") => Some(Err(e.clone())),
                    Err(_) => None,
                };
                if let Some(seen) = seen {
                    *adapter.lock().unwrap_or_else(|e| e.into_inner()) = Some(seen);
                }
                result
            }
            Converter::InProcess(renderer) => prepare_on(renderer, source).await,
        }
    }
}

/// Converts `source` in this process, its thumbnail drawn on `renderer`: what a tests'
/// coordinator does itself and what `parallax prepare-model` does in a process of its own.
async fn prepare_on(renderer: &RenderWorker, source: Source) -> Result<Prepared, ConvertError> {
    let (folder, id, mesh, format) = match source {
        Source::File { folder, file } => {
            let (imported, transfer) = tokio::task::spawn_blocking({
                let (folder, file) = (folder.clone(), file.clone());
                move || {
                    let imported = import_in(&folder, &file)?;
                    let transfer = imported.mesh.to_bytes();
                    let parts = parts_file(&imported.mesh);
                    Ok::<_, ConvertError>((imported, (transfer, parts)))
                }
            })
            .await
            .map_err(|e| ConvertError::Failed(format!("the importer failed: {e}")))??;
            let (transfer, parts) = transfer;
            write_atomically(&folder.join(MESH), &transfer).await?;
            write_atomically(&folder.join(PARTS), &parts).await?;
            let format = imported.format.as_str().to_string();
            (folder, ModelId::new(file), imported.mesh, Some(format))
        }
        Source::Sample { folder, id } => {
            let mesh = sample_mesh(&id)?;
            (folder, id, mesh, None)
        }
    };
    let triangles = mesh.triangles();
    let png = renderer
        .thumbnail(id, Arc::new(mesh))
        .await
        .map_err(ConvertError::Failed)?;
    tokio::fs::create_dir_all(&folder).await?;
    write_atomically(&folder.join(THUMBNAIL), &png).await?;
    let adapter = match renderer.adapter() {
        Some(Ok(name)) => name.clone(),
        _ => String::new(),
    };
    Ok(Prepared {
        triangles,
        format,
        adapter,
    })
}

/// Runs `exe prepare-model` on `source`, killed after [`TIME_LIMIT`].
async fn run_child(exe: &Path, source: &Source) -> Result<Prepared, ConvertError> {
    let mut command = tokio::process::Command::new(exe);
    command
        .arg("prepare-model")
        .arg("--folder")
        .arg(source.folder());
    match source {
        Source::File { file, .. } => command.arg("--file").arg(file),
        Source::Sample { id, .. } => command.arg("--sample").arg(id.as_str()),
    };
    command
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(TIME_LIMIT, command.output())
        .await
        .map_err(|_| {
            ConvertError::Failed(format!(
                "converting the model took longer than {} s",
                TIME_LIMIT.as_secs()
            ))
        })?
        .map_err(|e| ConvertError::Failed(format!("starting {}: {e}", exe.display())))?;
    let said = String::from_utf8_lossy(&output.stderr)
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("no reason given")
        .trim()
        .to_string();
    match output.status.code() {
        Some(0) => serde_json::from_slice(&output.stdout)
            .map_err(|e| ConvertError::Failed(format!("the converter's answer: {e}"))),
        Some(code) if code == i32::from(EXIT_INVALID) => Err(ConvertError::InvalidReported(said)),
        Some(code) => Err(ConvertError::Failed(format!(
            "the converter failed ({code}): {said}"
        ))),
        None => Err(ConvertError::Failed(format!(
            "the converter was killed ({}): {said}",
            output.status
        ))),
    }
}

/// `parallax prepare-model`: converts `source` in this process with a GPU of its own, prints
/// [`Prepared`] as JSON on stdout, and returns the exit code (a file that is no model: 3).
pub async fn prepare_model_command(source: Source) -> u8 {
    // No GPU models kept besides the one drawn: the process draws one and exits.
    let renderer = RenderWorker::start_lazy(0);
    match prepare_on(&renderer, source).await {
        Ok(prepared) => match serde_json::to_string(&prepared) {
            Ok(json) => {
                println!("{json}");
                0
            }
            Err(e) => {
                eprintln!("{e}");
                1
            }
        },
        Err(e @ ConvertError::Invalid { .. }) => {
            eprintln!("{e}");
            EXIT_INVALID
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// Imports `folder/file`; the files it names are looked up by their last path segment among the
/// files beside it, as uploads store them flat.
fn import_in(folder: &Path, file: &str) -> Result<ImportedModel, ConvertError> {
    let bytes = std::fs::read(folder.join(file))?;
    let mut beside = |uri: &str| {
        let wanted = uri.rsplit(['/', '\\']).next().unwrap_or(uri);
        let plain = !wanted.is_empty() && !wanted.starts_with('.');
        plain
            .then(|| std::fs::read(folder.join(wanted)).ok())
            .flatten()
    };
    import(file, &bytes, &mut beside).map_err(|source| ConvertError::Invalid {
        file: file.to_string(),
        source,
    })
}

fn sample_mesh(id: &ModelId) -> Result<Mesh, ConvertError> {
    SAMPLES
        .iter()
        .find(|s| s.id == id.as_str())
        .map(|s| (s.build)())
        .ok_or_else(|| ConvertError::Failed(format!("there is no sample `{id}`")))
}
