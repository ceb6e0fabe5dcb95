//! The session REST API in Azure Remote Rendering's shape (version 2021-01-01), its token
//! service, usage, and the legacy `/v1/.../sessions/create` calls of the Learn module, so a
//! client written against ARR works against Parallax.

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use parallax_core::api::{
    SessionErrorInfo, SessionList, SessionProperties, SizeUsage, UsageReport,
};
use parallax_core::service::{CreateSession, Created};
use parallax_core::session::{MAX_LEASE_MINUTES, SessionId, SessionKey, SessionSize};
use parallax_core::time::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::accounts::hosts::is_local_host;
use crate::accounts::keys;
use crate::accounts::tickets::RenderTickets;
use crate::base::clock::{parse_rfc3339, rfc3339};
use crate::base::error::{AppError, ErrorBody, Result};
use crate::http::auth::{self, Caller, Visitor};
use crate::http::params::{AccountPath, Queue, SessionPath, Skip, Version, Window};
use crate::pool::sessions::SessionView;
use crate::state::AppState;

pub const API_VERSION: &str = "2021-01-01";
/// Sessions per page of the list call.
const PAGE_SIZE: usize = 50;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/accounts/{account_id}/token", get(token_handler))
        .route("/accounts/{account_id}/sessions", get(list_handler))
        .route(
            "/accounts/{account_id}/sessions/{session_id}",
            put(create_handler)
                .get(properties_handler)
                .patch(update_handler),
        )
        // `:stop` is a literal segment in ARR's API; axum reads a leading ':' as nothing special
        // only inside a capture, so the action is matched here.
        .route(
            "/accounts/{account_id}/sessions/{session_id}/{action}",
            post(action_handler),
        )
        .route("/accounts/{account_id}/usage", get(usage_handler))
        .route("/accounts/{account_id}/usage.csv", get(usage_csv_handler))
        .route(
            "/v1/accounts/{account_id}/sessions",
            get(legacy_list_handler),
        )
        .route(
            "/v1/accounts/{account_id}/sessions/create",
            post(legacy_create_handler),
        )
        .route(
            "/v1/accounts/{account_id}/sessions/{session_id}/properties",
            get(legacy_properties_handler),
        )
        .route(
            "/v1/accounts/{account_id}/sessions/{session_id}/update",
            post(legacy_update_handler),
        )
        .route(
            "/v1/accounts/{account_id}/sessions/{session_id}/stop",
            post(legacy_stop_handler),
        )
}

#[derive(Debug, Deserialize)]
pub(crate) struct VersionQuery {
    #[serde(rename = "api-version")]
    api_version: Option<String>,
    /// Beyond ARR: wait in the queue instead of failing when the size is full.
    queue: Option<bool>,
    #[serde(rename = "$skip")]
    pub(crate) skip: Option<u32>,
    from: Option<String>,
    to: Option<String>,
}

/// The query string, with malformed values answered in ARR's JSON error shape.
pub(crate) struct ArrQuery(pub(crate) VersionQuery);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ArrQuery {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self> {
        let Query(query) = Query::<VersionQuery>::try_from_uri(&parts.uri)?;
        Ok(Self(query))
    }
}

impl VersionQuery {
    pub(crate) fn check(&self) -> Result<()> {
        match self.api_version.as_deref() {
            Some(API_VERSION) => Ok(()),
            Some(other) => Err(AppError::bad_request(
                format!("api-version {other} is not supported; use {API_VERSION}"),
                Some("api-version"),
            )),
            None => Err(AppError::bad_request(
                format!("the api-version query parameter is required ({API_VERSION})"),
                Some("api-version"),
            )),
        }
    }
}

fn session_key(caller: &Caller, account: &str, session_id: &str) -> Result<SessionKey> {
    caller.require_account(account)?;
    let id = SessionId::parse(session_id)
        .map_err(|e| AppError::bad_request(e.to_string(), Some("sessionId")))?;
    Ok(SessionKey::new(account, id))
}

