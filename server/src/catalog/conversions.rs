//! Conversions as Azure Remote Rendering ran them (REST API 2021-01-01): an account names a model
//! file in a storage container and an output container; the conversion reads the file and the
//! files beside it, converts it into the catalog (as an upload of that account, with the same
//! checks, limits and `ConversionSettings.json`), and writes the converted asset to the output.
//!
//! A storage container here is a folder the operator names: a `file:` URL of a folder under the
//! storage root (`--storage-root`). Anything else — another scheme, a folder outside the root, a
//! path that climbs out of its container — is refused. ARR's access signatures have nothing to
//! sign here: they are accepted, never stored and never echoed.
//!
//! A conversion is `NotStarted`, then `Running`, then `Succeeded` or `Failed`. One a stop
//! interrupted runs again at the next start (a second run of the same files is the same catalog
//! model), so `Cancelled`, which ARR's service set when it gave a conversion up, never happens.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use parallax_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use thiserror::Error;
use url::Url;
use utoipa::ToSchema;

use crate::base::clock::Clock;
use crate::base::store::{ModelStatus, Store, StoredConversion};
use crate::catalog::convert::MESH;
use crate::catalog::files::{
    Staging, UploadedFile, copy_atomically, safe_file_name, write_atomically,
};
use crate::catalog::models::{Catalog, CatalogError, MeshBytes};

/// Longest conversion id, as ARR's.
const MAX_ID_LEN: usize = 256;

/// Longest output file name, in characters: 63 of any kind fit a file name's 255 bytes.
const MAX_OUTPUT_NAME_CHARS: usize = 63;

/// Where a conversion reads its input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InputLocation {
    /// A `file:` URL of a folder of this account's storage (another answers 404).
    #[schema(pattern = "^[Ff][Ii][Ll][Ee]:")]
    pub storage_container_uri: String,
    /// Accepted for ARR's clients; a folder needs no signature. Never stored or echoed.
    #[serde(default, skip_serializing)]
    pub storage_container_read_list_sas: Option<String>,
    /// A relative path of plain names ('.' and '..' are none), or nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = r"^(?:(?:[^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+)(?:/(?:(?:[^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+)|\.)?)*)?$"
    )]
    pub blob_prefix: Option<String>,
    /// The model file: a relative path of plain names under the prefix.
    #[schema(
        pattern = r"^(?:[^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+)(?:/(?:(?:[^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+)|\.)?)*$"
    )]
    pub relative_input_asset_path: String,
}

/// Where a conversion writes its output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OutputLocation {
    /// A `file:` URL of a folder of this account's storage (another answers 404).
    #[schema(pattern = "^[Ff][Ii][Ll][Ee]:")]
    pub storage_container_uri: String,
    /// As [`InputLocation::storage_container_read_list_sas`].
    #[serde(default, skip_serializing)]
    pub storage_container_write_sas: Option<String>,
    /// A relative path of plain names ('.' and '..' are none), or nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = r"^(?:(?:[^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+)(?:/(?:(?:[^/.][^/]*|\.[^/.][^/]*|\.\.[^/]+)|\.)?)*)?$"
    )]
    pub blob_prefix: Option<String>,
    /// A file name (no '/', not starting with '.') of at most 63 characters ending in
    /// `.arrAsset`; default: the input's name with that ending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^[^./\\\x00][^/\\\x00]*\.arrAsset$", max_length = 63)]
    pub output_asset_filename: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConversionSettings {
    pub input_location: InputLocation,
    pub output_location: OutputLocation,
}

impl ConversionSettings {
    /// The settings as stored and compared: without access signatures, which change from one
    /// retry to the next.
    fn unsigned(mut self) -> Self {
        self.input_location.storage_container_read_list_sas = None;
        self.output_location.storage_container_write_sas = None;
        self
    }

    /// The output file's name: the one given, or the input's stem (without leading dots, at
    /// most 54 characters) with `.arrAsset`.
    fn output_file(&self) -> String {
        self.output_location
            .output_asset_filename
            .clone()
            .unwrap_or_else(|| {
                let input = Path::new(&self.input_location.relative_input_asset_path);
                let stem: String = input
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or_default()
                    .trim_start_matches('.')
                    .chars()
                    .take(MAX_OUTPUT_NAME_CHARS - ".arrAsset".len())
                    // What a file name cannot hold here.
                    .map(|c| if matches!(c, '\\' | '\0') { '_' } else { c })
                    .collect();
                let stem = if stem.is_empty() { "model" } else { &stem };
                format!("{stem}.arrAsset")
            })
    }
}

