//! Spaces from a device's side: sign in, create or join a space, follow it over the space
//! WebSocket with acks, and resume after a dropped connection without losing or repeating a
//! message.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parallax_core::api::SpaceView;
use parallax_core::space::{MemberStatus, Role};
use parallax_core::space_protocol::{
    MemberPresence, Presence, SpaceClientMessage, SpaceEvent, SpaceServerMessage,
};
use parallax_core::trust::Trust;
use serde_json::{Value, json};
use thiserror::Error;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::url::socket_url;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error("sign-in failed: {0}")]
    Auth(String),
    #[error("the space is full: {0}")]
    SpaceFull(String),
    #[error("the join code is wrong: {0}")]
    WrongCode(String),
    #[error("no render host is free: {0}")]
    PoolExhausted(String),
    #[error("another device holds this render session: {0}")]
    SessionTaken(String),
    #[error("the render session ended (lease expired or stopped): {0}")]
    SessionEnded(String),
    #[error("polled too often; retry in {0:?}")]
    Throttled(Duration),
    #[error("the space changed meanwhile: {0}")]
    Stale(String),
    #[error("not allowed: {0}")]
    Forbidden(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("the coordinator answered {status} {code}: {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the server closed the conversation ({code}): {reason}")]
    Closed { code: u16, reason: String },
    #[error("the server broke the protocol: {0}")]
    Protocol(String),
    #[error("the connection failed: {0}")]
    Transport(String),
}

impl From<tokio_tungstenite::tungstenite::Error> for ClientError {
    fn from(error: tokio_tungstenite::tungstenite::Error) -> Self {
        Self::Transport(error.to_string())
    }
}

impl From<reqwest::Error> for ClientError {
    /// With every cause: "error sending request" alone hides an untrusted certificate.
    fn from(error: reqwest::Error) -> Self {
        let mut message = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            message = format!("{message}: {cause}");
            source = cause.source();
        }
        Self::Transport(message)
    }
}

/// An HTTP client that trusts `trust`'s authorities and no others: without them it speaks only
/// plain `http://`.
pub fn http_client(trust: Option<&Trust>) -> Result<reqwest::Client, ClientError> {
    let builder = reqwest::Client::builder().tls_built_in_root_certs(false);
    let builder = match trust {
        Some(trust) => builder.use_preconfigured_tls((*trust.config).clone()),
        None => builder,
    };
    Ok(builder.build()?)
}

/// Opens a WebSocket (Nagle off); `wss://` only with authorities to verify the peer with.
pub async fn connect_socket(
    url: &str,
    config: Option<tokio_tungstenite::tungstenite::protocol::WebSocketConfig>,
    trust: Option<&Trust>,
) -> Result<WebSocketStream<MaybeTlsStream<TcpStream>>, ClientError> {
    let connector = match trust {
        Some(trust) => tokio_tungstenite::Connector::Rustls(trust.config.clone()),
        None if url.starts_with("wss://") => {
            return Err(ClientError::Transport(format!(
                "{url} is TLS: give the certificate authority to trust (--ca)"
            )));
        }
        None => tokio_tungstenite::Connector::Plain,
    };
    let (socket, _) =
        tokio_tungstenite::connect_async_tls_with_config(url, config, true, Some(connector))
            .await?;
    Ok(socket)
}

/// Socket settings for a conversation of small JSON messages: tungstenite zero-fills its whole
/// read buffer (128 KiB by default) before every read, which costs more than the message.
pub fn small_messages() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096)
}

/// How a device joins a space (the body of a join).
#[derive(Debug, Clone, Copy, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Join<'a> {
    /// The name the roster shows.
    pub device: &'a str,
    pub role: Role,
    /// The join code of a private space.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'a str>,
    /// Whether a headset leases its own render session (false: it only follows the space).
    pub render_session: bool,
}

