//! The model catalog: the samples Parallax builds and the files people upload.
//!
//! An upload belongs to the account that made it: only that account (and the guests of its
//! spaces) sees it; the samples are everyone's. It is checked by importing it before anything is
//! stored, then kept under `<data dir>/models/<content>/` with its original file names, where
//! `content` is a hash of everything uploaded — so the same bytes are stored once, whoever
//! uploads them. Its catalog id is the account's own (a hash of the account and the content), so
//! uploading what another account already did tells nothing about it. Each model gets a
//! thumbnail from our own renderer and its mesh in the form render hosts load, both made once,
//! at upload, by a conversion ([`crate::catalog::convert`]) and kept on disk beside its files:
//! the coordinator holds no model in memory but the samples.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Bytes;
use parallax_core::{ModelId, ModelSummary};
use parallax_render::Format;
use parallax_render::samples::SAMPLES;
use thiserror::Error;

use crate::accounts::quotas::{Quotas, Reservation};
use crate::base::store::{ModelRecord, ModelSource, ModelStatus, Store};
use crate::catalog::convert::{ConvertError, Converter, Lane, MESH, PREVIEW, Source};
use crate::catalog::files::{
    Claim, Staging, THUMBNAIL, UploadedFile, content_id, is_model_file, owned_id, prefix,
    remove_abandoned_staging, safe_file_name,
};
use crate::catalog::parts::{PARTS, parts_file};

/// How often conversions nobody runs are looked for (a replica that ran one died).
const CONVERSION_SWEEP: std::time::Duration = std::time::Duration::from_secs(30);

/// How often one waiting for a conversion's end looks at its record, besides being told.
const CONVERTED_LOOK_AGAIN: std::time::Duration = std::time::Duration::from_secs(2);

/// The prefix of a conversion's claim in the models folder.
const CONVERSION_CLAIM: &str = ".convert-";

#[derive(Debug, Error)]
pub enum CatalogError {
    #[error("the upload holds no model file: send a .step, .stp, .gltf, .glb, .stl or .obj")]
    NoModelFile,
    /// The file is not a model Parallax can read: the importer's words.
    #[error("{0}")]
    Invalid(String),
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
    /// The model is not ready to be shown: converting still, or its conversion failed.
    #[error("{}", not_ready(.0, .1))]
    NotReady(ModelId, ModelStatus),
    #[error("converting the model failed: {0}")]
    Render(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] sqlx::Error),
    /// Over one of the account's quotas, as the caller is told.
    #[error(transparent)]
    Refused(#[from] Box<crate::base::error::AppError>),
}

fn not_ready(id: &ModelId, status: &ModelStatus) -> String {
    match status {
        ModelStatus::Failed(reason) => format!("`{id}` could not be converted: {reason}"),
        _ => format!("`{id}` is still being converted; it can be shown once it is Ready"),
    }
}

impl From<ConvertError> for CatalogError {
    fn from(error: ConvertError) -> Self {
        match error {
            ConvertError::Invalid { .. }
            | ConvertError::InvalidReported(_)
            | ConvertError::Settings(_) => CatalogError::Invalid(error.to_string()),
            ConvertError::Failed(e) => CatalogError::Render(e),
            ConvertError::Io(e) => CatalogError::Io(e),
        }
    }
}

/// Whether an upload added something new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    New,
    /// The same files were uploaded before; nothing was stored twice.
    Existing,
}

/// A model's mesh in the transfer form render hosts load.
pub enum MeshBytes {
    /// A sample's, built in memory (cheap to clone: shared).
    Memory(Bytes),
    /// An upload's, converted once and kept on disk.
    File(PathBuf),
}

pub struct Catalog {
    dir: PathBuf,
    store: Store,
    converter: Converter,
    /// The samples' meshes in transfer form and their parts lists: small, built at start,
    /// always kept.
    samples: HashMap<ModelId, (Bytes, Bytes)>,
    /// Told each time a conversion after an upload ends.
    converted: tokio::sync::Notify,
    /// How far each running conversion after an upload is, 0 to 1.
    progress: std::sync::Mutex<HashMap<ModelId, f32>>,
    /// How many bytes and conversions each account may have.
    quotas: Arc<Quotas>,
    /// One of replicas: a model whose files are not here is another's (the folder is not
    /// shared), not lost.
    replicated: bool,
    /// The models in conversion elsewhere whose files are not here, said once.
    elsewhere: std::sync::Mutex<std::collections::HashSet<ModelId>>,
}

