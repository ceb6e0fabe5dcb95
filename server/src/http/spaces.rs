//! The spaces API (bearer auth) and the space WebSocket.
//!
//! A member acts with the token it got when it joined, in the `Parallax-Member` header. Writes
//! may carry the change number they were based on as `If-Match`; a stale one gets 412.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::{Json, Router};
use axum_extra::headers::{ETag, HeaderMapExt, IfMatch};
use futures_util::{SinkExt, StreamExt};
use parallax_core::ChangeNumber;
use parallax_core::api::{
    Joining, MemberCredentials, RenderRoster, SpaceList, SpaceListing, SpaceView, Templates,
};
use parallax_core::protocol::{
    CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_POLICY_VIOLATION, CLOSE_UNSUPPORTED_DATA, HELLO_TIMEOUT,
    close_reason,
};
use parallax_core::space::{ConstantChoices, PropertiesPatch, Role};
use parallax_core::space_protocol::SpaceClientMessage;
use parallax_host::net::small_messages_config;
use serde::Deserialize;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{self, CloseFrame};
use utoipa::{IntoParams, ToSchema};

use crate::accounts::tokens::Claims;
use crate::base::error::{AppError, ErrorBody, Result};
use crate::http::auth::{Caller, Visitor};
use crate::http::contract::body;
use crate::http::upgrade::RawUpgrade;
use crate::spaces::outlet::{Ended, Outlet, OutletIo, Upgraded};
use crate::spaces::space::{Joined, Joiner, Writer, entity_tag};
use crate::state::AppState;

/// A member's space WebSocket as read: tungstenite over the shared socket.
type Socket = WebSocketStream<OutletIo>;

pub const MEMBER_HEADER: &str = "parallax-member";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/templates", get(templates_handler))
        .route("/v1/spaces", get(list_handler))
        .route("/v1/spaces/{name}", put(create_handler).get(get_handler))
        .route("/v1/spaces/{name}/properties", patch(properties_handler))
        .route("/v1/spaces/{name}/members", post(join_handler))
        .route("/v1/spaces/{name}/members/me", delete(leave_handler))
        .route("/v1/spaces/{name}/render", get(render_handler))
        .route("/v1/spaces/{name}/ws", get(space_ws_handler))
}

/// The templates a space can be made from, and the constants each fixes.
#[utoipa::path(get, path = "/v1/templates", operation_id = "listTemplates", tag = "spaces",
    security(("access_token" = []), ("session_cookie" = [])),
    responses((status = 200, body = Templates), (status = 401, body = ErrorBody),
        (status = 403, description = "A guest's sign-in", body = ErrorBody)))]
pub(crate) async fn templates_handler(
    State(state): State<AppState>,
    _caller: Caller,
) -> Json<Templates> {
    Json(Templates {
        templates: state.spaces.templates().to_vec(),
    })
}

/// `?member=…` of the list of spaces.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// A device's name: the spaces it is a member of (to find and clean up stale ones after a
    /// restart, as MPSD advises), instead of the spaces the account owns.
    member: Option<String>,
}

/// `?member=DEVICE`: the spaces that device is a member of (to find and clean up stale ones
/// after a restart, as MPSD advises). Without it: the spaces the caller's account created, with
/// their join codes (the console's list).
#[utoipa::path(get, path = "/v1/spaces", operation_id = "listSpaces", tag = "spaces", params(ListQuery),
    security(("access_token" = []), ("session_cookie" = [])),
    responses((status = 200, body = SpaceList), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, description = "A guest's sign-in", body = ErrorBody)))]
pub(crate) async fn list_handler(
    State(state): State<AppState>,
    caller: Caller,
    query: std::result::Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<SpaceList>> {
    let Query(query) = query?;
    let spaces = match query.member {
        Some(device) => state
            .spaces
            .of_device(&caller.account, &device)
            .await
            .into_iter()
            .map(SpaceListing::Membership)
            .collect(),
        None => state
            .spaces
            .owned_by(&caller.account)
            .await
            .into_iter()
            .map(|space| SpaceListing::Space(Box::new(space)))
            .collect(),
    };
    Ok(Json(SpaceList { spaces }))
}

/// The space in a path: `/v1/spaces/{name}…`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Describes the path; handlers take the name as a string.
pub(crate) struct SpaceName {
    /// 1 to 64 letters, digits, '-' and '_'.
    #[param(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    name: String,
}

/// The body of `PUT /v1/spaces/{name}`: the template, the constants it leaves to the creator, and
/// the creator, who joins as the first member.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CreateBody {
    /// One of `GET /v1/templates` (422 if none is so named).
    #[serde(default = "default_template")]
    #[schema(default = "default", example = "default")]
    template: String,
    /// What the template leaves open (409 for what it fixes).
    #[serde(default)]
    constants: ConstantChoices,
    /// The creator's device name, as for a join.
    #[schema(
        pattern = r"^[^\s\x00-\x1f\x7f]([^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$",
        max_length = 128,
        example = "Tablet"
    )]
    device: String,
    role: Role,
    /// As for a join: a headset creator leases a render session unless this is false.
    #[serde(default = "yes")]
    #[schema(default = true)]
    render_session: bool,
}

