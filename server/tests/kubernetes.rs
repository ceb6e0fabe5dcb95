//! Render hosts as Kubernetes pods (feature `kubernetes`), as an operator runs them: the real
//! `parallax serve --render-hosts kubernetes`, reaching the API through a kubeconfig, against a
//! stand-in API server in this test. It speaks the API's HTTP for what the provisioner uses
//! (pods, Secrets, the PodTemplate deploy/ ships), and its stand-in kubelet runs each pod as the
//! real `parallax render-host` process with the pod's arguments, environment and the credential
//! of the pod's Secret, and its kube-proxy forwards the node port of each NodePort Service (on
//! this machine's loopback, the one "node") to the pod it selects; or it leaves a pod
//! unschedulable when no "node" fits its size.
#![cfg(feature = "kubernetes")]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Child;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use reqwest::Method;
use serde_json::{Value, json};

#[path = "support/coordinator.rs"]
mod coordinator;
#[path = "support/nats.rs"]
mod nats;
#[path = "support/postgres.rs"]
mod postgres;
use coordinator::*;

const NAMESPACE: &str = "parallax";
/// The one node's name, and the domain of hosts' names (the ConfigMap deploy/install.sh makes).
const NODE: &str = "node-1";
const HOST_DOMAIN: &str = "hosts.test";

/// What the stand-in API server holds.
#[derive(Default)]
struct Cluster {
    pods: BTreeMap<String, Value>,
    secrets: BTreeMap<String, Value>,
    services: BTreeMap<String, Value>,
    leases: BTreeMap<String, Value>,
    /// Bumped on every write, as the API server's `resourceVersion`.
    version: u64,
    /// Every pod ever made, as it was sent.
    made: Vec<Value>,
    /// The pods' render host processes.
    processes: HashMap<String, Child>,
    /// The port each pod's process listens on.
    listens: HashMap<String, u16>,
    /// The Services' node ports, forwarded to their pods' processes.
    forwards: HashMap<String, tokio::task::JoinHandle<()>>,
    /// Sizes (label values) whose pods no node fits.
    unschedulable: HashSet<String>,
    /// Where the coordinator takes hosts, once it listens.
    coordinator: Option<String>,
    folder: Option<std::path::PathBuf>,
}

#[derive(Clone)]
struct ApiServer(Arc<Mutex<Cluster>>);

impl ApiServer {
    fn lock(&self) -> MutexGuard<'_, Cluster> {
        self.0.lock().unwrap()
    }

    /// Starts it and its kubelet; returns it with a kubeconfig for it in `folder`.
    async fn start(folder: &std::path::Path) -> (Self, std::path::PathBuf) {
        let server = Self(Arc::default());
        server.lock().folder = Some(folder.to_path_buf());
        let pods = format!("/api/v1/namespaces/{NAMESPACE}/pods");
        let secrets = format!("/api/v1/namespaces/{NAMESPACE}/secrets");
        let app = Router::new()
            .route(
                &format!("/api/v1/namespaces/{NAMESPACE}/podtemplates/{{name}}"),
                get(template),
            )
            .route(&pods, get(list_pods).post(create_pod))
            .route(&format!("{pods}/{{name}}"), delete(delete_pod))
            .route(&secrets, axum::routing::post(create_secret))
            .route(
                &format!("/api/v1/namespaces/{NAMESPACE}/services"),
                axum::routing::post(create_service),
            )
            .route(
                &format!("/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases"),
                axum::routing::post(create_lease),
            )
            .route(
                &format!("/apis/coordination.k8s.io/v1/namespaces/{NAMESPACE}/leases/{{name}}"),
                get(read_lease).put(replace_lease),
            )
            .with_state(server.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        tokio::spawn(kubelet(server.clone()));
        let kubeconfig = folder.join("kubeconfig");
        std::fs::write(
            &kubeconfig,
            format!(
                "apiVersion: v1\nkind: Config\ncurrent-context: test\n\
                 clusters: [{{name: test, cluster: {{server: 'http://{addr}'}}}}]\n\
                 users: [{{name: test, user: {{}}}}]\n\
                 contexts: [{{name: test, context: {{cluster: test, user: test, namespace: {NAMESPACE}}}}}]\n"
            ),
        )
        .unwrap();
        (server, kubeconfig)
    }

    /// The pods there now, by name.
    fn pods(&self) -> BTreeMap<String, Value> {
        self.lock().pods.clone()
    }

    fn made(&self) -> Vec<Value> {
        self.lock().made.clone()
    }

    /// Waits (30 s at most) until `done` holds for the pods there.
    async fn wait_for(&self, what: &str, done: impl Fn(&BTreeMap<String, Value>) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done(&self.pods()) {
            assert!(
                Instant::now() < deadline,
                "{what}: the pods are {:?}",
                self.pods().keys()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for forward in self.forwards.values() {
            forward.abort();
        }
        for process in self.processes.values_mut() {
            let _ = process.kill();
            let _ = process.wait();
        }
    }
}

fn status(code: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "code": code.as_u16(), "reason": reason, "message": message });
    (code, axum::Json(body)).into_response()
}

