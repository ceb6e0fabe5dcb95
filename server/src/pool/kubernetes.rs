//! Render hosts as Kubernetes pods (feature `kubernetes`): the [`Provisioner`] the launcher uses
//! under `--render-hosts kubernetes`. A host's pod is made from the operator's `PodTemplate`
//! (`deploy/base/render-host-template.yaml`): named after the host, labelled with its size and
//! owner, told its size and name, and given a Secret of its own credential. The pods of this
//! owner are listed every `--kube-poll` (one request however many there are); a pod that cannot
//! start ([`why_not_starting`]) for `--kube-start-limit` is deleted, its host given up, and its
//! size is *unavailable* (on `/v1/pool` and in `/metrics`): no more pods of it are made until
//! one, tried again after a back-off, runs. Hosts still register over the host link; the
//! provisioner only starts and stops pods.
//!
//! Among replicas, one provisions at a time: the holder of the Lease `<owner>-provisioner`
//! ([`LEASE_SECONDS`], renewed every third of it). It makes a pod for each host the shared pool
//! is booting, deletes the pods of hosts the pool no longer has, and watches them all; the
//! sizes it finds unavailable are on the Lease for the other replicas to report. When it dies,
//! another takes the Lease once it has run out and takes up its pods as they are.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::RangeInclusive;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    EnvVar, Pod, PodTemplate, Secret, Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use parallax_core::session::{HostId, SessionSize};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The label every render host pod has, and the ones the provisioner adds.
pub const COMPONENT: (&str, &str) = ("app.kubernetes.io/component", "render-host");
pub const SIZE_LABEL: &str = "parallax.dev/size";
pub const OWNER_LABEL: &str = "parallax.dev/owner";
pub const HOST_LABEL: &str = "parallax.dev/host";
/// The label with the pod's own name, which its node port's Service selects.
pub const POD_LABEL: &str = "parallax.dev/pod";
/// The annotation holding the host's name exactly (a label value is more restricted).
pub const HOST_ANNOTATION: &str = "parallax.dev/host-id";

/// The environment variable a host's pod is told its node port in (`--advertise-port`).
const ADVERTISE_PORT_ENV: &str = "PARALLAX_HOST_ADVERTISE_PORT";

/// How long a node port another Service had is left alone.
const ELSEWHERE_FOR: Duration = Duration::from_secs(120);

/// How long the first back-off lasts before a size that could not start is tried again; it
/// doubles on each failure, up to [`MOST_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(30);
const MOST_BACKOFF: Duration = Duration::from_secs(600);

/// How long the provisioning replica's Lease lasts without being renewed: the longest a dead
/// replica's pods go unwatched.
pub const LEASE_SECONDS: i32 = 15;
/// How much sooner than the Lease's term its holder stops provisioning without a renewal.
const RENEW_MARGIN: Duration = Duration::from_secs(5);

fn lease_term() -> Duration {
    Duration::from_secs(u64::from(LEASE_SECONDS.unsigned_abs()))
}

/// The Lease's annotations with why a size is unavailable (`…/unavailable-standard`).
const UNAVAILABLE_ANNOTATION: &str = "parallax.dev/unavailable-";

fn unavailable_key(size: SessionSize) -> String {
    format!(
        "{UNAVAILABLE_ANNOTATION}{}",
        size.as_str().to_ascii_lowercase()
    )
}

/// The name of `host`'s pod, and of the Secret that holds its credential: a DNS label (lower
/// case letters, digits and `-`, at most 63 characters).
pub fn pod_name(host: &HostId) -> String {
    let mut name: String = format!("parallax-host-{host}")
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '-',
        })
        .collect();
    name.truncate(63);
    name.trim_end_matches('-').to_string()
}

/// `host`'s pod, of `size`, for the coordinator `owner`, from the operator's `template`: its
/// labels, its `--size` and `--host-id`, and its credential's Secret; with a `node_port`, told to
/// advertise it (its Service, [`node_port_service`], forwards it). An error says what the
/// template lacks.
pub fn host_pod(
    template: &PodTemplate,
    host: &HostId,
    size: SessionSize,
    owner: &str,
    node_port: Option<u16>,
) -> Result<Pod, String> {
    let spec = template
        .template
        .clone()
        .ok_or("the pod template has no `template`")?;
    let mut metadata = spec.metadata.unwrap_or_default();
    let mut pod_spec = spec.spec.ok_or("the pod template has no pod spec")?;
    let host_label = pod_name(host);
    // Each pod its own name, so a new host never waits for an old pod of its name to go.
    let name = format!(
        "{}-{}",
        host_label.chars().take(57).collect::<String>(),
        suffix()
    );
    let labels = metadata.labels.get_or_insert_with(Default::default);
    labels.insert(COMPONENT.0.into(), COMPONENT.1.into());
    labels.insert(SIZE_LABEL.into(), size.as_str().to_ascii_lowercase());
    labels.insert(OWNER_LABEL.into(), owner.into());
    labels.insert(HOST_LABEL.into(), host_label);
    labels.insert(POD_LABEL.into(), name.clone());
    metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(HOST_ANNOTATION.into(), host.to_string());
    metadata.name = Some(name.clone());
    let container = pod_spec
        .containers
        .iter_mut()
        .find(|c| c.name == "render-host")
        .ok_or("the pod template has no container named `render-host`")?;
    let mut args: Vec<String> = Vec::new();
    let mut given = container.args.take().unwrap_or_default().into_iter();
    // The template's arguments, with its `--size` and any `--host-id` replaced by this host's.
    while let Some(arg) = given.next() {
        match arg.as_str() {
            "--size" | "--host-id" => {
                given.next();
            }
            _ => args.push(arg),
        }
    }
    args.extend([
        "--size".into(),
        size.as_str().into(),
        "--host-id".into(),
        host.to_string(),
    ]);
    container.args = Some(args);
    if let Some(port) = node_port {
        if !container
            .ports
            .iter()
            .flatten()
            .any(|p| p.name.as_deref() == Some("render"))
        {
            return Err(
                "the pod template's container has no port named `render` for --kube-node-ports"
                    .into(),
            );
        }
        let env = container.env.get_or_insert_with(Vec::new);
        env.retain(|e| e.name != ADVERTISE_PORT_ENV);
        env.push(EnvVar {
            name: ADVERTISE_PORT_ENV.into(),
            value: Some(port.to_string()),
            value_from: None,
        });
    }
    let credential = pod_spec
        .volumes
        .iter_mut()
        .flatten()
        .find(|v| v.name == "credential")
        .and_then(|v| v.secret.as_mut())
        .ok_or("the pod template has no Secret volume named `credential`")?;
    credential.secret_name = Some(name);
    Ok(Pod {
        metadata,
        spec: Some(pod_spec),
        status: None,
    })
}

