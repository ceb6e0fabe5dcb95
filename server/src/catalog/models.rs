//! The model catalog: the samples Parallax builds and the files people upload.
//!
//! An upload belongs to the account that made it: only that account (and the guests of its
//! spaces) sees it; the samples are everyone's. It is checked by importing it before anything is
//! stored, then kept under `<data dir>/models/<content>/` with its original file names, where
//! `content` is a hash of everything uploaded — so the same bytes are stored once, whoever
//! uploads them. Its catalog id is the account's own (a hash of the account and the content), so
//! uploading what another account already did tells nothing about it. Each model gets a
//! thumbnail from our own renderer. Meshes are imported from disk when first shown and then kept
//! in memory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use moka::future::Cache;
use parallax_core::{ModelId, ModelSummary};
use parallax_host::RenderWorker;
use parallax_render::samples::SAMPLES;
use parallax_render::{ImportError, Mesh, import};
use thiserror::Error;

use crate::base::store::{ModelRecord, ModelSource, Store};
use crate::catalog::files::{
    THUMBNAIL, UploadedFile, content_id, is_model_file, owned_id, safe_file_name, write_atomically,
};

#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("the upload holds no model file: send a .gltf, .glb, .stl or .obj")]
    NoModelFile,
    #[error("{file}: {source}")]
    Invalid { file: String, source: ImportError },
    #[error("{0:?} is not a file name Parallax accepts")]
    BadFileName(String),
    #[error("there is no model with id `{0}` in the catalog")]
    UnknownModel(ModelId),
    #[error("`{0}` is a sample model; samples cannot be deleted")]
    Sample(ModelId),
    #[error(
        "`{model}` is being shown in the space `{space}`; show another model there before deleting it"
    )]
    Shown { model: ModelId, space: String },
    #[error("rendering failed: {0}")]
    Render(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

/// Whether an upload added something new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    New,
    /// The same files were uploaded before; nothing was stored twice.
    Existing,
}

pub struct Catalog {
    dir: PathBuf,
    store: Store,
    renderer: RenderWorker,
    /// The samples' meshes: small, built at start, always kept.
    samples: HashMap<ModelId, Arc<Mesh>>,
    /// Uploads' meshes once first needed, bounded in bytes (least recently used out first);
    /// two requests for the same model at once import it once.
    meshes: Cache<ModelId, Arc<Mesh>>,
}

impl Catalog {
    /// Registers the samples and prepares the upload directory.
    pub async fn open(
        data_dir: &std::path::Path,
        store: Store,
        renderer: RenderWorker,
        mesh_cache_bytes: u64,
    ) -> Result<Self, CatalogError> {
        let dir = data_dir.join("models");
        tokio::fs::create_dir_all(&dir).await?;
        let mut samples = HashMap::new();
        for sample in SAMPLES {
            let mesh = (sample.build)();
            let summary = ModelSummary {
                id: ModelId::new(sample.id),
                name: sample.name.to_string(),
                triangles: mesh.triangles(),
            };
            store.upsert_model(&summary, ModelSource::Sample).await?;
            samples.insert(summary.id, Arc::new(mesh));
        }
        Ok(Self {
            dir,
            store,
            renderer,
            samples,
            meshes: Cache::builder()
                .max_capacity(mesh_cache_bytes)
                .weigher(|_, mesh: &Arc<Mesh>| u32::try_from(mesh.heap_bytes()).unwrap_or(u32::MAX))
                .build(),
        })
    }

    /// The catalog as `account` (or a guest of its spaces) sees it.
    pub async fn list(&self, account: &str) -> Result<Vec<ModelRecord>, CatalogError> {
        Ok(self.store.model_records(account).await?)
    }

    /// Model `id` if `account` may see it. Another account's upload is unknown, exactly like
    /// one that does not exist, so its existence is not given away.
    pub async fn get(&self, id: &ModelId, account: &str) -> Result<ModelRecord, CatalogError> {
        self.store
            .model(id)
            .await?
            .filter(|record| record.visible_to(account))
            .ok_or_else(|| CatalogError::UnknownModel(id.clone()))
    }

    /// Where a model's files are: its content's folder (a sample's thumbnail: its id's).
    fn folder(&self, record: &ModelRecord) -> PathBuf {
        let name = record
            .content_id
            .as_deref()
            .unwrap_or(record.summary.id.as_str());
        self.dir.join(name)
    }