/// A conversion as the API reports it.
#[derive(Debug, Clone)]
pub struct Conversion {
    pub id: String,
    pub settings: ConversionSettings,
    pub status: &'static str,
    pub error: Option<(String, String)>,
    pub output_uri: Option<String>,
    /// The catalog model it made.
    pub model: Option<parallax_core::ModelId>,
    pub created_at: Timestamp,
}

#[derive(Debug, Error)]
pub enum ConversionError {
    /// The request is wrong: the field it names, and why.
    #[error("{message}")]
    Invalid {
        target: &'static str,
        message: String,
    },
    #[error("there is no conversion `{0}` in this account")]
    Unknown(String),
    /// A container URI that is not one of this account's (another account's, or none at all):
    /// the same answer for both, so nothing tells them apart.
    #[error("{uri:?} is not a storage container of this account")]
    NoContainer { target: &'static str, uri: String },
    #[error("a conversion `{0}` exists with other settings")]
    Conflict(String),
    /// Over one of the account's quotas.
    #[error(transparent)]
    Refused(CatalogError),
    #[error(transparent)]
    Store(#[from] sqlx::Error),
}

fn invalid(target: &'static str, message: impl Into<String>) -> ConversionError {
    ConversionError::Invalid {
        target,
        message: message.into(),
    }
}

/// Whether a conversion was made by this call or found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    Existing,
}

/// The operator's storage: each account's containers are the folders under `root/ACCOUNT/`, and
/// no account reaches another's. Errors name what the caller gave, never a path of the server.
#[derive(Debug, Clone)]
pub struct Storage {
    root: PathBuf,
}

impl Storage {
    /// The storage under `root`, made if it is missing.
    pub fn open(root: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(root)?;
        Ok(Self {
            root: root.canonicalize()?,
        })
    }

    /// The folder of `account`'s containers.
    fn of(&self, account: &str) -> Result<PathBuf, ConversionError> {
        if !safe_file_name(account) {
            return Err(invalid("accountId", "not an account's id"));
        }
        Ok(self.root.join(account))
    }

    /// The folder a container URI names, if it is one of `account`'s.
    fn container(
        &self,
        account: &str,
        uri: &str,
        target: &'static str,
    ) -> Result<PathBuf, ConversionError> {
        let not_ours = || ConversionError::NoContainer {
            target,
            uri: uri.to_string(),
        };
        // What is not a file: URL cannot be a container here; what is one and names no folder
        // of this account's is not one of its containers.
        let file_url = uri
            .get(..5)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("file:"));
        let url = Url::parse(uri).ok().filter(|_| file_url);
        let Some(url) = url.filter(|url| url.scheme() == "file") else {
            if file_url {
                return Err(not_ours());
            }
            return Err(invalid(
                target,
                format!(
                    "{uri:?} is not a storage container here: containers are file: URLs of the \
                     folders in this account's storage (the storage root's folder named by the \
                     account id)"
                ),
            ));
        };
        let path = url.to_file_path().map_err(|()| not_ours())?;
        let plain = path
            .components()
            .all(|c| !matches!(c, Component::ParentDir | Component::CurDir));
        if !plain || !path.starts_with(self.of(account)?) {
            return Err(not_ours());
        }
        Ok(path)
    }

    /// Whether the open `file` is one in `account`'s storage (as the kernel says where it is).
    fn holds_open(&self, account: &str, file: &tokio::fs::File) -> bool {
        use std::os::fd::AsRawFd;
        let Ok(own) = self.of(account) else {
            return false;
        };
        std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
            .is_ok_and(|real| real.starts_with(own))
    }

    /// Whether `path`, through every link, is still in `account`'s storage.
    async fn holds(&self, account: &str, path: &Path) -> bool {
        let Ok(own) = self.of(account) else {
            return false;
        };
        tokio::fs::canonicalize(path)
            .await
            .is_ok_and(|real| real.starts_with(own))
    }

    /// `container/prefix/relative`, refused if a part of it is not a plain name.
    fn place(
        container: &Path,
        prefix: Option<&str>,
        relative: &str,
        target: &'static str,
    ) -> Result<PathBuf, ConversionError> {
        let mut path = container.to_path_buf();
        for part in [prefix.unwrap_or(""), relative] {
            for component in Path::new(part).components() {
                match component {
                    Component::Normal(name) => path.push(name),
                    _ => {
                        return Err(invalid(
                            target,
                            format!("{part:?} must be a relative path of plain names"),
                        ));
                    }
                }
            }
        }
        Ok(path)
    }

