//! Allocations per second (docs/SCALING.md): how fast the coordinators lease render hosts, as a
//! fleet allocator is measured (Agones reports 300–400 GameServerAllocations a second).
//!
//! `HOSTS` real `parallax render-host` processes offer themselves to the coordinators; `HOSTS`
//! clients, spread over the coordinators, each create a session (ARR's PUT, which leases a free
//! host: `Ready` at once), stop it (which frees the host) and start again, for `SECONDS`. An
//! allocation is a create answered `Ready`; a create that finds every host taken is answered 503
//! and counted as refused. Measured with one embedded coordinator (SQLite) for reference, then one
//! and three replicas on one Postgres database and one NATS server.
//!
//! `cargo build --release -p parallax-server && cargo bench -p parallax-tests --bench allocations
//! [-- SECONDS HOSTS]` (default 20 s, 8 hosts). Starts a throwaway Postgres cluster (Debian's
//! `postgresql`) and `nats-server` (Debian's), as the tests do.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parallax_headset::load::Summary;
use parallax_tests::{API_VERSION, ArrClient, ServeProcess, data_dir, parallax_binary};

#[path = "../../server/tests/support/nats.rs"]
mod nats;
#[path = "../../server/tests/support/postgres.rs"]
mod postgres;

/// What the coordinators are started with: it reads `/v1/health` in full.
const METRICS_TOKEN: &str = "allocation-bench-metrics-token";

/// A render host process, killed when dropped.
struct RenderHost {
    _process: tokio::process::Child,
}

impl RenderHost {
    /// Offers itself to the first of `coordinators` (`127.0.0.1:PORT`) that answers, with its
    /// own `credential`.
    fn start(credential: &str, coordinators: &[String]) -> Self {
        let urls: Vec<String> = coordinators
            .iter()
            .map(|addr| format!("ws://{addr}/v1/hosts/ws"))
            .collect();
        let child = tokio::process::Command::new(parallax_binary())
            .arg("render-host")
            .args(["--coordinator", &urls.join(",")])
            .args(["--size", "Standard"])
            .env("PARALLAX_HOST_CREDENTIAL", credential)
            .args(["--listen", "127.0.0.1:0", "--target-fps", "1"])
            .env("RUST_LOG", "error")
            .kill_on_drop(true)
            .spawn()
            .expect("parallax render-host starts");
        Self { _process: child }
    }
}

