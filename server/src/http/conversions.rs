//! ARR's conversion REST API (version 2021-01-01): create a conversion, read one, list an
//! account's. What a conversion does is in [`crate::catalog::conversions`].

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::base::clock::rfc3339;
use crate::base::error::{AppError, ErrorBody, Result};
use crate::catalog::conversions::{Conversion, ConversionError, ConversionSettings, Created};
use crate::http::arr::{ArrQuery, next_page, origin};
use crate::http::auth::Caller;
use crate::http::params::{AccountPath, ConversionPath, Skip, Version};
use crate::state::AppState;

/// Conversions per page of the list call.
const PAGE_SIZE: usize = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/accounts/{account_id}/conversions", get(list_handler))
        .route(
            "/accounts/{account_id}/conversions/{conversion_id}",
            get(get_handler).put(create_handler),
        )
}

/// The body of `PUT …/conversions/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateConversionBody {
    settings: ConversionSettings,
}

/// A conversion as ARR reported it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversionJson {
    id: String,
    settings: ConversionSettings,
    /// Once it has succeeded: where the converted asset was written.
    output: Option<ConversionOutput>,
    /// Once it has failed: why.
    error: Option<ConversionErrorJson>,
    /// `NotStarted`, `Running`, `Succeeded`, `Failed` or `Cancelled`.
    #[schema(example = "Succeeded")]
    status: &'static str,
    /// RFC 3339.
    creation_time: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConversionOutput {
    output_asset_uri: String,
    /// Beyond ARR: the catalog model the conversion made, to show in a space.
    model_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversionErrorJson {
    code: String,
    message: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ConversionList {
    conversions: Vec<ConversionJson>,
    /// The next page, when there is one.
    #[serde(rename = "@nextLink", skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
}

impl From<Conversion> for ConversionJson {
    fn from(conversion: Conversion) -> Self {
        Self {
            id: conversion.id,
            settings: conversion.settings,
            output: conversion.output_uri.map(|uri| ConversionOutput {
                output_asset_uri: uri,
                model_id: conversion.model.map(|m| m.as_str().to_string()),
            }),
            error: conversion
                .error
                .map(|(code, message)| ConversionErrorJson { code, message }),
            status: conversion.status,
            creation_time: rfc3339(conversion.created_at),
        }
    }
}

impl From<ConversionError> for AppError {
    fn from(error: ConversionError) -> Self {
        match error {
            ConversionError::Invalid { target, message } => {
                AppError::bad_request(message, Some(target))
            }
            ConversionError::Unknown(_) | ConversionError::NoContainer { .. } => {
                AppError::not_found(error.to_string())
            }
            ConversionError::Conflict(_) => AppError::conflict(error.to_string()),
            ConversionError::Refused(refused) => refused.into(),
            ConversionError::Store(e) => AppError::Internal(e.into()),
        }
    }
}

#[utoipa::path(put, path = "/accounts/{account_id}/conversions/{conversion_id}", operation_id = "createConversion", tag = "conversions",
    params(ConversionPath, Version),
    request_body = CreateConversionBody, security(("access_token" = [])),
    responses((status = 201, description = "Created: the conversion starts", body = ConversionJson), (status = 200, description = "The same conversion exists (a safe retry)", body = ConversionJson),
        (status = 400, description = "Bad request: the error names the field", body = ErrorBody), (status = 401, description = "Missing, invalid or expired token", body = ErrorBody), (status = 403, description = "A token of another account", body = ErrorBody), (status = 404, description = "A container that is not one of this account's", body = ErrorBody), (status = 409, description = "The id exists with other settings", body = ErrorBody), (status = 415, description = "The body is not sent as JSON", body = ErrorBody), (status = 429, description = "QuotaExceeded: the account runs as many conversions as it may, or its storage is full", body = ErrorBody)))]
pub(crate) async fn create_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path((account_id, conversion_id)): Path<(String, String)>,
    ArrQuery(query): ArrQuery,
    body: std::result::Result<Json<CreateConversionBody>, JsonRejection>,
) -> Result<(StatusCode, Json<ConversionJson>)> {
    query.check()?;
    caller.require_account(&account_id)?;
    let Json(body) = body?;
    let (created, conversion) = state
        .conversions
        .create(&account_id, &conversion_id, body.settings)
        .await?;
    let status = match created {
        Created::New => StatusCode::CREATED,
        Created::Existing => StatusCode::OK,
    };
    Ok((status, Json(conversion.into())))
}

#[utoipa::path(get, path = "/accounts/{account_id}/conversions/{conversion_id}", operation_id = "getConversion", tag = "conversions",
    params(ConversionPath, Version),
    security(("access_token" = [])),
    responses((status = 200, body = ConversionJson), (status = 400, description = "Bad request: the error names the field", body = ErrorBody), (status = 401, description = "Missing, invalid or expired token", body = ErrorBody), (status = 403, description = "A token of another account", body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn get_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path((account_id, conversion_id)): Path<(String, String)>,
    ArrQuery(query): ArrQuery,
) -> Result<Json<ConversionJson>> {
    query.check()?;
    caller.require_account(&account_id)?;
    let conversion = state.conversions.get(&account_id, &conversion_id).await?;
    Ok(Json(conversion.into()))
}

#[utoipa::path(get, path = "/accounts/{account_id}/conversions", operation_id = "listConversions", tag = "conversions",
    params(AccountPath, Version, Skip),
    security(("access_token" = [])),
    responses((status = 200, description = "The account's conversions, oldest first", body = ConversionList), (status = 400, description = "Bad request: the error names the field", body = ErrorBody), (status = 401, description = "Missing, invalid or expired token", body = ErrorBody), (status = 403, description = "A token of another account", body = ErrorBody)))]
pub(crate) async fn list_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path(account_id): Path<String>,
    ArrQuery(query): ArrQuery,
    headers: HeaderMap,
) -> Result<Json<ConversionList>> {
    query.check()?;
    caller.require_account(&account_id)?;
    let skip = query.skip.unwrap_or(0) as usize;
    let (page, more) = state.conversions.list(&account_id, skip, PAGE_SIZE).await?;
    let next_link = more.then(|| {
        next_page(
            &origin(&headers, &state),
            &account_id,
            "conversions",
            skip + PAGE_SIZE,
        )
    });
    Ok(Json(ConversionList {
        conversions: page.into_iter().map(ConversionJson::from).collect(),
        next_link,
    }))
}
