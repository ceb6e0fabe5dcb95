//! The HTTP API's requests and answers: one definition the server writes and the app reads, so a
//! renamed field fails a build, not an empty cell. With the feature `openapi` each also
//! describes itself for the OpenAPI document at `/openapi.json`.

use serde::{Deserialize, Serialize};

use crate::catalog::ModelId;
use crate::change::ChangeNumber;
use crate::space::{Constants, Member, MemberId, MemberStatus, Properties, Role, Template};

/// `GET /v1/browser/me`: who the caller is signed in as.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The account: the caller's own, or for a guest the account of the space it joined.
    pub account: String,
    /// A guest's one space, the only one it reaches; none for an account's own sign-in.
    pub guest_of: Option<String>,
}

/// `GET /v1/trust`: what the certificate authority devices trust here may sign, and whether it
/// replaced an earlier one. Public: a device reads it before it trusts anything here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct TrustNotes {
    /// Whether this coordinator's certificate comes from an authority of its own (`/ca.crt`);
    /// false when it serves its operator's certificate, or plain HTTP.
    pub authority: bool,
    /// The names and address blocks that authority may sign, comma-separated.
    pub may_sign: Option<String>,
    /// When and why it replaced an earlier authority: devices that trusted that one trust this
    /// one instead.
    pub replaced: Option<String>,
}

/// ARR's session properties, plus `queuePosition`, `renderUrl` and `deviceConnected`: the answer
/// of every session call, and a headset's lease when it joins a space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SessionProperties {
    /// The caller-chosen session id.
    pub id: String,
    /// `Starting`, `Ready`, `Stopped`, `Expired` or `Error`.
    #[cfg_attr(feature = "openapi", schema(example = "Ready"))]
    pub status: String,
    /// `Standard` or `Premium`.
    #[cfg_attr(feature = "openapi", schema(example = "Standard"))]
    pub size: String,
    pub max_lease_time_minutes: u32,
    /// Whole minutes spent Ready: what is billed.
    pub elapsed_time_minutes: u64,
    /// The render host the device connects to, while Ready.
    pub hostname: Option<String>,
    /// The render host's port for the render connection, while Ready.
    pub handshake_port: Option<u16>,
    pub arr_inspector_port: Option<u16>,
    pub teraflops: Option<f32>,
    /// Why the session is in `Error`.
    pub error: Option<SessionErrorInfo>,
    /// RFC 3339.
    pub creation_time: String,
    /// Beyond ARR: the 1-based place in the queue while waiting for a host.
    pub queue_position: Option<usize>,
    /// Beyond ARR: where the one device connects (WebSocket) while the session is Ready, with
    /// a render ticket for this session alone in its query (valid 5 minutes; read the
    /// properties again for a new one).
    pub render_url: Option<String>,
    /// Beyond ARR: a device holds the render connection now.
    pub device_connected: bool,
}

/// Why a session is in `Error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionErrorInfo {
    pub code: String,
    pub message: String,
}

/// A space as its members and its owner see it (`GET /v1/spaces/{name}`, and every write's
/// answer).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SpaceView {
    pub name: String,
    pub constants: Constants,
    pub properties: Properties,
    /// The member who decides when the select policy is `arbiter_only`: the longest joined.
    pub arbiter: Option<MemberId>,
    /// Bumped by every change; also the answer's entity tag (`ETag: "12"`), for `If-Match`.
    pub change: ChangeNumber,
    pub member_count: usize,
    /// In join order. Not in a `large` space (MPSD's large sessions keep no roster), nor in a
    /// list of spaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<Member>>,
    /// The code that lets a device or a guest join: shown to members and the owner only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub join_code: Option<String>,
    /// Which member the caller is, when it sent its member token (`Parallax-Member`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<MemberId>,
}

/// A new member's credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberCredentials {
    pub id: MemberId,
    /// Shown once: acts as the member (the `Parallax-Member` header, the space socket's
    /// `hello`).
    pub token: String,
}

/// The answer to creating or joining a space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Joining {
    pub space: SpaceView,
    pub member: MemberCredentials,
    /// A headset's render session, leased as it joined (none for a tablet, or a headset that
    /// asked for none).
    pub render_session: Option<SessionProperties>,
}

/// A space a device is a member of (`GET /v1/spaces?member=DEVICE`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Membership {
    pub name: String,
    pub member_id: MemberId,
    pub role: Role,
    pub status: MemberStatus,
    pub change: ChangeNumber,
}

/// One entry of `GET /v1/spaces`: a device's membership with `?member=`, else a space the
/// account owns (without its members).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum SpaceListing {
    Membership(Membership),
    Space(Box<SpaceView>),
}

/// `GET /v1/spaces`, by name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SpaceList {
    pub spaces: Vec<SpaceListing>,
}

/// `GET /v1/templates`: what a new space can be made from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Templates {
    pub templates: Vec<Template>,
}

/// How one headset's render session is doing, for a tablet's roster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct MemberRender {
    pub member: MemberId,
    /// The render session's id.
    pub session: String,
    /// As the session's properties say it.
    #[cfg_attr(feature = "openapi", schema(example = "Ready"))]
    pub status: String,
    /// Whether the headset holds its render connection now.
    pub device: bool,
    /// Frames a second, from the host's last heartbeat.
    pub fps: f32,
    /// Mean time to render a frame (ms), once the host has measured one.
    pub frame_ms: Option<f32>,
}