/// Why `pod` cannot start, if it cannot: unschedulable, its image not pulled, its container not
/// made, or ended (a host's pod never restarts, so a crash ends it as `Failed`).
pub fn why_not_starting(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() == Some("Failed") {
        let why = status
            .reason
            .as_deref()
            .or(status.message.as_deref())
            .unwrap_or("its container exited");
        return Some(format!("the render host pod failed: {why}"));
    }
    for condition in status.conditions.iter().flatten() {
        if condition.type_ == "PodScheduled"
            && condition.status == "False"
            && condition.reason.as_deref() == Some("Unschedulable")
        {
            let why = condition.message.as_deref().unwrap_or("no node fits it");
            return Some(format!("the render host pod cannot be scheduled: {why}"));
        }
    }
    let containers = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten());
    for container in containers {
        let Some(waiting) = container.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
            continue;
        };
        if let Some(
            reason @ ("ErrImagePull"
            | "ImagePullBackOff"
            | "InvalidImageName"
            | "ErrImageNeverPull"
            | "CrashLoopBackOff"
            | "CreateContainerConfigError"
            | "CreateContainerError"
            | "RunContainerError"),
        ) = waiting.reason.as_deref()
        {
            let detail = waiting.message.as_deref().unwrap_or_default();
            return Some(
                format!("the render host pod cannot start: {reason} {detail}")
                    .trim_end()
                    .to_string(),
            );
        }
    }
    None
}

/// The name of the host `pod` runs (its annotation).
fn host_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(HOST_ANNOTATION)
        .map(String::as_str)
}

/// The node port `pod`'s render connections come in on (the one it advertises), if it has one.
fn node_port(pod: &Pod) -> Option<u16> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .filter(|c| c.name == "render-host")
        .flat_map(|c| c.env.iter().flatten())
        .find(|e| e.name == ADVERTISE_PORT_ENV)?
        .value
        .as_deref()?
        .parse()
        .ok()
}

