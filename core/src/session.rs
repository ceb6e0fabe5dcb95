//! One render session, as Azure Remote Rendering defined it: a render host leased exclusively,
//! `Starting → Ready → Stopped | Expired | Error`, billed for the time it is Ready.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::time::Timestamp;

/// Longest lease a session may have, in minutes (24 hours).
pub const MAX_LEASE_MINUTES: u32 = 1440;
/// Longest session id ARR accepted.
pub const MAX_SESSION_ID_LEN: usize = 256;
/// How long a session's record is kept after it ended.
pub const RETENTION: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// Identifies a render host. The pool names the hosts it asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostId(String);

impl HostId {
    pub fn new(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for HostId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which kind of render host a session leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum SessionSize {
    /// Renders up to a polygon budget (20 million triangles by default).
    Standard,
    /// No polygon budget.
    Premium,
}

impl SessionSize {
    pub const ALL: [SessionSize; 2] = [SessionSize::Standard, SessionSize::Premium];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "Standard",
            Self::Premium => "Premium",
        }
    }

    /// Its place in [`SessionSize::ALL`], for per-size arrays.
    pub fn index(self) -> usize {
        match self {
            Self::Standard => 0,
            Self::Premium => 1,
        }
    }
}

impl fmt::Display for SessionSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SessionSize {
    type Err = String;

    /// Case-insensitive: the 2021 API says `Standard`, the legacy one `standard`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "standard" => Ok(Self::Standard),
            "premium" => Ok(Self::Premium),
            _ => Err(format!("size must be Standard or Premium, not {s:?}")),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SessionStatus {
    Starting,
    Ready,
    Stopped,
    Expired,
    Error,
}

impl SessionStatus {
    /// Stopped, Expired and Error are final.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Stopped | Self::Expired | Self::Error)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "Starting",
            Self::Ready => "Ready",
            Self::Stopped => "Stopped",
            Self::Expired => "Expired",
            Self::Error => "Error",
        }
    }
}

impl FromStr for SessionStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Self::Starting,
            Self::Ready,
            Self::Stopped,
            Self::Expired,
            Self::Error,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
        .ok_or_else(|| format!("unknown session status {s:?}"))
    }
}

/// A caller-chosen session id: 1 to 256 letters, digits, `-` or `_`; case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(String);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SessionIdError {
    #[error("the session id is empty")]
    Empty,
    #[error("the session id has {0} characters; at most {MAX_SESSION_ID_LEN} are allowed")]
    TooLong(usize),
    #[error("the session id may only hold letters, digits, '-' and '_', not {0:?}")]
    BadCharacter(char),
}

impl SessionId {
    pub fn parse(id: &str) -> Result<Self, SessionIdError> {
        if id.is_empty() {
            return Err(SessionIdError::Empty);
        }
        let length = id.chars().count();
        if length > MAX_SESSION_ID_LEN {
            return Err(SessionIdError::TooLong(length));
        }
        if let Some(bad) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(SessionIdError::BadCharacter(bad));
        }
        Ok(Self(id.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Session ids are chosen per account, so a session is known by both.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SessionKey {
    pub account: String,
    pub id: SessionId,
}

impl SessionKey {
    pub fn new(account: impl Into<String>, id: SessionId) -> Self {
        Self {
            account: account.into(),
            id,
        }
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.account, self.id)
    }
}

/// Why a lease could not be extended.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExtendError {
    #[error("maxLeaseTimeMinutes can only be raised: it is {current}, {requested} is not larger")]
    NotLarger { current: u32, requested: u32 },
    #[error("maxLeaseTimeMinutes may be at most {MAX_LEASE_MINUTES}, not {requested}")]
    TooLong { requested: u32 },
    #[error("the session has ended ({}); its lease cannot change", status.as_str())]
    Ended { status: SessionStatus },
}

/// One lease of a render host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderSession {
    pub id: SessionId,
    /// The account that owns the session; only it may see or change it.
    pub account: String,
    pub size: SessionSize,
    /// Lease length, counted from the moment the session became Ready.
    pub max_lease_minutes: u32,
    pub status: SessionStatus,
    pub created_at: Timestamp,
    /// When the session became Ready: the start of its lease and its billing.
    pub ready_at: Option<Timestamp>,
    /// When it reached a terminal status: the end of its billing.
    pub ended_at: Option<Timestamp>,
    /// Why it is in `Error`.
    pub error: Option<String>,
    /// The render host it holds (or is waiting for, while Starting).
    pub host: Option<HostId>,
}

impl RenderSession {
    pub fn new(
        id: SessionId,
        account: impl Into<String>,
        size: SessionSize,
        max_lease_minutes: u32,
        now: Timestamp,
    ) -> Self {
        Self {
            id,
            account: account.into(),
            size,
            max_lease_minutes,
            status: SessionStatus::Starting,
            created_at: now,
            ready_at: None,
            ended_at: None,
            error: None,
            host: None,
        }
    }

