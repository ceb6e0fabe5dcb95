//! Coordinator replicas on one Postgres database and one NATS server, as an operator runs them:
//! three `parallax serve --database-url … --nats …` processes, members on each, one killed.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use parallax_core::space::Role;
use parallax_headset::space::{Coordinator, Join, connect_socket};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[path = "support/coordinator.rs"]
mod coordinator;
#[path = "support/nats.rs"]
mod nats;
#[path = "support/postgres.rs"]
mod postgres;
use coordinator::*;

/// A process killed when dropped, so a failing test leaves no replica behind.
struct Replica(Option<std::process::Child>, String);

impl Replica {
    fn start(data: &std::path::Path, database: &str, nats: &str) -> Self {
        Self::with_hosts(data, database, nats, 0)
    }

    /// A replica with `standard` local Standard render hosts.
    fn with_hosts(data: &std::path::Path, database: &str, nats: &str, standard: u32) -> Self {
        Self::with_args(data, database, nats, &["--standard", &standard.to_string()])
    }

    /// A replica with `more` flags (on a port of its own unless they give `--addr`).
    fn with_args(data: &std::path::Path, database: &str, nats: &str, more: &[&str]) -> Self {
        let addr = match more.contains(&"--addr") {
            true => &[][..],
            false => &["--addr", "127.0.0.1:0"][..],
        };
        let args = [
            "--data-dir",
            data.to_str().unwrap(),
            "--site-root",
            "/nonexistent",
            "--premium",
            "0",
            "--poll-interval-ms",
            "0",
            "--database-url",
            database,
            "--nats",
            nats,
        ];
        let (child, addr) = serve(&[addr, &args[..], more].concat(), &[]);
        Self(Some(child), addr)
    }