/// Where a device reaches the render host at `endpoint` (`ws(s)://ip:port`), for a client that
/// reached this coordinator at `origin` (`http(s)://host[:port]`): the scheme, host and port.
/// The coordinator's `own` hosts listen on its address; if that is loopback or "everywhere", the
/// client is told the host name it used itself, which is the one that works from where it stands
/// (and the one the coordinator's certificate, which they serve too, is for). Another host's
/// loopback address is its own choice (`--advertise`) and stays; one listening "everywhere" with
/// no name of its own is also told the client's.
fn host_address(endpoint: &str, origin: &str, own: bool) -> Option<(&'static str, String, u16)> {
    let (scheme, authority) = match endpoint.split_once("://")? {
        ("ws", authority) => ("ws", authority),
        ("wss", authority) => ("wss", authority),
        _ => return None,
    };
    let (host, port) = authority.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let local = host
        .trim_matches(['[', ']'])
        .parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_unspecified() || (own && ip.is_loopback()));
    let origin_host = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    let origin_host = match origin_host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => origin_host,
    };
    let host = if local && !origin_host.is_empty() {
        origin_host.to_string()
    } else {
        host.to_string()
    };
    Some((scheme, host, port))
}

/// Properties of `view`, with `renderUrl` for a client on the origin `origin`
/// (`http(s)://host`), carrying a fresh render ticket: whoever may read a session's properties
/// may open its render connection.
pub(crate) fn properties(
    view: &SessionView,
    origin: &str,
    tickets: &RenderTickets,
) -> SessionProperties {
    let session = &view.session;
    let own = session.host.as_ref().is_some_and(is_local_host);
    let address = view
        .endpoint
        .as_deref()
        .and_then(|endpoint| host_address(endpoint, origin, own));
    let render_url = address.as_ref().map(|(scheme, host, port)| {
        format!(
            "{scheme}://{host}:{port}/v1/render/{}/{}?ticket={}",
            session.account,
            session.id,
            tickets.mint(session)
        )
    });
    SessionProperties {
        id: session.id.to_string(),
        status: session.status.as_str().into(),
        size: session.size.as_str().into(),
        max_lease_time_minutes: session.max_lease_minutes,
        elapsed_time_minutes: view.elapsed_minutes,
        hostname: address.as_ref().map(|(_, host, _)| host.clone()),
        handshake_port: address.as_ref().map(|(_, _, port)| *port),
        arr_inspector_port: None,
        teraflops: None,
        error: session.error.as_ref().map(|message| SessionErrorInfo {
            code: "SessionError".into(),
            message: message.clone(),
        }),
        creation_time: rfc3339(session.created_at),
        queue_position: view.queue_position,
        render_url,
        device_connected: view.device_connected,
    }
}

/// The body of `PUT …/sessions/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Documents the body; handlers parse it field by field to name bad fields.
pub struct CreateSessionBody {
    /// 0 to 1440; the lease counts from Ready.
    #[schema(minimum = 0, maximum = 1440)]
    max_lease_time_minutes: u32,
    /// `Standard` or `Premium` (any casing).
    #[schema(
        pattern = "^([Ss][Tt][Aa][Nn][Dd][Aa][Rr][Dd]|[Pp][Rr][Ee][Mm][Ii][Uu][Mm])$",
        example = "Standard"
    )]
    size: String,
    /// Beyond ARR: wait in the queue when the size is full (also `?queue=true`).
    queue: Option<bool>,
}