/// `GET /v1/spaces/{name}/render`: each headset's render session, in join order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RenderRoster {
    pub members: Vec<MemberRender>,
}

/// A catalog entry: a sample, or an account's upload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Model {
    pub id: ModelId,
    /// Shown on the tablet's card.
    pub name: String,
    /// What a Standard session's polygon budget is checked against.
    pub triangles: u64,
    /// `sample` or `upload`.
    #[cfg_attr(feature = "openapi", schema(example = "upload"))]
    pub source: String,
    pub file_name: Option<String>,
    /// `gltf`, `glb`, `obj`, `stl`, `step`, …
    pub format: Option<String>,
    pub size_bytes: Option<u64>,
    /// `Converting`, `Ready` or `Failed`.
    #[cfg_attr(feature = "openapi", schema(example = "Ready"))]
    pub status: String,
    /// Why the conversion failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// While `Converting`: how far, 0 to 1, once the converter has said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<f32>,
    /// `/v1/models/{id}/thumbnail.png`.
    pub thumbnail_url: String,
}

/// `GET /v1/models`: the samples and the caller's account's uploads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Models {
    pub models: Vec<Model>,
}

/// `GET /v1/models/{id}/parts`: where a review's cut planes go and what its overrides name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Parts {
    /// The model's bounds, in model space.
    pub bounds: Option<Bounds>,
    /// The roots of the part tree, in the model's order.
    pub parts: Vec<Part>,
}

/// One part, or a group of them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct Part {
    pub name: String,
    /// What a review's overrides and a pick's hits call it: the names from the root down,
    /// joined by `/`.
    pub path: String,
    /// Its own and those of the parts within it.
    pub triangles: u64,
    pub bounds: Option<Bounds>,
    #[cfg_attr(feature = "openapi", schema(no_recursion))]
    pub children: Vec<Part>,
}

/// An axis-aligned box, in model space.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Bounds {
    pub min: [f32; 3],
    pub max: [f32; 3],
}

/// The pool's state of one size, as `/v1/health` and the pool's history report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SizeStatus {
    #[cfg_attr(feature = "openapi", schema(example = "Standard"))]
    pub size: String,
    /// Most hosts of the size.
    pub capacity: u32,
    /// Idle hosts kept ready.
    pub standby: u32,
    /// Hosts running: idle, leased or starting.
    pub hosts: u32,
    pub idle: u32,
    pub leased: u32,
    pub starting: u32,
    /// Hosts lost (died, fell silent) and not yet replaced.
    pub lost: u32,
    /// Sessions waiting for a host.
    pub queued: u32,
    /// Why hosts of the size cannot be started, while they cannot (Kubernetes: their pods do
    /// not start); none are asked for until one, tried again later, runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
}

/// Percentiles of what was measured within one interval, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Spread {
    pub count: usize,
    pub p50: f32,
    pub p95: f32,
    pub max: f32,
}

/// One interval of the pool's last hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PoolSample {
    /// Unix time in ms: when the interval ended (the last one: now).
    pub at: u64,
    pub pool: Vec<SizeStatus>,
    /// From a selection to each member's socket, within the interval.
    pub broadcast_ms: Option<Spread>,
    /// Render hosts' frame times, within the interval.
    pub frame_ms: Option<Spread>,
}

/// `GET /v1/pool/history`: the last hour of the pool, oldest first; the last sample is the
/// interval still running.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct PoolHistory {
    pub interval_seconds: u64,
    pub samples: Vec<PoolSample>,
}

/// The body of every failed call, in ARR's shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    /// e.g. `BadRequest`, `Unauthorized`, `NotFound`, `Conflict`, `PoolExhausted`.
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// Always empty: ARR's shape.
    #[serde(default)]
    pub details: Vec<serde_json::Value>,
    /// The request field at fault, when there is one.
    #[serde(default)]
    pub target: Option<String>,
    /// Always null: ARR's shape.
    #[serde(default)]
    pub inner_error: Option<serde_json::Value>,
}

/// A render host linked to the coordinator, for the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostStatus {
    pub id: String,
    #[cfg_attr(feature = "openapi", schema(example = "Standard"))]
    pub size: String,
    /// Where devices reach its render connections.
    pub endpoint: String,
    /// The GPU adapter it renders on.
    pub adapter: String,
    pub pid: u32,
    /// A device holds its render connection.
    pub device: bool,
    /// With replicas: the replica it is linked to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica: Option<String>,
}

/// `GET /v1/health`: up, and, for an account or the operator, the renderer and the pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok`.
    pub status: String,
    /// The coordinator's GPU adapter (for thumbnails), or that it opens with the first one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renderer: Option<String>,
    /// Per size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<Vec<SizeStatus>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<HostStatus>>,
}

/// `GET /accounts/{id}/sessions`: the Starting and Ready sessions, 50 a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionList {
    pub sessions: Vec<SessionProperties>,
    /// The next page, when there is one.
    #[serde(rename = "@nextLink", default, skip_serializing_if = "Option::is_none")]
    pub next_link: Option<String>,
}

/// `GET /accounts/{id}/usage`: time Ready per size within a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageReport {
    /// RFC 3339.
    pub from: String,
    /// RFC 3339.
    pub to: String,
    pub usage: Vec<SizeUsage>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct SizeUsage {
    #[cfg_attr(feature = "openapi", schema(example = "Standard"))]
    pub size: String,
    /// Time Ready within the window.
    pub ready_seconds: f64,
    /// Started minutes of that time.
    pub billed_minutes: u64,
}