/// A signed-in client of one coordinator.
#[derive(Clone)]
pub struct Coordinator {
    http: reqwest::Client,
    /// The authorities an `https://` coordinator and `wss://` hosts are verified with.
    trust: Option<Trust>,
    /// `http://host:port`.
    pub server: String,
    /// The account signed in.
    pub account: String,
    /// The account's access token.
    pub token: String,
}

async fn answer(response: reqwest::Response) -> Result<Value, ClientError> {
    let status = response.status().as_u16();
    if status == 429 {
        let seconds = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .unwrap_or(1);
        return Err(ClientError::Throttled(Duration::from_secs(seconds)));
    }
    let text = response.text().await?;
    let body: Value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).map_err(|e| ClientError::Protocol(e.to_string()))?
    };
    if (200..300).contains(&status) {
        return Ok(body);
    }
    let code = body["error"]["code"].as_str().unwrap_or("").to_string();
    let message = body["error"]["message"].as_str().unwrap_or("").to_string();
    Err(match (status, code.as_str()) {
        (401, _) => ClientError::Auth(message),
        (_, "SpaceFull") => ClientError::SpaceFull(message),
        (_, "WrongJoinCode") => ClientError::WrongCode(message),
        (_, "PoolExhausted") => ClientError::PoolExhausted(message),
        (412, _) => ClientError::Stale(message),
        (403, _) => ClientError::Forbidden(message),
        (404, _) => ClientError::NotFound(message),
        _ => ClientError::Refused {
            status,
            code,
            message,
        },
    })
}

impl Coordinator {
    /// Trades an account key for an access token (plain `http://`; see [`Self::sign_in_trusting`]).
    pub async fn sign_in(server: &str, account: &str, key: &str) -> Result<Self, ClientError> {
        Self::sign_in_trusting(server, account, key, None).await
    }

    /// Trades an account key for an access token, verifying an `https://` coordinator (and the
    /// `wss://` render hosts it hands out) against `trust`'s authorities only.
    pub async fn sign_in_trusting(
        server: &str,
        account: &str,
        key: &str,
        trust: Option<Trust>,
    ) -> Result<Self, ClientError> {
        let server = server.trim_end_matches('/').to_string();
        let http = http_client(trust.as_ref())?;
        let body = answer(
            http.get(format!("{server}/accounts/{account}/token"))
                .bearer_auth(format!("{account}:{key}"))
                .send()
                .await?,
        )
        .await?;
        let token = body["AccessToken"]
            .as_str()
            .ok_or_else(|| ClientError::Protocol("no AccessToken in the token answer".into()))?
            .to_string();
        Ok(Self {
            http,
            trust,
            server,
            account: account.to_string(),
            token,
        })
    }

    /// A client of `server` for `account` with an access token obtained elsewhere.
    pub fn with_token(server: &str, account: &str, token: String) -> Self {
        Self {
            http: reqwest::Client::new(),
            trust: None,
            server: server.trim_end_matches('/').to_string(),
            account: account.to_string(),
            token,
        }
    }

    /// The authorities this client verifies TLS peers with.
    pub fn trust(&self) -> Option<&Trust> {
        self.trust.as_ref()
    }

    /// The model catalog (`{"models": [{"id", "name", "triangles", …}]}`).
    pub async fn models(&self) -> Result<Value, ClientError> {
        let url = format!("{}/v1/models", self.server);
        answer(self.http.get(url).bearer_auth(&self.token).send().await?).await
    }

    /// The space as anyone signed in sees it (no join code, no member tokens).
    pub async fn space(&self, name: &str) -> Result<Value, ClientError> {
        let url = format!("{}/v1/spaces/{name}", self.server);
        answer(self.http.get(url).bearer_auth(&self.token).send().await?).await
    }

