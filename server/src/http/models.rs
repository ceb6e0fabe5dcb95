//! The model catalog over HTTP: list, upload (multipart), read, delete, thumbnails. Every route
//! needs a sign-in: an account sees the samples and its own uploads, a guest those of the account
//! whose space it joined; another account's upload answers 404.

use axum::extract::multipart::{MultipartError, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use parallax_core::ModelId;
use serde::Serialize;

use crate::base::error::{AppError, Result};
use crate::base::store::ModelRecord;
use crate::catalog::files::UploadedFile;
use crate::catalog::models::{Added, CatalogError, MeshBytes};
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

/// One part of a model, as a design review names it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartJson {
    /// What a review's overrides and a pick's hits call it.
    name: String,
    triangles: u32,
    /// Parts within this one (the importers keep flat lists today: always empty).
    children: Vec<PartJson>,
}

/// `GET /v1/models/{id}/parts`: the model's parts as a tree, in the model's order, and its
/// bounds (where a review's cut planes go).
async fn parts_handler(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>> {
    let id = ModelId::new(id);
    let record = state.catalog.get(&id, &visitor.claims.sub).await?;
    let bytes = match state.catalog.mesh(&record).await? {
        MeshBytes::Memory(bytes) => bytes.to_vec(),
        MeshBytes::File(path) => tokio::fs::read(&path)
            .await
            .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?,
    };
    let parts = parallax_render::Mesh::parts_of_bytes(&bytes).map_err(|e| anyhow::anyhow!(e))?;
    let parts: Vec<PartJson> = parts
        .into_iter()
        .map(|(part, triangles)| PartJson {
            name: part.name,
            triangles,
            children: Vec::new(),
        })
        .collect();
    // Where cut planes go: the model's bounds, in model space.
    let bounds = parallax_render::Mesh::bounds_of_bytes(&bytes)
        .map(|b| serde_json::json!({ "min": b.min.to_array(), "max": b.max.to_array() }));
    Ok(Json(
        serde_json::json!({ "model": id, "bounds": bounds, "parts": parts }),
    ))
}

/// A catalog entry as the API reports it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelJson {
    id: ModelId,
    name: String,
    triangles: u64,
    /// `sample` or `upload`.
    source: &'static str,
    file_name: Option<String>,
    format: Option<String>,
    size_bytes: Option<u64>,
    thumbnail_url: String,
}

impl From<ModelRecord> for ModelJson {
    fn from(record: ModelRecord) -> Self {
        let id = record.summary.id;
        Self {
            thumbnail_url: format!("/v1/models/{id}/thumbnail.png"),
            id,
            name: record.summary.name,
            triangles: record.summary.triangles,
            source: record.source.as_str(),
            file_name: record.file_name,
            format: record.format,
            size_bytes: record.size_bytes,
        }
    }
}

#[derive(Serialize)]
struct ModelList {
    models: Vec<ModelJson>,
}

impl From<CatalogError> for AppError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::NoModelFile | CatalogError::BadFileName(_) => {
                AppError::bad_request(error.to_string(), Some("file"))
            }
            CatalogError::Invalid(_) => AppError::Client {
                status: StatusCode::BAD_REQUEST,
                code: "InvalidModel",
                message: error.to_string(),
                target: Some("file"),
            },
            CatalogError::UnknownModel(_) => AppError::not_found(error.to_string()),
            CatalogError::Sample(_) | CatalogError::Shown { .. } => {
                AppError::conflict(error.to_string())
            }
            CatalogError::Render(_) | CatalogError::Io(_) | CatalogError::Store(_) => {
                AppError::Internal(error.into())
            }
        }
    }
}

async fn list_handler(State(state): State<AppState>, visitor: Visitor) -> Result<Json<ModelList>> {
    let models = state
        .catalog
        .list(&visitor.claims.sub)
        .await?
        .into_iter()
        .map(ModelJson::from)
        .collect();
    Ok(Json(ModelList { models }))
}

async fn model_handler(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(id): Path<String>,
) -> Result<Json<ModelJson>> {
    let record = state
        .catalog
        .get(&ModelId::new(id), &visitor.claims.sub)
        .await?;
    Ok(Json(record.into()))
}

/// `POST /v1/models`, multipart: one or more `file` parts (a model, plus the buffers a `.gltf`
/// refers to) and an optional `name`.
async fn upload_handler(
    State(state): State<AppState>,
    caller: Caller,
    multipart: std::result::Result<Multipart, MultipartRejection>,
) -> Result<impl IntoResponse> {
    let mut multipart = multipart.map_err(|e| AppError::bad_request(e.body_text(), None))?;
    let mut files = Vec::new();
    let mut name = None;
    while let Some(field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.name() == Some("name") {
            name = Some(field.text().await.map_err(multipart_error)?);
            continue;
        }
        let Some(file_name) = field.file_name().map(str::to_owned) else {
            continue;
        };
        let bytes = field.bytes().await.map_err(multipart_error)?;
        files.push(UploadedFile {
            name: file_name,
            bytes: bytes.to_vec(),
        });
    }
    if files.is_empty() {
        return Err(AppError::bad_request(
            "send the model as a multipart file part (e.g. curl -F file=@part.stl)",
            Some("file"),
        ));
    }
    let (added, record) = state.catalog.add(files, name, &caller.account).await?;
    let status = match added {
        Added::New => StatusCode::CREATED,
        Added::Existing => StatusCode::OK,
    };
    Ok((status, Json(ModelJson::from(record))))
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

async fn delete_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let id = ModelId::new(id);
    let shown_in = state.spaces.showing(&id).await;
    state.catalog.delete(&id, &caller.account, shown_in).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn thumbnail_handler(
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
