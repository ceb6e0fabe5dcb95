//! The model catalog over HTTP: list, upload (multipart), read, delete, thumbnails. Every route
//! needs a sign-in: an account sees the samples and its own uploads, a guest those of the account
//! whose space it joined; another account's upload answers 404.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::multipart::{Field, MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use parallax_core::ModelId;
use parallax_core::api::{Model, Models, Parts};
use utoipa::{IntoParams, ToSchema};

use crate::base::error::{AppError, ErrorBody, Result};
use crate::base::store::{ModelRecord, ModelStatus};
use crate::catalog::files::{Staging, UploadedFile};
use crate::catalog::models::{Added, CatalogError};
use crate::http::auth::{Caller, Visitor};
use crate::state::AppState;

pub fn router(max_upload_bytes: usize) -> Router<AppState> {
    Router::new()
        .route(
            "/v1/models",
            get(list_handler)
                .post(upload_handler)
                .layer(DefaultBodyLimit::max(max_upload_bytes)),
        )
        .route("/v1/models/{id}", get(model_handler).delete(delete_handler))
        .route("/v1/models/{id}/thumbnail.png", get(thumbnail_handler))
        .route("/v1/models/{id}/parts", get(parts_handler))
}

/// The model's bounds (where a review's cut planes go) and its parts as a tree, read from the
/// file its conversion wrote.
#[utoipa::path(get, path = "/v1/models/{id}/parts", operation_id = "getModelParts", tag = "models",
    params(ModelPath), security(("access_token" = []), ("session_cookie" = [])),
    responses((status = 200, body = Parts), (status = 401, body = ErrorBody),
        (status = 404, description = "No such model, or another account's", body = ErrorBody),
        (status = 409, description = "Not converted (yet, or it failed)", body = ErrorBody)))]
pub(crate) async fn parts_handler(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    let id = ModelId::new(id);
    let record = state.catalog.get(&id, &visitor.claims.sub).await?;
    let json = state.catalog.parts(&record).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json))
}

/// A catalog entry as the API reports it.
fn model_of(record: ModelRecord) -> Model {
    let id = record.summary.id;
    Model {
        thumbnail_url: format!("/v1/models/{id}/thumbnail.png"),
        id,
        name: record.summary.name,
        triangles: record.summary.triangles,
        source: record.source.as_str().into(),
        file_name: record.file_name,
        format: record.format,
        size_bytes: record.size_bytes,
        status: record.status.as_str().into(),
        failure: match record.status {
            ModelStatus::Failed(reason) => Some(reason),
            _ => None,
        },
        progress: None,
    }
}

/// `model` with how far its conversion is, from `catalog`, while it converts.
fn with_progress(mut model: Model, catalog: &crate::catalog::models::Catalog) -> Model {
    if model.status == ModelStatus::Converting.as_str() {
        model.progress = catalog.progress(&model.id);
    }
    model
}

impl From<CatalogError> for AppError {
    fn from(error: CatalogError) -> Self {
        match error {
            // File names are no part of the form the document states.
            CatalogError::NoModelFile | CatalogError::BadFileName(_) => {
                AppError::unprocessable(error.to_string(), Some("file"))
            }
            // Of the documented form (a file), but not a model an importer reads.
            CatalogError::Invalid(_) => AppError::Client {
                status: StatusCode::UNPROCESSABLE_ENTITY,
                code: "InvalidModel",
                message: error.to_string(),
                target: Some("file"),
            },
            CatalogError::UnknownModel(_) => AppError::not_found(error.to_string()),
            CatalogError::Sample(_) | CatalogError::Shown { .. } | CatalogError::NotReady(..) => {
                AppError::conflict(error.to_string())
            }
            CatalogError::Refused(refused) => *refused,
            CatalogError::Render(_) | CatalogError::Io(_) | CatalogError::Store(_) => {
                AppError::Internal(error.into())
            }
        }
    }
}

/// The samples and the caller's account's uploads (a guest: those of the space's owner).
#[utoipa::path(get, path = "/v1/models", operation_id = "listModels", tag = "models",
    security(("access_token" = []), ("session_cookie" = [])),
    responses((status = 200, body = Models), (status = 401, body = ErrorBody)))]
pub(crate) async fn list_handler(
    State(state): State<AppState>,
    visitor: Visitor,
) -> Result<Json<Models>> {
    let models = state
        .catalog
        .list(&visitor.claims.sub)
        .await?
        .into_iter()
        .map(|record| with_progress(model_of(record), &state.catalog))
        .collect();
    Ok(Json(Models { models }))
}