    /// The model file `input` names, in `account`'s storage.
    fn input_path(&self, account: &str, input: &InputLocation) -> Result<PathBuf, ConversionError> {
        let container = self.container(
            account,
            &input.storage_container_uri,
            "settings.inputLocation.storageContainerUri",
        )?;
        Self::place(
            &container,
            input.blob_prefix.as_deref(),
            &input.relative_input_asset_path,
            "settings.inputLocation.relativeInputAssetPath",
        )
    }

    /// The asset file `settings` write, in `account`'s storage.
    fn output_path(
        &self,
        account: &str,
        settings: &ConversionSettings,
    ) -> Result<PathBuf, ConversionError> {
        let output = &settings.output_location;
        let container = self.container(
            account,
            &output.storage_container_uri,
            "settings.outputLocation.storageContainerUri",
        )?;
        Self::place(
            &container,
            output.blob_prefix.as_deref(),
            &settings.output_file(),
            "settings.outputLocation.blobPrefix",
        )
    }

    /// The URL of a file in the storage.
    fn url_of(path: &Path) -> String {
        Url::from_file_path(path).map_or_else(|()| path.display().to_string(), String::from)
    }
}

/// Most files a conversion reads beside its model (ARR read every blob under the prefix).
const MAX_INPUT_FILES: usize = 256;

/// Runs conversions and answers for them.
pub struct Conversions {
    store: Store,
    catalog: Arc<Catalog>,
    storage: Storage,
    clock: Arc<dyn Clock>,
    /// Largest input (the model file and those beside it) read, in bytes: the upload limit.
    max_input_bytes: usize,
}