fn yes() -> bool {
    true
}

fn default_template() -> String {
    "default".into()
}

fn member_token(headers: &HeaderMap) -> Option<&str> {
    headers.get(MEMBER_HEADER).and_then(|v| v.to_str().ok())
}

fn require_member(headers: &HeaderMap) -> Result<&str> {
    member_token(headers).ok_or_else(|| {
        AppError::forbidden("send your member token (from the join) in the Parallax-Member header")
    })
}

/// The space's change number as an entity tag.
fn with_etag<T: serde::Serialize>(body: T, change: ChangeNumber, status: StatusCode) -> Response {
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().typed_insert(entity_tag(change));
    response
}

/// The answer to a join: the space, the member (its id and token), and a headset's render session.
pub(crate) fn joined(
    state: &AppState,
    headers: &HeaderMap,
    space: SpaceView,
    joined: Joined,
) -> Result<Response> {
    let render_session = joined.render_session.as_ref().and_then(|key| {
        state.sessions.peek(key).map(|view| {
            crate::http::arr::properties(
                &view,
                &crate::http::arr::origin(headers, state),
                &state.tickets,
            )
        })
    });
    let change = space.change;
    let answer = Joining {
        space,
        member: MemberCredentials {
            id: joined.id,
            token: joined.token,
        },
        render_session,
    };
    Ok(with_etag(answer, change, StatusCode::CREATED))
}

/// Creates space `name` from a template; the creator joins it as its first member (the answer
/// is a join's). A headset creator leases its render session as it joins.
#[utoipa::path(put, path = "/v1/spaces/{name}", operation_id = "createSpace", tag = "spaces", params(SpaceName),
    request_body = CreateBody,
    security(("access_token" = []), ("session_cookie" = [])),
    responses(
        (status = 201, body = Joining, headers(("ETag" = String, description = "The space's change number")), links(
            ("GetSpace" = (operation_id = "getSpace", parameters(("name" = "$request.path.name")))),
            ("JoinSpace" = (operation_id = "joinSpace", parameters(("name" = "$request.path.name")))),
            ("UpdateSpaceProperties" = (operation_id = "updateSpaceProperties", parameters(("name" = "$request.path.name")))),
            ("GetSpaceRender" = (operation_id = "getSpaceRender", parameters(("name" = "$request.path.name")))))),
        (status = 400, description = "Not a space name, or not the body's form", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "A guest's sign-in", body = ErrorBody),
        (status = 409, description = "The space exists, or the template fixes a constant chosen", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "No such template, or constants that do not go together", body = ErrorBody),
        (status = 429, description = "The account's limit of spaces or sessions", body = ErrorBody),
        (status = 503, description = "No render host for a headset creator", body = ErrorBody)))]
pub(crate) async fn create_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response> {
    let request: CreateBody = body(&headers, &bytes)?;
    let creator = Joiner {
        device: request.device,
        role: request.role,
        code: None,
        render_session: request.render_session,
    };
    let (view, member) = state
        .spaces
        .create(
            &caller.account,
            &name,
            &request.template,
            &request.constants,
            creator,
        )
        .await?;
    joined(&state, &headers, view, member)
}

/// The space as its owner, a member (with its token: then also which member it is) or a guest
/// sees it.
#[utoipa::path(get, path = "/v1/spaces/{name}", operation_id = "getSpace", tag = "spaces", params(SpaceName),
    security(("access_token" = [], "member_token" = []), ("access_token" = []),
        ("session_cookie" = [], "member_token" = []), ("session_cookie" = [])),
    responses(
        (status = 200, body = SpaceView, headers(("ETag" = String, description = "The space's change number"))),
        (status = 401, body = ErrorBody),
        (status = 403, description = "A guest of another space", body = ErrorBody),
        (status = 404, description = "No such space, or another account's", body = ErrorBody)))]
pub(crate) async fn get_handler(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    enter(&state, &visitor.claims, &name).await?;
    let view = state.spaces.get(&name, member_token(&headers)).await?;
    let change = view.change;
    Ok(with_etag(view, change, StatusCode::OK))
}