/// The model `{id}` in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Describes the path; handlers take the id as a string.
pub(crate) struct ModelPath {
    /// A sample's name (`gear`) or an upload's content hash.
    id: String,
}

/// One catalog entry; while a STEP file converts, how far it is.
#[utoipa::path(get, path = "/v1/models/{id}", operation_id = "getModel", tag = "models",
    params(ModelPath), security(("access_token" = []), ("session_cookie" = [])),
    responses((status = 200, body = Model), (status = 401, body = ErrorBody),
        (status = 404, description = "No such model, or another account's", body = ErrorBody)))]
pub(crate) async fn model_handler(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Result<Json<Model>> {
    let record = state
        .catalog
        .get(&ModelId::new(id), &visitor.claims.sub)
        .await?;
    Ok(Json(with_progress(model_of(record), &state.catalog)))
}

/// The multipart form of an upload.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Describes the form; the handler reads it part by part.
pub(crate) struct UploadForm {
    /// The model file (glTF, GLB, OBJ, STL, STEP), and beside it the files a `.gltf` or `.obj`
    /// names and a `ConversionSettings.json`; each a plain file name, sent once; at most 64.
    #[schema(value_type = Vec<String>, format = Binary, min_items = 1, max_items = 64)]
    file: Vec<Vec<u8>>,
    /// The name the catalog shows; the file's, without one. At most 256 bytes.
    name: Option<String>,
}

/// The longest model name an upload may give.
const MAX_NAME_BYTES: usize = 256;

/// `POST /v1/models`, multipart: one or more `file` parts (a model, plus the buffers a `.gltf`
/// refers to) and an optional `name`. The same files again are stored once.
#[utoipa::path(post, path = "/v1/models", operation_id = "uploadModel", tag = "models",
    request_body(content = UploadForm, content_type = "multipart/form-data"),
    security(("access_token" = []), ("session_cookie" = [])),
    responses(
        (status = 201, description = "Stored and ready", body = Model),
        (status = 202, description = "Stored; a STEP file converts: poll the model until Ready or Failed", body = Model),
        (status = 200, description = "The same files were uploaded before", body = Model),
        (status = 400, description = "Not a multipart form with 1 to 64 files", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "A guest's sign-in", body = ErrorBody),
        (status = 408, description = "The upload stalled for 30 s or took over 10 minutes", body = ErrorBody),
        (status = 413, description = "Larger than --max-upload-mb", body = ErrorBody),
        (status = 422, description = "No model file among the files (by its name's extension), a file name that is not a plain one or comes twice, or InvalidModel: no importer reads the file, with why", body = ErrorBody),
        (status = 429, description = "The account's, or the coordinator's, uploads at once", body = ErrorBody)))]
pub(crate) async fn upload_handler(
    State(state): State<AppState>,
    caller: Caller,
    multipart: std::result::Result<Multipart, MultipartRejection>,
) -> Result<impl IntoResponse> {
    let mut multipart = multipart.map_err(|e| AppError::bad_request(e.body_text(), None))?;
    let _turn = state.quotas.upload(&caller.account)?;
    // Each file goes to disk a chunk at a time as it arrives: however big the upload, the
    // coordinator holds a few KiB of it. One that stalls, or drags on, gives its turn back.
    let staging = state.catalog.stage().await?;
    let received = tokio::time::timeout(UPLOAD_DEADLINE, receive(&mut multipart, &staging))
        .await
        .map_err(|_| too_slow("the upload took longer than its 10 minutes"))??;
    let (files, name) = received;
    if files.is_empty() {
        return Err(AppError::bad_request(
            "send the model as a multipart file part (e.g. curl -F file=@part.stl)",
            Some("file"),
        ));
    }
    let (added, record) = state
        .catalog
        .add(staging, files, name, &caller.account)
        .await?;
    let status = match added {
        // Stored, and converted once its conversion ends: poll `GET /v1/models/{id}`.
        Added::New if record.status == ModelStatus::Converting => StatusCode::ACCEPTED,
        Added::New => StatusCode::CREATED,
        Added::Existing => StatusCode::OK,
    };
    Ok((status, Json(model_of(record))))
}

/// Most files one upload may hold (a model and what it names beside it).
const MAX_FILES: usize = 64;
/// Longest an upload may go without a byte arriving.
const UPLOAD_IDLE: Duration = Duration::from_secs(30);
/// Longest an upload may take in all.
const UPLOAD_DEADLINE: Duration = Duration::from_secs(600);

/// 408: an upload too slow to keep its turn.
fn too_slow(message: &str) -> AppError {
    AppError::client(StatusCode::REQUEST_TIMEOUT, "RequestTimeout", message)
}

