//! The path and query parameters of ARR's calls as the OpenAPI document states them: exactly what
//! the handlers accept (a value the schema allows is never refused for its form; one it forbids
//! is always refused), so a client generated from the document and a property-based tester agree
//! with the server. The handlers read the same parameters themselves ([`super::arr::ArrQuery`]);
//! these types only describe them.

#![allow(dead_code)] // Read by the OpenAPI derive only.

use parallax_core::session::MAX_SESSION_ID_LEN;
use utoipa::IntoParams;

/// `/accounts/{account_id}/…`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct AccountPath {
    /// The account: the caller's own (another's is refused with 403).
    account_id: String,
}

/// `/accounts/{account_id}/sessions/{session_id}…`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SessionPath {
    /// The account: the caller's own (another's is refused with 403).
    account_id: String,
    /// The session's id, chosen by the client: 1 to 256 letters, digits, '-' and '_'.
    #[param(pattern = "^[A-Za-z0-9_-]+$", min_length = 1, max_length = 256)]
    session_id: String,
}

/// `/accounts/{account_id}/conversions/{conversion_id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ConversionPath {
    /// The account: the caller's own (another's is refused with 403).
    account_id: String,
    /// The conversion's id, chosen by the client: 1 to 256 letters, digits, '-' and '_'.
    #[param(pattern = "^[A-Za-z0-9_-]+$", min_length = 1, max_length = 256)]
    conversion_id: String,
}

/// `?api-version=2021-01-01`, which every call of ARR's API carries.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Version {
    /// The version of ARR's API this one keeps: only `2021-01-01`.
    #[param(rename = "api-version", pattern = "^2021-01-01$")]
    api_version: String,
}

/// `&queue=…` of a session's creation.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Queue {
    /// Beyond ARR: wait in the queue if the size is full (also the body's `queue`).
    queue: Option<bool>,
}

/// `&$skip=…` of a list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Skip {
    /// Paging: how many to skip; follow `@nextLink`.
    #[param(rename = "$skip", minimum = 0, maximum = 4294967295_u32)]
    skip: Option<u32>,
}

/// `&from=…&to=…` of the usage report.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Window {
    /// RFC 3339; default 30 days before `to`. A window that ends before it starts is empty.
    #[param(format = DateTime)]
    from: Option<String>,
    /// RFC 3339; default now.
    #[param(format = DateTime)]
    to: Option<String>,
}

const _: () = assert!(MAX_SESSION_ID_LEN == 256, "the documented bound");