/// The body of `PATCH …/sessions/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Documents the body; the handler reads the one field itself.
pub struct UpdateSessionBody {
    /// Must be larger than the current lease (409 if not) and at most 1440.
    #[schema(minimum = 0, maximum = 1440)]
    max_lease_time_minutes: u32,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessToken {
    #[serde(rename = "AccessToken")]
    access_token: String,
    /// RFC 3339.
    #[serde(rename = "expiresOn")]
    expires_on: String,
}

/// `GET /accounts/{id}/token` with `Authorization: Bearer <account id>:<account key>`.
#[utoipa::path(get, path = "/accounts/{account_id}/token", operation_id = "getToken", tag = "auth",
    params(AccountPath),
    security(("account_key" = [])),
    responses((status = 200, body = AccessToken), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub(crate) async fn token_handler(
    State(state): State<AppState>,
    Path(account_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<AccessToken>> {
    let credential = auth::bearer(&headers)?;
    let (claimed, key) = credential.split_once(':').ok_or_else(|| {
        AppError::Unauthorized("the token call needs 'Bearer <account id>:<account key>'".into())
    })?;
    if claimed != account_id {
        return Err(AppError::forbidden(format!(
            "the key given is not for account {account_id}"
        )));
    }
    let account = state.store().account(&account_id).await?;
    let valid = match &account {
        Some(account) => keys::verify_key(account, key).await?,
        None => false,
    };
    if !valid {
        return Err(AppError::Unauthorized(
            "unknown account or wrong account key".into(),
        ));
    }
    let (token, expires) = state.tokens.issue(&account_id)?;
    Ok(Json(AccessToken {
        access_token: token,
        expires_on: rfc3339(Timestamp::from_millis(expires * 1000)),
    }))
}

/// The fields of a create body, each checked with a message naming it.
fn lease_minutes(body: &Value, field: &'static str) -> Result<u32> {
    match body.get(field) {
        None | Some(Value::Null) => Err(AppError::bad_request(
            format!("{field} is required"),
            Some(field),
        )),
        Some(value) => whole_number(value)
            .filter(|m| *m <= u64::from(MAX_LEASE_MINUTES))
            .map(|m| m as u32)
            .ok_or_else(|| {
                AppError::bad_request(
                    format!(
                        "{field} must be a whole number from 0 to {MAX_LEASE_MINUTES}, not {value}"
                    ),
                    Some(field),
                )
            }),
    }
}

fn session_size(body: &Value) -> Result<SessionSize> {
    let text = body.get("size").and_then(Value::as_str).ok_or_else(|| {
        AppError::bad_request("size is required: Standard or Premium", Some("size"))
    })?;
    text.parse()
        .map_err(|e: String| AppError::bad_request(e, Some("size")))
}

/// A JSON number that is a whole number, as JSON Schema's `integer` is (`14.0` is one).
fn whole_number(value: &Value) -> Option<u64> {
    value.as_number().and_then(parallax_core::whole::of)
}

/// The body's `queue`: true, false, or absent (null).
fn queue_of(body: &Value) -> Result<Option<bool>> {
    match body.get("queue") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(queue)) => Ok(Some(*queue)),
        Some(other) => Err(AppError::bad_request(
            format!("queue must be true or false, not {other}"),
            Some("queue"),
        )),
    }
}

fn json_object(body: std::result::Result<Json<Value>, JsonRejection>) -> Result<Value> {
    let Json(body) = body?;
    if body.is_object() {
        Ok(body)
    } else {
        Err(AppError::bad_request(
            "the request body must be a JSON object",
            None,
        ))
    }
}

#[utoipa::path(put, path = "/accounts/{account_id}/sessions/{session_id}", operation_id = "createSession", tag = "sessions",
    params(SessionPath, Version, Queue),
    request_body = CreateSessionBody, security(("access_token" = [])),
    responses((status = 201, description = "Created", body = SessionProperties, links(
            ("GetSession" = (operation_id = "getSession", parameters(("account_id" = "$request.path.account_id"), ("session_id" = "$request.path.session_id"), ("api-version" = "$request.query.api-version")))),
            ("UpdateSession" = (operation_id = "updateSession", parameters(("account_id" = "$request.path.account_id"), ("session_id" = "$request.path.session_id"), ("api-version" = "$request.query.api-version")))),
            ("StopSession" = (operation_id = "stopSession", parameters(("account_id" = "$request.path.account_id"), ("session_id" = "$request.path.session_id"), ("api-version" = "$request.query.api-version")))))),
        (status = 200, description = "The same session already exists (a safe retry)", body = SessionProperties),
        (status = 400, description = "Bad request: the error names the field", body = ErrorBody), (status = 401, description = "Missing, invalid or expired token", body = ErrorBody), (status = 403, description = "A token of another account", body = ErrorBody), (status = 409, description = "The id exists with other settings", body = ErrorBody), (status = 415, description = "The body is not sent as JSON", body = ErrorBody), (status = 429, description = "QuotaExceeded: the account holds as many sessions as it may", body = ErrorBody), (status = 503, description = "PoolExhausted: every host of the size is taken", body = ErrorBody)))]
pub(crate) async fn create_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path((account_id, session_id)): Path<(String, String)>,
    ArrQuery(query): ArrQuery,
    headers: HeaderMap,
    body: std::result::Result<Json<Value>, JsonRejection>,
) -> Result<Response> {
    query.check()?;
    let key = session_key(&caller, &account_id, &session_id)?;
    let body = json_object(body)?;
    let request = CreateSession {
        key,
        size: session_size(&body)?,
        max_lease_minutes: lease_minutes(&body, "maxLeaseTimeMinutes")?,
        queue: query.queue.or(queue_of(&body)?).unwrap_or(false),
        // The account's quota.
        account_limit: None,
    };
    let (created, view) = state.sessions.create(request).await?;
    let status = match created {
        Created::New => StatusCode::CREATED,
        Created::Existing => StatusCode::OK,
    };
    Ok((
        status,
        Json(properties(&view, &origin(&headers, &state), &state.tickets)),
    )
        .into_response())
}

