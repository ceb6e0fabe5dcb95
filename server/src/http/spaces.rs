//! The spaces API (bearer auth) and the space WebSocket.
//!
//! A member acts with the token it got when it joined, in the `Parallax-Member` header. Writes
//! may carry the change number they were based on as `If-Match`; a stale one gets 412.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put};
use axum::{Json, Router};
use axum_extra::headers::{ETag, HeaderMapExt, IfMatch};
use futures_util::{SinkExt, StreamExt};
use parallax_core::ChangeNumber;
use parallax_core::protocol::{
    CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_POLICY_VIOLATION, CLOSE_UNSUPPORTED_DATA, HELLO_TIMEOUT,
    close_reason,
};
use parallax_core::space::{ConstantChoices, PropertiesPatch, Role};
use parallax_core::space_protocol::SpaceClientMessage;
use parallax_host::net::small_messages_config;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{self, CloseFrame};

use crate::accounts::tokens::Claims;
use crate::base::error::{AppError, Result};
use crate::http::auth::{Caller, Visitor};
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

async fn templates_handler(State(state): State<AppState>, _caller: Caller) -> Json<Value> {
    let templates: Vec<Value> = state
        .spaces
        .templates()
        .iter()
        .map(|t| json!({ "name": t.name, "constants": t.constants }))
        .collect();
    Json(json!({ "templates": templates }))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    member: Option<String>,
}

/// `?member=DEVICE`: the spaces that device is a member of (to find and clean up stale ones
/// after a restart, as MPSD advises). Without it: the spaces the caller's account created, with
/// their join codes (the console's list).
async fn list_handler(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>> {
    let spaces = match query.member {
        Some(device) => state.spaces.of_device(&caller.account, &device).await,
        None => state.spaces.owned_by(&caller.account).await,
    };
    Ok(Json(json!({ "spaces": spaces })))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateBody {
    #[serde(default = "default_template")]
    template: String,
    #[serde(default)]
    constants: ConstantChoices,
    device: String,
    role: Role,
    /// As for a join: a headset creator leases a render session unless this is false.
    #[serde(default = "yes")]
    render_session: bool,
}

fn yes() -> bool {
    true
}

fn default_template() -> String {
    "default".into()
}

/// The JSON body of a request that says it is JSON (`Content-Type: application/json`): a body of
/// another type is refused (415) before it is read, so a form a page of another site posts is
/// never taken for one.
fn body<T: serde::de::DeserializeOwned>(headers: &HeaderMap, bytes: &[u8]) -> Result<T> {
    if !crate::base::error::is_json(headers) {
        return Err(AppError::not_json());
    }
    serde_json::from_slice(bytes).map_err(|e| AppError::bad_request(e.to_string(), None))
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
fn with_etag(view: Value, status: StatusCode) -> Response {
    let change = ChangeNumber(view["change"].as_u64().unwrap_or_default());
    let mut response = (status, Json(view)).into_response();
    response.headers_mut().typed_insert(entity_tag(change));
    response
}

/// The answer to a join: the space, the member (its id and token), and a headset's render session.
pub(crate) fn joined(
    state: &AppState,
    headers: &HeaderMap,
    view: Value,
    joined: Joined,
) -> Result<Response> {
    let render_session = match &joined.render_session {
        Some(key) => state.sessions.peek(key).map(|view| {
            json!(crate::http::arr::properties(
                &view,
                &crate::http::arr::origin(headers, state),
                &state.tickets
            ))
        }),
        None => None,
    };
    let body = json!({ "space": view, "member": joined, "renderSession": render_session });
    Ok(with_etag(body, StatusCode::CREATED))
}

async fn create_handler(
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

async fn get_handler(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response> {
    enter(&state, &visitor.claims, &name).await?;
    let view = state.spaces.get(&name, member_token(&headers)).await?;
    Ok(with_etag(view, StatusCode::OK))
}

/// How each headset's render session is doing, for the tablet's roster: state, whether its
/// device is connected, frames a second and mean frame time (from the hosts' heartbeats).
async fn render_handler(
    State(state): State<AppState>,
    visitor: Visitor,
    Path(name): Path<String>,
) -> Result<Json<Value>> {
    enter(&state, &visitor.claims, &name).await?;
    let members: Vec<Value> = state
        .spaces
        .render_sessions(&name)
        .await?
        .into_iter()
        .filter_map(|(member, key)| {
            let mut render = state.sessions.render_state(&key)?;
            render["member"] = json!(member);
            Some(render)
        })
        .collect();
    Ok(Json(json!({ "members": members })))
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

async fn properties_handler(
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
    Ok(with_etag(view, StatusCode::OK))
}

async fn join_handler(
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

async fn leave_handler(
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

async fn space_ws_handler(
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