/// The next chunk of `field`, or 408 when none comes within [`UPLOAD_IDLE`].
async fn next_chunk(field: &mut Field<'_>) -> Result<Option<Bytes>> {
    tokio::time::timeout(UPLOAD_IDLE, field.chunk())
        .await
        .map_err(|_| too_slow("nothing of the upload arrived for 30 s"))?
        .map_err(multipart_error)
}

/// Receives the upload's file parts into `staging` and its `name` part, if any.
async fn receive(
    multipart: &mut Multipart,
    staging: &Staging,
) -> Result<(Vec<UploadedFile>, Option<String>)> {
    let mut files = Vec::new();
    let mut name = None;
    loop {
        let field = tokio::time::timeout(UPLOAD_IDLE, multipart.next_field())
            .await
            .map_err(|_| too_slow("nothing of the upload arrived for 30 s"))?
            .map_err(multipart_error)?;
        let Some(mut field) = field else {
            return Ok((files, name));
        };
        if field.name() == Some("name") {
            let mut text = Vec::new();
            while let Some(chunk) = next_chunk(&mut field).await? {
                text.extend_from_slice(&chunk);
                if text.len() > MAX_NAME_BYTES {
                    return Err(AppError::bad_request(
                        format!("a model's name has at most {MAX_NAME_BYTES} bytes"),
                        Some("name"),
                    ));
                }
            }
            name = Some(String::from_utf8_lossy(&text).into_owned());
            continue;
        }
        if field.name() != Some("file") {
            return Err(AppError::bad_request(
                format!(
                    "an upload's parts are `file` and `name`, not {:?}",
                    field.name().unwrap_or_default()
                ),
                None,
            ));
        }
        let Some(file_name) = field.file_name().map(str::to_owned) else {
            continue;
        };
        if files.len() == MAX_FILES {
            return Err(AppError::bad_request(
                format!("an upload holds at most {MAX_FILES} files"),
                Some("file"),
            ));
        }
        let mut receiving = staging
            .receive(&file_name)
            .await
            .map_err(CatalogError::from)?
            .ok_or_else(|| {
                AppError::unprocessable(
                    format!(
                        "{file_name:?} is not a file name Parallax accepts (a plain name, sent once)"
                    ),
                    Some("file"),
                )
            })?;
        while let Some(chunk) = next_chunk(&mut field).await? {
            receiving.write(&chunk).await.map_err(CatalogError::from)?;
        }
        files.push(receiving.finish().await.map_err(CatalogError::from)?);
    }
}

fn multipart_error(error: MultipartError) -> AppError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AppError::Client {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "PayloadTooLarge",
            message: "the upload is larger than this server accepts (see --max-upload-mb)".into(),
            target: Some("file"),
        }
    } else {
        AppError::bad_request(
            format!("the multipart body is malformed: {}", error.body_text()),
            None,
        )
    }
}

/// Deletes an upload and its files (a sample, one a space shows, or one converting: 409).
#[utoipa::path(delete, path = "/v1/models/{id}", operation_id = "deleteModel", tag = "models",
    params(ModelPath), security(("access_token" = []), ("session_cookie" = [])),
    responses((status = 204, description = "Deleted"), (status = 401, body = ErrorBody),
        (status = 403, description = "A guest's sign-in", body = ErrorBody),
        (status = 404, description = "No such model, or another account's", body = ErrorBody),
        (status = 409, description = "A sample, shown in a space, or still converting", body = ErrorBody)))]
pub(crate) async fn delete_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let id = ModelId::new(id);
    let shown_in = state.spaces.showing(&id).await;
    state.catalog.delete(&id, &caller.account, shown_in).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The model's thumbnail, rendered once at conversion.
#[utoipa::path(get, path = "/v1/models/{id}/thumbnail.png", operation_id = "getModelThumbnail", tag = "models",
    params(ModelPath), security(("access_token" = []), ("session_cookie" = [])),
    responses((status = 200, description = "A PNG", content_type = "image/png", body = Vec<u8>),
        (status = 401, body = ErrorBody),
        (status = 404, description = "No such model, or another account's", body = ErrorBody),
        (status = 409, description = "Not converted (yet, or it failed)", body = ErrorBody)))]
pub(crate) async fn thumbnail_handler(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    let record = state
        .catalog
        .get(&ModelId::new(id), &visitor.claims.sub)
        .await?;
    let png = state.catalog.thumbnail(&record).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/png"),
            // A model's content never changes under its id, so neither does its thumbnail; but
            // it is the account's, so no shared cache may keep it.
            (header::CACHE_CONTROL, "private, max-age=86400"),
        ],
        png,
    ))
}