#[utoipa::path(get, path = "/accounts/{account_id}/sessions/{session_id}", operation_id = "getSession", tag = "sessions",
    params(SessionPath, Version),
    security(("access_token" = [])),
    responses((status = 200, body = SessionProperties), (status = 400, description = "Bad request: the error names the field", body = ErrorBody), (status = 401, description = "Missing, invalid or expired token", body = ErrorBody), (status = 403, description = "A token of another account", body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, description = "Polled faster than allowed; see Retry-After", body = ErrorBody)))]
pub(crate) async fn properties_handler(
    State(state): State<AppState>,
    visitor: Visitor,
    Path((account_id, session_id)): Path<(String, String)>,
    ArrQuery(query): ArrQuery,
    headers: HeaderMap,
) -> Result<Json<SessionProperties>> {
    query.check()?;
    // A guest headset waits here for its own session to be Ready.
    visitor.use_session(&session_id)?;
    let caller = visitor.caller();
    let key = session_key(&caller, &account_id, &session_id)?;
    let view = state.sessions.poll(&caller.token_id, &key).await?;
    Ok(Json(properties(
        &view,
        &origin(&headers, &state),
        &state.tickets,
    )))
}

#[utoipa::path(patch, path = "/accounts/{account_id}/sessions/{session_id}", operation_id = "updateSession", tag = "sessions",
    params(SessionPath, Version),
    request_body = UpdateSessionBody, security(("access_token" = [])),
    responses((status = 200, body = SessionProperties), (status = 400, description = "Bad request: the error names the field", body = ErrorBody), (status = 401, description = "Missing, invalid or expired token", body = ErrorBody), (status = 403, description = "A token of another account", body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Not larger than the lease now, or the session ended", body = ErrorBody), (status = 415, description = "The body is not sent as JSON", body = ErrorBody)))]
pub(crate) async fn update_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path((account_id, session_id)): Path<(String, String)>,
    ArrQuery(query): ArrQuery,
    headers: HeaderMap,
    body: std::result::Result<Json<Value>, JsonRejection>,
) -> Result<Json<SessionProperties>> {
    query.check()?;
    let key = session_key(&caller, &account_id, &session_id)?;
    let body = json_object(body)?;
    let minutes = match body.get("maxLeaseTimeMinutes").and_then(whole_number) {
        Some(m) => u32::try_from(m).unwrap_or(u32::MAX),
        None => {
            return Err(AppError::bad_request(
                "maxLeaseTimeMinutes is required and must be a whole number",
                Some("maxLeaseTimeMinutes"),
            ));
        }
    };
    let view = state.sessions.extend(&key, minutes).await?;
    Ok(Json(properties(
        &view,
        &origin(&headers, &state),
        &state.tickets,
    )))
}

#[utoipa::path(post, path = "/accounts/{account_id}/sessions/{session_id}/:stop", operation_id = "stopSession", tag = "sessions",
    params(SessionPath, Version),
    security(("access_token" = [])),
    responses((status = 204, description = "Stopped (stopping an ended session changes nothing)"), (status = 400, description = "Bad request: the error names the field", body = ErrorBody), (status = 401, description = "Missing, invalid or expired token", body = ErrorBody), (status = 403, description = "A token of another account", body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn action_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path((account_id, session_id, action)): Path<(String, String, String)>,
    ArrQuery(query): ArrQuery,
) -> Result<StatusCode> {
    query.check()?;
    if action != ":stop" {
        return Err(AppError::not_found(format!(
            "there is no session action {action:?}; use :stop"
        )));
    }
    let key = session_key(&caller, &account_id, &session_id)?;
    state.sessions.stop(&key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/accounts/{account_id}/sessions", operation_id = "listSessions", tag = "sessions",
    params(AccountPath, Version, Skip),
    security(("access_token" = [])),
    responses((status = 200, description = "Starting and Ready sessions, oldest first", body = SessionList), (status = 400, description = "Bad request: the error names the field", body = ErrorBody), (status = 401, description = "Missing, invalid or expired token", body = ErrorBody), (status = 403, description = "A token of another account", body = ErrorBody)))]
pub(crate) async fn list_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path(account_id): Path<String>,
    ArrQuery(query): ArrQuery,
    headers: HeaderMap,
) -> Result<Json<SessionList>> {
    query.check()?;
    caller.require_account(&account_id)?;
    let active = state.sessions.active(&account_id).await?;
    let skip = query.skip.unwrap_or(0) as usize;
    let sessions = active
        .iter()
        .skip(skip)
        .take(PAGE_SIZE)
        .map(|view| properties(view, &origin(&headers, &state), &state.tickets))
        .collect();
    let next_link = (skip + PAGE_SIZE < active.len()).then(|| {
        next_page(
            &origin(&headers, &state),
            &account_id,
            "sessions",
            skip + PAGE_SIZE,
        )
    });
    Ok(Json(SessionList {
        sessions,
        next_link,
    }))
}

#[utoipa::path(get, path = "/accounts/{account_id}/usage", operation_id = "getUsage", tag = "sessions",
    params(AccountPath, Version, Window),
    security(("access_token" = [])),
    responses((status = 200, description = "Time Ready per size within the window", body = UsageReport), (status = 400, description = "Bad request: the error names the field", body = ErrorBody), (status = 401, description = "Missing, invalid or expired token", body = ErrorBody), (status = 403, description = "A token of another account", body = ErrorBody)))]
