//! Coordinator replicas on one Postgres database and one NATS server, as an operator runs them:
//! three `parallax serve --database-url … --nats …` processes, members on each, one killed.

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
        let standard = standard.to_string();
        let args = [
            "--addr",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
            "--site-root",
            "/nonexistent",
            "--standard",
            &standard,
            "--premium",
            "0",
            "--poll-interval-ms",
            "0",
            "--database-url",
            database,
            "--nats",
            nats,
        ];
        let (child, addr) = serve(&args, &[]);
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
    // The render pools are each replica's own: the first has a host, the second none.
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
