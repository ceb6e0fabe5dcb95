//! `/v1/headset/ws`: a headset's conversation. `hello` first (within `HELLO_TIMEOUT`), then the
//! server pushes the selection and its frame every time it changes; `bye` ends it.

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use parallax_core::conversation::Step;
use parallax_core::protocol::{
    CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_POLICY_VIOLATION, CLOSE_UNSUPPORTED_DATA, HELLO_TIMEOUT,
    close_reason,
};
use parallax_core::{ClientMessage, Conversation, FrameHeader, ServerMessage};
use tokio::time::timeout;

use crate::AppState;
use crate::stage::Showing;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/headset/ws", get(headset_ws_handler))
}

async fn headset_ws_handler(ws: WebSocketUpgrade, State(state): State<AppState>) -> Response {
    small_messages(ws).on_upgrade(move |socket| converse(socket, state))
}

/// Why a conversation ended, as the close frame tells the client.
struct Close {
    code: u16,
    reason: String,
}

impl Close {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

async fn converse(mut socket: WebSocket, state: AppState) {
    let conversation_id = uuid::Uuid::new_v4();
    let close = match run(&mut socket, &state, conversation_id).await {
        Ok(close) | Err(close) => close,
    };
    tracing::debug!(%conversation_id, code = close.code, reason = %close.reason, "headset conversation ended");
    let frame = CloseFrame {
        code: close.code,
        reason: close_reason(&close.reason).into(),
    };
    // The peer may already be gone; there is nobody left to tell then.
    let _ = socket.send(Message::Close(Some(frame))).await;
}

async fn run(
    socket: &mut WebSocket,
    state: &AppState,
    conversation_id: uuid::Uuid,
) -> Result<Close, Close> {
    let mut conversation = Conversation::new();

    let first = match timeout(HELLO_TIMEOUT, socket.recv()).await {
        Err(_) => {
            return Err(Close::new(
                CLOSE_POLICY_VIOLATION,
                "no hello within 10 seconds",
            ));
        }
        Ok(None) | Ok(Some(Err(_))) => return Err(Close::new(CLOSE_GOING_AWAY, "connection lost")),
        Ok(Some(Ok(message))) => message,
    };
    let Some(step) = handle(&mut conversation, first)? else {
        return Err(Close::new(
            CLOSE_POLICY_VIOLATION,
            "the first message must be hello",
        ));
    };
    debug_assert_eq!(step, Step::Opened);
    send(
        socket,
        ServerMessage::Welcome {
            conversation: conversation_id.to_string(),
        },
    )
    .await?;

    let mut showing = state.stage.subscribe();
    showing.mark_changed();
    let mut frames_sent = 0u64;
    loop {
        tokio::select! {
            changed = showing.changed() => {
                if changed.is_err() {
                    return Ok(Close::new(CLOSE_GOING_AWAY, "server shutting down"));
                }
                // Only the newest state is read: updates made while we were sending are skipped.
                let current = showing.borrow_and_update().clone();
                push(socket, &current, &mut frames_sent).await?;
            }
            message = socket.recv() => {
                let Some(Ok(message)) = message else {
                    return Err(Close::new(CLOSE_GOING_AWAY, "connection lost"));
                };
                if let Some(Step::Ended) = handle(&mut conversation, message)? {
                    return Ok(Close::new(CLOSE_NORMAL, "bye"));
                }
            }
            () = state.shutdown.cancelled() => {
                return Ok(Close::new(CLOSE_GOING_AWAY, "server shutting down"));
            }
        }
    }
}

/// Applies one incoming WebSocket message to the conversation. `None` for control frames.
fn handle(conversation: &mut Conversation, message: Message) -> Result<Option<Step>, Close> {
    let text = match message {
        Message::Text(text) => text,
        Message::Binary(_) => {
            return Err(Close::new(
                CLOSE_UNSUPPORTED_DATA,
                "binary messages are not accepted from devices; send JSON text",
            ));
        }
        Message::Close(_) => return Err(Close::new(CLOSE_NORMAL, "closed by the device")),
        Message::Ping(_) | Message::Pong(_) => return Ok(None),
    };
    let parsed = ClientMessage::parse(text.as_str())
        .map_err(|e| Close::new(CLOSE_UNSUPPORTED_DATA, e.to_string()))?;
    conversation
        .handle_message(&parsed)
        .map(Some)
        .map_err(|e| Close::new(CLOSE_POLICY_VIOLATION, e.to_string()))
}

async fn push(
    socket: &mut WebSocket,
    showing: &Showing,
    frames_sent: &mut u64,
) -> Result<(), Close> {
    send(
        socket,
        ServerMessage::Selection {
            change: showing.change,
            model: showing.model.clone(),
        },
    )
    .await?;
    if let Some(error) = &showing.error {
        send(
            socket,
            ServerMessage::Error {
                code: "RenderFailed".into(),
                message: error.clone(),
            },
        )
        .await?;
    }
    if let Some(jpeg) = &showing.frame {
        *frames_sent += 1;
        let header = FrameHeader {
            frame: *frames_sent,
            pose: 0,
            change: showing.change,
        };
        socket
            .send(Message::Binary(header.encode_with(jpeg).into()))
            .await
            .map_err(|_| Close::new(CLOSE_GOING_AWAY, "connection lost"))?;
    }
    Ok(())
}

async fn send(socket: &mut WebSocket, message: ServerMessage) -> Result<(), Close> {
    socket
        .send(Message::Text(message.to_json().into()))
        .await
        .map_err(|_| Close::new(CLOSE_GOING_AWAY, "connection lost"))
}

/// Read buffer of every WebSocket the server accepts; longer messages still arrive (the buffer
/// grows for them).
const READ_BUFFER: usize = 1024;
/// Largest message a peer may send: hellos, acks, poses and host reports are a few hundred bytes.
const MAX_MESSAGE: usize = 64 * 1024;

/// Every peer of the server sends small JSON. tungstenite zero-fills its whole read buffer
/// (128 KiB by default) before every read: more work than the message, and resident memory for
/// each of thousands of idle members.
pub(crate) fn small_messages(ws: WebSocketUpgrade) -> WebSocketUpgrade {
    ws.read_buffer_size(READ_BUFFER)
        .max_message_size(MAX_MESSAGE)
}