/// The Service that takes devices' render connections to `pod` (as made, with its uid) on
/// `port` of its node: a NodePort Service of that pod alone (its name's label), owned by it (the garbage collector
/// deletes it with the pod), that keeps connections on the node they reach (the host advertises
/// its own node's name), so devices' addresses are kept too.
pub fn node_port_service(pod: &Pod, port: u16) -> Service {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let selector = [COMPONENT.0, OWNER_LABEL, POD_LABEL]
        .into_iter()
        .filter_map(|key| Some((key.to_string(), labels.get(key)?.clone())))
        .collect();
    let name = pod.metadata.name.clone().unwrap_or_default();
    Service {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some(labels),
            owner_references: Some(vec![owned_by(pod)]),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("NodePort".into()),
            external_traffic_policy: Some("Local".into()),
            selector: Some(selector),
            ports: Some(vec![ServicePort {
                name: Some("render".into()),
                protocol: Some("TCP".into()),
                port: i32::from(port),
                target_port: Some(IntOrString::String("render".into())),
                node_port: Some(i32::from(port)),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// The owner reference to `pod`, for what goes with it.
fn owned_by(pod: &Pod) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Pod".into(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        ..Default::default()
    }
}

/// Five lower-case letters and digits, for a pod's name.
fn suffix() -> String {
    use rand::Rng;
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// How the provisioner reaches the cluster and what it makes there (`parallax serve
/// --render-hosts kubernetes`).
#[derive(Debug, Clone)]
pub struct KubeSettings {
    /// The namespace of the pods (default: the service account's, or the kubeconfig's).
    pub namespace: Option<String>,
    /// The `PodTemplate` every host's pod is made from.
    pub template: String,
    /// The `parallax.dev/owner` label: whose pods these are, when several coordinators share a
    /// namespace.
    pub owner: String,
    /// How long a pod may go on failing to start (unschedulable, image not pulled) before its
    /// host is given up and its size is unavailable.
    pub start_limit: Duration,
    /// How long a pod may take from being made to its host registering.
    pub boot_limit: Duration,
    /// How often the pods are listed.
    pub poll: Duration,
    /// Replicas: this replica's name on the Lease (its pod's name); `None` for one coordinator,
    /// which provisions alone.
    pub replica: Option<String>,
    /// The node ports render connections come in on, one per pod (`--kube-node-ports`), for
    /// devices outside the cluster; `None`: they reach the pods as the template says.
    pub node_ports: Option<RangeInclusive<u16>>,
}

/// A size whose pods could not start: none are made until `retry_at`, when one is tried.
#[derive(Debug, Clone)]
struct Unavailable {
    reason: String,
    retry_at: Instant,
    backoff: Duration,
}

/// Starts and stops render host pods, and watches them (module docs).
pub struct Provisioner {
    pods: Api<Pod>,
    secrets: Api<Secret>,
    services: Api<Service>,
    templates: Api<PodTemplate>,
    settings: KubeSettings,
    /// This owner's pods by name, as last listed (each successful list replaces it).
    seen: watch::Sender<Arc<HashMap<String, Pod>>>,
    /// Per size, why its pods cannot start, while they cannot.
    unavailable: Mutex<[Option<Unavailable>; 2]>,
    /// Replicas: the Lease, and whether this replica holds it.
    lease: Option<Api<Lease>>,
    leading: watch::Sender<bool>,
    /// Replicas: when this replica last renewed the Lease; it provisions only within the
    /// Lease's term of that (less a margin), whatever became of the renewals since.
    renewed: Mutex<Option<Instant>>,
    /// Replicas: the other holder's Lease as last read (its version), and since when (on this
    /// replica's clock, so another's clock does not matter).
    observed: Mutex<Option<(String, Instant)>>,
    /// Replicas: the unavailable sizes as the Lease last said (the holder's view).
    said: Mutex<[Option<String>; 2]>,
    /// The node ports of pods being made or run from here (a list may not show them yet), and
    /// those the API server said another Service had, since when (tried again after
    /// [`ELSEWHERE_FOR`]: a deleted pod's Service goes a little after it).
    claimed: Mutex<BTreeSet<u16>>,
    elsewhere: Mutex<HashMap<u16, Instant>>,
    /// The pods this replica watches, by name.
    followed: Mutex<HashSet<String>>,
}

/// A pod watched from here, until dropped.
struct Following<'a> {
    provisioner: &'a Provisioner,
    pod: String,
}

impl Drop for Following<'_> {
    fn drop(&mut self) {
        lock(&self.provisioner.followed).remove(&self.pod);
    }
}

/// A node port held for one pod while it is made and run; given back when dropped (a pod
/// still listed, ending, keeps it taken).
struct PortClaim {
    provisioner: Arc<Provisioner>,
    port: u16,
}

impl Drop for PortClaim {
    fn drop(&mut self) {
        lock(&self.provisioner.claimed).remove(&self.port);
    }
}

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provisioner")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// How a host's pod ended, or why it never ran.
type Ended = String;

/// Called when a pod has had `--kube-boot-limit` to run its host (which is lost if it has not
/// registered by then).
pub type BootDeadline = Box<dyn FnOnce() + Send>;

impl Provisioner {
    /// Connects as the pod's service account in a cluster, else as the kubeconfig says
    /// (`KUBECONFIG`, `~/.kube/config`), checks the template is there, and lists the pods
    /// every `settings.poll` for as long as the provisioner is kept.
    pub async fn connect(settings: KubeSettings) -> anyhow::Result<Arc<Self>> {
        use anyhow::Context;
        let config = kube::Config::infer()
            .await
            .context("finding the Kubernetes API (in a pod, or from KUBECONFIG)")?;
        let namespace = settings
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config).context("the Kubernetes client")?;
        let lease = settings
            .replica
            .as_ref()
            .map(|_| Api::namespaced(client.clone(), &namespace));
        let provisioner = Arc::new(Self {
            pods: Api::namespaced(client.clone(), &namespace),
            secrets: Api::namespaced(client.clone(), &namespace),
            services: Api::namespaced(client.clone(), &namespace),
            templates: Api::namespaced(client, &namespace),
            leading: watch::Sender::new(lease.is_none()),
            lease,
            settings,
            seen: watch::Sender::new(Arc::default()),
            unavailable: Mutex::default(),
            said: Mutex::default(),
            renewed: Mutex::default(),
            observed: Mutex::default(),
            claimed: Mutex::default(),
            elsewhere: Mutex::default(),
            followed: Mutex::default(),
        });
        let template = provisioner.template().await.map_err(|e| {
            anyhow::anyhow!(
                "the render host pod template {} in namespace {namespace}: {e}",
                provisioner.settings.template
            )
        })?;
        // Said at once rather than at the first host.
        host_pod(
            &template,
            &HostId::new("check"),
            SessionSize::Standard,
            "check",
            provisioner.settings.node_ports.as_ref().map(|p| *p.start()),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        provisioner.list().await?;
        if provisioner.lease.is_some() {
            // Said at once: a Lease this replica may not read or write (RBAC names it) would
            // leave every replica waiting for it.
            provisioner.hold_lease().await.map_err(|e| {
                anyhow::anyhow!(
                    "the provisioner's Lease {}-provisioner in namespace {namespace}: {e}",
                    provisioner.settings.owner
                )
            })?;
            tokio::spawn(lead(Arc::downgrade(&provisioner)));
        }
        tokio::spawn(follow(Arc::downgrade(&provisioner)));
        if let Some(ports) = &provisioner.settings.node_ports
            && (*ports.start() < 30000 || *ports.end() > 32767)
        {
            tracing::warn!(
                "--kube-node-ports {}-{} is outside Kubernetes' default NodePort range \
                 (30000-32767): the API server refuses ports outside the cluster's",
                ports.start(),
                ports.end()
            );
        }
        tracing::info!(%namespace, template = %provisioner.settings.template, "render hosts are Kubernetes pods");
        Ok(provisioner)
    }

    /// Why pods of `size` cannot start, while they cannot.
    pub fn unavailable(&self, size: SessionSize) -> Option<String> {
        if !self.leading() {
            return lock(&self.said)[size.index()].clone();
        }
        lock(&self.unavailable)[size.index()]
            .as_ref()
            .map(|u| u.reason.clone())
    }

    /// Whether this replica provisions (always, for one coordinator): it holds the Lease, and
    /// renewed it recently enough that no other replica can have taken it.
    pub fn leading(&self) -> bool {
        if self.lease.is_none() {
            return true;
        }
        let fresh =
            lock(&self.renewed).is_some_and(|at| at.elapsed() < lease_term() - RENEW_MARGIN);
        *self.leading.borrow() && fresh
    }

    /// How long a pod may take from being made to its host registering.
    pub fn boot_limit(&self) -> Duration {
        self.settings.boot_limit
    }

    /// The hosts whose pods are there (name, size, pod), for adoption after a restart.
    pub fn existing(&self) -> Vec<(HostId, SessionSize, String)> {
        self.seen
            .borrow()
            .iter()
            .filter_map(|(name, pod)| {
                let host = host_of(pod)?;
                let size = pod
                    .metadata
                    .labels
                    .as_ref()?
                    .get(SIZE_LABEL)?
                    .parse()
                    .ok()?;
                Some((HostId::new(host), size, name.clone()))
            })
            .collect()
    }

    /// The pods of a host that has another pod this replica watches: made twice, in the moment
    /// two replicas both took themselves for the Lease's holder. They are to be deleted.
    pub fn duplicates(&self) -> Vec<String> {
        let followed = lock(&self.followed);
        let seen = self.seen.borrow();
        let watched: HashSet<&str> = followed
            .iter()
            .filter_map(|name| host_of(seen.get(name)?))
            .collect();
        seen.iter()
            .filter(|(name, pod)| {
                !followed.contains(*name) && host_of(pod).is_some_and(|h| watched.contains(h))
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Runs `host` as a pod until `stop` (then deletes it) or until it ends or cannot start;
    /// returns why it ended, or `None` when this replica stopped provisioning (the pod is left
    /// to the next). With its size unavailable, waits for the next try first.
    pub(crate) async fn run(
        self: Arc<Self>,
        host: HostId,
        size: SessionSize,
        credential: String,
        stop: CancellationToken,
        boot_deadline: BootDeadline,
    ) -> Option<Ended> {
        let mut leading = self.leading.subscribe();
        while let Err(retry_at) = self.may_start(size) {
            tokio::select! {
                () = tokio::time::sleep_until(retry_at) => {}
                () = stop.cancelled() => return Some("the render host was stopped".into()),
                _ = leading.wait_for(|l| !l) => return None,
            }
        }
        if !self.leading() {
            return None;
        }
        let claim = match self.claim_port() {
            Ok(claim) => claim,
            Err(e) => {
                let reason = format!("the render host pod could not be made: {e}");
                self.set_unavailable(size, &reason);
                return Some(reason);
            }
        };
        let port = claim.as_ref().map(|c| c.port);
        let pod = match self.create(&host, size, &credential, port).await {
            Ok(pod) => pod,
            Err(Refused(e)) => {
                let reason = format!("the render host pod could not be made: {e}");
                self.set_unavailable(size, &reason);
                return Some(reason);
            }
            // The API server away or busy: this host is lost, the size is not.
            Err(Failed(e)) => return Some(format!("the render host pod could not be made: {e}")),
        };
        tracing::info!(%host, %size, %pod, ?port, "render host pod made");
        let ended = self.watch(size, pod, stop, boot_deadline).await;
        drop(claim);
        ended
    }

    /// The first node port of `--kube-node-ports` no pod of this owner (nor another Service)
    /// has, held until the claim is dropped; `None` without node ports; an error when every one
    /// is taken.
    fn claim_port(self: &Arc<Self>) -> Result<Option<PortClaim>, String> {
        let Some(range) = self.settings.node_ports.clone() else {
            return Ok(None);
        };
        let mut claimed = lock(&self.claimed);
        let used: HashSet<u16> = self
            .seen
            .borrow()
            .values()
            .filter_map(node_port)
            .chain(claimed.iter().copied())
            .chain(
                lock(&self.elsewhere)
                    .iter()
                    .filter(|(_, since)| since.elapsed() < ELSEWHERE_FOR)
                    .map(|(port, _)| *port),
            )
            .collect();
        let (first, last) = (*range.start(), *range.end());
        let port = range
            .into_iter()
            .find(|p| !used.contains(p))
            .ok_or_else(|| {
                format!("every node port of --kube-node-ports {first}-{last} is taken: widen it")
            })?;
        claimed.insert(port);
        Ok(Some(PortClaim {
            provisioner: self.clone(),
            port,
        }))
    }

    /// Watches `host`'s existing pod (one from before a restart) as [`Provisioner::run`] does.
    pub(crate) async fn adopt(
        self: Arc<Self>,
        host: HostId,
        size: SessionSize,
        pod: String,
        stop: CancellationToken,
        boot_deadline: BootDeadline,
    ) -> Option<Ended> {
        tracing::info!(%host, %pod, "render host pod taken up");
        self.keep_service(&pod).await;
        self.watch(size, pod, stop, boot_deadline).await
    }

    /// Makes `pod`'s node port Service if it has none (its maker stopped between the two).
    async fn keep_service(&self, pod: &str) {
        let Some(made) = self.seen.borrow().get(pod).cloned() else {
            return;
        };
        let Some(port) = node_port(&made).filter(|_| self.settings.node_ports.is_some()) else {
            return;
        };
        match self
            .services
            .create(&PostParams::default(), &node_port_service(&made, port))
            .await
        {
            Ok(_) => tracing::info!(%pod, port, "render host pod's Service made again"),
            Err(e) if is_status(&e, 409) => {}
            Err(e) => tracing::warn!(%pod, "making the render host pod's Service: {e}"),
        }
    }

    /// Deletes `pod`; its credential's Secret goes with it (the garbage collector follows its
    /// owner reference), so the provisioner needs no right to delete Secrets.
    pub async fn remove(&self, pod: &str) {
        if let Err(e) = self.pods.delete(pod, &DeleteParams::default()).await
            && !is_status(&e, 404)
        {
            tracing::warn!(%pod, "deleting a render host pod: {e}");
        }
    }

    /// Deletes `pod` in the background.
    pub fn remove_soon(self: &Arc<Self>, pod: String) {
        let provisioner = self.clone();
        tokio::spawn(async move { provisioner.remove(&pod).await });
    }

    async fn watch(
        &self,
        size: SessionSize,
        pod: String,
        stop: CancellationToken,
        boot_deadline: BootDeadline,
    ) -> Option<Ended> {
        lock(&self.followed).insert(pod.clone());
        let _following = Following {
            provisioner: self,
            pod: pod.clone(),
        };
        let boot = tokio::spawn({
            let limit = self.settings.boot_limit;
            async move {
                tokio::time::sleep(limit).await;
                boot_deadline();
            }
        });
        let ended = self.follow_pod(size, &pod, stop).await;
        boot.abort();
        if ended.is_some() {
            self.remove(&pod).await;
        }
        ended
    }

    /// Follows `pod` until it ends, cannot start, or `stop`; `None` when this replica stopped
    /// provisioning.
    async fn follow_pod(
        &self,
        size: SessionSize,
        pod: &str,
        stop: CancellationToken,
    ) -> Option<Ended> {
        let mut seen = self.seen.subscribe();
        let mut leading = self.leading.subscribe();
        // Lists since it was made without it: a list begun before it was made lacks it.
        let mut lists_without = 0u32;
        let mut listed = false;
        let mut failing_since: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let current = seen.borrow_and_update().get(pod).cloned();
            match current {
                Some(current) => {
                    listed = true;
                    let phase = current.status.as_ref().and_then(|s| s.phase.as_deref());
                    if phase == Some("Succeeded") {
                        return Some(format!("the render host pod {pod} ended"));
                    }
                    if phase == Some("Running") {
                        self.set_available(size);
                    }
                    match why_not_starting(&current) {
                        Some(why) if phase == Some("Failed") => {
                            self.set_unavailable(size, &why);
                            return Some(why);
                        }
                        Some(why) => {
                            let since = *failing_since.get_or_insert(now);
                            if now.duration_since(since) >= self.settings.start_limit {
                                let why = format!(
                                    "{why} (for {} s)",
                                    self.settings.start_limit.as_secs()
                                );
                                self.set_unavailable(size, &why);
                                return Some(why);
                            }
                        }
                        None => failing_since = None,
                    }
                }
                // Made after the last list, or gone: gone once it was listed, or if it is still
                // not after a few lists (an API server away lists nothing, so nothing is gone).
                None if listed || lists_without >= 3 => {
                    return Some(format!("the render host pod {pod} is gone"));
                }
                None => lists_without += 1,
            }
            tokio::select! {
                changed = seen.changed() => if changed.is_err() {
                    return None;
                },
                () = stop.cancelled() => return Some("the render host was stopped".into()),
                _ = leading.wait_for(|l| !l) => return None,
            }
        }
    }

    /// Makes `host`'s pod and then its Secret (owned by the pod, so they go together); the
    /// pod's name.
    async fn create(
        &self,
        host: &HostId,
        size: SessionSize,
        credential: &str,
        node_port: Option<u16>,
    ) -> Result<String, CreateError> {
        let template = self
            .template()
            .await
            .map_err(|e| CreateError::of(&format!("PodTemplate {}", self.settings.template), e))?;
        let wanted =
            host_pod(&template, host, size, &self.settings.owner, node_port).map_err(Refused)?;
        let made = self
            .pods
            .create(&PostParams::default(), &wanted)
            .await
            .map_err(|e| CreateError::of("the pod", e))?;
        let name = made.metadata.name.clone().unwrap_or_default();
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: made.metadata.labels.clone(),
                owner_references: Some(vec![owned_by(&made)]),
                ..Default::default()
            },
            string_data: Some(BTreeMap::from([(
                "credential".to_string(),
                credential.to_string(),
            )])),
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        if let Err(e) = self.secrets.create(&PostParams::default(), &secret).await {
            self.remove(&name).await;
            return Err(CreateError::of("its credential's Secret", e));
        }
        if let Some(port) = node_port {
            let service = node_port_service(&made, port);
            if let Err(e) = self.services.create(&PostParams::default(), &service).await {
                self.remove(&name).await;
                // Another Service has the port (or had it: a deleted pod's goes a little
                // after it): the next pods take others for a while.
                if is_status(&e, 422) && e.to_string().contains("already allocated") {
                    lock(&self.elsewhere).insert(port, Instant::now());
                    return Err(Failed(format!(
                        "node port {port} is another Service's: {e}"
                    )));
                }
                return Err(CreateError::of("its Service", e));
            }
        }
        Ok(name)
    }

    async fn template(&self) -> Result<PodTemplate, kube::Error> {
        self.templates.get(&self.settings.template).await
    }

    async fn list(&self) -> anyhow::Result<()> {
        let selector = format!(
            "{}={},{OWNER_LABEL}={}",
            COMPONENT.0, COMPONENT.1, self.settings.owner
        );
        let listed = self
            .pods
            .list(&ListParams::default().labels(&selector))
            .await?;
        let pods = listed
            .items
            .into_iter()
            .filter_map(|pod| Some((pod.metadata.name.clone()?, pod)))
            .collect();
        self.seen.send_replace(Arc::new(pods));
        Ok(())
    }

    /// Whether a pod of `size` may be made now; else when to ask again. When the size is
    /// unavailable and its back-off is over, this caller makes the one pod that tries.
    fn may_start(&self, size: SessionSize) -> Result<(), Instant> {
        let mut unavailable = lock(&self.unavailable);
        let Some(u) = unavailable[size.index()].as_mut() else {
            return Ok(());
        };
        let now = Instant::now();
        if now < u.retry_at {
            return Err(u.retry_at);
        }
        // This one tries; the others wait out the next back-off.
        u.backoff = (u.backoff * 2).min(MOST_BACKOFF);
        u.retry_at = now + u.backoff;
        Ok(())
    }

    fn set_unavailable(&self, size: SessionSize, reason: &str) {
        let mut unavailable = lock(&self.unavailable);
        let backoff = unavailable[size.index()]
            .as_ref()
            .map_or(FIRST_BACKOFF, |u| u.backoff);
        tracing::warn!(%size, "render hosts unavailable: {reason}; trying again in {} s", backoff.as_secs());
        unavailable[size.index()] = Some(Unavailable {
            reason: reason.to_string(),
            retry_at: Instant::now() + backoff,
            backoff,
        });
    }

    fn set_available(&self, size: SessionSize) {
        if lock(&self.unavailable)[size.index()].take().is_some() {
            tracing::info!(%size, "render hosts start again");
        }
    }
}

/// Lists the owner's pods every `poll` while the provisioner is kept.
async fn follow(provisioner: std::sync::Weak<Provisioner>) {
    loop {
        let Some(poll) = provisioner.upgrade().map(|p| p.settings.poll) else {
            return;
        };
        tokio::time::sleep(poll).await;
        let Some(provisioner) = provisioner.upgrade() else {
            return;
        };
        if let Err(e) = provisioner.list().await {
            // The last list stands: a pod is not taken for gone because the API is away.
            tracing::warn!("listing the render host pods: {e:#}");
        }
    }
}

/// Replicas: takes or renews the Lease every third of [`LEASE_SECONDS`] while the provisioner
/// is kept; a replica that cannot renew stops provisioning at once.
async fn lead(provisioner: std::sync::Weak<Provisioner>) {
    let every = lease_term() / 3;
    loop {
        let Some(provisioner) = provisioner.upgrade() else {
            return;
        };
        // A renewal that hangs is none: the next comes on time.
        let leading = match tokio::time::timeout(every, provisioner.hold_lease()).await {
            Ok(Ok(leading)) => leading,
            Ok(Err(e)) => {
                tracing::warn!("the provisioner's Lease: {e}");
                false
            }
            Err(_) => {
                tracing::warn!(
                    "the provisioner's Lease: no answer within {} s",
                    every.as_secs()
                );
                false
            }
        };
        if provisioner.leading.send_replace(leading) != leading {
            tracing::info!(
                leading,
                "render host pods: this replica {} provisions",
                if leading { "now" } else { "no longer" }
            );
        }
        drop(provisioner);
        tokio::time::sleep(every).await;
    }
}

impl Provisioner {
    /// Takes the Lease if nobody holds it or its holder let it run out, renews it if this
    /// replica holds it; whether this replica now does. A write another replica made first
    /// (HTTP 409) means it does not.
    async fn hold_lease(&self) -> Result<bool, kube::Error> {
        let (Some(leases), Some(me)) = (&self.lease, &self.settings.replica) else {
            return Ok(true);
        };
        let name = format!("{}-provisioner", self.settings.owner);
        // The term runs from when it was asked for, not answered.
        let asked = Instant::now();
        let now = k8s_openapi::jiff::Timestamp::now();
        let annotations: BTreeMap<String, String> = SessionSize::ALL
            .into_iter()
            .filter_map(|size| {
                let why = lock(&self.unavailable)[size.index()]
                    .as_ref()?
                    .reason
                    .clone();
                Some((unavailable_key(size), why))
            })
            .collect();
        let current = leases.get_opt(&name).await?;
        let mut lease = match current {
            Some(lease) => {
                let spec = lease.spec.clone().unwrap_or_default();
                let holder = spec.holder_identity.as_deref();
                let lasts = u64::try_from(spec.lease_duration_seconds.unwrap_or(LEASE_SECONDS))
                    .unwrap_or(0);
                // Run out when it has not changed for its term, as seen here.
                let version = lease.metadata.resource_version.clone().unwrap_or_default();
                let unchanged_since = {
                    let mut observed = lock(&self.observed);
                    match &*observed {
                        Some((seen, since)) if *seen == version => *since,
                        _ => {
                            let since = Instant::now();
                            *observed = Some((version, since));
                            since
                        }
                    }
                };
                let ran_out = unchanged_since.elapsed() > Duration::from_secs(lasts);
                if holder.is_some_and(|h| h != me) && !ran_out {
                    self.read_unavailable(&lease);
                    return Ok(false);
                }
                lease
            }
            None => Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec::default()),
            },
        };
        let is_new = lease.metadata.resource_version.is_none();
        let spec = lease.spec.get_or_insert_with(Default::default);
        if spec.holder_identity.as_deref() != Some(me) {
            spec.holder_identity = Some(me.clone());
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + i32::from(!is_new));
        }
        spec.lease_duration_seconds = Some(LEASE_SECONDS);
        spec.renew_time = Some(MicroTime(now));
        let kept = lease
            .metadata
            .annotations
            .take()
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| !k.starts_with(UNAVAILABLE_ANNOTATION));
        lease.metadata.annotations = Some(kept.chain(annotations).collect());
        let written = match is_new {
            true => leases.create(&PostParams::default(), &lease).await,
            false => leases.replace(&name, &PostParams::default(), &lease).await,
        };
        match written {
            Ok(_) => {
                *lock(&self.renewed) = Some(asked);
                Ok(true)
            }
            Err(e) if is_status(&e, 409) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// What the holder's Lease says of the sizes it cannot start.
    fn read_unavailable(&self, lease: &Lease) {
        let annotations = lease.metadata.annotations.clone().unwrap_or_default();
        let mut said = lock(&self.said);
        for size in SessionSize::ALL {
            said[size.index()] = annotations.get(&unavailable_key(size)).cloned();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Why a pod was not made: the API server refused it (the template, RBAC, a quota: the same
/// next time) or could not be asked (away, busy).
enum CreateError {
    Refused(String),
    Failed(String),
}
use CreateError::{Failed, Refused};

impl CreateError {
    fn of(what: &str, error: kube::Error) -> Self {
        match &error {
            kube::Error::Api(status)
                if (400..500).contains(&status.code) && ![409, 429].contains(&status.code) =>
            {
                Refused(format!("{what}: {error}"))
            }
            _ => Failed(format!("{what}: {error}")),
        }
    }
}

/// Whether `error` is the API server's answer with HTTP `code`.
fn is_status(error: &kube::Error, code: u16) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The template as deploy/ ships it.
    fn template() -> PodTemplate {
        let text = include_str!("../../../deploy/base/render-host-template.yaml");
        let value: serde_json::Value = serde_saphyr::from_str(text).unwrap();
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_host_pod_is_the_template_named_labelled_sized_and_given_its_own_secret() {
        let host = HostId::new("standard-7");
        let pod = host_pod(
            &template(),
            &host,
            SessionSize::Premium,
            "parallax-0",
            Some(30703),
        )
        .unwrap();
        let pod = serde_json::to_value(&pod).unwrap();
        let name = pod["metadata"]["name"].as_str().unwrap();
        // Its own: the host's name and five letters or digits.
        let unique = name.strip_prefix("parallax-host-standard-7-").unwrap();
        assert!(unique.len() == 5 && unique.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(
            pod["metadata"]["annotations"][HOST_ANNOTATION],
            "standard-7"
        );
        let labels = &pod["metadata"]["labels"];
        assert_eq!(labels["app.kubernetes.io/component"], "render-host");
        assert_eq!(labels[SIZE_LABEL], "premium");
        assert_eq!(labels[OWNER_LABEL], "parallax-0");
        let container = &pod["spec"]["containers"][0];
        assert_eq!(
            container["args"],
            json!([
                "render-host",
                "--size",
                "Premium",
                "--host-id",
                "standard-7"
            ])
        );
        // Devices reach it at its node's port 30703, which it advertises, through a Service of
        // its own that the pod owns.
        let env = container["env"].as_array().unwrap();
        let port = env
            .iter()
            .find(|e| e["name"] == ADVERTISE_PORT_ENV)
            .unwrap();
        assert_eq!(port["value"], "30703");
        let mut made: Pod = serde_json::from_value(pod.clone()).unwrap();
        made.metadata.uid = Some("a-uid".into());
        let service = serde_json::to_value(node_port_service(&made, 30703)).unwrap();
        assert_eq!(service["metadata"]["name"], name);
        assert_eq!(service["metadata"]["ownerReferences"][0]["uid"], "a-uid");
        let spec = &service["spec"];
        assert_eq!(spec["type"], "NodePort");
        assert_eq!(spec["externalTrafficPolicy"], "Local");
        assert_eq!(spec["ports"][0]["nodePort"], 30703);
        assert_eq!(spec["ports"][0]["targetPort"], "render");
        assert_eq!(spec["selector"][POD_LABEL], name);
        assert_eq!(labels[POD_LABEL], name);
        assert_eq!(spec["selector"][OWNER_LABEL], "parallax-0");
        // The template's resources and security stay as the operator wrote them.
        assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
        assert!(container["resources"]["requests"]["cpu"].is_string());
        let secret = pod["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "credential")
            .unwrap();
        assert_eq!(secret["secret"]["secretName"], name);
        // The host (a non-root user) can read it: group-readable, and the pod's group.
        let mode = secret["secret"]["defaultMode"].as_u64().unwrap();
        assert_eq!(mode & 0o040, 0o040, "{mode:o}");
        assert_eq!(mode & 0o007, 0, "{mode:o}");
        let security = &pod["spec"]["securityContext"];
        assert_eq!(security["fsGroup"], security["runAsGroup"]);
    }

    #[test]
    fn a_template_without_what_the_provisioner_needs_is_refused_with_the_reason() {
        let mut bare = template();
        bare.template
            .as_mut()
            .unwrap()
            .spec
            .as_mut()
            .unwrap()
            .volumes = None;
        let refused = host_pod(&bare, &HostId::new("h"), SessionSize::Standard, "o", None);
        assert!(refused.unwrap_err().contains("credential"));
    }

    #[test]
    fn pod_names_are_dns_labels() {
        assert_eq!(
            pod_name(&HostId::new("Standard_1")),
            "parallax-host-standard-1"
        );
        let long = pod_name(&HostId::new("x".repeat(80)));
        assert!(long.len() <= 63 && !long.ends_with('-'));
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({ "metadata": { "name": "p" }, "status": status })).unwrap()
    }

    #[test]
    fn a_pod_that_cannot_start_says_why_and_one_starting_does_not() {
        let unschedulable = pod(json!({ "phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu." }] }));
        assert!(
            why_not_starting(&unschedulable)
                .unwrap()
                .contains("cannot be scheduled: 0/3 nodes are available")
        );
        let pulling = pod(json!({ "phase": "Pending", "containerStatuses": [{
            "name": "render-host", "image": "parallax", "imageID": "", "ready": false,
            "restartCount": 0, "state": { "waiting": { "reason": "ImagePullBackOff",
            "message": "Back-off pulling image \"parallax\"" } } }] }));
        assert!(
            why_not_starting(&pulling)
                .unwrap()
                .contains("ImagePullBackOff")
        );
        let failed = pod(json!({ "phase": "Failed", "reason": "Evicted" }));
        assert!(why_not_starting(&failed).unwrap().contains("Evicted"));
        let creating = pod(json!({ "phase": "Pending", "containerStatuses": [{
            "name": "render-host", "image": "parallax", "imageID": "", "ready": false,
            "restartCount": 0, "state": { "waiting": { "reason": "ContainerCreating" } } }] }));
        assert_eq!(why_not_starting(&creating), None);
        assert_eq!(why_not_starting(&pod(json!({ "phase": "Running" }))), None);
    }

    /// The provisioner's requests go to the API server as kube sends them: a stand-in server
    /// (tower-test's mock) sees the pod created in the namespace, with the host's labels.
    #[tokio::test]
    async fn a_host_pod_is_created_through_the_api() {
        use http::{Method, Request, Response, StatusCode};
        use kube::api::{Api, PostParams};
        use kube::client::Body;
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let client = kube::Client::new(service, "parallax");
        let api_server = tokio::spawn(async move {
            let (request, reply) = handle.next_request().await.expect("a request");
            assert_eq!(request.method(), Method::POST);
            assert_eq!(request.uri().path(), "/api/v1/namespaces/parallax/pods");
            let body = request.into_body().collect_bytes().await.unwrap();
            let mut sent: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(sent["metadata"]["labels"][SIZE_LABEL], "standard");
            sent["metadata"]["uid"] = json!("a-uid");
            reply.send_response(
                Response::builder()
                    .status(StatusCode::CREATED)
                    .body(Body::from(serde_json::to_vec(&sent).unwrap()))
                    .unwrap(),
            );
        });
        let wanted = host_pod(
            &template(),
            &HostId::new("standard-1"),
            SessionSize::Standard,
            "parallax-0",
            None,
        )
        .unwrap();
        let made = Api::<Pod>::namespaced(client, "parallax")
            .create(&PostParams::default(), &wanted)
            .await
            .unwrap();
        assert_eq!(made.metadata.uid.as_deref(), Some("a-uid"));
        tokio::time::timeout(std::time::Duration::from_secs(1), api_server)
            .await
            .unwrap()
            .unwrap();
    }
}
