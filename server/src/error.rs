//! The one error type at the HTTP edge. Its body has ARR's shape,
//! `{"error": {"code", "message", "details", "target", "innerError"}}`, and 5xx details are
//! logged, never sent.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use thiserror::Error;

use crate::stage::StageError;

pub type Result<T, E = AppError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum AppError {
    /// The request was malformed; `target` names the offending field when there is one.
    #[error("{message}")]
    BadRequest {
        message: String,
        target: Option<&'static str>,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest { .. } => "BadRequest",
            Self::NotFound(_) => "NotFound",
            Self::Unavailable(_) => "ServiceUnavailable",
            Self::Internal(_) => "InternalServerError",
        }
    }
}

impl From<StageError> for AppError {
    fn from(error: StageError) -> Self {
        match error {
            StageError::UnknownModel(_) => Self::NotFound(error.to_string()),
            StageError::Store(e) => Self::Internal(e.into()),
        }
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        Self::BadRequest {
            message: rejection.body_text(),
            target: None,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let message = if status.is_server_error() {
            tracing::error!("request failed: {self:#}");
            match &self {
                Self::Unavailable(message) => message.clone(),
                _ => "the server failed to handle the request; see its log".to_string(),
            }
        } else {
            self.to_string()
        };
        let target = match &self {
            Self::BadRequest { target, .. } => *target,
            _ => None,
        };
        let body = json!({
            "error": {
                "code": self.code(),
                "message": message,
                "details": [],
                "target": target,
                "innerError": null,
            }
        });
        (status, Json(body)).into_response()
    }
}