impl Catalog {
    /// Registers the samples and prepares the upload directory.
    pub async fn open(
        data_dir: &std::path::Path,
        store: Store,
        converter: Converter,
        quotas: Arc<Quotas>,
        replicated: bool,
    ) -> Result<Self, CatalogError> {
        let dir = data_dir.join("models");
        tokio::fs::create_dir_all(&dir).await?;
        // Uploads a stop interrupted while they were received or converted (not those a
        // replica sharing the folder is receiving now).
        {
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || remove_abandoned_staging(&dir))
                .await
                .map_err(std::io::Error::other)??;
        }
        let mut samples = HashMap::new();
        for sample in SAMPLES {
            let mesh = (sample.build)();
            let summary = ModelSummary {
                id: ModelId::new(sample.id),
                name: sample.name.to_string(),
                triangles: mesh.drawn_triangles(),
            };
            store.upsert_model(&summary, ModelSource::Sample).await?;
            let parts = Bytes::from(parts_file(&mesh));
            samples.insert(summary.id, (Bytes::from(mesh.to_bytes()), parts));
        }
        Ok(Self {
            dir,
            store,
            converter,
            samples,
            converted: tokio::sync::Notify::new(),
            progress: std::sync::Mutex::new(HashMap::new()),
            quotas,
            replicated,
            elsewhere: std::sync::Mutex::default(),
        })
    }

    /// The adapter thumbnails are drawn on, or why there is none; `None` before the first.
    pub fn renderer(&self) -> Option<Result<String, String>> {
        self.converter.adapter()
    }

    /// Refuses `account` a conversion more when it has as many not yet ended as it may; else
    /// counts one more until the reservation is dropped (once the conversion is stored).
    pub async fn may_convert(&self, account: &str) -> Result<Reservation, CatalogError> {
        self.quotas
            .reserve(&self.store, account, 0, true)
            .await
            .map_err(|e| CatalogError::Refused(Box::new(e)))
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

    /// Model `id` if `account` may see it and it is ready to be shown.
    pub async fn get_ready(
        &self,
        id: &ModelId,
        account: &str,
    ) -> Result<ModelRecord, CatalogError> {
        let record = self.get(id, account).await?;
        ready(&record)?;
        Ok(record)
    }

    /// Starts the conversions nobody runs: those a stop interrupted, here or on a replica that
    /// shares the models folder.
    pub async fn resume_conversions(self: &Arc<Self>) -> Result<(), CatalogError> {
        for record in self.store.converting_models().await? {
            self.convert_later(record);
        }
        Ok(())
    }

    /// Among replicas, [`Catalog::resume_conversions`] every [`CONVERSION_SWEEP`] while the
    /// catalog is kept: a replica that dies in a conversion leaves it to another. (Alone, the
    /// start resumed them all.)
    pub fn sweep_conversions(self: &Arc<Self>) {
        if !self.replicated {
            return;
        }
        let catalog = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(CONVERSION_SWEEP).await;
                let Some(catalog) = catalog.upgrade() else {
                    return;
                };
                if let Err(e) = catalog.resume_conversions().await {
                    tracing::warn!("looking for conversions nobody runs: {e}");
                }
            }
        });
    }

    /// The claim on converting `record` when nobody else runs its conversion, it is still to
    /// do, and its files are in this coordinator's models folder.
    async fn claim_conversion(&self, record: &ModelRecord) -> Option<Claim> {
        let id = record.summary.id.clone();
        if !safe_file_name(id.as_str()) {
            return None;
        }
        let taken = Claim::take_off_thread(&self.dir, format!("{CONVERSION_CLAIM}{id}")).await;
        let claim = match taken {
            Ok(Some(claim)) => claim,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(model = %id, "claiming the conversion: {e}");
                return None;
            }
        };
        match self.store.model(&id).await {
            Ok(Some(now)) if now.status == ModelStatus::Converting => {}
            _ => {
                claim.let_go().await;
                return None;
            }
        }
        // Among replicas, not here: the models folder is not shared with the replica it was
        // uploaded to, which converts it (it is not failed here). Alone, its conversion fails
        // for want of them, as it says.
        let folder = self.folder(record);
        if self.replicated && !tokio::fs::try_exists(&folder).await.unwrap_or(false) {
            let first = self
                .elsewhere
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.clone());
            if first {
                tracing::warn!(model = %id, folder = %folder.display(),
                    "a model in conversion has no files here: do the replicas share one models folder?");
            }
            claim.let_go().await;
            return None;
        }
        tracing::info!(model = %id, "converting");
        Some(claim)
    }

    /// How far model `id`'s conversion is, while it runs after its upload.
    pub fn progress(&self, id: &ModelId) -> Option<f32> {
        let progress = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        progress.get(id).copied()
    }

    /// Converts the stored upload `record` on a task of its own, then records how it ended.
    fn convert_later(self: &Arc<Self>, record: ModelRecord) {
        let catalog = self.clone();
        tokio::spawn(async move {
            let Some(claim) = catalog.claim_conversion(&record).await else {
                return;
            };
            let id = record.summary.id.clone();
            let told: crate::catalog::convert::Progress = {
                let (catalog, id) = (Arc::downgrade(&catalog), id.clone());
                Arc::new(move |done| {
                    if let Some(catalog) = catalog.upgrade() {
                        let mut progress =
                            catalog.progress.lock().unwrap_or_else(|e| e.into_inner());
                        progress.insert(id.clone(), done);
                    }
                })
            };
            let result = match catalog.source(&record) {
                Ok(source) => catalog
                    .converter
                    .prepare_reporting(
                        source,
                        Lane::Background {
                            account: record.uploaded_by.as_deref().unwrap_or_default(),
                        },
                        told,
                    )
                    .await
                    .map_err(Into::into),
                Err(e) => Err(e),
            };
            let (status, triangles) = match result {
                Ok(prepared) => (ModelStatus::Ready, prepared.triangles),
                Err(e) => {
                    let reason = match e {
                        CatalogError::Render(reason) | CatalogError::Invalid(reason) => reason,
                        other => other.to_string(),
                    };
                    tracing::warn!(model = %id, "the conversion failed: {reason}");
                    (ModelStatus::Failed(reason), 0)
                }
            };
            if let Err(e) = catalog
                .store
                .finish_conversion(&id, &status, triangles)
                .await
            {
                tracing::error!(model = %id, "recording the end of a conversion: {e}");
            }
            catalog
                .progress
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&id);
            catalog.converted.notify_waiters();
            claim.let_go().await;
        });
    }

    /// Model `id` of `account` once its conversion has ended.
    pub async fn converted(
        &self,
        id: &ModelId,
        account: &str,
    ) -> Result<ModelRecord, CatalogError> {
        loop {
            let ended = self.converted.notified();
            tokio::pin!(ended);
            // Listening before looking: an end between the two is not missed.
            ended.as_mut().enable();
            let record = self.get(id, account).await?;
            if record.status != ModelStatus::Converting {
                return Ok(record);
            }
            // Or looked at again a little later: another replica may be converting it.
            let _ = tokio::time::timeout(CONVERTED_LOOK_AGAIN, ended).await;
        }
    }

    /// A staging folder to receive an upload's files in ([`Catalog::add`] takes it).
    pub async fn stage(&self) -> Result<Staging, CatalogError> {
        Ok(Staging::new(&self.dir).await?)
    }

    /// Checks and stores an upload, received in `staging`; `name` defaults to the model file's
    /// name. A STEP file is stored at once and converted afterwards (its record says
    /// `Converting` until then): a CAD kernel can take minutes. Any other file is converted
    /// first, and refused if it does not import.
    pub async fn add(
        self: &Arc<Self>,
        staging: Staging,
        files: Vec<UploadedFile>,
        name: Option<String>,
        owner: &str,
    ) -> Result<(Added, ModelRecord), CatalogError> {
        let main = files
            .iter()
            .position(|f| is_model_file(&f.name))
            .ok_or(CatalogError::NoModelFile)?;
        self.add_with_main(staging, files, main, name, owner, false)
            .await
    }

    /// [`Catalog::add`] with the model file named: `files[main]`, the others beside it.
    /// `counted`: it is an ARR conversion's, counted against the account's conversions already.
    pub async fn add_with_main(
        self: &Arc<Self>,
        staging: Staging,
        files: Vec<UploadedFile>,
        main: usize,
        name: Option<String>,
        owner: &str,
        counted: bool,
    ) -> Result<(Added, ModelRecord), CatalogError> {
        for file in &files {
            if !safe_file_name(&file.name) || file.path.parent() != Some(staging.path()) {
                return Err(CatalogError::BadFileName(file.name.clone()));
            }
        }
        if !files.get(main).is_some_and(|f| is_model_file(&f.name)) {
            return Err(CatalogError::NoModelFile);
        }
        let hashed = files.clone();
        let content = tokio::task::spawn_blocking(move || content_id(&hashed))
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        let id = owned_id(owner, &content);
        if let Some(existing) = self.store.model(&id).await? {
            return Ok((Added::Existing, existing));
        }
        let main_file = &files[main];
        let magic = prefix(&main_file.path, 4).await?;
        let later = Format::detect(&main_file.name, &magic) == Ok(Format::Step);
        let size = files.iter().map(|f| f.size).sum();
        // Held until the model is stored: meanwhile (its conversion may wait its turn) other
        // uploads of the account count these bytes too.
        let _reserved = self
            .quotas
            .reserve(&self.store, owner, size, later && !counted)
            .await
            .map_err(|e| CatalogError::Refused(Box::new(e)))?;
        let mut record = ModelRecord {
            summary: ModelSummary {
                id: id.clone(),
                name: name
                    .filter(|n| !n.trim().is_empty())
                    .unwrap_or_else(|| main_file.name.clone()),
                triangles: 0,
            },
            source: ModelSource::Upload,
            file_name: Some(main_file.name.clone()),
            format: later.then(|| Format::Step.as_str().to_string()),
            size_bytes: Some(size),
            uploaded_by: Some(owner.to_string()),
            content_id: Some(content.as_str().to_string()),
            status: ModelStatus::Converting,
        };

        // Converted in its staging folder before anything is stored: a file that does not
        // import is never kept (the folder goes when `staging` is dropped). Converted again even
        // when another account stored the same bytes: the same work either way, so neither the
        // answer nor its time says whether someone else has this model.
        if !later {
            let source = Source::File {
                folder: staging.path().to_path_buf(),
                file: main_file.name.clone(),
            };
            let prepared = self.converter.prepare(source).await?;
            record.summary.triangles = prepared.triangles;
            record.format = prepared.format;
            record.status = ModelStatus::Ready;
        }
        // If the same content is stored already, its folder stays and the staging one goes.
        staging
            .settle_into(&self.dir.join(content.as_str()))
            .await?;
        if !self.store.insert_upload(&record).await? {
            // Uploaded twice at the same moment: the other one stored it.
            return Ok((Added::Existing, self.get(&id, owner).await?));
        }
        if record.status == ModelStatus::Converting {
            self.convert_later(record.clone());
        }
        Ok((Added::New, record))
    }

    /// How `record` (as [`Catalog::get`] gave it) is converted, were its files missing.
    fn source(&self, record: &ModelRecord) -> Result<Source, CatalogError> {
        let folder = self.folder(record);
        let id = &record.summary.id;
        if self.samples.contains_key(id) {
            return Ok(Source::Sample {
                folder,
                id: id.clone(),
            });
        }
        let file = record
            .file_name
            .clone()
            .ok_or_else(|| CatalogError::UnknownModel(id.clone()))?;
        Ok(Source::File { folder, file })
    }

    /// The mesh of `record` (as [`Catalog::get`] gave it) in transfer form; an upload stored
    /// before conversions kept it on disk is converted now.
    pub async fn mesh(&self, record: &ModelRecord) -> Result<MeshBytes, CatalogError> {
        if let Some((bytes, _)) = self.samples.get(&record.summary.id) {
            return Ok(MeshBytes::Memory(bytes.clone()));
        }
        ready(record)?;
        let path = self.folder(record).join(MESH);
        if !tokio::fs::try_exists(&path).await? {
            self.converter.prepare(self.source(record)?).await?;
        }
        Ok(MeshBytes::File(path))
    }

    /// Where the coarse form of `record`'s mesh is kept, if it has one: models with levels of
    /// detail converted since coarse forms were written (samples are small and have none).
    pub async fn preview(&self, record: &ModelRecord) -> Result<Option<PathBuf>, CatalogError> {
        if self.samples.contains_key(&record.summary.id) {
            return Ok(None);
        }
        ready(record)?;
        let path = self.folder(record).join(PREVIEW);
        Ok(tokio::fs::try_exists(&path).await?.then_some(path))
    }

    /// The parts list of `record` as JSON ([`crate::catalog::parts`]); an upload converted
    /// before conversions wrote one is converted again now.
    pub async fn parts(&self, record: &ModelRecord) -> Result<Bytes, CatalogError> {
        if let Some((_, parts)) = self.samples.get(&record.summary.id) {
            return Ok(parts.clone());
        }
        ready(record)?;
        let path = self.folder(record).join(PARTS);
        if let Ok(json) = tokio::fs::read(&path).await {
            return Ok(Bytes::from(json));
        }
        self.converter.prepare(self.source(record)?).await?;
        Ok(Bytes::from(tokio::fs::read(&path).await?))
    }

    /// The PNG thumbnail of `record`, rendered once and kept on disk.
    pub async fn thumbnail(&self, record: &ModelRecord) -> Result<Vec<u8>, CatalogError> {
        let path = self.folder(record).join(THUMBNAIL);
        if let Ok(png) = tokio::fs::read(&path).await {
            return Ok(png);
        }
        ready(record)?;
        // The conversion makes the folder if need be (a sample's, the first time).
        self.converter.prepare(self.source(record)?).await?;
        Ok(tokio::fs::read(&path).await?)
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

/// Refuses a model that cannot be shown yet, or ever.
fn ready(record: &ModelRecord) -> Result<(), CatalogError> {
    match &record.status {
        ModelStatus::Ready => Ok(()),
        status => Err(CatalogError::NotReady(
            record.summary.id.clone(),
            status.clone(),
        )),
    }
}