    /// Starting or Ready: the session holds or awaits a host.
    pub fn key(&self) -> SessionKey {
        SessionKey::new(self.account.clone(), self.id.clone())
    }

    pub fn is_active(&self) -> bool {
        !self.status.is_terminal()
    }

    /// When a Ready session's lease runs out.
    pub fn lease_end(&self) -> Option<Timestamp> {
        match self.status {
            SessionStatus::Ready => self.ready_at.map(|ready| {
                ready.after(Duration::from_secs(u64::from(self.max_lease_minutes) * 60))
            }),
            _ => None,
        }
    }

    /// Time spent Ready up to `now` (or up to the end): what is billed.
    pub fn ready_time(&self, now: Timestamp) -> Duration {
        match self.ready_at {
            Some(ready) => self.ended_at.unwrap_or(now).since(ready),
            None => Duration::ZERO,
        }
    }

    /// ARR's `elapsedTimeMinutes`: whole minutes spent Ready.
    pub fn elapsed_minutes(&self, now: Timestamp) -> u64 {
        self.ready_time(now).as_secs() / 60
    }

    /// Ready time that falls inside `[from, to)`, for usage reports.
    pub fn ready_time_within(&self, from: Timestamp, to: Timestamp, now: Timestamp) -> Duration {
        let Some(ready) = self.ready_at else {
            return Duration::ZERO;
        };
        let end = self.ended_at.unwrap_or(now);
        end.min(to).since(ready.max(from))
    }

    /// When this record may be purged.
    pub fn purge_at(&self) -> Option<Timestamp> {
        self.ended_at.map(|ended| ended.after(RETENTION))
    }

    pub(crate) fn handle_ready(&mut self, host: HostId, now: Timestamp) {
        if self.status == SessionStatus::Starting {
            self.status = SessionStatus::Ready;
            self.ready_at = Some(now);
            self.host = Some(host);
        }
    }

    pub(crate) fn handle_waiting_for(&mut self, host: Option<HostId>) {
        if self.status == SessionStatus::Starting {
            self.host = host;
        }
    }

    /// Moves to a terminal status; a session that already ended keeps its first ending.
    pub(crate) fn handle_end(
        &mut self,
        status: SessionStatus,
        now: Timestamp,
        error: Option<String>,
    ) {
        debug_assert!(status.is_terminal());
        if self.status.is_terminal() {
            return;
        }
        self.status = status;
        self.ended_at = Some(now);
        self.error = error;
        self.host = None;
    }