pub(crate) async fn usage_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path(account_id): Path<String>,
    ArrQuery(query): ArrQuery,
) -> Result<Json<UsageReport>> {
    let (from, to) = usage_window(&state, &caller, &account_id, &query)?;
    let mut ready = HashMap::<SessionSize, Duration>::new();
    for (_, size, time) in state.sessions.usage(&account_id, from, to).await? {
        *ready.entry(size).or_default() += time;
    }
    let usage = SessionSize::ALL
        .iter()
        .map(|size| {
            let ready = ready.get(size).copied().unwrap_or(Duration::ZERO);
            SizeUsage {
                size: size.as_str().into(),
                ready_seconds: ready.as_millis() as f64 / 1000.0,
                billed_minutes: billed_minutes(ready),
            }
        })
        .collect();
    Ok(Json(UsageReport {
        from: rfc3339(from),
        to: rfc3339(to),
        usage,
    }))
}

/// Billing counts started minutes, as a meter would.
fn billed_minutes(ready: Duration) -> u64 {
    ready.as_millis().div_ceil(60_000) as u64
}

/// `GET /accounts/{account_id}/usage.csv`: the same window as `usage`, one row per session
/// that was Ready within it, for a spreadsheet.
#[utoipa::path(get, path = "/accounts/{account_id}/usage.csv", operation_id = "getUsageCsv", tag = "sessions",
    params(AccountPath, Version, Window),
    security(("access_token" = [])),
    responses((status = 200, description = "CSV: account, session, size, from, to, ready_seconds, billed_minutes", content_type = "text/csv", body = String), (status = 400, description = "Bad request: the error names the field", body = ErrorBody), (status = 401, description = "Missing, invalid or expired token", body = ErrorBody), (status = 403, description = "A token of another account", body = ErrorBody)))]
pub(crate) async fn usage_csv_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path(account_id): Path<String>,
    ArrQuery(query): ArrQuery,
) -> Result<Response> {
    let (from, to) = usage_window(&state, &caller, &account_id, &query)?;
    let mut csv = csv::Writer::from_writer(Vec::new());
    let mut write = |row: &[&str]| {
        csv.write_record(row)
            .map_err(|e| AppError::Internal(e.into()))
    };
    write(&[
        "account",
        "session",
        "size",
        "from",
        "to",
        "ready_seconds",
        "billed_minutes",
    ])?;
    let (from_text, to_text) = (rfc3339(from), rfc3339(to));
    for (session, size, ready) in state.sessions.usage(&account_id, from, to).await? {
        write(&[
            &account_id,
            session.as_str(),
            size.as_str(),
            &from_text,
            &to_text,
            &format!("{:.3}", ready.as_secs_f64()),
            &billed_minutes(ready).to_string(),
        ])?;
    }
    let body = csv
        .into_inner()
        .map_err(|e| AppError::Internal(anyhow::anyhow!("{e}")))?;
    let file = format!(
        "attachment; filename=\"parallax-usage-{}-{}.csv\"",
        from_text.get(..10).unwrap_or("from"),
        to_text.get(..10).unwrap_or("to")
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (header::CONTENT_DISPOSITION, file),
        ],
        body,
    )
        .into_response())
}

