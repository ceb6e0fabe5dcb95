//! A tablet's space WebSocket in the browser: hello (the session cookie carries the access
//! token), events applied in order exactly once and acknowledged, and after a dropped connection
//! a resume from the last sequence with backoff. Browser only.

use std::cell::Cell;
use std::rc::Rc;

use futures_util::{SinkExt, StreamExt};
use gloo_net::websocket::{Message, WebSocketError, futures::WebSocket};
use leptos::prelude::*;
use parallax_core::space_protocol::{SpaceClientMessage, SpaceEvent, SpaceServerMessage};

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
    let (mut outgoing, mut incoming) = socket.split();
    let hello = SpaceClientMessage::Hello {
        token: String::new(),
        member,
        last_seq: *last_seq,
    };
    if let Err(e) = outgoing.send(Message::Text(hello.to_json())).await {
        return Ended::Dropped(e.to_string());
    }
    while let Some(message) = incoming.next().await {
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
                state.connection.set("Live".into());
                welcomed.set(true);
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