    /// Checks and stores an upload; `name` defaults to the model file's name.
    pub async fn add(
        &self,
        files: Vec<UploadedFile>,
        name: Option<String>,
        owner: &str,
    ) -> Result<(Added, ModelRecord), CatalogError> {
        for file in &files {
            if !safe_file_name(&file.name) {
                return Err(CatalogError::BadFileName(file.name.clone()));
            }
        }
        let main = files
            .iter()
            .position(|f| is_model_file(&f.name))
            .ok_or(CatalogError::NoModelFile)?;
        let content = content_id(&files);
        let id = owned_id(owner, &content);
        if let Some(existing) = self.store.model(&id).await? {
            return Ok((Added::Existing, existing));
        }

        // Import before storing anything: a file that does not import is never kept.
        let files = Arc::new(files);
        let parts = files.clone();
        let imported = tokio::task::spawn_blocking(move || {
            let main = &parts[main];
            let mut beside = |uri: &str| {
                let wanted = uri.rsplit('/').next().unwrap_or(uri);
                parts
                    .iter()
                    .find(|f| f.name == wanted)
                    .map(|f| f.bytes.clone())
            };
            import(&main.name, &main.bytes, &mut beside).map_err(|source| CatalogError::Invalid {
                file: main.name.clone(),
                source,
            })
        })
        .await
        .map_err(|e| CatalogError::Render(format!("the importer failed: {e}")))??;

        // Written again even when another account stored the same bytes: the same work either
        // way, so neither the answer nor its time says whether someone else has this model.
        let folder = self.dir.join(content.as_str());
        tokio::fs::create_dir_all(&folder).await?;
        for file in files.iter() {
            write_atomically(&folder.join(&file.name), &file.bytes).await?;
        }
        let mesh = Arc::new(imported.mesh);
        let thumbnail = self
            .renderer
            .thumbnail(id.clone(), mesh.clone())
            .await
            .map_err(CatalogError::Render)?;
        write_atomically(&folder.join(THUMBNAIL), &thumbnail).await?;

        let main_file = &files[main];
        let record = ModelRecord {
            summary: ModelSummary {
                id: id.clone(),
                name: name
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or_else(|| main_file.name.clone()),
                triangles: mesh.triangles(),
            },
            source: ModelSource::Upload,
            file_name: Some(main_file.name.clone()),
            format: Some(imported.format.as_str().to_string()),
            size_bytes: Some(files.iter().map(|f| f.bytes.len() as u64).sum()),
            uploaded_by: Some(owner.to_string()),
            content_id: Some(content.as_str().to_string()),
        };
        if !self.store.insert_upload(&record).await? {
            // Uploaded twice at the same moment: the other one stored it.
            return Ok((Added::Existing, self.get(&id, owner).await?));
        }
        self.meshes.insert(id, mesh).await;
        // moka evicts in batches as it is used; an upload is rare enough to settle it now.
        self.meshes.run_pending_tasks().await;
        release_freed_memory();
        Ok((Added::New, record))
    }

    /// The mesh of `record` (as [`Catalog::get`] gave it), importing it from disk the first time.
    pub async fn mesh(&self, record: &ModelRecord) -> Result<Arc<Mesh>, CatalogError> {
        let id = &record.summary.id;
        if let Some(mesh) = self.samples.get(id) {
            return Ok(mesh.clone());
        }
        let file = record
            .file_name
            .as_ref()
            .ok_or_else(|| CatalogError::UnknownModel(id.clone()))?;
        let path = self.folder(record).join(file);
        self.meshes
            .try_get_with(id.clone(), async move {
                let imported =
                    tokio::task::spawn_blocking(move || parallax_render::import_file(&path))
                        .await
                        .map_err(|e| format!("the importer failed: {e}"))?
                        .map_err(|e| e.to_string())?;
                Ok::<_, String>(Arc::new(imported.mesh))
            })
            .await
            .map_err(|e| CatalogError::Render(format!("reading a stored model: {e}")))
    }

    /// The PNG thumbnail of `record`, rendered once and kept on disk.
    pub async fn thumbnail(&self, record: &ModelRecord) -> Result<Vec<u8>, CatalogError> {
        let folder = self.folder(record);
        let path = folder.join(THUMBNAIL);
        if let Ok(png) = tokio::fs::read(&path).await {
            return Ok(png);
        }
        let mesh = self.mesh(record).await?;
        let png = self
            .renderer
            .thumbnail(record.summary.id.clone(), mesh)
            .await
            .map_err(CatalogError::Render)?;
        tokio::fs::create_dir_all(&folder).await?;
        write_atomically(&path, &png).await?;
        Ok(png)
    }

    /// Deletes `account`'s upload `id`, and its files unless another account's upload is made
    /// of the same; `shown_in` names a space that shows it now, which keeps it.
    pub async fn delete(
        &self,
        id: &ModelId,
        account: &str,
        shown_in: Option<String>,
    ) -> Result<(), CatalogError> {
        let record = self.get(id, account).await?;
        if record.source == ModelSource::Sample {
            return Err(CatalogError::Sample(id.clone()));
        }
        if let Some(space) = shown_in {
            return Err(CatalogError::Shown {
                model: id.clone(),
                space,
            });
        }
        self.store.delete_upload(id).await?;
        self.meshes.invalidate(id).await;
        let content = record.content_id.as_deref().unwrap_or(id.as_str());
        if self.store.content_in_use(content).await? {
            return Ok(());
        }
        match tokio::fs::remove_dir_all(self.folder(&record)).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(()),
        }
    }
}

/// Gives memory freed by an import back to the system. An upload allocates a few times its size
/// (the body, the parsed triangles, the welded mesh) on whichever threads handled it, and glibc
/// keeps what those threads freed in their own arenas: without this a coordinator that imported
/// 30 parts of a few MB each stayed at ~500 MiB (docs/BENCHMARKS.md, soak).
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages to the kernel; it is thread-safe and
    // touches no memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}