/// How each headset's render session is doing, for the tablet's roster: state, whether its
/// device is connected, frames a second and mean frame time (from the hosts' heartbeats).
#[utoipa::path(get, path = "/v1/spaces/{name}/render", operation_id = "getSpaceRender", tag = "spaces", params(SpaceName),
    security(("access_token" = []), ("session_cookie" = [])),
    responses((status = 200, body = RenderRoster), (status = 401, body = ErrorBody),
        (status = 403, description = "A guest of another space", body = ErrorBody),
        (status = 404, description = "No such space, or another account's", body = ErrorBody)))]
pub(crate) async fn render_handler(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(name): Path<String>,
) -> Result<Json<RenderRoster>> {
    enter(&state, &visitor.claims, &name).await?;
    let members = state
        .spaces
        .render_sessions(&name)
        .await?
        .into_iter()
        .filter_map(|(member, key)| state.sessions.render_state(member, &key))
        .collect();
    Ok(Json(RenderRoster { members }))
}

/// `If-Match`: the entity tags (`"12"`, the change number seen) the write is based on. A value
/// that is not a list of entity tags matches nothing: the write then fails its precondition
/// (412), as one based on another change does.
fn if_match(headers: &HeaderMap) -> Option<IfMatch> {
    headers.contains_key(header::IF_MATCH).then(|| {
        headers
            .typed_try_get::<IfMatch>()
            .ok()
            .flatten()
            .unwrap_or_else(|| IfMatch::from(entity_tag_matching_nothing()))
    })
}

/// A weak tag: If-Match compares strongly, so it matches no representation.
fn entity_tag_matching_nothing() -> ETag {
    "W/\"\"".parse().expect("W/\"\" is an entity tag")
}

/// `If-Match` of a write.
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Describes the header; the handler reads it itself.
pub(crate) struct IfMatchHeader {
    /// The entity tag (`"12"`: the change number) the write is based on: a stale one is 412.
    #[param(rename = "If-Match")]
    if_match: Option<String>,
}

/// A member (or the space's owner, without a member token) writes the properties: the selection,
/// its placement, the review, a pick, the room placement, the custom JSON. Absent fields stay.
#[utoipa::path(patch, path = "/v1/spaces/{name}/properties", operation_id = "updateSpaceProperties", tag = "spaces",
    params(SpaceName, IfMatchHeader), request_body = PropertiesPatch,
    security(("access_token" = [], "member_token" = []), ("access_token" = []),
        ("session_cookie" = [], "member_token" = []), ("session_cookie" = [])),
    responses(
        (status = 200, body = SpaceView, headers(("ETag" = String, description = "The space's change number"))),
        (status = 400, description = "Not the body's form", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "Not a member, not a tablet, or not the arbiter, where the select policy asks one", body = ErrorBody),
        (status = 404, description = "No such space or model", body = ErrorBody),
        (status = 409, description = "The model selected is not converted (yet, or it failed)", body = ErrorBody),
        (status = 412, description = "If-Match is not the space's change number", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 422, description = "A placement, review, pick or custom value out of its bounds", body = ErrorBody)))]
pub(crate) async fn properties_handler(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response> {
    enter(&state, &visitor.claims, &name).await?;
    let patch: PropertiesPatch = body(&headers, &bytes)?;
    // Without a member token, the caller writes as the space's owner (if it is; never a guest).
    let writer = match member_token(&headers) {
        Some(token) => Writer::Member(token),
        None if visitor.claims.space.is_none() => Writer::Owner(&visitor.claims.sub),
        None => {
            return Err(AppError::forbidden(
                "a guest writes as a member: send the Parallax-Member header",
            ));
        }
    };
    let view = state
        .spaces
        .write(&name, writer, patch, if_match(&headers))
        .await?;
    let change = view.change;
    Ok(with_etag(view, change, StatusCode::OK))
}

/// Joins the space as a tablet or a headset: the answer holds the member's token, shown once.
/// A headset leases its own render session unless it says `"renderSession": false`.
#[utoipa::path(post, path = "/v1/spaces/{name}/members", operation_id = "joinSpace", tag = "spaces", params(SpaceName),
    request_body = Joiner,
    security(("access_token" = []), ("session_cookie" = [])),
    responses(
        (status = 201, body = Joining, headers(("ETag" = String, description = "The space's change number"))),
        (status = 400, description = "Not the body's form", body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, description = "A guest's sign-in, or a private space's join code missing or wrong", body = ErrorBody),
        (status = 404, description = "No such space, or another account's", body = ErrorBody),
        (status = 409, description = "The space is full", body = ErrorBody),
        (status = 415, body = ErrorBody),
        (status = 429, description = "The account's limit of sessions", body = ErrorBody),
        (status = 503, description = "No render host for a headset", body = ErrorBody)))]