    /// Stops it as an operator does (SIGTERM): its local render hosts stop with it.
    fn stop(mut self) {
        if let Some(child) = self.0.take() {
            assert!(stop(child).success());
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.0.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What the replicas of a test share: a Postgres database, a NATS server, a folder for their
/// data dirs, and an account made with the operator's command.
struct Shared {
    postgres: postgres::PostgresServer,
    database: String,
    nats: nats::NatsServer,
    dir: tempfile::TempDir,
    account: String,
    key: String,
}

impl Shared {
    async fn start(database: &str) -> Self {
        let postgres = postgres::PostgresServer::start();
        let database = postgres.new_database(database).await;
        let nats = nats::NatsServer::start();
        let dir = tempfile::tempdir().unwrap();
        let created = account_json(
            &dir.path().join("admin"),
            &["create", "showroom", "--database-url", &database],
        );
        Self {
            postgres,
            database,
            nats,
            dir,
            account: created["id"].as_str().unwrap().to_string(),
            key: created["key"].as_str().unwrap().to_string(),
        }
    }
}

impl Shared {
    /// A render host's credential, added to the shared database.
    fn host(&self, name: &str) -> String {
        add_host(
            &self.dir.path().join("admin"),
            name,
            &["--database-url", &self.database],
        )
    }

    /// `count` replicas sharing a pool of at most `standard` Standard hosts, none booted by
    /// them (hosts come on their own); a host no replica vouches for is given up after 4 s.
    fn pool_replicas(&self, count: usize, standard: &str) -> Vec<Replica> {
        let pool = [
            "--standard",
            standard,
            "--standard-standby",
            "0",
            "--host-return-grace",
            "4",
            // One account leases them all here.
            "--account-sessions",
            "0",
        ];
        (0..count)
            .map(|i| {
                let data = self.dir.path().join(format!("r{i}"));
                Replica::with_args(&data, &self.database, &self.nats.url, &pool)
            })
            .collect()
    }
}

/// A member's space socket, read frame by frame: every sequence number it is sent, in order, so
/// a gap or a repeat shows.
struct Follower {
    name: &'static str,
    socket: Socket,
    /// The last sequence number received.
    last: u64,
    /// Every selection event received, in order.
    selections: Vec<String>,
}

impl Follower {
    /// Says hello on `addr` (resuming after `last_seq`) and reads the welcome.
    async fn connect(
        name: &'static str,
        addr: &str,
        token: &str,
        member: &str,
        last_seq: Option<u64>,
    ) -> (Self, Value) {
        let url = format!("ws://{addr}/v1/spaces/showroom/ws");
        let mut socket = connect_socket(&url, None, None).await.unwrap();
        let hello = json!({"type": "hello", "token": token, "member": member, "lastSeq": last_seq});
        socket.send(Message::text(hello.to_string())).await.unwrap();
        let mut follower = Self {
            name,
            socket,
            last: 0,
            selections: Vec::new(),
        };
        let welcome = follower.receive().await;
        assert_eq!(welcome["type"], "welcome", "{name}: {welcome}");
        follower.last = welcome["seq"].as_u64().unwrap();
        (follower, welcome)
    }

    async fn receive(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(10), self.socket.next())
                .await
                .unwrap_or_else(|_| panic!("{}: nothing for 10 s", self.name))
                .unwrap_or_else(|| panic!("{}: the socket ended", self.name))
                .unwrap_or_else(|e| panic!("{}: {e}", self.name));
            if let Message::Text(text) = message {
                return serde_json::from_str(text.as_str()).unwrap();
            }
        }
    }

    /// Reads events until the selection of `model`; each must be the next in sequence.
    async fn until_selected(&mut self, model: &str) {
        loop {
            let event = self.receive().await;
            let seq = event["seq"].as_u64().unwrap();
            assert_eq!(
                seq,
                self.last + 1,
                "{}: events arrive once each, in order: {event}",
                self.name
            );
            self.last = seq;
            let ack = json!({"type": "ack", "seq": seq});
            self.socket
                .send(Message::text(ack.to_string()))
                .await
                .unwrap();
            if event["event"]["kind"] == "selection" {
                let selected = event["event"]["model"].as_str().unwrap().to_string();
                self.selections.push(selected.clone());
                if selected == model {
                    return;
                }
            }
        }
    }
}

#[tokio::test]
async fn replicas_share_spaces_and_members_resume_on_another_when_theirs_is_killed() {
    let Shared {
        postgres: _postgres,
        database,
        nats,
        dir,
        account,
        key,
    } = Shared::start("parallax_replicas").await;
    // Each replica with a data dir of its own, as on machines of their own.
    let mut replicas: Vec<Replica> = (0..3)
        .map(|i| Replica::start(&dir.path().join(format!("r{i}")), &database, &nats.url))
        .collect();
    let addrs: Vec<String> = replicas.iter().map(|r| r.1.clone()).collect();
    let addr = |i: usize| addrs[i].clone();
    let mut coordinators = Vec::new();
    for i in 0..3 {
        let server = format!("http://{}", addr(i));
        coordinators.push(Coordinator::sign_in(&server, &account, &key).await.unwrap());
    }
    let token = token(&addr(0), &account, &key).await;

    // The tablet makes the space on the first replica; headsets join on the second and third.
    let follow_only = |device| Join {
        device,
        role: Role::Headset,
        code: None,
        render_session: false,
    };
    let tablet = coordinators[0]
        .create_space("showroom", "default", json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    let mut members = Vec::new();
    for (name, replica) in [("left", 1), ("right", 1), ("far", 2)] {
        let membership = coordinators[replica]
            .join("showroom", &follow_only(name))
            .await
            .unwrap();
        let (follower, welcome) =
            Follower::connect(name, &addr(replica), &token, &membership.token, None).await;
        assert!(welcome["space"].is_object(), "a fresh start is a snapshot");
        members.push((follower, membership));
    }

    for model in ["gear", "bracket", "shaft"] {
        tablet.select(model).await.unwrap();
    }
    for (follower, _) in &mut members {
        follower.until_selected("shaft").await;
        assert_eq!(
            follower.selections,
            ["gear", "bracket", "shaft"],
            "{}",
            follower.name
        );
    }

    // The second replica dies. What the tablet selects meanwhile waits in the log.
    replicas[1].kill();
    tablet.select("gearbox").await.unwrap();
    members[2].0.until_selected("gearbox").await;
    // Its members resume on the third with their last sequence: exactly what they missed.
    for (follower, membership) in members.iter_mut().take(2) {
        let (resumed, welcome) = Follower::connect(
            follower.name,
            &addr(2),
            &token,
            &membership.token,
            Some(follower.last),
        )
        .await;
        assert!(
            welcome.get("space").is_none(),
            "{}: a resume replays, it is no snapshot: {welcome}",
            follower.name
        );
        assert_eq!(welcome["seq"].as_u64(), Some(follower.last));
        follower.socket = resumed.socket;
        follower.until_selected("gearbox").await;
    }
    tablet.select("gear").await.unwrap();
    for (follower, _) in &mut members {
        follower.until_selected("gear").await;
        assert_eq!(
            follower.selections,
            ["gear", "bracket", "shaft", "gearbox", "gear"],
            "{}: every selection once, in order",
            follower.name
        );
    }

    // Once the dead replica has been silent long enough, the others take stock of its members:
    // those that resumed elsewhere stay active.
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(headsets(&tablet).await, ["active"; 3]);

    // The third replica, which holds every headset now, freezes (SIGSTOP) past its silence: the
    // others make its members ready. Thawed, it finds out and holds them again; their sockets
    // never closed and miss nothing.
    let frozen = Pid::from_raw(replicas[2].0.as_ref().unwrap().id() as i32);
    kill(frozen, Signal::SIGSTOP).unwrap();
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(headsets(&tablet).await, ["ready"; 3]);
    kill(frozen, Signal::SIGCONT).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while headsets(&tablet).await != ["active"; 3] {
        assert!(
            std::time::Instant::now() < deadline,
            "held again within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tablet.select("shaft").await.unwrap();
    for (follower, _) in &mut members {
        follower.until_selected("shaft").await;
        assert_eq!(follower.selections.len(), 6, "{}", follower.name);
    }
    drop(coordinators);
    drop(replicas);
}

#[tokio::test]
async fn a_headset_leaving_through_another_replica_frees_its_render_session() {
    let Shared {
        postgres: _postgres,
        database,
        nats,
        dir,
        account,
        key,
    } = Shared::start("parallax_release").await;
    // The first replica boots the one render host; the second never had the session.
    let replicas = [
        Replica::with_hosts(&dir.path().join("r0"), &database, &nats.url, 1),
        Replica::start(&dir.path().join("r1"), &database, &nats.url),
    ];
    let mut coordinators = Vec::new();
    for replica in &replicas {
        let server = format!("http://{}", replica.1);
        coordinators.push(Coordinator::sign_in(&server, &account, &key).await.unwrap());
    }
    coordinators[0]
        .create_space("showroom", "default", json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    let visor = coordinators[0]
        .join_space("showroom", "visor", Role::Headset, None)
        .await
        .unwrap();
    let session = visor.render_session.as_ref().unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // It leaves through the second replica, which never had its session.
    visor.through(&coordinators[1]).leave().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let properties = coordinators[0].own_render_session(&session).await.unwrap();
        if properties["status"] == "Stopped" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the session was released within 10 s: {properties}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for replica in replicas {
        replica.stop();
    }
}

/// A `parallax render-host` on another machine, run here: it offers itself to the first of
/// `coordinators` (replicas' addresses) and moves on to the next when its link is lost.
struct RenderHost(std::process::Child);

impl RenderHost {
    /// Started with `credential` (`parallax host add`), in its environment.
    fn start(credential: &str, coordinators: &[&str]) -> Self {
        let urls: Vec<String> = coordinators
            .iter()
            .map(|addr| format!("ws://{addr}/v1/hosts/ws"))
            .collect();
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_parallax"))
            .arg("render-host")
            .args(["--coordinator", &urls.join(",")])
            .args(["--size", "Standard"])
            .env("PARALLAX_HOST_CREDENTIAL", credential)
            .args(["--listen", "127.0.0.1:0", "--target-fps", "5"])
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        Self(child)
    }

    fn pid(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for RenderHost {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The render hosts the replica at `addr` reports (every replica's), by pid.
async fn linked_hosts(addr: &str) -> HashMap<u32, Value> {
    hosts(addr)
        .await
        .into_iter()
        .map(|h| (h["pid"].as_u64().unwrap() as u32, h))
        .collect()
}

/// Waits (30 s at most) until `check` holds for the hosts the replica at `addr` reports.
async fn until_hosts(
    addr: &str,
    what: &str,
    check: impl Fn(&HashMap<u32, Value>) -> bool,
) -> HashMap<u32, Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let linked = linked_hosts(addr).await;
        if check(&linked) {
            return linked;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: {linked:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// ARR's PUT of session `id` through the replica at `addr`; `queue` to wait if the pool is full.
async fn create_session(
    addr: &str,
    account: &str,
    token: &str,
    id: &str,
    queue: bool,
) -> (u16, Value) {
    let url = format!(
        "http://{addr}/accounts/{account}/sessions/{id}?api-version=2021-01-01&queue={queue}"
    );
    let body = json!({"maxLeaseTimeMinutes": 30, "size": "Standard"});
    call(reqwest::Method::PUT, url, token, Some(body)).await
}

/// ARR's GET of session `id` through the replica at `addr`.
async fn session(addr: &str, account: &str, token: &str, id: &str) -> Value {
    let url = format!("http://{addr}/accounts/{account}/sessions/{id}?api-version=2021-01-01");
    let (status, properties) = call(reqwest::Method::GET, url, token, None).await;
    assert_eq!(status, 200, "{properties}");
    properties
}

#[tokio::test]
async fn replicas_share_one_pool_and_a_host_outlives_its_replica() {
    let shared = Shared::start("parallax_pool").await;
    let (account, key) = (shared.account.clone(), shared.key.clone());
    // Four Standard hosts at most.
    let mut replicas = shared.pool_replicas(3, "4");
    let addrs: Vec<String> = replicas.iter().map(|r| r.1.clone()).collect();
    let [r0, r1, r2] = [addrs[0].as_str(), addrs[1].as_str(), addrs[2].as_str()];
    // Two hosts link with the second replica: one may move on to the third, the other knows
    // only the second.
    let hosts = [
        RenderHost::start(&shared.host("gpu-0"), &[r0, r1, r2]),
        RenderHost::start(&shared.host("gpu-1"), &[r1, r2, r0]),
        RenderHost::start(&shared.host("gpu-2"), &[r2, r0, r1]),
        RenderHost::start(&shared.host("gpu-3"), &[r1]),
    ];
    let [moving, stranded] = [hosts[1].pid(), hosts[3].pid()];
    let linked = until_hosts(r0, "all four hosts link", |linked| linked.len() == 4).await;
    let second = linked[&moving]["replica"].clone();
    assert_eq!(linked[&stranded]["replica"], second, "{linked:?}");

    // 100 creates at once, spread over the three replicas; every third asks to wait in the
    // queue.
    let token = token(r0, &account, &key).await;
    let creates = (0..100).map(|i| {
        let (addr, account, token) = (addrs[i % 3].clone(), account.clone(), token.clone());
        async move {
            let queue = i % 3 == 0;
            let (status, answer) =
                create_session(&addr, &account, &token, &format!("s{i}"), queue).await;
            (format!("s{i}"), queue, status, answer)
        }
    });
    let answers = futures_util::future::join_all(creates).await;
    let mut ready = HashMap::new();
    let mut queued = Vec::new();
    for (id, queue, status, answer) in &answers {
        match (status, answer["status"].as_str()) {
            (201, Some("Ready")) => {
                ready.insert(
                    id.clone(),
                    answer["renderUrl"].as_str().unwrap().to_string(),
                );
            }
            (201, Some("Starting")) => {
                assert!(queue, "{id} did not ask to queue: {answer}");
                queued.push((answer["queuePosition"].as_u64().unwrap(), id.clone()));
            }
            (503, _) => {
                assert!(!queue, "{id} asked to queue: {answer}");
                assert_eq!(answer["error"]["code"], "PoolExhausted", "{answer}");
            }
            other => panic!("{id}: {other:?} {answer}"),
        }
    }
    assert_eq!(ready.len(), 4, "one session per host: {ready:?}");
    let hosts_leased: std::collections::HashSet<&String> = ready.values().collect();
    assert_eq!(hosts_leased.len(), 4, "no host leased twice: {ready:?}");
    // One queue across the replicas: its places are 1, 2, 3, … with none twice.
    queued.sort();
    let places: Vec<u64> = queued.iter().map(|(place, _)| *place).collect();
    let expected: Vec<u64> = (1..=places.len() as u64).collect();
    assert_eq!(places, expected);
    // Any replica lists them all: the Ready ones and the queue, in its order.
    let url = format!("http://{r1}/accounts/{account}/sessions?api-version=2021-01-01");
    let (status, listed) = call(reqwest::Method::GET, url, &token, None).await;
    assert_eq!(status, 200, "{listed}");
    let listed = listed["sessions"].as_array().unwrap();
    assert_eq!(listed.len(), ready.len() + queued.len(), "{listed:?}");
    let mut listed_places: Vec<u64> = listed
        .iter()
        .filter_map(|s| s["queuePosition"].as_u64())
        .collect();
    listed_places.sort_unstable();
    assert_eq!(listed_places, expected);
    let asked_to_queue = answers.iter().filter(|a| a.1).count();
    assert_eq!(
        queued.len()
            + ready
                .keys()
                .filter(|id| { answers.iter().any(|a| &a.0 == *id && a.1) })
                .count(),
        asked_to_queue
    );

    // Which session is on which host: its render URL has the host's port.
    let session_on = |pid: u32| -> String {
        let endpoint = linked[&pid]["endpoint"].as_str().unwrap();
        let port = endpoint.rsplit(':').next().unwrap();
        let (id, _) = ready
            .iter()
            .find(|(_, url)| url.contains(&format!(":{port}/")))
            .unwrap_or_else(|| panic!("a session on {endpoint}: {ready:?}"));
        id.clone()
    };
    let (kept, lost) = (session_on(moving), session_on(stranded));

    // The second replica dies. One of its hosts links with the third within seconds; the other
    // cannot, and is given up after the grace, its session in Error, once.
    replicas[1].kill();
    until_hosts(r0, "the moving host links with another replica", |linked| {
        linked.get(&moving).is_some_and(|h| h["replica"] != second)
    })
    .await;
    until_hosts(r0, "the stranded host is given up", |linked| {
        !linked.contains_key(&stranded)
    })
    .await;
    let gone = session(r2, &account, &token, &lost).await;
    assert_eq!(gone["status"], "Error", "{gone}");
    assert!(
        gone["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did not link with another"),
        "{gone}"
    );
    // Well past the grace, the moved host's session is Ready as ever.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let still = session(r0, &account, &token, &kept).await;
    assert_eq!(still["status"], "Ready", "{still}");
    let host_of = |url: &str| url.split("?ticket=").next().unwrap().to_string();
    assert_eq!(
        host_of(still["renderUrl"].as_str().unwrap()),
        host_of(&ready[&kept])
    );

    // Stopping it through the third replica hands its host to the head of the one queue.
    let url =
        format!("http://{r2}/accounts/{account}/sessions/{kept}/:stop?api-version=2021-01-01");
    let (status, stopped) = call(reqwest::Method::POST, url, &token, None).await;
    assert_eq!(status, 204, "{stopped}");
    let head = session(r0, &account, &token, &queued[0].1).await;
    assert_eq!(head["status"], "Ready", "{head}");
    let host_of = |url: &str| url.split("/v1/").next().unwrap().to_string();
    assert_eq!(
        host_of(head["renderUrl"].as_str().unwrap()),
        host_of(&ready[&kept]),
        "the freed host serves the head of the queue"
    );
    let next = session(r2, &account, &token, &queued[1].1).await;
    assert_eq!(next["queuePosition"], 1, "{next}");
    drop(hosts);
    for replica in replicas.into_iter().filter(|r| r.0.is_some()) {
        replica.stop();
    }
}

#[tokio::test]
async fn a_headset_keeps_its_picture_when_its_hosts_replica_dies() {
    let shared = Shared::start("parallax_picture").await;
    let (account, key) = (shared.account.clone(), shared.key.clone());
    let mut replicas = shared.pool_replicas(2, "1");
    let (r0, r1) = (replicas[0].1.clone(), replicas[1].1.clone());
    // The host links with the second replica; the session is made through the first.
    let host = RenderHost::start(&shared.host("gpu-0"), &[&r1, &r0]);
    let linked = until_hosts(&r0, "the host links", |linked| linked.len() == 1).await;
    let first = linked[&host.pid()]["replica"].clone();
    let token = token(&r0, &account, &key).await;
    let (status, created) = create_session(&r0, &account, &token, "visor", false).await;
    assert_eq!(
        (status, created["status"].as_str()),
        (201, Some("Ready")),
        "{created}"
    );
    // The device is admitted by the host's replica, which never saw the request.
    let url = created["renderUrl"].as_str().unwrap();
    let mut headset = parallax_headset::RenderConnection::connect(url)
        .await
        .unwrap();
    headset.load("gear").await.unwrap();
    frame_after_pose(&mut headset, 1.0).await;

    // The host's replica dies: the host links with the first, and the picture goes on.
    replicas[1].kill();
    until_hosts(&r0, "the host links with the other replica", |linked| {
        linked
            .get(&host.pid())
            .is_some_and(|h| h["replica"] != first)
    })
    .await;
    frame_after_pose(&mut headset, 2.0).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let still = session(&r0, &account, &token, "visor").await;
    assert_eq!(still["status"], "Ready", "{still}");
    assert_eq!(still["deviceConnected"], true, "{still}");
    frame_after_pose(&mut headset, 3.0).await;

    // Stopped, the session's host lets the device go: the reset reaches it on its new link.
    let stop =
        format!("http://{r0}/accounts/{account}/sessions/visor/:stop?api-version=2021-01-01");
    assert_eq!(call(reqwest::Method::POST, stop, &token, None).await.0, 204);
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if headset.next().await.is_err() {
                return;
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the device was let go within 10 s");
    drop(host);
    replicas.remove(0).stop();
}

#[tokio::test]
async fn a_single_coordinator_hands_its_sessions_to_replicas() {
    let Shared {
        postgres: _postgres,
        database,
        nats,
        dir,
        account,
        key,
    } = Shared::start("parallax_upgrade").await;
    let pool = [
        "--standard",
        "2",
        "--standard-standby",
        "0",
        "--host-return-grace",
        "4",
    ];
    // One coordinator on Postgres, as before the replicas, with two hosts and two sessions.
    let data = dir.path().join("single");
    let single_args = [
        &[
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ][..],
        &["--site-root", "/nonexistent", "--database-url", &database][..],
        &["--on-stop", "keep-hosts", "--premium", "0"][..],
        &pool[..],
    ]
    .concat();
    let (single, addr) = serve(&single_args, &[]);
    let host = |name: &str| {
        add_host(
            &dir.path().join("admin"),
            name,
            &["--database-url", &database],
        )
    };
    let hosts = [
        RenderHost::start(&host("gpu-0"), &[&addr]),
        RenderHost::start(&host("gpu-1"), &[&addr]),
    ];
    let linked = until_hosts(&addr, "both hosts link", |linked| linked.len() == 2).await;
    let token = token(&addr, &account, &key).await;
    let mut on_host = HashMap::new();
    for id in ["one", "two"] {
        let (status, created) = create_session(&addr, &account, &token, id, false).await;
        assert_eq!(created["status"], "Ready", "{status} {created}");
        let url = created["renderUrl"].as_str().unwrap().to_string();
        let pid = *linked
            .iter()
            .find(|(_, h)| {
                let port = h["endpoint"].as_str().unwrap().rsplit(':').next().unwrap();
                url.contains(&format!(":{port}/"))
            })
            .unwrap()
            .0;
        on_host.insert(pid, id);
    }
    // A deploy: the coordinator stops and leaves its hosts running; one host dies meanwhile.
    assert!(stop(single).success());
    let [kept, mut died] = hosts;
    let gone = on_host[&died.pid()];
    let _ = died.0.kill();
    let _ = died.0.wait();
    let kept_session = on_host[&kept.pid()];

    // A replica takes its place (its address, the same database): the host that is left links
    // again under its name and keeps its session; the other's session ends after the grace.
    let replica = Replica::with_args(
        &dir.path().join("replica"),
        &database,
        &nats.url,
        &[&["--addr", &addr][..], &pool[..]].concat(),
    );
    let relinked = until_hosts(&addr, "the host links with the replica", |linked| {
        linked.contains_key(&kept.pid())
    })
    .await;
    assert_eq!(
        relinked[&kept.pid()]["id"],
        linked[&kept.pid()]["id"],
        "under the name it had"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let ended = session(&addr, &account, &token, gone).await;
        if ended["status"] == "Error" {
            assert!(
                ended["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("held its link"),
                "{ended}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{ended}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let still = session(&addr, &account, &token, kept_session).await;
    assert_eq!(still["status"], "Ready", "{still}");
    drop(kept);
    replica.stop();
}

/// The headsets' statuses, in join order.
async fn headsets(tablet: &parallax_headset::space::Membership) -> Vec<String> {
    let space = tablet.space().await.unwrap();
    space["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "headset")
        .map(|m| m["status"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_replica_needs_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_parallax"))
        .arg("serve")
        .args(as_strs(&without_hosts(
            dir.path().to_str().unwrap(),
            &["--nats", "nats://127.0.0.1:4222", "--tls", "off"],
        )))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("--database-url"), "{said}");
}

/// A client of the NATS server that cannot read the database cannot forge what replicas say: a
/// space message closing a member without a replica's signature closes nobody, and is counted
/// in `/metrics`. Replicas refuse a NATS server that lets anyone in, unless told otherwise.
#[tokio::test]
async fn forged_nats_messages_close_nobody_and_an_open_nats_server_is_refused() {
    let shared = Shared::start("parallax_forged").await;
    let replica = Replica::start(
        &shared.dir.path().join("r0"),
        &shared.database,
        &shared.nats.url,
    );
    let addr = replica.1.clone();
    let coordinator = Coordinator::sign_in(&format!("http://{addr}"), &shared.account, &shared.key)
        .await
        .unwrap();
    let tablet = coordinator
        .create_space("showroom", "default", json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    let token = token(&addr, &shared.account, &shared.key).await;
    let (mut follower, _) = Follower::connect("tablet", &addr, &token, &tablet.token, None).await;

    // Published as a replica would, but unsigned: the replica that holds the socket must not
    // close it.
    let intruder = async_nats::ConnectOptions::with_user_and_password(
        "parallax".into(),
        shared.nats.password.clone().unwrap(),
    )
    .connect(shared.nats.url.as_str())
    .await
    .unwrap();
    let forged = json!({
        "space": "showroom",
        "replica": "intruder",
        "events": [],
        "closes": [{ "member": tablet.id, "reason": "forged" }],
    });
    intruder
        .publish("parallax.space.showroom", forged.to_string().into())
        .await
        .unwrap();
    intruder.flush().await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let metrics = metrics(&addr).await;
        if metrics.contains("parallax_nats_messages_rejected_total 1") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not counted: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Still connected: the next selection reaches it.
    tablet.select("gear").await.unwrap();
    follower.until_selected("gear").await;

    let open = nats::NatsServer::open();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_parallax"))
        .arg("serve")
        .args(as_strs(&without_hosts(
            shared.dir.path().join("r1").to_str().unwrap(),
            &[
                "--tls",
                "off",
                "--database-url",
                &shared.database,
                "--nats",
                &open.url,
            ],
        )))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("--nats-insecure"), "{said}");
}

/// Whether `connection` brings an update that is `wanted` within 10 s.
async fn until(
    connection: &mut parallax_headset::SpaceConnection,
    wanted: fn(&parallax_headset::SpaceUpdate) -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while tokio::time::Instant::now() < deadline {
        if let Ok(update) = connection.next_within(Duration::from_millis(200)).await
            && wanted(&update)
        {
            return true;
        }
    }
    false
}

/// Presence crosses replicas on NATS: a headset on one replica sees where a headset on another
/// is and points, and that it left; nothing of it is in the log.
#[tokio::test]
async fn presence_crosses_replicas() {
    use parallax_core::space_protocol::Presence;
    use parallax_headset::SpaceUpdate;
    let Shared {
        postgres: _postgres,
        database,
        nats,
        dir,
        account,
        key,
    } = Shared::start("parallax_presence").await;
    let replicas: Vec<Replica> = (0..2)
        .map(|i| Replica::start(&dir.path().join(format!("r{i}")), &database, &nats.url))
        .collect();
    let mut coordinators = Vec::new();
    for replica in &replicas {
        let server = format!("http://{}", replica.1);
        coordinators.push(Coordinator::sign_in(&server, &account, &key).await.unwrap());
    }
    coordinators[0]
        .create_space("room", "default", json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    let follow_only = |device| Join {
        device,
        role: Role::Headset,
        code: None,
        render_session: false,
    };
    let a = coordinators[0]
        .join("room", &follow_only("Quest A"))
        .await
        .unwrap();
    let b = coordinators[1]
        .join("room", &follow_only("Quest B"))
        .await
        .unwrap();
    let mut on_first = a.connect().await.unwrap();
    let mut on_second = b.connect().await.unwrap();
    let here = Presence {
        head: [0.4, 1.6, 0.2],
        orientation: [0.0, 0.0, 0.0, 1.0],
        ray: None,
    };
    // Sent again and again, as a headset does, until the other replica passes it on.
    let sender = tokio::spawn(async move {
        for _ in 0..100 {
            on_first.send_presence(here).await.unwrap();
            tokio::time::sleep(Duration::from_millis(66)).await;
        }
        on_first
    });
    let seen = until(&mut on_second, |u| {
        matches!(u, SpaceUpdate::Presence { members, .. }
            if members.iter().any(|m| m.device == "Quest A" && m.presence.head == [0.4, 1.6, 0.2]))
    })
    .await;
    assert!(seen, "Quest B, on the other replica, sees Quest A");
    let on_first = sender.await.unwrap();
    // Quest A leaves: gone for Quest B.
    on_first.bye().await.unwrap();
    let gone = until(
        &mut on_second,
        |u| matches!(u, SpaceUpdate::Presence { gone, .. } if !gone.is_empty()),
    )
    .await;
    assert!(gone, "Quest A's presence ends on the other replica");
}

/// Replicas whose data dirs share one `models` folder (a shared volume in a cluster, as deploy/
/// mounts it): a model uploaded through one is shown through another, its thumbnail and its
/// parts read from the folder they share.
#[tokio::test]
async fn replicas_sharing_a_models_folder_show_each_others_uploads() {
    let shared = Shared::start("parallax_models").await;
    let models = shared.dir.path().join("models");
    std::fs::create_dir(&models).unwrap();
    let replica = |name: &str| {
        let data = shared.dir.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
        std::os::unix::fs::symlink(&models, data.join("models")).unwrap();
        Replica::start(&data, &shared.database, &shared.nats.url)
    };
    let (first, second) = (replica("r0"), replica("r1"));
    let token = token(&first.1, &shared.account, &shared.key).await;
    let client = reqwest::Client::new();
    let bracket = parallax_render::samples::bracket();
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(bracket.to_binary_stl()).file_name("bracket.stl"),
    );
    let answer = client
        .post(format!("http://{}/v1/models", first.1))
        .bearer_auth(&token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 201);
    let model: Value = answer.json().await.unwrap();
    let id = model["id"].as_str().unwrap();

    let get = |path: String| {
        client
            .get(format!("http://{}{path}", second.1))
            .bearer_auth(&token)
            .send()
    };
    let shown: Value = get(format!("/v1/models/{id}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["triangles"], bracket.triangles(), "{shown}");
    let thumbnail = get(format!("/v1/models/{id}/thumbnail.png")).await.unwrap();
    assert_eq!(thumbnail.status(), 200);
    let png = thumbnail.bytes().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG of {} bytes", png.len());
    let parts = get(format!("/v1/models/{id}/parts")).await.unwrap();
    assert_eq!(parts.status(), 200);
    // Nothing left of the upload beside its model's folder: no staging, no claims.
    let left: Vec<String> = std::fs::read_dir(&models)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    first.stop();
    second.stop();
}