impl Conversions {
    pub fn new(
        store: Store,
        catalog: Arc<Catalog>,
        storage: Storage,
        clock: Arc<dyn Clock>,
        max_input_bytes: usize,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            catalog,
            storage,
            clock,
            max_input_bytes,
        })
    }

    /// Runs again the conversions a stop interrupted.
    pub async fn resume(self: &Arc<Self>) -> Result<(), ConversionError> {
        for stored in self.store.unfinished_conversions().await? {
            tracing::info!(
                account = stored.account,
                id = stored.id,
                "resuming a conversion"
            );
            self.start(stored);
        }
        Ok(())
    }

    /// `PUT`: creates conversion `id` of `account`, or finds the same one made before.
    pub async fn create(
        self: &Arc<Self>,
        account: &str,
        id: &str,
        settings: ConversionSettings,
    ) -> Result<(Created, Conversion), ConversionError> {
        check_id(id)?;
        let settings = settings.unsigned();
        self.check(account, &settings)?;
        // A retry of one it made before is no conversion more. Counted until it is stored.
        let _reserved = match self.store.conversion(account, id).await? {
            None => Some(
                self.catalog
                    .may_convert(account)
                    .await
                    .map_err(ConversionError::Refused)?,
            ),
            Some(_) => None,
        };
        let text = serde_json::to_string(&settings).unwrap_or_default();
        let (new, stored) = self
            .store
            .insert_conversion(&StoredConversion {
                account: account.to_string(),
                id: id.to_string(),
                settings: text.clone(),
                status: "NotStarted".into(),
                error: None,
                model: None,
                output_uri: None,
                created_at: self.clock.now(),
            })
            .await?;
        if !new {
            let same = serde_json::from_str::<ConversionSettings>(&stored.settings)
                .is_ok_and(|before| before == settings);
            if !same {
                return Err(ConversionError::Conflict(id.to_string()));
            }
            return Ok((Created::Existing, view(stored)?));
        }
        self.start(stored.clone());
        Ok((Created::New, view(stored)?))
    }

    pub async fn get(&self, account: &str, id: &str) -> Result<Conversion, ConversionError> {
        let stored = self
            .store
            .conversion(account, id)
            .await?
            .ok_or_else(|| ConversionError::Unknown(id.to_string()))?;
        view(stored)
    }

    /// Up to `limit` of the account's conversions after the first `skip`, oldest first; and
    /// whether there are more.
    pub async fn list(
        &self,
        account: &str,
        skip: usize,
        limit: usize,
    ) -> Result<(Vec<Conversion>, bool), ConversionError> {
        let mut stored = self.store.conversions(account, skip, limit + 1).await?;
        let more = stored.len() > limit;
        stored.truncate(limit);
        Ok((
            stored.into_iter().map(view).collect::<Result<_, _>>()?,
            more,
        ))
    }

    /// Refuses settings whose locations are not in `account`'s storage, before anything is
    /// stored.
    fn check(&self, account: &str, settings: &ConversionSettings) -> Result<(), ConversionError> {
        if settings.input_location.relative_input_asset_path.is_empty() {
            return Err(invalid(
                "settings.inputLocation.relativeInputAssetPath",
                "relativeInputAssetPath must name the model file",
            ));
        }
        self.storage.input_path(account, &settings.input_location)?;
        let file = settings.output_file();
        if !file.ends_with(".arrAsset")
            || !safe_file_name(&file)
            || file.chars().count() > MAX_OUTPUT_NAME_CHARS
        {
            return Err(invalid(
                "settings.outputLocation.outputAssetFilename",
                format!(
                    "{file:?} must be a plain file name of at most {MAX_OUTPUT_NAME_CHARS} \
                     characters ending in .arrAsset"
                ),
            ));
        }
        self.storage.output_path(account, settings)?;
        Ok(())
    }

    fn start(self: &Arc<Self>, stored: StoredConversion) {
        let conversions = self.clone();
        tokio::spawn(async move {
            let mut stored = stored;
            stored.status = "Running".into();
            if let Err(e) = conversions.store.update_conversion(&stored).await {
                tracing::error!("recording a conversion's start: {e}");
                return;
            }
            match conversions.run(&stored).await {
                Ok((model, output)) => {
                    stored.status = "Succeeded".into();
                    stored.model = Some(model);
                    stored.output_uri = Some(output);
                }
                Err((code, message)) => {
                    tracing::warn!(id = stored.id, "a conversion failed: {message}");
                    stored.status = "Failed".into();
                    stored.error = Some((code.to_string(), message));
                }
            }
            if let Err(e) = conversions.store.update_conversion(&stored).await {
                tracing::error!("recording a conversion's end: {e}");
            }
        });
    }

    /// Converts `stored`'s input into the catalog and writes the output; returns the model and
    /// the output's URL, or an error code and message.
    async fn run(
        &self,
        stored: &StoredConversion,
    ) -> Result<(parallax_core::ModelId, String), (&'static str, String)> {
        let settings: ConversionSettings = serde_json::from_str(&stored.settings)
            .map_err(|e| ("InternalServerError", format!("the stored settings: {e}")))?;
        let account = stored.account.as_str();
        let placed = self
            .storage
            .input_path(account, &settings.input_location)
            .map_err(|e| ("InvalidInput", e.to_string()))?;
        let input = &settings.input_location.relative_input_asset_path;
        let staging = self.catalog.stage().await.map_err(failure)?;
        let files = self.input_files(account, &placed, input, &staging).await?;
        let main_name = placed
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let main = files.iter().position(|f| f.name == main_name).ok_or((
            "InvalidInput",
            format!("{main_name:?} is not a file Parallax reads"),
        ))?;
        let (_, record) = self
            .catalog
            .add_with_main(
                staging,
                files,
                main,
                Some(main_name.clone()),
                &stored.account,
                // This conversion counts against the account's conversions already.
                true,
            )
            .await
            .map_err(failure)?;
        // Which model it makes, as soon as it is known: a STEP model still converting then counts
        // once against the account's conversions, as this conversion.
        let running = StoredConversion {
            model: Some(record.summary.id.clone()),
            ..stored.clone()
        };
        if let Err(e) = self.store.update_conversion(&running).await {
            tracing::warn!(id = stored.id, "recording a conversion's model: {e}");
        }
        let record = self
            .catalog
            .converted(&record.summary.id, &stored.account)
            .await
            .map_err(failure)?;
        if let ModelStatus::Failed(reason) = &record.status {
            return Err(("ConversionFailed", format!("{main_name}: {reason}")));
        }
        let path = self
            .storage
            .output_path(account, &settings)
            .map_err(|e| ("InvalidOutput", e.to_string()))?;
        let output = settings.output_file();
        let unwritable = |e: String| {
            (
                "OutputContainerError",
                format!("writing the converted {MESH} {output}: {e}"),
            )
        };
        if let Some(folder) = path.parent() {
            tokio::fs::create_dir_all(folder)
                .await
                .map_err(|e| unwritable(e.to_string()))?;
            // A link in the container must not lead the output into another account's storage.
            if !self.storage.holds(account, folder).await {
                return Err(unwritable(
                    "its folder leads outside this account's storage".into(),
                ));
            }
        }
        // File to file: the coordinator holds no upload's mesh in memory.
        let written = match self.catalog.mesh(&record).await.map_err(failure)? {
            MeshBytes::File(mesh) => copy_atomically(&mesh, &path).await,
            MeshBytes::Memory(bytes) => write_atomically(&path, &bytes).await,
        };
        written.map_err(|e| unwritable(e.kind().to_string()))?;
        Ok((record.summary.id, Storage::url_of(&path)))
    }

    /// The model file at `path` (`input`, as the caller named it) and the plain files beside
    /// it (the buffers and textures a glTF names, a `ConversionSettings.json`), as ARR read every
    /// blob under the prefix: all in `account`'s storage, through any link, and at most the
    /// upload limit together, measured before anything is read. They are copied into `staging`,
    /// file to file, as an upload is received.
    async fn input_files(
        &self,
        account: &str,
        path: &Path,
        input: &str,
        staging: &Staging,
    ) -> Result<Vec<UploadedFile>, (&'static str, String)> {
        let missing = |e: std::io::Error| ("InputContainerError", format!("{input}: {}", e.kind()));
        tokio::fs::metadata(path).await.map_err(missing)?;
        if !self.storage.holds(account, path).await {
            return Err((
                "InvalidInput",
                format!("{input} leads outside this account's storage"),
            ));
        }
        let real = tokio::fs::canonicalize(path).await.map_err(missing)?;
        let folder = real
            .parent()
            .unwrap_or(self.storage.root.as_path())
            .to_path_buf();
        let mut beside = Vec::new();
        let mut total = 0u64;
        let mut entries = tokio::fs::read_dir(&folder).await.map_err(missing)?;
        while let Some(entry) = entries.next_entry().await.map_err(missing)? {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !safe_file_name(&name) {
                continue;
            }
            // Opened, then checked: what is copied is the file checked, whatever its path is
            // made to point at meanwhile.
            let Ok(file) = tokio::fs::File::open(entry.path()).await else {
                continue;
            };
            let Ok(metadata) = file.metadata().await else {
                continue;
            };
            if !metadata.is_file() || !self.storage.holds_open(account, &file) {
                continue;
            }
            if beside.len() == MAX_INPUT_FILES {
                return Err((
                    "InputContainerError",
                    format!("more than {MAX_INPUT_FILES} files lie beside {input}"),
                ));
            }
            total += metadata.len();
            if total > self.max_input_bytes as u64 {
                return Err((
                    "InputContainerError",
                    format!(
                        "the files beside {input} come to more than the {} MiB an upload may be",
                        self.max_input_bytes / (1024 * 1024)
                    ),
                ));
            }
            beside.push((name, file, metadata.len()));
        }
        let mut files = Vec::new();
        for (name, file, size) in beside {
            let copied = staging.copy_in(&name, file, size).await.map_err(missing)?;
            files.push(copied.ok_or_else(|| {
                (
                    "InputContainerError",
                    format!("{name} changed while it was read"),
                )
            })?);
        }
        Ok(files)
    }
}

