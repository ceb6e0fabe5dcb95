//! The link between a render host process and its coordinator (`/v1/hosts/ws`).
//!
//! A host registers with its own credential, then heartbeats. It learns, at registration, the
//! public key render tickets are signed with: a device opens its render connection with a
//! ticket for that one session, which the host checks and the coordinator confirms (the session
//! must be Ready on this very host); a host never sees an account's token or cookie. The
//! coordinator tells the host when its session ended. A host that falls silent for
//! [`HOST_SILENCE_MS`] is lost: its session ends in `Error`.

use serde::{Deserialize, Serialize};

use crate::pool::HostId;
use crate::protocol::ProtocolError;
use crate::session::SessionSize;

/// How often a host says it is alive.
pub const HEARTBEAT_MS: u64 = 500;
/// Silence after which the coordinator gives a host up: three missed heartbeats, so a hung host's
/// session is in `Error` within 2 s.
pub const HOST_SILENCE_MS: u64 = 1_500;

/// A certificate chain and its private key, PEM, issued to a host for its endpoint's name. It
/// travels only over the host's `wss://` link, which verified the coordinator and which the host
/// secret admitted.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedCertificate {
    pub cert: String,
    pub key: String,
}

impl std::fmt::Debug for IssuedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedCertificate").finish_non_exhaustive()
    }
}

/// What a host tells its coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum HostReport {
    /// First message.
    Register {
        /// This host's own credential (`NAME.SECRET`): it registers as NAME and nothing else.
        credential: String,
        size: SessionSize,
        /// The id the coordinator gave a host it started itself; `None` for a host that offers
        /// itself (another machine, or one that outlived a coordinator restart).
        host: Option<HostId>,
        /// Where devices reach this host's render connections, e.g. `ws://10.0.0.7:41234`.
        endpoint: String,
        /// The GPU adapter the host renders on, for the operator.
        adapter: String,
        /// The host's process id, for the operator.
        pid: u32,
        /// The host has no certificate of its own for its `wss://` endpoint: it asks the
        /// coordinator to issue one for the endpoint's name from its certificate authority.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        wants_certificate: bool,
    },
    Heartbeat {
        /// A device holds the render connection.
        device: bool,
        /// Frames sent to the device per second since the last heartbeat.
        #[serde(default)]
        fps: f32,
        /// Mean time to render and encode one of those frames, in ms; none without frames.
        #[serde(default, rename = "frameMs", skip_serializing_if = "Option::is_none")]
        frame_ms: Option<f32>,
    },
    /// A device opened the connection for `account`/`session` with `ticket` (which the host
    /// verified): may it?
    Admit {
        /// Echoed in [`HostCommand::Admission`].
        request: u64,
        account: String,
        session: String,
        /// The render ticket, bound to this one session: the only credential a host is given.
        ticket: String,
    },
}

/// What a coordinator tells a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum HostCommand {
    /// Registration accepted: this is the host's name in the pool, and the certificate it asked
    /// for, when the coordinator has an authority devices trust.
    Registered {
        host: HostId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        certificate: Option<IssuedCertificate>,
        /// The Ed25519 public key (base64url) render tickets are signed with.
        #[serde(default)]
        ticket_key: String,
    },
    /// The answer to [`HostReport::Admit`].
    Admission {
        request: u64,
        #[serde(flatten)]
        verdict: Admission,
    },
    /// The leased session ended: disconnect the device and drop the scene.
    Reset,
    /// The pool let the host go (more hosts are free than its standby target): it stops.
    Retire,
}

/// Whether a device may hold the render connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Admission {
    Admitted { size: SessionSize },
    Refused { reason: String },
}

impl HostReport {
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("host reports always serialize")
    }
}

impl HostCommand {
    pub fn parse(text: &str) -> Result<Self, ProtocolError> {
        serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("host commands always serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_reads_flat() {
        let refused = HostCommand::Admission {
            request: 7,
            verdict: Admission::Refused {
                reason: "no".into(),
            },
        };
        let json = refused.to_json();
        assert_eq!(
            json,
            r#"{"type":"admission","request":7,"verdict":"refused","reason":"no"}"#
        );
        assert_eq!(HostCommand::parse(&json).unwrap(), refused);
    }

    #[test]
    fn a_certificate_is_asked_for_and_issued_only_when_needed() {
        let register = HostReport::Register {
            credential: "gpu-box.s".into(),
            size: SessionSize::Standard,
            host: None,
            endpoint: "wss://gpu-box.local:7000".into(),
            adapter: "a".into(),
            pid: 1,
            wants_certificate: false,
        };
        // Hosts of before, and hosts with their own certificate, say nothing of it.
        assert!(!register.to_json().contains("wants_certificate"));
        let asking = r#"{"type":"register","credential":"gpu-box.s","size":"Standard","host":null,"endpoint":"wss://gpu-box.local:7000","adapter":"a","pid":1,"wants_certificate":true}"#;
        assert!(matches!(
            HostReport::parse(asking),
            Ok(HostReport::Register {
                wants_certificate: true,
                ..
            })
        ));
        let issued = HostCommand::Registered {
            host: HostId::new("h"),
            certificate: Some(IssuedCertificate {
                cert: "C".into(),
                key: "PRIVATE-KEY-PEM".into(),
            }),
            ticket_key: "K".into(),
        };
        assert_eq!(HostCommand::parse(&issued.to_json()).unwrap(), issued);
        assert!(
            !format!("{issued:?}").contains("PRIVATE-KEY-PEM"),
            "keys stay out of logs"
        );
        assert_eq!(
            HostCommand::parse(r#"{"type":"registered","host":"h","ticket_key":"K"}"#).unwrap(),
            HostCommand::Registered {
                host: HostId::new("h"),
                certificate: None,
                ticket_key: "K".into(),
            }
        );
    }

    #[test]
    fn a_report_without_its_type_is_malformed() {
        assert!(HostReport::parse(r#"{"device":true}"#).is_err());
    }

    #[test]
    fn a_heartbeat_reads_back_as_it_was_written() {
        let beat = HostReport::Heartbeat {
            device: true,
            fps: 30.0,
            frame_ms: Some(5.5),
        };
        assert_eq!(HostReport::parse(&beat.to_json()).unwrap(), beat);
    }
}
