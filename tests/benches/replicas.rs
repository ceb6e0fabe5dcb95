//! Coordinator replicas (docs/SCALING.md), in one run on one machine:
//!
//! - **Broadcast**: a tablet's selection until each of N members has it (the `large` template),
//!   with every member on one replica, and with the members spread over three replicas (the tablet
//!   on the first), all on one Postgres database and one NATS server; and the embedded
//!   coordinator (SQLite, no NATS) for reference.
//! - **Failover**: a replica holding a third of the members is killed (SIGKILL); each of its
//!   members reconnects to another replica with its last sequence, as the headset client does.
//!   Measured per member: from the kill until its welcome (the replay of what it missed) is in,
//!   and then whether the next selection reaches every member once.
//!
//! `cargo build --release -p parallax-server && cargo bench -p parallax-tests --bench replicas
//! [-- ROUNDS MEMBERS KILLS]` (default 30 selections, 1000 members, 5 kills). Starts a throwaway
//! Postgres cluster (Debian's `postgresql`) and `nats-server` (Debian's), as the tests do.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use parallax_core::space::Role;
use parallax_headset::load::Summary;
use parallax_headset::space::{Join, small_messages};
use parallax_headset::{Coordinator, connect_socket, socket_url};
use parallax_tests::{ArrClient, NO_HOSTS, ServeProcess, data_dir};
use serde_json::json;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

#[path = "../../server/tests/support/nats.rs"]
mod nats;
#[path = "../../server/tests/support/postgres.rs"]
mod postgres;

const MODELS: [&str; 2] = ["gear", "shaft"];

/// What the members received: (label, when), and how many have each label.
#[derive(Default)]
struct Noted {
    receipts: Vec<(String, Instant)>,
    counts: HashMap<String, usize>,
}

struct Receipts {
    members: usize,
    noted: Mutex<Noted>,
    complete: Notify,
}

impl Receipts {
    fn new(members: usize) -> Arc<Self> {
        Arc::new(Self {
            members,
            noted: Mutex::default(),
            complete: Notify::new(),
        })
    }

    fn note(&self, label: &str, at: Instant) {
        let mut noted = self.noted.lock().unwrap();
        noted.receipts.push((label.to_string(), at));
        let count = noted.counts.entry(label.to_string()).or_default();
        *count += 1;
        if *count >= self.members {
            self.complete.notify_one();
        }
    }

    /// Waits until `count` receipts of `label` are in; returns their times.
    async fn gather(&self, label: &str, count: usize) -> Vec<Instant> {
        self.gather_within(label, count, Duration::from_secs(30))
            .await
    }

    /// [`Receipts::gather`], waiting up to `limit`.
    async fn gather_within(&self, label: &str, count: usize, limit: Duration) -> Vec<Instant> {
        let started = Instant::now();
        loop {
            {
                let mut noted = self.noted.lock().unwrap();
                let got = noted.counts.get(label).copied().unwrap_or(0);
                assert!(
                    got <= count,
                    "{label} arrived {got} times for {count} members"
                );
                if got == count {
                    noted.counts.remove(label);
                    let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut noted.receipts)
                        .into_iter()
                        .partition(|(l, _)| l == label);
                    noted.receipts = rest;
                    return mine.into_iter().map(|(_, at)| at).collect();
                }
            }
            if tokio::time::timeout(Duration::from_millis(200), self.complete.notified())
                .await
                .is_err()
            {
                let noted = self.noted.lock().unwrap();
                let got = noted.counts.get(label).copied().unwrap_or(0);
                assert!(
                    started.elapsed() < limit,
                    "only {got} of {count} members got {label} within {limit:?}"
                );
            }
        }
    }
}

