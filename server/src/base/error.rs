//! The one error type at the HTTP edge. Its body has ARR's shape,
//! `{"error": {"code", "message", "details", "target", "innerError"}}`; internal details are
//! logged, never sent.

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{FormRejection, JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use thiserror::Error;

pub use parallax_core::api::{ErrorBody, ErrorDetail};

pub type Result<T, E = AppError> = std::result::Result<T, E>;

#[derive(Debug, Error)]
pub enum AppError {
    /// Something the caller can act on: a 4xx (or a 503 that says why).
    #[error("{message}")]
    Client {
        status: StatusCode,
        code: &'static str,
        message: String,
        /// The request field at fault, when there is one.
        target: Option<&'static str>,
    },
    /// Missing, malformed or expired credentials: 401 with a `WWW-Authenticate` challenge.
    #[error("{0}")]
    Unauthorized(String),
    /// Asking faster than allowed: 429 with `Retry-After`. `what` says what was too frequent.
    #[error("{what}; retry in {} s", retry_after.as_millis().div_ceil(1000).max(1))]
    TooManyRequests {
        what: &'static str,
        retry_after: Duration,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn client(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::Client {
            status,
            code,
            message: message.into(),
            target: None,
        }
    }

    pub fn bad_request(message: impl Into<String>, target: Option<&'static str>) -> Self {
        Self::Client {
            status: StatusCode::BAD_REQUEST,
            code: "BadRequest",
            message: message.into(),
            target,
        }
    }

    /// 415: a JSON body sent without saying it is JSON.
    pub fn not_json() -> Self {
        Self::client(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "send the body as JSON with Content-Type: application/json",
        )
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::client(StatusCode::NOT_FOUND, "NotFound", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::client(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::client(StatusCode::CONFLICT, "Conflict", message)
    }

    pub fn unprocessable(message: impl Into<String>, target: Option<&'static str>) -> Self {
        Self::Client {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "UnprocessableEntity",
            message: message.into(),
            target,
        }
    }

    /// The same error, naming the request field at fault.
    pub fn with_target(self, field: &'static str) -> Self {
        match self {
            Self::Client {
                status,
                code,
                message,
                ..
            } => Self::Client {
                status,
                code,
                message,
                target: Some(field),
            },
            other => other,
        }
    }

    /// A stale `If-Match`: 412.
    pub fn precondition_failed(message: impl Into<String>) -> Self {
        Self::client(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            message,
        )
    }

    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::client(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    pub fn status_code(&self) -> StatusCode {
        match self {
            Self::Client { status, .. } => *status,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Client { code, .. } => code,
            Self::Unauthorized(_) => "Unauthorized",
            Self::TooManyRequests { .. } => "TooManyRequests",
            Self::Internal(_) => "InternalServerError",
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        Self::Internal(error.into())
    }
}

impl From<JsonRejection> for AppError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::not_json(),
            rejection => Self::bad_request(rejection.body_text(), None),
        }
    }
}

/// Whether a request says its body is JSON (`application/json`, or `application/…+json`).
pub fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|mime| {
            mime.type_() == "application"
                && (mime.subtype() == "json" || mime.suffix().is_some_and(|s| s == "json"))
        })
}

impl From<FormRejection> for AppError {
    fn from(rejection: FormRejection) -> Self {
        match rejection {
            FormRejection::InvalidFormContentType(_) => Self::client(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "send the form as application/x-www-form-urlencoded",
            ),
            rejection if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => Self::client(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PayloadTooLarge",
                rejection.body_text(),
            ),
            rejection => Self::bad_request(rejection.body_text(), None),
        }
    }
}

impl From<QueryRejection> for AppError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request(rejection.body_text(), None)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let message = match &self {
            Self::Internal(error) => {
                tracing::error!("request failed: {error:#}");
                "the server failed to handle the request; see its log".to_string()
            }
            other => other.to_string(),
        };
        let target = match &self {
            Self::Client { target, .. } => *target,
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().into(),
                message,
                details: Vec::new(),
                target: target.map(str::to_string),
                inner_error: None,
            },
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::Unauthorized(reason) => {
                let challenge = format!(
                    "Bearer realm=\"parallax\", error=\"invalid_token\", error_description=\"{}\"",
                    reason.replace('"', "'")
                );
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            Self::TooManyRequests { retry_after, .. } => {
                // Whole seconds, rounded up: retrying at the stated time must succeed.
                let seconds = retry_after.as_millis().div_ceil(1000).max(1);
                headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds as u64));
            }
            _ => {}
        }
        response
    }
}