    /// Writes space `name`'s properties as its owner (the account that created it), without
    /// being a member; with `if_match`, only if the space is still at that change number.
    pub async fn write_space(
        &self,
        name: &str,
        patch: &Value,
        if_match: Option<u64>,
    ) -> Result<Value, ClientError> {
        let url = format!("{}/v1/spaces/{name}/properties", self.server);
        let mut request = self.http.patch(url).bearer_auth(&self.token).json(patch);
        if let Some(change) = if_match {
            request = request.header("if-match", format!("\"{change}\""));
        }
        answer(request.send().await?).await
    }

    /// Creates space `name` from `template` (with `constants` choices) and joins it first.
    pub async fn create_space(
        &self,
        name: &str,
        template: &str,
        constants: Value,
        device: &str,
        role: Role,
    ) -> Result<Membership, ClientError> {
        let creator = Join {
            device,
            role,
            code: None,
            render_session: true,
        };
        self.create(name, template, constants, &creator).await
    }

    /// Creates space `name` from `template`; `creator` joins it first (its code is not used).
    pub async fn create(
        &self,
        name: &str,
        template: &str,
        constants: Value,
        creator: &Join<'_>,
    ) -> Result<Membership, ClientError> {
        let mut body = json!(Join {
            code: None,
            ..*creator
        });
        body["template"] = json!(template);
        body["constants"] = constants;
        let url = format!("{}/v1/spaces/{name}", self.server);
        self.enter(name, self.http.put(url).json(&body)).await
    }

    /// Joins space `name`; `code` for private spaces. A headset gets its own render session.
    pub async fn join_space(
        &self,
        name: &str,
        device: &str,
        role: Role,
        code: Option<&str>,
    ) -> Result<Membership, ClientError> {
        self.join(
            name,
            &Join {
                device,
                role,
                code,
                render_session: true,
            },
        )
        .await
    }

    /// Joins space `name` as `join` says.
    pub async fn join(&self, name: &str, join: &Join<'_>) -> Result<Membership, ClientError> {
        let url = format!("{}/v1/spaces/{name}/members", self.server);
        self.enter(name, self.http.post(url).json(join)).await
    }