/// A member: says hello on its replica, notes each selection, acks every event; when its replica
/// dies it says hello on the next one in `replicas` with its last sequence.
async fn member(
    mut at: usize,
    replicas: Arc<Mutex<Vec<Option<String>>>>,
    token: String,
    member: String,
    receipts: Arc<Receipts>,
) {
    let mut last: Option<u64> = None;
    loop {
        let addr = replicas.lock().unwrap()[at].clone();
        let Some(addr) = addr else {
            at = (at + 1) % replicas.lock().unwrap().len();
            continue;
        };
        let url = socket_url(&format!("http://{addr}"), "/v1/spaces/bench/ws");
        let Ok(mut socket) = connect_socket(&url, Some(small_messages()), None).await else {
            at = (at + 1) % replicas.lock().unwrap().len();
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let hello = json!({"type": "hello", "token": token, "member": member, "lastSeq": last});
        if socket.send(Message::text(hello.to_string())).await.is_err() {
            continue;
        }
        while let Some(Ok(message)) = socket.next().await {
            let Message::Text(text) = message else {
                continue;
            };
            let now = Instant::now();
            let value: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
            match value["type"].as_str() {
                Some("welcome") => {
                    let label = if last.is_some() { "back" } else { "welcome" };
                    last = value["seq"].as_u64();
                    receipts.note(label, now);
                }
                Some("event") => {
                    let seq = value["seq"].as_u64().unwrap();
                    assert_eq!(Some(seq), last.map(|l| l + 1), "in order, once each");
                    last = Some(seq);
                    if value["event"]["kind"] == "selection" {
                        receipts.note(value["event"]["model"].as_str().unwrap(), now);
                    }
                    let ack = format!(r#"{{"type":"ack","seq":{seq}}}"#);
                    if socket.send(Message::text(ack)).await.is_err() {
                        break;
                    }
                }
                _ => {}
            }
        }
        // The replica went away: the next one.
        at = (at + 1) % replicas.lock().unwrap().len();
    }
}

/// A setup under test: its replicas (or the one coordinator) and how to start another.
struct Setup {
    /// The members' tasks, ended with the setup.
    members: Vec<tokio::task::JoinHandle<()>>,
    servers: Vec<Option<ServeProcess>>,
    addrs: Arc<Mutex<Vec<Option<String>>>>,
    args: Vec<String>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Drop for Setup {
    fn drop(&mut self) {
        for task in &self.members {
            task.abort();
        }
    }
}

impl Setup {
    async fn start(count: usize, database: Option<&str>, nats: Option<&str>) -> Self {
        let mut args: Vec<String> = NO_HOSTS.iter().map(|a| a.to_string()).collect();
        if let Some(database) = database {
            args.extend(["--database-url".to_string(), database.to_string()]);
        }
        if let Some(nats) = nats {
            args.extend(["--nats".to_string(), nats.to_string()]);
        }
        let mut setup = Self {
            members: Vec::new(),
            servers: Vec::new(),
            addrs: Arc::default(),
            args,
            _dirs: Vec::new(),
        };
        for _ in 0..count {
            let server = setup.spawn().await;
            setup
                .addrs
                .lock()
                .unwrap()
                .push(Some(server.addr.to_string()));
            setup.servers.push(Some(server));
        }
        setup
    }

    async fn spawn(&mut self) -> ServeProcess {
        let dir = data_dir();
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let server = ServeProcess::start(dir.path(), &args).await;
        self._dirs.push(dir);
        server
    }

    fn url(&self, i: usize) -> String {
        format!("http://{}", self.addrs.lock().unwrap()[i].as_ref().unwrap())
    }
}

/// The space `bench` with `members` members spread over the setup's servers (the tablet on the
/// first), all connected. Returns the tablet.
async fn fill(
    setup: &mut Setup,
    account: &(String, String),
    members: usize,
    receipts: &Arc<Receipts>,
) -> parallax_headset::space::Membership {
    let servers = setup.servers.len();
    let mut coordinators = Vec::new();
    for i in 0..servers {
        coordinators.push(
            Coordinator::sign_in(&setup.url(i), &account.0, &account.1)
                .await
                .unwrap(),
        );
    }
    let tablet = coordinators[0]
        .create_space("bench", "large", json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    let token = coordinators[0].token.clone();
    let joining = Instant::now();
    let mut joined = vec![(0, tablet.token.clone())];
    for n in 1..members {
        let at = n % servers;
        let device = format!("member-{n}");
        let join = Join {
            device: &device,
            role: Role::Headset,
            code: None,
            render_session: false,
        };
        let membership = coordinators[at].join("bench", &join).await.unwrap();
        joined.push((at, membership.token));
    }
    let joins = joining.elapsed();
    let connecting = Instant::now();
    for (at, member_token) in joined {
        setup.members.push(tokio::spawn(member(
            at,
            setup.addrs.clone(),
            token.clone(),
            member_token,
            receipts.clone(),
        )));
    }
    receipts
        .gather_within("welcome", members, Duration::from_secs(900))
        .await;
    eprintln!(
        "{members} members joined one by one in {:.1} s and connected at once in {:.1} s",
        joins.as_secs_f64(),
        connecting.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    tablet
}

/// `rounds` selections, each of the other model than the last (`selected` counts them);
/// every member's latency for each.
async fn broadcast(
    tablet: &parallax_headset::space::Membership,
    receipts: &Receipts,
    members: usize,
    rounds: usize,
    selected: &mut usize,
) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(rounds * members);
    for _ in 0..rounds {
        *selected += 1;
        let model = MODELS[*selected % 2];
        let started = Instant::now();
        tablet.select(model).await.unwrap();
        for at in receipts.gather(model, members).await {
            latencies.push(at - started);
        }
    }
    latencies
}

fn report(name: &str, members: usize, mut times: Vec<Duration>) {
    let s = Summary::of(&mut times).expect("latencies");
    println!(
        "{name:<34} {members:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2}",
        s.p50, s.p95, s.p99, s.max
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(30);
    let members: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let kills: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let postgres = postgres::PostgresServer::start();
    let nats = nats::NatsServer::start();
    println!(
        "{rounds} selections per setup; latency from the PATCH sent to receipt at each member"
    );
    println!(
        "{:<34} {:>7} {:>9} {:>9} {:>9} {:>9}",
        "setup", "members", "p50 ms", "p95 ms", "p99 ms", "max ms"
    );

    // The embedded coordinator, for reference.
    let dir = data_dir();
    let account = ArrClient::create_account(dir.path(), "bench").await;
    let server = ServeProcess::start(dir.path(), NO_HOSTS).await;
    let mut embedded = Setup {
        members: Vec::new(),
        addrs: Arc::new(Mutex::new(vec![Some(server.addr.to_string())])),
        servers: vec![Some(server)],
        args: Vec::new(),
        _dirs: vec![dir],
    };
    let receipts = Receipts::new(members);
    let tablet = fill(&mut embedded, &account, members, &receipts).await;
    let latencies = broadcast(&tablet, &receipts, members, rounds, &mut 0).await;
    report("embedded (SQLite)", members, latencies);
    drop(embedded);

    for replicas in [1, 3] {
        let database = postgres
            .new_database(&format!("bench_replicas_{replicas}"))
            .await;
        let account =
            ArrClient::create_account_in(data_dir().path(), Some(&database), "bench").await;
        let mut setup = Setup::start(replicas, Some(&database), Some(&nats.url)).await;
        let receipts = Receipts::new(members);
        let tablet = fill(&mut setup, &account, members, &receipts).await;
        let name = format!("{replicas} replica(s), members spread");
        let mut selected = 0;
        let latencies = broadcast(&tablet, &receipts, members, rounds, &mut selected).await;
        report(&name, members, latencies);
        if replicas == 1 {
            continue;
        }
        // Failover: kill a replica other than the tablet's, then start a new one in its place.
        let mut back = Vec::new();
        let mut moved = 0;
        for kill in 0..kills {
            let victim = 1 + kill % (replicas - 1);
            let on_victim = count_on(&setup, victim).await;
            let killed = Instant::now();
            setup.addrs.lock().unwrap()[victim] = None;
            setup.servers[victim] = None; // SIGKILL (kill_on_drop)
            for at in receipts.gather("back", on_victim).await {
                back.push(at - killed);
            }
            moved += on_victim;
            // Nothing lost or repeated: the next selection reaches every member once.
            broadcast(&tablet, &receipts, members, 1, &mut selected).await;
            let server = setup.spawn().await;
            setup.addrs.lock().unwrap()[victim] = Some(server.addr.to_string());
            setup.servers[victim] = Some(server);
        }
        let s = Summary::of(&mut back).expect("failovers");
        println!(
            "failover: {moved} members of {kills} killed replicas back on another: p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            s.p50, s.p95, s.p99, s.max
        );
    }
}

/// How many members' sockets a replica holds now (its `/metrics`).
async fn count_on(setup: &Setup, replica: usize) -> usize {
    let metrics = reqwest::get(format!("{}/metrics", setup.url(replica)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    metrics
        .lines()
        .find_map(|l| {
            l.strip_prefix("parallax_space_sockets ")
                .and_then(|n| n.trim().parse().ok())
        })
        .expect("/metrics counts the space sockets")
}