    /// Raises the lease to `minutes`.
    pub fn handle_extend(&mut self, minutes: u32) -> Result<(), ExtendError> {
        if self.status.is_terminal() {
            return Err(ExtendError::Ended {
                status: self.status,
            });
        }
        if minutes > MAX_LEASE_MINUTES {
            return Err(ExtendError::TooLong { requested: minutes });
        }
        if minutes <= self.max_lease_minutes {
            return Err(ExtendError::NotLarger {
                current: self.max_lease_minutes,
                requested: minutes,
            });
        }
        self.max_lease_minutes = minutes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: u64 = 60_000;

    fn session(lease: u32) -> RenderSession {
        RenderSession::new(
            SessionId::parse("s-1").unwrap(),
            "acct",
            SessionSize::Standard,
            lease,
            Timestamp(0),
        )
    }

    #[test]
    fn session_ids_follow_arr_rules() {
        assert!(SessionId::parse("My_session-42").is_ok());
        assert_eq!(SessionId::parse(""), Err(SessionIdError::Empty));
        assert_eq!(
            SessionId::parse(&"a".repeat(257)),
            Err(SessionIdError::TooLong(257))
        );
        assert!(SessionId::parse(&"a".repeat(256)).is_ok());
        assert_eq!(
            SessionId::parse("a b"),
            Err(SessionIdError::BadCharacter(' '))
        );
        assert_eq!(
            SessionId::parse("é"),
            Err(SessionIdError::BadCharacter('é'))
        );
        assert_ne!(
            SessionId::parse("Abc").unwrap(),
            SessionId::parse("abc").unwrap()
        );
    }

    #[test]
    fn sizes_parse_either_casing() {
        assert_eq!("Standard".parse(), Ok(SessionSize::Standard));
        assert_eq!("premium".parse(), Ok(SessionSize::Premium));
        assert!("huge".parse::<SessionSize>().is_err());
    }

    #[test]
    fn billing_counts_only_ready_time_in_whole_minutes() {
        let mut s = session(60);
        assert_eq!(
            s.elapsed_minutes(Timestamp(10 * MINUTE)),
            0,
            "Starting is not billed"
        );
        s.handle_ready(HostId::new("h"), Timestamp(2 * MINUTE));
        assert_eq!(
            s.lease_end(),
            Some(Timestamp(62 * MINUTE)),
            "the lease counts from Ready"
        );
        assert_eq!(s.elapsed_minutes(Timestamp(2 * MINUTE + 59_999)), 0);
        assert_eq!(s.elapsed_minutes(Timestamp(5 * MINUTE)), 3);
        s.handle_end(
            SessionStatus::Stopped,
            Timestamp(12 * MINUTE + 30_000),
            None,
        );
        assert_eq!(
            s.elapsed_minutes(Timestamp(100 * MINUTE)),
            10,
            "billing stops at the end"
        );
        assert_eq!(s.lease_end(), None);
    }

    #[test]
    fn usage_windows_clip_ready_time() {
        let mut s = session(60);
        s.handle_ready(HostId::new("h"), Timestamp(10 * MINUTE));
        s.handle_end(SessionStatus::Stopped, Timestamp(40 * MINUTE), None);
        let within = |from, to| {
            s.ready_time_within(
                Timestamp(from * MINUTE),
                Timestamp(to * MINUTE),
                Timestamp(99 * MINUTE),
            )
        };
        assert_eq!(within(0, 100), Duration::from_secs(30 * 60));
        assert_eq!(within(20, 30), Duration::from_secs(10 * 60));
        assert_eq!(within(35, 100), Duration::from_secs(5 * 60));
        assert_eq!(within(50, 60), Duration::ZERO);
    }

    #[test]
    fn leases_may_only_grow_and_only_while_active() {
        let mut s = session(30);
        assert_eq!(
            s.handle_extend(30),
            Err(ExtendError::NotLarger {
                current: 30,
                requested: 30
            })
        );
        assert_eq!(
            s.handle_extend(10),
            Err(ExtendError::NotLarger {
                current: 30,
                requested: 10
            })
        );
        assert_eq!(
            s.handle_extend(1441),
            Err(ExtendError::TooLong { requested: 1441 })
        );
        assert_eq!(s.handle_extend(1440), Ok(()));
        assert_eq!(s.max_lease_minutes, 1440);
        s.handle_end(SessionStatus::Stopped, Timestamp(1), None);
        assert_eq!(
            s.handle_extend(1440),
            Err(ExtendError::Ended {
                status: SessionStatus::Stopped
            })
        );
    }

    #[test]
    fn terminal_states_are_final() {
        let mut s = session(30);
        s.handle_ready(HostId::new("h"), Timestamp(0));
        s.handle_end(SessionStatus::Error, Timestamp(5), Some("host lost".into()));
        s.handle_end(SessionStatus::Stopped, Timestamp(9), None);
        s.handle_ready(HostId::new("h2"), Timestamp(10));
        assert_eq!(s.status, SessionStatus::Error);
        assert_eq!(
            (s.ended_at, s.error.as_deref()),
            (Some(Timestamp(5)), Some("host lost"))
        );
        assert_eq!(s.purge_at(), Some(Timestamp(5).after(RETENTION)));
    }

    #[test]
    fn names_read_as_the_api_writes_them_and_records_are_kept_30_days() {
        assert_eq!(RETENTION.as_secs(), 30 * 86_400);
        assert_eq!(HostId::new("standard-1").as_str(), "standard-1");
        assert_eq!(HostId::new("standard-1").to_string(), "standard-1");
        assert_eq!(SessionSize::Premium.to_string(), "Premium");
        assert_eq!(SessionStatus::Ready.as_str(), "Ready");
        for status in [
            SessionStatus::Starting,
            SessionStatus::Ready,
            SessionStatus::Stopped,
            SessionStatus::Expired,
            SessionStatus::Error,
        ] {
            assert_eq!(status.as_str().parse::<SessionStatus>(), Ok(status));
        }
        assert!("Resting".parse::<SessionStatus>().is_err());
        let id = SessionId::parse("review-1").unwrap();
        assert_eq!(id.as_str(), "review-1");
        assert_eq!(SessionKey::new("acct", id).to_string(), "acct/review-1");
    }

    #[test]
    fn only_a_starting_session_takes_the_host_it_waits_for() {
        let mut starting = session(10);
        starting.handle_waiting_for(Some(HostId::new("h1")));
        assert_eq!(starting.host, Some(HostId::new("h1")));
        let mut ready = session(10);
        ready.handle_ready(HostId::new("h2"), Timestamp(0));
        ready.handle_waiting_for(Some(HostId::new("h3")));
        assert_eq!(ready.host, Some(HostId::new("h2")));
    }
}
