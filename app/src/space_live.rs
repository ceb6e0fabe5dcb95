//! A tablet's space WebSocket in the browser: hello (the session cookie carries the access
//! token), events applied in order exactly once and acknowledged, and after a dropped connection
//! a resume from the last sequence with backoff. Browser only.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use futures_channel::mpsc::{UnboundedSender, unbounded};
use futures_util::{SinkExt, StreamExt, stream};
use gloo_net::websocket::{Message, WebSocketError, futures::WebSocket};
use leptos::prelude::*;
use parallax_core::space_protocol::{Presence, SpaceClientMessage, SpaceEvent, SpaceServerMessage};

thread_local! {
    /// Where this page's own messages go (presence, the room map's watch): the space socket's
    /// conversation, while there is one.
    static OUT: RefCell<Option<UnboundedSender<SpaceClientMessage>>> = const { RefCell::new(None) };
    /// Whether this page shows the room map: said again on every (re)connection.
    static MAP_SHOWN: Cell<bool> = const { Cell::new(false) };
}

/// Sends `message` on the space's socket; dropped while it is down.
fn send(message: SpaceClientMessage) {
    OUT.with(|out| {
        if let Some(out) = out.borrow().as_ref() {
            let _ = out.unbounded_send(message);
        }
    });
}

/// Says where this headset's wearer is and points (room coordinates) on the space's socket;
/// dropped while it is down (presence is the latest only).
pub(crate) fn send_presence(presence: Presence) {
    send(SpaceClientMessage::Presence { presence });
}

/// This page shows the room map (`on`) or no longer does: the space sends it where the headsets'
/// wearers are only while it does.
pub(crate) fn show_map(on: bool) {
    MAP_SHOWN.with(|shown| shown.set(on));
    send(SpaceClientMessage::Watch { map: on });
}

/// What the conversation waits for: the server, or this page's own message to send.
enum Input {
    Server(Result<Message, WebSocketError>),
    Own(SpaceClientMessage),
    Closed,
}

use crate::live::{Backoff, Ended, socket_url, welcomed_in_time};
use crate::space_state::SpaceState;

/// Follows the space until the server ends the conversation for good.
pub(crate) async fn follow(state: SpaceState) {
    let mut last_seq: Option<u64> = None;
    let mut backoff = Backoff::default();
    loop {
        let welcomed = Rc::new(Cell::new(false));
        let conversation = converse(state, &mut last_seq, welcomed.clone());
        match welcomed_in_time(conversation, &welcomed).await {
            Ended::Closed(reason) => {
                state.connection.set(format!("Not following: {reason}"));
                return;
            }
            Ended::Dropped(reason) => {
                leptos::logging::warn!("space connection dropped: {reason}");
                state.connection.set("Reconnecting…".into());
                backoff.wait(welcomed.get()).await;
            }
        }
    }
}

async fn converse(
    state: SpaceState,
    last_seq: &mut Option<u64>,
    welcomed: Rc<Cell<bool>>,
) -> Ended {
    let Some((_, member)) = state.member.get_untracked() else {
        return Ended::Closed("this tablet is not a member".into());
    };
    let url = match socket_url(&format!("/v1/spaces/{}/ws", state.name.get_untracked())) {
        Ok(url) => url,
        Err(e) => return Ended::Closed(e),
    };
    let socket = match WebSocket::open(&url) {
        Ok(socket) => socket,
        Err(e) => return Ended::Dropped(e.to_string()),
    };
    let (mut outgoing, incoming) = socket.split();
    let hello = SpaceClientMessage::Hello {
        token: String::new(),
        member,
        last_seq: *last_seq,
    };
    if let Err(e) = outgoing.send(Message::Text(hello.to_json())).await {
        return Ended::Dropped(e.to_string());
    }
    let (own_out, own_in) = unbounded();
    OUT.with(|out| *out.borrow_mut() = Some(own_out));
    let mut inputs = stream::select(
        incoming
            .map(Input::Server)
            .chain(stream::iter([Input::Closed])),
        own_in.map(Input::Own),
    );
    while let Some(input) = inputs.next().await {
        let message = match input {
            Input::Server(message) => message,
            Input::Own(message) => {
                if let Err(e) = outgoing.send(Message::Text(message.to_json())).await {
                    return Ended::Dropped(e.to_string());
                }
                continue;
            }
            Input::Closed => break,
        };
        let text = match message {
            Ok(Message::Text(text)) => text,
            Ok(Message::Bytes(_)) => continue,
            Err(WebSocketError::ConnectionClose(close))
                if close.code == 1000 || close.code == 1008 =>
            {
                return Ended::Closed(close.reason);
            }
            Err(e) => return Ended::Dropped(e.to_string()),
        };
        let Ok(message) = SpaceServerMessage::parse(&text) else {
            continue;
        };
        match message {
            SpaceServerMessage::Welcome { seq, space, .. } => {
                *last_seq = Some(seq);
                if let Some(space) = space {
                    state.apply_view(&space);
                }
                // Who is present comes again, in full: who left while away is gone.
                state.presence.set(Default::default());
                state.connection.set("Live".into());
                welcomed.set(true);
                // The room map's watch is this connection's: said again.
                if MAP_SHOWN.with(Cell::get) {
                    send(SpaceClientMessage::Watch { map: true });
                }
            }
            SpaceServerMessage::Event { seq, event, .. } => {
                if last_seq.is_some_and(|last| seq <= last) {
                    continue; // Already applied before a drop.
                }
                apply(state, event);
                *last_seq = Some(seq);
                let ack = SpaceClientMessage::Ack { seq };
                if let Err(e) = outgoing.send(Message::Text(ack.to_json())).await {
                    return Ended::Dropped(e.to_string());
                }
            }
            // Ephemeral: the latest only, not acknowledged.
            SpaceServerMessage::Presence { members, gone } => state.presence.update(|present| {
                for member in gone {
                    present.remove(&member);
                }
                for member in members {
                    present.insert(member.member.clone(), member);
                }
            }),
        }
    }
    Ended::Dropped("the connection closed".into())
}

fn apply(state: SpaceState, event: SpaceEvent) {
    match event {
        SpaceEvent::Roster { members } => {
            state.member_count.set(members.len() as u64);
            state.members.set(members);
        }
        SpaceEvent::Arbiter { member } => state.arbiter.set(member),
        SpaceEvent::Selection { model, transform } => {
            state.selected.set(model.map(|m| m.0));
            state.transform.set(transform);
        }
        SpaceEvent::Review { review } => state.review.set(review),
        SpaceEvent::Pick { pick } => state.pick.set(Some(pick)),
        SpaceEvent::Room { room } => state.room.set(room),
        SpaceEvent::Tap | SpaceEvent::Custom { .. } => {}
    }
}