    /// Sends a create or a join of space `name`; the membership it answers with.
    async fn enter(
        &self,
        name: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Membership, ClientError> {
        let joined = answer(request.bearer_auth(&self.token).send().await?).await?;
        self.membership(name, joined)
    }

    fn membership(&self, name: &str, joined: Value) -> Result<Membership, ClientError> {
        let field = |v: &Value| v.as_str().map(str::to_string);
        Ok(Membership {
            coordinator: self.clone(),
            space: name.to_string(),
            id: field(&joined["member"]["id"])
                .ok_or_else(|| ClientError::Protocol("no member id in the join answer".into()))?,
            token: field(&joined["member"]["token"]).ok_or_else(|| {
                ClientError::Protocol("no member token in the join answer".into())
            })?,
            join_code: field(&joined["space"]["joinCode"]),
            render_session: joined
                .get("renderSession")
                .cloned()
                .filter(|v| !v.is_null()),
        })
    }

    /// A render session of this account (ARR's GET).
    pub async fn own_render_session(&self, id: &str) -> Result<Value, ClientError> {
        self.render_session(&self.account, id).await
    }

    /// A render session's properties (ARR's GET).
    pub async fn render_session(&self, account: &str, id: &str) -> Result<Value, ClientError> {
        let url = format!(
            "{}/accounts/{account}/sessions/{id}?api-version=2021-01-01",
            self.server
        );
        answer(self.http.get(url).bearer_auth(&self.token).send().await?).await
    }
}

/// This device's place in a space.
#[derive(Clone)]
pub struct Membership {
    coordinator: Coordinator,
    pub space: String,
    pub id: String,
    /// Acts as this member; also the resume token.
    pub token: String,
    pub join_code: Option<String>,
    /// A headset's render session properties at join time (`renderUrl` once Ready).
    pub render_session: Option<Value>,
}

/// Without the tokens: they are secrets.
impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("server", &self.coordinator.server)
            .field("space", &self.space)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Membership {
    /// A request on this space's `path`, as this member.
    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}/v1/spaces/{}{path}", self.coordinator.server, self.space);
        self.coordinator
            .http
            .request(method, url)
            .bearer_auth(&self.coordinator.token)
            .header("parallax-member", &self.token)
    }

    /// The space as this member sees it.
    pub async fn space(&self) -> Result<Value, ClientError> {
        answer(self.request(reqwest::Method::GET, "").send().await?).await
    }

    /// Writes properties (e.g. `{"selectedModel":"gear"}`); with `if_match`, only if the space is
    /// still at that change number.
    pub async fn write(&self, patch: Value, if_match: Option<u64>) -> Result<Value, ClientError> {
        let mut request = self
            .request(reqwest::Method::PATCH, "/properties")
            .json(&patch);
        if let Some(change) = if_match {
            request = request.header("if-match", format!("\"{change}\""));
        }
        answer(request.send().await?).await
    }

    /// Waits until this headset's render session is Ready and returns its `renderUrl`;
    /// [`ClientError::SessionEnded`] if it fails or stops first, or after `limit`.
    pub async fn render_url(&self, limit: Duration) -> Result<String, ClientError> {
        let id = self
            .render_session
            .as_ref()
            .and_then(|s| s["id"].as_str())
            .ok_or_else(|| ClientError::NotFound("this member has no render session".into()))?;
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let session = match self.coordinator.own_render_session(id).await {
                Err(ClientError::Throttled(wait)) => {
                    tokio::time::sleep(wait).await;
                    continue;
                }
                other => other?,
            };
            if let Some(url) = session["renderUrl"].as_str() {
                return Ok(url.to_string());
            }
            let status = session["status"].as_str().unwrap_or_default();
            if matches!(status, "Error" | "Stopped" | "Expired") {
                let why = session["error"]["message"].as_str().unwrap_or(status);
                return Err(ClientError::SessionEnded(format!("{id}: {why}")));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::Transport(format!(
                    "render session {id} was not Ready within {limit:?} ({status})"
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The coordinator this member talks to.
    pub fn coordinator(&self) -> &Coordinator {
        &self.coordinator
    }

    /// Shows `model` to everyone in the space.
    pub async fn select(&self, model: &str) -> Result<Value, ClientError> {
        self.write(json!({ "selectedModel": model }), None).await
    }

    /// Leaves the space (a headset's render session is released).
    pub async fn leave(&self) -> Result<(), ClientError> {
        let request = self.request(reqwest::Method::DELETE, "/members/me");
        answer(request.send().await?).await.map(|_| ())
    }

    /// The same membership through another coordinator address (e.g. after it moved).
    pub fn through(&self, coordinator: &Coordinator) -> Membership {
        Membership {
            coordinator: coordinator.clone(),
            ..self.clone()
        }
    }

    /// Reopens the conversation after this process lost it (e.g. a restart), resuming after
    /// `last_seq`: the missed events, or a snapshot if the server cannot replay them.
    pub async fn reconnect(&self, last_seq: u64) -> Result<SpaceConnection, ClientError> {
        let mut connection = SpaceConnection {
            membership: self.clone(),
            socket: None,
            last_seq,
            change: 0,
            pending: Vec::new(),
            unacked: None,
        };
        connection.open(Some(last_seq)).await?;
        Ok(connection)
    }

    /// Opens the space's conversation from scratch (a snapshot first).
    pub async fn connect(&self) -> Result<SpaceConnection, ClientError> {
        let mut connection = SpaceConnection {
            membership: self.clone(),
            socket: None,
            last_seq: 0,
            change: 0,
            pending: Vec::new(),
            unacked: None,
        };
        connection.open(None).await?;
        Ok(connection)
    }
}

/// What the space told this member.
#[derive(Debug, Clone, PartialEq)]
pub enum SpaceUpdate {
    /// The whole space, when starting fresh or after missing too much.
    Snapshot(Box<SpaceView>),
    /// One event, in order, exactly once.
    Event {
        seq: u64,
        change: u64,
        event: SpaceEvent,
    },
    /// Where members are and point now, and who no longer is: ephemeral, never replayed.
    Presence {
        members: Vec<MemberPresence>,
        gone: Vec<String>,
    },
}

/// The space WebSocket, with acks and resume.
pub struct SpaceConnection {
    membership: Membership,
    socket: Option<WebSocketStream<MaybeTlsStream<TcpStream>>>,
    /// The last sequence number processed.
    last_seq: u64,
    change: u64,
    /// A snapshot from the last welcome, handed out before the next event.
    pending: Vec<SpaceUpdate>,
    /// The last event handed out, acknowledged when the caller asks for the next one.
    unacked: Option<u64>,
}

impl SpaceConnection {
    /// The last sequence number processed.
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The newest change number seen.
    pub fn change(&self) -> u64 {
        self.change
    }

    async fn open(&mut self, last_seq: Option<u64>) -> Result<(), ClientError> {
        let url = socket_url(
            &self.membership.coordinator.server,
            &format!("/v1/spaces/{}/ws", self.membership.space),
        );
        let mut socket = connect_socket(
            &url,
            Some(small_messages()),
            self.membership.coordinator.trust(),
        )
        .await?;
        let hello = SpaceClientMessage::Hello {
            token: self.membership.coordinator.token.clone(),
            member: self.membership.token.clone(),
            last_seq,
        };
        socket.send(Message::text(hello.to_json())).await?;
        self.socket = Some(socket);
        match self.receive().await? {
            SpaceServerMessage::Welcome {
                seq, change, space, ..
            } => {
                self.last_seq = seq;
                self.change = self.change.max(change);
                if let Some(space) = space {
                    self.pending.push(SpaceUpdate::Snapshot(space));
                }
                Ok(())
            }
            other => Err(ClientError::Protocol(format!(
                "expected a welcome, got {other:?}"
            ))),
        }
    }

    async fn receive(&mut self) -> Result<SpaceServerMessage, ClientError> {
        let socket = self
            .socket
            .as_mut()
            .ok_or_else(|| ClientError::Transport("not connected".into()))?;
        loop {
            let message = socket.next().await.ok_or(ClientError::Closed {
                code: 1006,
                reason: "the connection dropped without a close frame".into(),
            })??;
            match message {
                Message::Text(text) => {
                    return SpaceServerMessage::parse(text.as_str())
                        .map_err(|e| ClientError::Protocol(e.to_string()));
                }
                Message::Close(frame) => {
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    return Err(ClientError::Closed { code, reason });
                }
                Message::Binary(_) => {
                    return Err(ClientError::Protocol(
                        "binary message on the space socket".into(),
                    ));
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    /// The next update. Events already processed (a replay overlapping what arrived before a
    /// drop) are skipped, so each is seen once. An event is acknowledged when the next one is
    /// asked for, i.e. once the caller has handled it.
    ///
    /// Cancel-safe: dropping the future (e.g. in `tokio::select!`) loses no event.
    pub async fn next(&mut self) -> Result<SpaceUpdate, ClientError> {
        if let Some(seq) = self.unacked {
            self.send(SpaceClientMessage::Ack { seq }).await?;
            self.unacked = None;
        }
        if !self.pending.is_empty() {
            return Ok(self.pending.remove(0));
        }
        loop {
            match self.receive().await? {
                SpaceServerMessage::Event { seq, change, event } => {
                    if seq <= self.last_seq {
                        continue;
                    }
                    if seq != self.last_seq + 1 {
                        return Err(ClientError::Protocol(format!(
                            "sequence {seq} after {}: a message was lost",
                            self.last_seq
                        )));
                    }
                    self.last_seq = seq;
                    self.change = self.change.max(change);
                    self.unacked = Some(seq);
                    return Ok(SpaceUpdate::Event { seq, change, event });
                }
                SpaceServerMessage::Presence { members, gone } => {
                    return Ok(SpaceUpdate::Presence { members, gone });
                }
                SpaceServerMessage::Welcome { .. } => {
                    return Err(ClientError::Protocol("a second welcome".into()));
                }
            }
        }
    }

    /// Says where this member's wearer is and points now (room coordinates): the space passes
    /// it on to everyone, batched, at most
    /// [`PRESENCE_HZ`](parallax_core::space_protocol::PRESENCE_HZ) times a second.
    pub async fn send_presence(&mut self, presence: Presence) -> Result<(), ClientError> {
        self.send(SpaceClientMessage::Presence { presence }).await
    }

    /// A tablet shows the room map (`on`) or no longer does: while it does, it gets the whole
    /// room's presence, at most
    /// [`MAP_PRESENCE_HZ`](parallax_core::space_protocol::MAP_PRESENCE_HZ) times a second. For
    /// this connection: after a resume, say it again.
    pub async fn watch_map(&mut self, on: bool) -> Result<(), ClientError> {
        self.send(SpaceClientMessage::Watch { map: on }).await
    }

    /// Whether `error` means the connection dropped (resume it) rather than a refusal.
    pub fn is_drop(error: &ClientError) -> bool {
        matches!(
            error,
            ClientError::Transport(_) | ClientError::Closed { code: 1006, .. }
        )
    }

    /// Resumes until it works, waiting longer between tries (up to 2 s), for at most `limit`.
    pub async fn resume_within(&mut self, limit: Duration) -> Result<(), ClientError> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut wait = Duration::from_millis(50);
        loop {
            match self.resume().await {
                Err(e) if Self::is_drop(&e) && tokio::time::Instant::now() + wait < deadline => {
                    // Anywhere in the second half of the wait, so a thousand headsets that lost
                    // the same coordinator do not all come back in the same millisecond.
                    tokio::time::sleep(wait / 2 + wait.mul_f64(rand::random::<f64>() / 2.0)).await;
                    wait = (wait * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    /// [`Self::next`], giving up after `limit`.
    pub async fn next_within(&mut self, limit: Duration) -> Result<SpaceUpdate, ClientError> {
        tokio::time::timeout(limit, self.next())
            .await
            .map_err(|_| ClientError::Transport(format!("nothing arrived within {limit:?}")))?
    }

    async fn send(&mut self, message: SpaceClientMessage) -> Result<(), ClientError> {
        let socket = self
            .socket
            .as_mut()
            .ok_or_else(|| ClientError::Transport("not connected".into()))?;
        socket.send(Message::text(message.to_json())).await?;
        Ok(())
    }

    /// Reconnects after a dropped connection: the server replays exactly what this member has
    /// not processed (or sends a snapshot if it missed too much).
    pub async fn resume(&mut self) -> Result<(), ClientError> {
        if let Some(mut old) = self.socket.take() {
            let _ = old.close(None).await;
        }
        // What was handed out is processed: the replay starts after it.
        self.unacked = None;
        self.open(Some(self.last_seq)).await
    }

    /// Drops the TCP connection without a goodbye, as a network failure would.
    pub fn drop_connection(&mut self) {
        self.socket = None;
    }

    /// Says whether this member is in use (a headset taken off is inactive).
    pub async fn set_status(&mut self, status: MemberStatus) -> Result<(), ClientError> {
        self.send(SpaceClientMessage::Status { status }).await
    }

    /// Ends the conversation (the member stays in the space; [`Membership::leave`] leaves it).
    pub async fn bye(mut self) -> Result<(), ClientError> {
        if let Some(seq) = self.unacked.take() {
            self.send(SpaceClientMessage::Ack { seq }).await?;
        }
        self.send(SpaceClientMessage::Bye).await?;
        loop {
            match self.receive().await {
                Ok(_) => continue,
                Err(ClientError::Closed { .. }) => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }
}