/// The usage window a query asks for: `from`/`to` (RFC 3339), by default the 30 days up to now.
fn usage_window(
    state: &AppState,
    caller: &Caller,
    account_id: &str,
    query: &VersionQuery,
) -> Result<(Timestamp, Timestamp)> {
    query.check()?;
    caller.require_account(account_id)?;
    let now = state.sessions.now();
    let instant = |text: &Option<String>, field: &'static str, default: Timestamp| match text {
        None => Ok(default),
        Some(text) => parse_rfc3339(text).ok_or_else(|| {
            AppError::bad_request(
                format!("{field} must be an RFC 3339 time, not {text:?}"),
                Some(field),
            )
        }),
    };
    let to = instant(&query.to, "to", now)?;
    let from = instant(
        &query.from,
        "from",
        Timestamp::from_millis(to.as_millis().saturating_sub(30 * 24 * 3_600_000)),
    )?;
    // A window that ends before it starts holds nothing.
    Ok((from.min(to), to))
}

/// `scheme://host` the client used, for absolute links: https if this coordinator serves TLS or
/// the proxy in front of it says the client used it.
/// ARR's `@nextLink`: the page of an account's `collection` that starts at `skip`.
pub(crate) fn next_page(origin: &str, account: &str, collection: &str, skip: usize) -> String {
    format!("{origin}/accounts/{account}/{collection}?api-version={API_VERSION}&$skip={skip}")
}

pub(crate) fn origin(headers: &HeaderMap, state: &AppState) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .or(state.tls.as_ref().map(|_| "https"))
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

// ---- The legacy shape (`/v1/accounts/{id}/sessions/create`) -------------------------------------

/// `"4:0:0"` (hours:minutes:seconds, each one or two digits) → minutes, rounding started
/// minutes up.
fn parse_lease_time(text: &str) -> Option<u32> {
    let parts: Vec<u64> = text
        .split(':')
        .map(|p| {
            (matches!(p.len(), 1 | 2) && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse().ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    let [hours, minutes, seconds] = parts[..] else {
        return None;
    };
    if minutes >= 60 || seconds >= 60 {
        return None;
    }
    let total = hours.checked_mul(60)?.checked_add(minutes)? + u64::from(seconds > 0);
    u32::try_from(total)
        .ok()
        .filter(|m| *m <= MAX_LEASE_MINUTES)
}

fn format_lease_time(minutes: u64) -> String {
    format!("{}:{}:0", minutes / 60, minutes % 60)
}

/// A session in the legacy shape.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyProperties {
    session_id: String,
    session_status: &'static str,
    session_size: &'static str,
    /// `hours:minutes:seconds`.
    session_max_lease_time: String,
    session_elapsed_time: String,
    session_hostname: Option<String>,
    error: Option<String>,
    creation_time: String,
    queue_position: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LegacyList {
    sessions: Vec<LegacyProperties>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LegacyCreated {
    /// A UUID chosen by the coordinator.
    session_id: String,
}

/// The body of the legacy create call.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Documents the body; the handler reads its fields itself.
pub struct LegacyCreateBody {
    /// `hours:minutes:seconds`, at most `24:0:0`.
    #[schema(
        example = "4:0:0",
        pattern = "^((([01]?[0-9])|(2[0-3])):[0-5]?[0-9]:[0-5]?[0-9]|24:0?0:0?0)$"
    )]
    max_lease_time: String,
    /// Accepted and ignored, as models load over the render connection.
    models: Option<Vec<String>>,
    /// `Standard` or `Premium` (any casing).
    #[schema(
        pattern = "^([Ss][Tt][Aa][Nn][Dd][Aa][Rr][Dd]|[Pp][Rr][Ee][Mm][Ii][Uu][Mm])$",
        example = "standard"
    )]
    size: String,
    /// Wait in the queue when the size is full.
    queue: Option<bool>,
}