pub(crate) async fn join_handler(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Response> {
    enter_as_account(&state, &caller.account, &name).await?;
    let joiner: Joiner = body(&headers, &bytes)?;
    let (view, member) = state.spaces.join(&caller.account, &name, joiner).await?;
    joined(&state, &headers, view, member)
}

/// The member whose token is in `Parallax-Member` leaves; a headset's render session ends.
#[utoipa::path(delete, path = "/v1/spaces/{name}/members/me", operation_id = "leaveSpace", tag = "spaces", params(SpaceName),
    security(("access_token" = [], "member_token" = []), ("session_cookie" = [], "member_token" = [])),
    responses(
        (status = 204, description = "Left"),
        (status = 401, body = ErrorBody),
        (status = 403, description = "No member token, or a guest of another space", body = ErrorBody),
        (status = 404, description = "No such space, or no such member in it", body = ErrorBody)))]
pub(crate) async fn leave_handler(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode> {
    enter(&state, &visitor.claims, &name).await?;
    state.spaces.leave(&name, require_member(&headers)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lets a caller into space `name`: a guest only into the space it joined, an account only into
/// its own spaces. Another account's space answers 404, as one that does not exist.
async fn enter(state: &AppState, claims: &Claims, name: &str) -> Result<()> {
    if !claims.reaches_space(name) {
        return Err(AppError::forbidden(format!(
            "a guest's sign-in does not reach space {name}"
        )));
    }
    enter_as_account(state, &claims.sub, name).await
}

/// Lets `account` into space `name` if the space is its own (or, made before spaces had owners,
/// nobody's).
async fn enter_as_account(state: &AppState, account: &str, name: &str) -> Result<()> {
    match state.spaces.owner(name).await? {
        Some(owner) if owner != account => Err(AppError::not_found(format!(
            "there is no space named {name}"
        ))),
        _ => Ok(()),
    }
}

/// The space socket: a member's ordered, acknowledged events (WCF's reliable session), its
/// status, a headset's presence, and a tablet's `watch` of the room map (the wearers' presence
/// while it shows them). Its messages are this document's schemas `SpaceClientMessage` (sent) and
/// `SpaceServerMessage` (received).
#[utoipa::path(get, path = "/v1/spaces/{name}/ws", operation_id = "openSpaceSocket", tag = "sockets", params(SpaceName),
    security(()),
    responses(
        (status = 101, description = "A WebSocket: its first message, `hello`, carries the access token (or a signed-in browser's cookie counts) and the member token"),
        (status = 400, description = "Not a WebSocket upgrade this server takes", body = ErrorBody),
        (status = 426, description = "Not a WebSocket upgrade", body = ErrorBody)))]
pub(crate) async fn space_ws_handler(
    upgrade: RawUpgrade,
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    // A browser's hello carries no token: its session cookie, sent with the upgrade, does — but
    // only from this site's own pages. A page of another origin (another port of this machine
    // counts: cookies do not tell ports apart) gets no use of the cookie its browser sends.
    let cookie = crate::http::auth::session_cookie(&headers).map(|cookie| {
        match headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) {
            Some(from) if from != crate::http::arr::origin(&headers, &state) => Err(format!(
                "this socket was opened by a page of {from}: a signed-in browser's cookie counts \
                 only on this site's own pages"
            )),
            _ => Ok(cookie),
        }
    });
    upgrade.on_upgrade(move |socket| converse(socket, state, name, cookie))
}

struct Close(u16, String);

/// How long the closing frame may take to leave: a member that stopped reading is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The session cookie sent with a socket's upgrade, or why it does not count.
type UpgradeCookie = Option<std::result::Result<String, String>>;

async fn converse(socket: Upgraded, state: AppState, name: String, cookie: UpgradeCookie) {
    let outlet = Arc::new(Outlet::new(socket, state.metrics.clone()));
    let mut ws = WebSocketStream::from_raw_socket(
        OutletIo(outlet.clone()),
        protocol::Role::Server,
        Some(small_messages_config()),
    )
    .await;
    let Close(code, reason) = match run(&mut ws, &outlet, &state, &name, cookie).await {
        Ok(close) | Err(close) => close,
    };
    let frame = CloseFrame {
        code: code.into(),
        reason: close_reason(&reason).into(),
    };
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, ws.send(Message::Close(Some(frame)))).await;
}