/// The render host template as deploy/ ships it.
async fn template(Path(name): Path<String>) -> Response {
    if name != "parallax-render-host" {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{name} not found"),
        );
    }
    let text = include_str!("../../deploy/base/render-host-template.yaml");
    let mut template: Value = serde_saphyr::from_str(text).unwrap();
    template["metadata"]["namespace"] = json!(NAMESPACE);
    axum::Json(template).into_response()
}

async fn list_pods(
    State(server): State<ApiServer>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let wanted: Vec<(String, String)> = query
        .get("labelSelector")
        .map(|s| s.as_str())
        .unwrap_or_default()
        .split(',')
        .filter_map(|term| term.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let items: Vec<Value> = server
        .lock()
        .pods
        .values()
        .filter(|pod| {
            wanted
                .iter()
                .all(|(k, v)| pod["metadata"]["labels"][k].as_str() == Some(v.as_str()))
        })
        .cloned()
        .collect();
    axum::Json(json!({ "apiVersion": "v1", "kind": "PodList",
        "metadata": { "resourceVersion": "1" }, "items": items }))
    .into_response()
}

async fn create_pod(
    State(server): State<ApiServer>,
    axum::Json(mut pod): axum::Json<Value>,
) -> Response {
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut cluster = server.lock();
    if cluster.pods.contains_key(&name) {
        return status(
            StatusCode::CONFLICT,
            "AlreadyExists",
            format!("pods \"{name}\" already exists"),
        );
    }
    cluster.made.push(pod.clone());
    let size = label(&pod, "parallax.dev/size").to_string();
    pod["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
    pod["metadata"]["namespace"] = json!(NAMESPACE);
    pod["status"] = if cluster.unschedulable.contains(&size) {
        json!({ "phase": "Pending", "conditions": [{ "type": "PodScheduled", "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu." }] })
    } else {
        json!({ "phase": "Pending" })
    };
    cluster.pods.insert(name, pod.clone());
    (StatusCode::CREATED, axum::Json(pod)).into_response()
}

async fn delete_pod(State(server): State<ApiServer>, Path(name): Path<String>) -> Response {
    let mut cluster = server.lock();
    let Some(pod) = cluster.pods.remove(&name) else {
        return status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("pods \"{name}\" not found"),
        );
    };
    // The kubelet stops the container (SIGKILL after SIGTERM's grace; here at once).
    if let Some(mut process) = cluster.processes.remove(&name) {
        let _ = process.kill();
        let _ = process.wait();
    }
    cluster.listens.remove(&name);
    // The garbage collector deletes what the pod owns: its Secret and its Service.
    let uid = pod["metadata"]["uid"].clone();
    let owned = |object: &Value| object["metadata"]["ownerReferences"][0]["uid"] == uid;
    cluster.secrets.retain(|_, secret| !owned(secret));
    let services: Vec<String> = cluster
        .services
        .iter()
        .filter(|(_, service)| owned(service))
        .map(|(name, _)| name.clone())
        .collect();
    for service in services {
        cluster.services.remove(&service);
        if let Some(forward) = cluster.forwards.remove(&service) {
            forward.abort();
        }
    }
    axum::Json(pod).into_response()
}

async fn create_secret(
    State(server): State<ApiServer>,
    axum::Json(secret): axum::Json<Value>,
) -> Response {
    let name = secret["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    server.lock().secrets.insert(name, secret.clone());
    (StatusCode::CREATED, axum::Json(secret)).into_response()
}

/// A node port is the cluster's: one Service each (the API server's 422 otherwise).
async fn create_service(
    State(server): State<ApiServer>,
    axum::Json(service): axum::Json<Value>,
) -> Response {
    let name = service["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let port = &service["spec"]["ports"][0]["nodePort"];
    let mut cluster = server.lock();
    if cluster.services.contains_key(&name) {
        let message = format!("services \"{name}\" already exists");
        return status(StatusCode::CONFLICT, "AlreadyExists", message);
    }
    if cluster
        .services
        .values()
        .any(|other| &other["spec"]["ports"][0]["nodePort"] == port)
    {
        let message = format!(
            "Service \"{name}\" is invalid: spec.ports[0].nodePort: Invalid value: {port}: provided port is already allocated"
        );
        return status(StatusCode::UNPROCESSABLE_ENTITY, "Invalid", message);
    }
    cluster.services.insert(name, service.clone());
    (StatusCode::CREATED, axum::Json(service)).into_response()
}

async fn read_lease(State(server): State<ApiServer>, Path(name): Path<String>) -> Response {
    match server.lock().leases.get(&name) {
        Some(lease) => axum::Json(lease.clone()).into_response(),
        None => status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("leases \"{name}\" not found"),
        ),
    }
}

async fn create_lease(
    State(server): State<ApiServer>,
    axum::Json(mut lease): axum::Json<Value>,
) -> Response {
    let name = lease["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut cluster = server.lock();
    if cluster.leases.contains_key(&name) {
        let message = format!("leases \"{name}\" already exists");
        return status(StatusCode::CONFLICT, "AlreadyExists", message);
    }
    cluster.version += 1;
    lease["metadata"]["resourceVersion"] = json!(cluster.version.to_string());
    cluster.leases.insert(name, lease.clone());
    (StatusCode::CREATED, axum::Json(lease)).into_response()
}

/// A replace succeeds only from the version stored (optimistic concurrency, as the API's).
async fn replace_lease(
    State(server): State<ApiServer>,
    Path(name): Path<String>,
    axum::Json(mut lease): axum::Json<Value>,
) -> Response {
    let mut cluster = server.lock();
    let stored = cluster
        .leases
        .get(&name)
        .map(|l| l["metadata"]["resourceVersion"].clone());
    if stored != Some(lease["metadata"]["resourceVersion"].clone()) {
        let message =
            "the object has been modified; please apply your changes to the latest version"
                .to_string();
        return status(StatusCode::CONFLICT, "Conflict", message);
    }
    cluster.version += 1;
    lease["metadata"]["resourceVersion"] = json!(cluster.version.to_string());
    cluster.leases.insert(name, lease.clone());
    axum::Json(lease).into_response()
}

/// Who holds the provisioner's Lease.
fn holder(api: &ApiServer) -> Option<String> {
    let cluster = api.lock();
    let lease = cluster.leases.get("parallax-provisioner")?;
    lease["spec"]["holderIdentity"].as_str().map(String::from)
}

/// Runs each schedulable pod whose Secret is there as a `parallax render-host` process, as its
/// container would: the pod's arguments and environment, its credential file, this machine's
/// loopback; and forwards each Service's node port to the pod it selects, as kube-proxy does.
/// The test's coordinator has no TLS, so neither do the hosts.
async fn kubelet(server: ApiServer) {
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut cluster = server.lock();
        let cluster = &mut *cluster;
        let Some(coordinator) = cluster.coordinator.clone() else {
            continue;
        };
        let folder = cluster.folder.clone().unwrap();
        for (name, pod) in cluster.pods.iter_mut() {
            if let Some(process) = cluster.processes.get_mut(name) {
                if let Ok(Some(exit)) = process.try_wait() {
                    let phase = if exit.success() {
                        "Succeeded"
                    } else {
                        "Failed"
                    };
                    pod["status"] = json!({ "phase": phase });
                }
                continue;
            }
            let secret = cluster.secrets.get(name);
            let credential = secret.and_then(|s| s["stringData"]["credential"].as_str());
            let pending =
                pod["status"]["phase"] == "Pending" && pod["status"]["conditions"].is_null();
            let (Some(credential), true) = (credential, pending) else {
                continue;
            };
            let file = folder.join(format!("{name}.credential"));
            std::fs::write(&file, credential).unwrap();
            let container = &pod["spec"]["containers"][0];
            let args: Vec<&str> = container["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap())
                .collect();
            let env = container_env(container, name);
            let listen = {
                let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                free.local_addr().unwrap().port()
            };
            cluster.listens.insert(name.clone(), listen);
            let process = std::process::Command::new(env!("CARGO_BIN_EXE_parallax"))
                .args(args)
                .envs(env)
                .env("PARALLAX_COORDINATOR", &coordinator)
                .env("PARALLAX_HOST_CREDENTIAL_FILE", &file)
                .env("PARALLAX_HOST_LISTEN", format!("127.0.0.1:{listen}"))
                .env_remove("PARALLAX_CA")
                .env_remove("PARALLAX_HOST_TLS_CERT")
                .env_remove("PARALLAX_HOST_TLS_KEY")
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap();
            cluster.processes.insert(name.clone(), process);
            pod["status"] = json!({ "phase": "Running" });
        }
        // kube-proxy: each Service's node port to the one pod it selects.
        for (service, spec) in &cluster.services {
            if cluster.forwards.contains_key(service) {
                continue;
            }
            let selector = spec["spec"]["selector"].as_object().unwrap();
            let selected = cluster.pods.iter().find(|(_, pod)| {
                selector
                    .iter()
                    .all(|(key, value)| &pod["metadata"]["labels"][key] == value)
            });
            let Some(listen) = selected.and_then(|(pod, _)| cluster.listens.get(pod)) else {
                continue;
            };
            let port = spec["spec"]["ports"][0]["nodePort"].as_u64().unwrap() as u16;
            let node_port = std::net::TcpListener::bind(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("the node port {port}: {e}"));
            let forward = tokio::spawn(forward(node_port, *listen));
            cluster.forwards.insert(service.clone(), forward);
        }
    }
}

/// The environment of `container` in the pod `pod_name`, as the kubelet makes it: values (with
/// `$(NAME)` of the variables before), the pod's fields, and the ConfigMap install.sh makes.
fn container_env(container: &Value, pod_name: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for var in container["env"].as_array().into_iter().flatten() {
        let value = if let Some(value) = var["value"].as_str() {
            env.iter().fold(value.to_string(), |value, (name, given)| {
                value.replace(&format!("$({name})"), given)
            })
        } else if let Some(field) = var["valueFrom"]["fieldRef"]["fieldPath"].as_str() {
            match field {
                "spec.nodeName" => NODE.into(),
                "status.hostIP" | "status.podIP" => "127.0.0.1".into(),
                "metadata.name" => pod_name.into(),
                other => panic!("the stand-in kubelet has no field {other}"),
            }
        } else {
            let key = &var["valueFrom"]["configMapKeyRef"];
            assert_eq!(
                (&key["name"], &key["key"]),
                (&json!("parallax-hosts"), &json!("domain"))
            );
            HOST_DOMAIN.into()
        };
        env.push((var["name"].as_str().unwrap().to_string(), value));
    }
    env
}

/// Forwards the connections `node_port` takes to the container's port `to`.
async fn forward(node_port: std::net::TcpListener, to: u16) {
    node_port.set_nonblocking(true).unwrap();
    let node_port = tokio::net::TcpListener::from_std(node_port).unwrap();
    while let Ok((mut incoming, _)) = node_port.accept().await {
        tokio::spawn(async move {
            if let Ok(mut container) = tokio::net::TcpStream::connect(("127.0.0.1", to)).await {
                let _ = tokio::io::copy_bidirectional(&mut incoming, &mut container).await;
            }
        });
    }
}

fn label<'a>(pod: &'a Value, key: &str) -> &'a str {
    pod["metadata"]["labels"][key].as_str().unwrap_or_default()
}

fn host_of(pod: &Value) -> &str {
    pod["metadata"]["annotations"]["parallax.dev/host-id"]
        .as_str()
        .unwrap_or_default()
}

/// `serve`'s flags for pods with standby `standby` of at most `capacity` Standard hosts and
/// `premium` Premium ones (one kept warm), the pods listed every 100 ms.
fn kube_args(data: &std::path::Path, capacity: u32, standby: u32, premium: u32) -> Vec<String> {
    let data = data.to_str().unwrap();
    let mut args = without_hosts(data, &[]);
    args.extend(
        [
            "--render-hosts",
            "kubernetes",
            "--kube-poll-ms",
            "100",
            "--kube-start-limit",
            "1",
            "--poll-interval-ms",
            "0",
            "--standard-standby",
            &standby.to_string(),
            "--premium-standby",
            &premium.min(1).to_string(),
        ]
        .map(String::from),
    );
    let at = args.iter().position(|a| a == "--standard").unwrap();
    args[at + 1] = capacity.to_string();
    let at = args.iter().position(|a| a == "--premium").unwrap();
    args[at + 1] = premium.to_string();
    args
}

/// Starts `parallax serve` with `args` against the API server, and tells its kubelet where the
/// coordinator is.
fn serve_in_cluster(
    api: &ApiServer,
    kubeconfig: &std::path::Path,
    args: &[String],
) -> (Child, String) {
    let (child, addr) = serve(
        &as_strs(args),
        &[("KUBECONFIG", kubeconfig.to_str().unwrap())],
    );
    api.lock().coordinator = Some(format!("ws://{addr}/v1/hosts/ws"));
    (child, addr)
}

/// Ten ports in a row for `--kube-node-ports`, likely free here: from one the system gave.
fn node_ports() -> std::ops::Range<u16> {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let first = free.local_addr().unwrap().port().min(65_000);
    first..first + 10
}

/// The node port `pod` advertises.
fn node_port(pod: &Value) -> u64 {
    let env = pod["spec"]["containers"][0]["env"].as_array().unwrap();
    let port = env
        .iter()
        .find(|e| e["name"] == "PARALLAX_HOST_ADVERTISE_PORT")
        .expect("a node port");
    port["value"].as_str().unwrap().parse().unwrap()
}

async fn pool_of(addr: &str, size: &str) -> Value {
    let health = full_health(addr).await;
    health["pool"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["size"] == size)
        .cloned()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pool_is_pods_made_from_the_template_let_go_when_spare_and_kept_over_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (api, kubeconfig) = ApiServer::start(dir.path()).await;
    let data = dir.path().join("data");
    let (account, key) = create_account(&data);
    let mut args = kube_args(&data, 4, 2, 0);
    let ports = node_ports();
    args.extend([
        "--on-stop".into(),
        "keep-hosts".into(),
        "--kube-node-ports".into(),
        format!("{}-{}", ports.start, ports.end - 1),
    ]);
    let (coordinator, addr) = serve_in_cluster(&api, &kubeconfig, &args);

    // A standby of 2: two pods, from the template, labelled, sized, each with its Secret.
    wait_for_standby(&addr).await;
    let pods = api.pods();
    assert_eq!(pods.len(), 2, "{:?}", pods.keys());
    let hosts: HashSet<&str> = pods.values().map(host_of).collect();
    assert_eq!(hosts, HashSet::from(["standard-1", "standard-2"]));
    for (name, pod) in &pods {
        assert_eq!(label(pod, "app.kubernetes.io/component"), "render-host");
        assert_eq!(label(pod, "parallax.dev/size"), "standard");
        assert_eq!(label(pod, "parallax.dev/owner"), "parallax");
        let container = &pod["spec"]["containers"][0];
        assert_eq!(container["resources"]["requests"]["memory"], "1Gi");
        let args = container["args"].as_array().unwrap();
        assert!(args.contains(&json!(host_of(pod))), "{args:?}");
        let volume = pod["spec"]["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == "credential")
            .unwrap();
        assert_eq!(volume["secret"]["secretName"], json!(name));
        let secret = api.lock().secrets.get(name).cloned().expect("its Secret");
        assert_eq!(
            secret["metadata"]["ownerReferences"][0]["name"],
            json!(name)
        );
        let credential = secret["stringData"]["credential"].as_str().unwrap();
        assert!(credential.starts_with(&format!("{}.", host_of(pod))));
    }
    let registered: HashSet<String> = hosts_of(&addr).await;
    assert_eq!(
        registered,
        HashSet::from(["standard-1".into(), "standard-2".into()])
    );
    // Each pod has a node port of its own (its NodePort Service's), which its host advertises
    // with the node's name under the hosts' domain.
    let endpoints: HashMap<String, String> = coordinator::hosts(&addr)
        .await
        .iter()
        .map(|h| {
            (
                h["id"].as_str().unwrap().into(),
                h["endpoint"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut taken = HashSet::new();
    for (name, pod) in &pods {
        let port = node_port(pod);
        assert!(ports.contains(&(port as u16)), "{port} is not in {ports:?}");
        assert!(taken.insert(port), "two pods have the node's port {port}");
        let service = api.lock().services.get(name).cloned().expect("its Service");
        assert_eq!(service["spec"]["ports"][0]["nodePort"], port);
        assert_eq!(
            service["metadata"]["ownerReferences"][0]["uid"],
            pod["metadata"]["uid"]
        );
        assert_eq!(
            endpoints[host_of(pod)],
            format!("ws://{NODE}.{HOST_DOMAIN}:{port}")
        );
    }

    // A session takes one; a third pod keeps two free.
    let token = coordinator::token(&addr, &account, &key).await;
    let session =
        |id: &str| format!("http://{addr}/accounts/{account}/sessions/{id}?api-version=2021-01-01");
    let body = Some(json!({"maxLeaseTimeMinutes": 60, "size": "Standard"}));
    let (status, live) = call(Method::PUT, session("live"), &token, body.clone()).await;
    assert_eq!(
        (status, live["status"].as_str()),
        (201, Some("Ready")),
        "{live}"
    );
    api.wait_for("a third pod for the standby", |pods| pods.len() == 3)
        .await;
    // A device reaches its host at the node's name and the pod's node port (the name is the
    // loopback here, as DNS would say), through the node's forwarding to the pod.
    let render_url = live["renderUrl"].as_str().unwrap();
    let at_node = render_url.replace(&format!("{NODE}.{HOST_DOMAIN}:"), "127.0.0.1:");
    assert_ne!(at_node, render_url);
    let mut headset = parallax_headset::RenderConnection::connect(&at_node)
        .await
        .unwrap();
    frame_after_pose(&mut headset, 3.0).await;
    drop(headset);
    let (status, spare) = call(Method::PUT, session("spare"), &token, body.clone()).await;
    assert_eq!(
        (status, spare["status"].as_str()),
        (201, Some("Ready")),
        "{spare}"
    );
    wait_for_standby(&addr).await;

    // `spare` ends with two free already: its pod is deleted.
    let spare_host = host_on(&addr, &account, &token, "spare").await;
    let spare_credential = {
        let cluster = api.lock();
        let (pod, _) = cluster
            .pods
            .iter()
            .find(|(_, p)| host_of(p) == spare_host)
            .unwrap();
        let secret = &cluster.secrets[pod];
        secret["stringData"]["credential"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let stop_url =
        format!("http://{addr}/accounts/{account}/sessions/spare/:stop?api-version=2021-01-01");
    assert_eq!(call(Method::POST, stop_url, &token, None).await.0, 204);
    api.wait_for("the spare host's pod deleted", |pods| {
        pods.len() == 3 && !pods.values().any(|p| host_of(p) == spare_host)
    })
    .await;
    // Its credential went with it: a host that presents it now is refused.
    let refused = registration_refused(&addr, &spare_credential).await;
    assert!(refused.contains("was let go"), "{refused}");
    let free = pool_of(&addr, "Standard").await;
    assert_eq!(
        (free["idle"].as_u64(), free["leased"].as_u64()),
        (Some(2), Some(1)),
        "{free}"
    );

    // A restart that keeps its hosts: `live`'s pod is adopted (not made again), the free ones'
    // pods are deleted and new ones made for the standby; no pod is left without a host.
    let live_host = host_on(&addr, &account, &token, "live").await;
    let live_pod = api
        .pods()
        .into_iter()
        .find(|(_, p)| host_of(p) == live_host)
        .unwrap()
        .0;
    let made_before = api.made().len();
    stop_keeping_hosts(coordinator, &mut args, &addr);
    let (coordinator, addr) = serve_in_cluster(&api, &kubeconfig, &args);
    wait_for_standby(&addr).await;
    let token = coordinator::token(&addr, &account, &key).await;
    let session = format!("http://{addr}/accounts/{account}/sessions/live?api-version=2021-01-01");
    let (_, live) = call(Method::GET, session, &token, None).await;
    assert_eq!(live["status"], "Ready", "{live}");
    api.wait_for("one pod per host of the pool", |pods| pods.len() == 3)
        .await;
    assert!(api.pods().contains_key(&live_pod), "live's pod was kept");
    assert_eq!(api.made().len(), made_before + 2, "two new standby pods");
    // Named past every host named before the restart: no name, nor the credential made of it,
    // comes back (the spare host's was let go).
    let number = |pod: &Value| -> u64 {
        host_of(pod)
            .strip_prefix("standard-")
            .unwrap()
            .parse()
            .unwrap()
    };
    let made = api.made();
    let highest = made[..made_before].iter().map(number).max().unwrap();
    for pod in &made[made_before..] {
        assert!(number(pod) > highest, "{} reuses a name", host_of(pod));
    }
    assert_eq!(hosts_of(&addr).await.len(), 3);

    // Stopping (stop-hosts) deletes every pod.
    assert!(stop(coordinator).success());
    api.wait_for("no pods after the coordinator stopped", BTreeMap::is_empty)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_that_cannot_be_scheduled_are_reported_and_not_asked_for_again() {
    let dir = tempfile::tempdir().unwrap();
    let (api, kubeconfig) = ApiServer::start(dir.path()).await;
    api.lock().unschedulable.insert("premium".into());
    let data = dir.path().join("data");
    create_account(&data);
    let args = kube_args(&data, 1, 1, 2);
    let (coordinator, addr) = serve_in_cluster(&api, &kubeconfig, &args);

    // Standard hosts start as ever; the Premium pod stays unschedulable, and within the start
    // limit (1 s) the pool says why, on /v1/health and in /metrics.
    let deadline = Instant::now() + Duration::from_secs(20);
    let premium = loop {
        let premium = pool_of(&addr, "Premium").await;
        if premium["unavailable"].is_string() {
            break premium;
        }
        assert!(
            Instant::now() < deadline,
            "Premium never reported unavailable: {premium}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let why = premium["unavailable"].as_str().unwrap();
    assert!(
        why.contains("cannot be scheduled: 0/3 nodes are available"),
        "{why}"
    );
    let metrics = metrics(&addr).await;
    assert!(
        metrics.contains("parallax_pool_unavailable{size=\"Premium\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("parallax_pool_unavailable{size=\"Standard\"} 0"));
    // Its pod was deleted, and no more are made while the size waits out its back-off (30 s).
    api.wait_for("the unschedulable pod deleted", |pods| {
        !pods
            .values()
            .any(|p| label(p, "parallax.dev/size") == "premium")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let premium_pods = api
        .made()
        .iter()
        .filter(|p| label(p, "parallax.dev/size") == "premium")
        .count();
    assert_eq!(premium_pods, 1, "one Premium pod tried, not one per poll");
    let standard = pool_of(&addr, "Standard").await;
    assert_eq!(standard["idle"], 1, "{standard}");
    assert!(standard["unavailable"].is_null());
    assert!(stop(coordinator).success());
}

/// The names of the hosts registered with the coordinator at `addr`.
async fn hosts_of(addr: &str) -> HashSet<String> {
    hosts(addr)
        .await
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect()
}

/// Registers with `credential` over a host link of its own; why the coordinator closed it.
async fn registration_refused(addr: &str, credential: &str) -> String {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let (mut link, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/hosts/ws"))
        .await
        .unwrap();
    let host = credential.split('.').next().unwrap();
    let register = json!({ "type": "register", "credential": credential, "size": "Standard",
        "host": host, "endpoint": "ws://127.0.0.1:9", "adapter": "a", "pid": 1 });
    link.send(Message::text(register.to_string()))
        .await
        .unwrap();
    loop {
        match link.next().await {
            Some(Ok(Message::Close(Some(frame)))) => return frame.reason.to_string(),
            Some(Ok(Message::Text(text))) => panic!("registered: {text}"),
            Some(Ok(_)) => continue,
            other => panic!("the link ended without a reason: {other:?}"),
        }
    }
}

/// The host session `id` is Ready on, read from the operator's session list.
async fn host_on(addr: &str, account: &str, token: &str, id: &str) -> String {
    let url = format!("http://{addr}/accounts/{account}/sessions/{id}?api-version=2021-01-01");
    let (_, session) = call(Method::GET, url, token, None).await;
    let endpoint = session["renderUrl"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    hosts(addr)
        .await
        .iter()
        .find(|h| endpoint.contains(h["endpoint"].as_str().unwrap().trim_start_matches("ws://")))
        .and_then(|h| h["id"].as_str().map(String::from))
        .unwrap_or_else(|| panic!("no host serves {id}: {session}"))
}

/// Stops the coordinator started with `args` and `--on-stop keep-hosts`, leaving its hosts, and
/// has the next start on the same port (where the hosts look for it) stop its hosts when it
/// stops.
fn stop_keeping_hosts(coordinator: Child, args: &mut [String], addr: &str) {
    assert!(stop(coordinator).success());
    let at = args.iter().position(|a| a == "--addr").unwrap();
    args[at + 1] = addr.to_string();
    let at = args.iter().position(|a| a == "--on-stop").unwrap();
    args[at + 1] = "stop-hosts".into();
}

/// Two replicas on one Postgres and NATS, each with `--render-hosts kubernetes`: one holds the
/// Lease and makes the pods; the standby's need is met once, not once per replica; when the
/// holder is killed the other takes the Lease over within its term and takes up the pods as they
/// are, making new ones as the pool asks, and deletes a second pod of a host.
#[tokio::test(flavor = "multi_thread")]
async fn among_replicas_one_provisions_and_a_dead_ones_pods_are_taken_over() {
    let dir = tempfile::tempdir().unwrap();
    let (api, kubeconfig) = ApiServer::start(dir.path()).await;
    let postgres = postgres::PostgresServer::start();
    let database = postgres.new_database("parallax_kubernetes").await;
    let nats = nats::NatsServer::start();
    let created = account_json(
        &dir.path().join("admin"),
        &["create", "showroom", "--database-url", &database],
    );
    let (account, key) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    let ports = node_ports();
    let ports = format!("{}-{}", ports.start, ports.end - 1);
    let replica = |name: &str| {
        let data = dir.path().join(name);
        let mut args = kube_args(&data, 3, 2, 0);
        args.extend(["--kube-node-ports".into(), ports.clone()]);
        // A boot limit long passed by the end: it must not take registered hosts for lost,
        // wherever they are linked.
        args.extend(["--database-url", &database, "--nats", &nats.url].map(String::from));
        args.extend(["--kube-boot-limit", "2"].map(String::from));
        let kubeconfig = kubeconfig.to_str().unwrap();
        serve(
            &as_strs(&args),
            &[("KUBECONFIG", kubeconfig), ("POD_NAME", name)],
        )
    };
    let (first, first_addr) = replica("replica-a");
    let (second, second_addr) = replica("replica-b");
    api.lock().coordinator = Some(format!(
        "ws://{first_addr}/v1/hosts/ws,ws://{second_addr}/v1/hosts/ws"
    ));
    wait_for_standby(&first_addr).await;
    wait_for_standby(&second_addr).await;
    // Listed many times over by both, and past the boot limit: still the two pods the standby
    // asked for.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(api.made().len(), 2, "{:?}", api.pods().keys());
    let leader = holder(&api).expect("a replica holds the Lease");
    let (mut leading, survivor, survivor_addr) = match leader.as_str() {
        "replica-a" => (first, second, second_addr),
        _ => (second, first, first_addr),
    };

    // The holder dies without a word (as if between making a pod and its Service: one Service
    // is gone); the other takes over within the Lease's 15 s.
    let lost_service = api.pods().into_keys().next().unwrap();
    api.lock()
        .services
        .remove(&lost_service)
        .expect("a Service per pod");
    leading.kill().unwrap();
    leading.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(25);
    while holder(&api).as_deref() == Some(leader.as_str()) {
        assert!(Instant::now() < deadline, "the Lease was not taken over");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for_standby(&survivor_addr).await;
    assert_eq!(
        api.made().len(),
        2,
        "the pods were taken up, not made again"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !api.lock().services.contains_key(&lost_service) {
        assert!(
            Instant::now() < deadline,
            "the pod's Service was not made again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // It provisions: a session takes a free host, and a third pod keeps two free.
    let token = coordinator::token(&survivor_addr, account, key).await;
    let url =
        format!("http://{survivor_addr}/accounts/{account}/sessions/live?api-version=2021-01-01");
    let body = Some(json!({"maxLeaseTimeMinutes": 60, "size": "Standard"}));
    let (status, live) = call(Method::PUT, url, &token, body).await;
    assert_eq!(
        (status, live["status"].as_str()),
        (201, Some("Ready")),
        "{live}"
    );
    api.wait_for("a third pod, made by the new holder", |pods| {
        pods.len() == 3
    })
    .await;
    assert_eq!(api.made().len(), 3);

    // A second pod of one host (made in a moment when two replicas both took themselves for the
    // holder): the holder deletes it and keeps the one it watches.
    let (original, mut twin) = api.pods().into_iter().next().unwrap();
    let twin_name = format!("{original}-twin");
    twin["metadata"]["name"] = json!(twin_name);
    twin["status"] = json!({ "phase": "Pending" });
    api.lock().pods.insert(twin_name.clone(), twin);
    api.wait_for("the second pod of a host deleted", |pods| {
        !pods.contains_key(&twin_name)
    })
    .await;
    assert!(api.pods().contains_key(&original), "the first pod was kept");
    assert!(stop(survivor).success());
}