/// The body of the legacy update call.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Documents the body; the handler reads its field itself.
pub struct LegacyUpdateBody {
    /// `hours:minutes:seconds`, at most `24:0:0`; larger than the lease now (409 if not).
    #[schema(
        example = "5:0:0",
        pattern = "^((([01]?[0-9])|(2[0-3])):[0-5]?[0-9]:[0-5]?[0-9]|24:0?0:0?0)$"
    )]
    max_lease_time: String,
}

fn legacy_properties(view: &SessionView) -> LegacyProperties {
    let session = &view.session;
    LegacyProperties {
        session_id: session.id.to_string(),
        session_status: session.status.as_str(),
        session_size: session.size.as_str(),
        session_max_lease_time: format_lease_time(u64::from(session.max_lease_minutes)),
        session_elapsed_time: format_lease_time(view.elapsed_minutes),
        session_hostname: view
            .endpoint
            .as_deref()
            .and_then(|endpoint| host_address(endpoint, "", false))
            .map(|(_, host, _)| host),
        error: session.error.clone(),
        creation_time: rfc3339(session.created_at),
        queue_position: view.queue_position,
    }
}

fn legacy_lease(body: &Value) -> Result<u32> {
    let text = body
        .get("maxLeaseTime")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            AppError::bad_request(
                "maxLeaseTime is required, as \"hours:minutes:seconds\"",
                Some("maxLeaseTime"),
            )
        })?;
    parse_lease_time(text).ok_or_else(|| {
        AppError::bad_request(
            format!(
                "maxLeaseTime must be \"hours:minutes:seconds\" of at most 24 hours, not {text:?}"
            ),
            Some("maxLeaseTime"),
        )
    })
}

#[utoipa::path(post, path = "/v1/accounts/{account_id}/sessions/create", operation_id = "legacyCreateSession", tag = "legacy",
    params(AccountPath), request_body = LegacyCreateBody, security(("access_token" = [])),
    responses((status = 201, body = LegacyCreated), (status = 400, description = "Bad request: the error names the field", body = ErrorBody), (status = 401, description = "Missing, invalid or expired token", body = ErrorBody), (status = 403, description = "A token of another account", body = ErrorBody), (status = 415, description = "The body is not sent as JSON", body = ErrorBody), (status = 429, description = "QuotaExceeded: the account holds as many sessions as it may", body = ErrorBody), (status = 503, description = "PoolExhausted: every host of the size is taken", body = ErrorBody)))]
pub(crate) async fn legacy_create_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path(account_id): Path<String>,
    body: std::result::Result<Json<Value>, JsonRejection>,
) -> Result<Response> {
    caller.require_account(&account_id)?;
    let body = json_object(body)?;
    // Models load over the render connection: the list is read only to refuse what is not one.
    match body.get("models") {
        None | Some(Value::Null) => {}
        Some(Value::Array(models)) if models.iter().all(Value::is_string) => {}
        Some(_) => {
            return Err(AppError::bad_request(
                "models must be a list of strings",
                Some("models"),
            ));
        }
    }
    let id = SessionId::parse(&uuid::Uuid::new_v4().to_string()).map_err(anyhow::Error::from)?;
    let request = CreateSession {
        key: SessionKey::new(&account_id, id.clone()),
        size: session_size(&body)?,
        max_lease_minutes: legacy_lease(&body)?,
        queue: queue_of(&body)?.unwrap_or(false),
        account_limit: None,
    };
    state.sessions.create(request).await?;
    Ok((
        StatusCode::CREATED,
        Json(LegacyCreated {
            session_id: id.to_string(),
        }),
    )
        .into_response())
}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/sessions/{session_id}/properties", operation_id = "legacyGetSession", tag = "legacy",
    params(SessionPath), security(("access_token" = [])),
    responses((status = 200, body = LegacyProperties), (status = 400, description = "Bad request: the error names the field", body = ErrorBody), (status = 401, description = "Missing, invalid or expired token", body = ErrorBody), (status = 403, description = "A token of another account", body = ErrorBody), (status = 404, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub(crate) async fn legacy_properties_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path((account_id, session_id)): Path<(String, String)>,
) -> Result<Json<LegacyProperties>> {
    let key = session_key(&caller, &account_id, &session_id)?;
    let view = state.sessions.poll(&caller.token_id, &key).await?;
    Ok(Json(legacy_properties(&view)))
}

#[utoipa::path(post, path = "/v1/accounts/{account_id}/sessions/{session_id}/update", operation_id = "legacyUpdateSession", tag = "legacy",
    params(SessionPath), request_body = LegacyUpdateBody, security(("access_token" = [])),
    responses((status = 200, body = LegacyProperties), (status = 400, description = "Bad request: the error names the field", body = ErrorBody), (status = 401, description = "Missing, invalid or expired token", body = ErrorBody), (status = 403, description = "A token of another account", body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, description = "Not larger than the lease now, or the session ended", body = ErrorBody), (status = 415, description = "The body is not sent as JSON", body = ErrorBody)))]
