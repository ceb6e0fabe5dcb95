//! The space WebSocket (`/v1/spaces/{name}/ws`), a WCF-style session: `hello` first (access token,
//! member token, and the last sequence seen when resuming), `bye` ends it. Every server message
//! after `welcome` carries the member's next sequence number and the space's change number; the
//! client acknowledges what it processed.

use serde::{Deserialize, Serialize};

use crate::review::Review;
use crate::room::RoomPlacement;

use crate::catalog::ModelId;
use crate::device::Placement;
use crate::protocol::ProtocolError;
use crate::space::{Member, MemberStatus, Pick};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SpaceClientMessage {
    Hello {
        /// The account's access token; empty in a browser, whose session cookie carries it.
        #[serde(default)]
        token: String,
        /// The member token from the join: identifies the member and resumes its session.
        member: String,
        /// The last sequence number processed, when resuming; absent for a fresh start.
        #[serde(default, rename = "lastSeq")]
        last_seq: Option<u64>,
    },
    Ack {
        seq: u64,
    },
    /// The member is (in)active, e.g. a headset taken off.
    Status {
        status: MemberStatus,
    },
    /// Where an aligned headset's wearer is and points now: ephemeral, up to
    /// [`PRESENCE_HZ`] a second, never acknowledged, logged or replayed.
    Presence {
        presence: Presence,
    },
    /// A tablet shows the room map's wearers (`map: true`) or no longer does: while it does, it
    /// gets the whole room's presence, at most [`MAP_PRESENCE_HZ`] a second; the first is the
    /// whole room, to start the map from (forget who was there before). Per connection (after a
    /// resume, say it again), as MPSD's subscriptions are per registration: a member gets only
    /// the changes it asked for, so a thousand members that show no map cost nothing. A
    /// headset's changes nothing: it gets everyone's presence anyway.
    Watch {
        map: bool,
    },
    Bye,
}

/// How often a space sends the members' presence at most (a second), and a headset sends its own.
pub const PRESENCE_HZ: u32 = 15;

/// The most members' presence one message carries: what one member receives is bounded whatever
/// the space's size (those left over come in the next).
pub const MAX_PRESENCE_BATCH: usize = 64;
/// How often a tablet that shows the room map ([`SpaceClientMessage::Watch`]) gets the room's
/// presence, at most: the map needs no more, and in a space of hundreds of tablets presence at
/// the headsets' rate would crowd out the events.
pub const MAP_PRESENCE_HZ: u32 = 2;

pub use crate::room::Presence;

/// One member's presence as the space passes it on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberPresence {
    pub member: String,
    /// Its device's name, to label it.
    pub device: String,
    #[serde(flatten)]
    pub presence: Presence,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SpaceServerMessage {
    /// The answer to `hello`. `space` is a full snapshot when the member starts fresh or missed
    /// too much; otherwise the missed events follow, in order.
    Welcome {
        member: String,
        /// The sequence number the member is at after this welcome (before any replay).
        seq: u64,
        change: u64,
        #[serde(skip_serializing_if = "Option::is_none", default)]
        space: Option<Box<crate::api::SpaceView>>,
    },
    Event {
        seq: u64,
        change: u64,
        event: SpaceEvent,
    },
    /// Where members are and point now (at most [`MAX_PRESENCE_BATCH`]), and who no longer is:
    /// no sequence number, not acknowledged, never replayed. A member's own is included.
    Presence {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        members: Vec<MemberPresence>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        gone: Vec<String>,
    },
}

/// What happened in the space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SpaceEvent {
    /// Something changed: for large spaces, which send no roster (MPSD's shoulder tap).
    Tap,
    Roster {
        members: Vec<Member>,
    },
    Arbiter {
        member: Option<String>,
    },
    /// The selected model or its placement changed: load it on your render connection.
    Selection {
        model: Option<ModelId>,
        transform: Placement,
    },
    Custom {
        custom: serde_json::Value,
    },
    /// The design review changed: apply it on your render connection.
    Review {
        review: Review,
    },
    /// A member picked a part.
    Pick {
        pick: Pick,
    },
    /// The model moved in the room: draw it there (aligned headsets), show it there (the room
    /// map).
    Room {
        room: RoomPlacement,
    },
}

impl SpaceClientMessage {
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("space messages always serialize")
    }
}

impl SpaceServerMessage {
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("space messages always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_reads_with_and_without_a_resume_point() {
        let fresh = SpaceClientMessage::parse(r#"{"type":"hello","token":"t","member":"m"}"#);
        assert_eq!(
            fresh.unwrap(),
            SpaceClientMessage::Hello {
                token: "t".into(),
                member: "m".into(),
                last_seq: None
            }
        );
        let resumed =
            SpaceClientMessage::parse(r#"{"type":"hello","token":"t","member":"m","lastSeq":7}"#);
        assert!(matches!(
            resumed.unwrap(),
            SpaceClientMessage::Hello {
                last_seq: Some(7),
                ..
            }
        ));
    }

    #[test]
    fn events_round_trip() {
        let event = SpaceServerMessage::Event {
            seq: 3,
            change: 9,
            event: SpaceEvent::Selection {
                model: Some(ModelId::new("gear")),
                transform: Placement::default(),
            },
        };
        assert_eq!(SpaceServerMessage::parse(&event.to_json()).unwrap(), event);
    }

    #[test]
    fn an_ack_reads_back_as_it_was_written() {
        let ack = SpaceClientMessage::Ack { seq: 12 };
        assert_eq!(SpaceClientMessage::parse(&ack.to_json()).unwrap(), ack);
    }

    #[test]
    fn presence_reads_as_written_and_is_checked() {
        let here = Presence {
            head: [0.5, 1.6, -0.2],
            orientation: [0.0, 0.0, 0.0, 1.0],
            ray: Some([[0.3, 1.2, -0.1], [0.0, 0.0, -1.0]]),
        };
        assert_eq!(here.problem(), None);
        assert_eq!(here.facing(), [0.0, -1.0]);
        let s = std::f32::consts::FRAC_1_SQRT_2;
        let left = Presence {
            orientation: [0.0, s, 0.0, s],
            ..here
        };
        let [x, z] = left.facing();
        assert!(
            (x + 1.0).abs() < 1e-6 && z.abs() < 1e-6,
            "turned left looks along -X"
        );
        let sent = SpaceClientMessage::Presence { presence: here };
        assert_eq!(SpaceClientMessage::parse(&sent.to_json()).unwrap(), sent);
        let batch = SpaceServerMessage::Presence {
            members: vec![MemberPresence {
                member: "m1".into(),
                device: "Quest 3".into(),
                presence: here,
            }],
            gone: vec!["m2".into()],
        };
        let text = batch.to_json();
        assert!(
            text.contains(r#""device":"Quest 3","head":[0.5,1.6,-0.2]"#),
            "{text}"
        );
        assert_eq!(SpaceServerMessage::parse(&text).unwrap(), batch);
        for bad in [
            Presence {
                head: [f32::NAN, 0.0, 0.0],
                ..here
            },
            Presence {
                orientation: [0.0, 0.0, 0.0, 2.0],
                ..here
            },
            Presence {
                ray: Some([[0.0; 3], [0.0; 3]]),
                ..here
            },
            Presence {
                head: [500.0, 0.0, 0.0],
                ..here
            },
        ] {
            assert!(bad.problem().is_some(), "{bad:?}");
        }
    }
}