fn parse(message: Message) -> std::result::Result<Option<SpaceClientMessage>, Close> {
    match message {
        Message::Text(text) => SpaceClientMessage::parse(text.as_str())
            .map(Some)
            .map_err(|e| Close(CLOSE_UNSUPPORTED_DATA, e.to_string())),
        Message::Binary(_) => Err(Close(
            CLOSE_UNSUPPORTED_DATA,
            "binary messages are not accepted; send JSON text".into(),
        )),
        Message::Close(_) => Err(Close(CLOSE_NORMAL, "closed by the client".into())),
        Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => Ok(None),
    }
}

async fn run(
    ws: &mut Socket,
    outlet: &Arc<Outlet>,
    state: &AppState,
    name: &str,
    cookie: UpgradeCookie,
) -> std::result::Result<Close, Close> {
    let policy = |reason: String| Close(CLOSE_POLICY_VIOLATION, reason);
    let first = match tokio::time::timeout(HELLO_TIMEOUT, ws.next()).await {
        Err(_) => return Err(policy("no hello within 10 seconds".into())),
        Ok(Some(Ok(message))) => parse(message)?,
        Ok(_) => return Err(Close(CLOSE_GOING_AWAY, "connection lost".into())),
    };
    let Some(SpaceClientMessage::Hello {
        token,
        member,
        last_seq,
    }) = first
    else {
        return Err(policy("the first message must be hello".into()));
    };
    let token = if token.is_empty() {
        cookie
            .ok_or_else(|| policy("hello needs the access token (or a signed-in browser)".into()))?
            .map_err(policy)?
    } else {
        token
    };
    let claims = state
        .tokens
        .verify(&token)
        .map_err(|e| policy(e.to_string()))?;
    enter(state, &claims, name)
        .await
        .map_err(|e| policy(e.to_string()))?;
    let attached = state
        .spaces
        .attach(name, &member, last_seq, outlet.clone())
        .await
        .map_err(policy)?;
    let member = attached.member.clone();
    // Made once, not on every message: each one registers with the token.
    let shutdown = state.shutdown.cancelled();
    tokio::pin!(shutdown);
    let ended = async {
        loop {
            tokio::select! {
                // Events are written by whoever publishes them; this finishes what a full
                // socket could not take at once.
                ended = std::future::poll_fn(|cx| outlet.poll_drain(cx)) => return Ok(match ended {
                    Ended::Closed(reason) => Close(CLOSE_NORMAL, reason),
                    Ended::Behind => Close(
                        CLOSE_GOING_AWAY,
                        "too far behind: reconnect with your last sequence to resume".into(),
                    ),
                    Ended::Lost => Close(CLOSE_GOING_AWAY, "connection lost".into()),
                }),
                message = ws.next() => {
                    let Some(Ok(message)) = message else {
                        return Err(Close(CLOSE_GOING_AWAY, "connection lost".into()));
                    };
                    match parse(message)? {
                        None => {}
                        Some(SpaceClientMessage::Ack { seq }) => {
                            attached.outbox.lock().unwrap_or_else(|p| p.into_inner()).ack(seq);
                        }
                        Some(SpaceClientMessage::Status { status }) => {
                            state
                                .spaces
                                .set_status(name, &member, status)
                                .await
                                .map_err(|e| Close(CLOSE_POLICY_VIOLATION, e))?;
                        }
                        Some(SpaceClientMessage::Presence { presence }) => {
                            if attached.role != Role::Headset {
                                return Err(policy("only a headset has a presence in the room".into()));
                            }
                            if let Some(problem) = presence.problem() {
                                return Err(policy(problem));
                            }
                            state.spaces.presence.update(name, &member, &attached.device, presence);
                        }
                        // A headset's changes nothing: it gets everyone's presence already.
                        Some(SpaceClientMessage::Watch { map }) => {
                            state.spaces.presence.watch_map(name, &member, attached.connection, map);
                        }
                        Some(SpaceClientMessage::Bye) => return Ok(Close(CLOSE_NORMAL, "bye".into())),
                        Some(SpaceClientMessage::Hello { .. }) => {
                            return Err(Close(
                                CLOSE_POLICY_VIOLATION,
                                "hello was already received on this connection".into(),
                            ));
                        }
                    }
                }
                () = &mut shutdown => {
                    return Ok(Close(CLOSE_GOING_AWAY, "the server is shutting down".into()));
                }
            }
        }
    }
    .await;
    state
        .spaces
        .presence
        .leave(name, &member, attached.connection);
    state
        .spaces
        .detach(name, &member, attached.connection)
        .await;
    ended
}