fn failure(error: CatalogError) -> (&'static str, String) {
    let code = match error {
        CatalogError::Invalid(_) | CatalogError::NoModelFile | CatalogError::BadFileName(_) => {
            "InvalidInput"
        }
        CatalogError::Refused(_) => "QuotaExceeded",
        _ => "ConversionFailed",
    };
    (code, error.to_string())
}

fn check_id(id: &str) -> Result<(), ConversionError> {
    let fine = !id.is_empty()
        && id.chars().count() <= MAX_ID_LEN
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if fine {
        Ok(())
    } else {
        Err(invalid(
            "conversionId",
            format!(
                "a conversion id has 1 to {MAX_ID_LEN} letters, digits, '-' and '_', not {id:?}"
            ),
        ))
    }
}

fn view(stored: StoredConversion) -> Result<Conversion, ConversionError> {
    let settings = serde_json::from_str(&stored.settings)
        .map_err(|e| ConversionError::Store(sqlx::Error::Decode(Box::new(e))))?;
    let status = match stored.status.as_str() {
        "Running" => "Running",
        "Succeeded" => "Succeeded",
        "Failed" => "Failed",
        "Cancelled" => "Cancelled",
        _ => "NotStarted",
    };
    Ok(Conversion {
        id: stored.id,
        settings,
        status,
        error: stored.error,
        output_uri: stored.output_uri,
        model: stored.model,
        created_at: stored.created_at,
    })
}