pub(crate) async fn legacy_update_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path((account_id, session_id)): Path<(String, String)>,
    body: std::result::Result<Json<Value>, JsonRejection>,
) -> Result<Json<LegacyProperties>> {
    let key = session_key(&caller, &account_id, &session_id)?;
    let minutes = legacy_lease(&json_object(body)?)?;
    let view = state.sessions.extend(&key, minutes).await?;
    Ok(Json(legacy_properties(&view)))
}

#[utoipa::path(post, path = "/v1/accounts/{account_id}/sessions/{session_id}/stop", operation_id = "legacyStopSession", tag = "legacy",
    params(SessionPath), security(("access_token" = [])),
    responses((status = 204), (status = 400, description = "Bad request: the error names the field", body = ErrorBody), (status = 401, description = "Missing, invalid or expired token", body = ErrorBody), (status = 403, description = "A token of another account", body = ErrorBody), (status = 404, body = ErrorBody)))]
pub(crate) async fn legacy_stop_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path((account_id, session_id)): Path<(String, String)>,
) -> Result<StatusCode> {
    let key = session_key(&caller, &account_id, &session_id)?;
    state.sessions.stop(&key).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/accounts/{account_id}/sessions", operation_id = "legacyListSessions", tag = "legacy",
    params(AccountPath), security(("access_token" = [])),
    responses((status = 200, body = LegacyList), (status = 400, description = "Bad request: the error names the field", body = ErrorBody), (status = 401, description = "Missing, invalid or expired token", body = ErrorBody), (status = 403, description = "A token of another account", body = ErrorBody)))]
pub(crate) async fn legacy_list_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path(account_id): Path<String>,
) -> Result<Json<LegacyList>> {
    caller.require_account(&account_id)?;
    let sessions = state
        .sessions
        .active(&account_id)
        .await?
        .iter()
        .map(legacy_properties)
        .collect();
    Ok(Json(LegacyList { sessions }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_host_is_reached_by_the_name_the_client_used() {
        let lan = "http://showroom.local:3000";
        assert_eq!(
            host_address("ws://0.0.0.0:41234", lan, true),
            Some(("ws", "showroom.local".into(), 41234))
        );
        assert_eq!(
            host_address("wss://127.0.0.1:41234", "https://10.0.0.2:3000", true),
            Some(("wss", "10.0.0.2".into(), 41234))
        );
        // A host on another machine keeps its own address, a loopback one it chose too.
        assert_eq!(
            host_address("ws://10.0.0.7:5000", lan, false),
            Some(("ws", "10.0.0.7".into(), 5000))
        );
        assert_eq!(
            host_address("wss://127.0.0.2:5000", lan, false),
            Some(("wss", "127.0.0.2".into(), 5000))
        );
        assert_eq!(host_address("http://10.0.0.7:5000", lan, true), None);
        assert_eq!(host_address("garbage", lan, true), None);
    }

    #[test]
    fn legacy_lease_times_read_as_hours_minutes_seconds() {
        assert_eq!(parse_lease_time("4:0:0"), Some(240));
        assert_eq!(parse_lease_time("0:30:0"), Some(30));
        assert_eq!(
            parse_lease_time("0:0:1"),
            Some(1),
            "a started minute counts"
        );
        assert_eq!(parse_lease_time("24:0:0"), Some(1440));
        assert_eq!(parse_lease_time("24:0:1"), None);
        assert_eq!(parse_lease_time("1:60:0"), None);
        assert_eq!(parse_lease_time("four hours"), None);
        assert_eq!(parse_lease_time("1:0"), None);
        // Exactly the documented pattern: one or two digits each, nothing around them.
        for other in [" 4:0:0", "+4:0:0", "004:0:0", "4:0:0 ", "4::0", "٤:0:0"] {
            assert_eq!(parse_lease_time(other), None, "{other:?}");
        }
        assert_eq!(format_lease_time(250), "4:10:0");
    }
}
