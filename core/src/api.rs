//! The HTTP API's requests and answers: one definition the server writes and the app reads, so a
//! renamed field fails a build, not an empty cell. With the feature `openapi` each also
//! describes itself for the OpenAPI document at `/openapi.json`.

use serde::{Deserialize, Serialize};

/// `GET /v1/browser/me`: who the caller is signed in as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The account: the caller's own, or for a guest the account of the space it joined.
    pub account: String,
    /// A guest's one space, the only one it reaches; none for an account's own sign-in.
    pub guest_of: Option<String>,
}

/// `GET /v1/trust`: what the certificate authority devices trust here may sign, and whether it
/// replaced an earlier one. Public: a device reads it before it trusts anything here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TrustNotes {
    /// Whether this coordinator's certificate comes from an authority of its own (`/ca.crt`);
    /// false when it serves its operator's certificate, or plain HTTP.
    pub authority: bool,
    /// The names and address blocks that authority may sign, comma-separated.
    pub may_sign: Option<String>,
    /// When and why it replaced an earlier authority: devices that trusted that one trust this
    /// one instead.
    pub replaced: Option<String>,
}