/// One setup: its coordinators and hosts, dropped (killed) together.
struct Setup {
    servers: Vec<ServeProcess>,
    _hosts: Vec<RenderHost>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Setup {
    /// Starts `count` coordinators (one account made before they start, in the first one's data
    /// dir or the database) and `hosts` render hosts; returns it with the account's id and key.
    async fn start(
        count: usize,
        hosts: usize,
        database: Option<&str>,
        nats: Option<&str>,
    ) -> (Self, (String, String)) {
        let capacity = hosts.to_string();
        let mut args = vec![
            "--standard",
            &capacity,
            "--standard-standby",
            "0",
            "--premium",
            "0",
            "--poll-interval-ms",
            "0",
            "--metrics-token",
            METRICS_TOKEN,
            // One account makes every allocation.
            "--account-sessions",
            "0",
        ];
        if let (Some(database), Some(nats)) = (database, nats) {
            args.extend(["--database-url", database, "--nats", nats]);
        }
        let dirs: Vec<tempfile::TempDir> = (0..count).map(|_| data_dir()).collect();
        let account = ArrClient::create_account_in(dirs[0].path(), database, "bench").await;
        let mut servers = Vec::new();
        for dir in &dirs {
            servers.push(ServeProcess::start(dir.path(), &args).await);
        }
        let addrs: Vec<String> = servers.iter().map(|s| s.addr.to_string()).collect();
        let mut started = Vec::new();
        for i in 0..hosts {
            let mut order = addrs.clone();
            order.rotate_left(i % count);
            let data = parallax_server::config::DataDir {
                path: dirs[0].path().to_path_buf(),
                database_url: database.map(str::to_string),
            };
            let credential = parallax_server::add_host(&data, &format!("bench-{i}"))
                .await
                .expect("a host credential");
            started.push(RenderHost::start(&credential, &order));
        }
        let hosts = started;
        let setup = Self {
            servers,
            _hosts: hosts,
            _dirs: dirs,
        };
        (setup, account)
    }

    /// Waits until `hosts` hosts are free in the pool (as the first coordinator reports it).
    async fn wait_for_hosts(&self, hosts: usize) {
        let url = format!("{}/v1/health", self.servers[0].url());
        for _ in 0..600 {
            let health: serde_json::Value = reqwest::Client::new()
                .get(&url)
                .bearer_auth(METRICS_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let idle = health["pool"][0]["idle"].as_u64().unwrap_or(0);
            if idle as usize >= hosts {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{hosts} render hosts did not link within 60 s");
    }
}

/// Every client's loop for `seconds`: create, stop, again. Returns allocations, refusals and
/// each allocation's create latency.
async fn allocate(clients: Vec<ArrClient>, seconds: u64) -> (usize, usize, Vec<Duration>) {
    let refused = Arc::new(AtomicUsize::new(0));
    let end = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(c, client)| {
            let refused = refused.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                for n in 0.. {
                    if Instant::now() >= end {
                        break;
                    }
                    let id = format!("c{c}-{n}");
                    let started = Instant::now();
                    let created = client.put(&id, "Standard", 30).await;
                    match (created.status, created.body["status"].as_str()) {
                        (201, Some("Ready")) => latencies.push(started.elapsed()),
                        (503, _) => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        other => panic!("{id}: {other:?} {}", created.body),
                    }
                    let stop = format!(
                        "{}/accounts/{}/sessions/{id}/:stop?{API_VERSION}",
                        client.base, client.account
                    );
                    let stopped = client.call(reqwest::Method::POST, &stop, None).await;
                    assert_eq!(stopped.status, 204, "{}", stopped.body);
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    (latencies.len(), refused.load(Ordering::Relaxed), latencies)
}

async fn run(
    name: &str,
    count: usize,
    hosts: usize,
    seconds: u64,
    database: Option<&str>,
    nats: Option<&str>,
) {
    let (setup, (account, key)) = Setup::start(count, hosts, database, nats).await;
    setup.wait_for_hosts(hosts).await;
    let mut clients = Vec::new();
    for i in 0..hosts {
        let server = &setup.servers[i % count];
        clients.push(ArrClient::sign_in_at(&server.url(), &account, &key).await);
    }
    let (allocations, refused, mut latencies) = allocate(clients, seconds).await;
    let s = Summary::of(&mut latencies).expect("allocations");
    println!(
        "{name:<28} {:>9.1} {:>8} {:>8.1} {:>8.1} {:>8.1}",
        allocations as f64 / seconds as f64,
        refused,
        s.p50,
        s.p99,
        s.max,
    );
    drop(setup);
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let hosts: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let postgres = postgres::PostgresServer::start();
    let nats = nats::NatsServer::start();
    println!(
        "{hosts} render hosts, {hosts} clients creating and stopping sessions for {seconds} s"
    );
    println!(
        "{:<28} {:>9} {:>8} {:>8} {:>8} {:>8}",
        "setup", "allocs/s", "refused", "p50 ms", "p99 ms", "max ms"
    );
    run("embedded (SQLite)", 1, hosts, seconds, None, None).await;
    for replicas in [1, 3] {
        let database = postgres
            .new_database(&format!("bench_allocations_{replicas}"))
            .await;
        let name = format!("{replicas} replica(s)");
        run(
            &name,
            replicas,
            hosts,
            seconds,
            Some(&database),
            Some(&nats.url),
        )
        .await;
    }
}
