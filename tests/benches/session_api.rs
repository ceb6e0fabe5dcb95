//! The render session API under load, over real loopback HTTP against a coordinator with its own
//! SQLite file:
//! 1. PUT → Ready latency from the warm pool: each create finds a standby host, is stopped again
//!    (not timed) so the next one does too.
//! 2. GET properties throughput next to `GET /v1/ping` (a plain axum handler) in the same run.
//!
//! `cargo bench -p parallax-tests --bench session_api [-- CREATES SECONDS CONNECTIONS]`
//!
//! With `PARALLAX_BENCH_DATABASE_URL=postgres://…` the coordinator keeps its state in that
//! Postgres database instead (an empty one: the account is created in it).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parallax_server::config::PoolArgs;
use parallax_tests::{ArrClient, TestServer, data_dir};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with('-'));
    let creates: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let connections: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(16);

    let dir = data_dir();
    let database_url = std::env::var("PARALLAX_BENCH_DATABASE_URL").ok();
    let (account, key) =
        ArrClient::create_account_in(dir.path(), database_url.as_deref(), "bench").await;
    let pool = PoolArgs {
        standard: 1,
        premium: 1,
        standard_standby: 1,
        premium_standby: 0,
        poll_interval_ms: 0,
        ..PoolArgs::default()
    };
    let options = parallax_server::Options {
        pool,
        database_url,
        ..TestServer::options(dir.path())
    };
    let server = TestServer::start_with_options(dir.path(), &options).await;
    let arr = ArrClient::sign_in(&server, &account, &key).await;
    // Let the standby host finish booting.
    while arr.put("warm-up", "Standard", 5).await.body["status"] != "Ready" {
        arr.stop("warm-up").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    arr.stop("warm-up").await;

    let mut latencies = Vec::with_capacity(creates);
    for i in 0..creates {
        let id = format!("bench-{i}");
        let started = Instant::now();
        let answer = arr.put(&id, "Standard", 5).await;
        latencies.push(started.elapsed());
        assert_eq!(
            (answer.status, answer.body["status"].as_str()),
            (201, Some("Ready"))
        );
        arr.stop(&id).await;
    }
    latencies.sort_unstable();
    let at =
        |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    println!("PUT -> Ready from a warm host, {creates} creates (each a 201 already Ready)");
    println!(
        "  p50 {:.2} ms   p90 {:.2} ms   p99 {:.2} ms   max {:.2} ms",
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0)
    );

    arr.put("polled", "Standard", 60).await;
    let properties = arr.session_url("polled");
    let ping = format!("{}/v1/ping", server.url());
    let ping_rate = throughput(&ping, None, seconds, connections).await;
    let properties_rate = throughput(&properties, Some(&arr.token), seconds, connections).await;
    println!("GET throughput, {connections} keep-alive connections, {seconds} s each");
    println!("  GET /v1/ping (plain handler)   {ping_rate:>9.0} req/s");
    println!(
        "  GET session properties          {properties_rate:>9.0} req/s  ({:.0}% of ping)",
        properties_rate / ping_rate * 100.0
    );
    server.stop().await;
}

/// Requests per second that `connections` clients get from `url` in `seconds`.
async fn throughput(url: &str, token: Option<&str>, seconds: u64, connections: usize) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (url, token, done) = (url.to_string(), token.map(str::to_string), done.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                while Instant::now() < deadline {
                    let mut request = client.get(&url);
                    if let Some(token) = &token {
                        request = request.bearer_auth(token);
                    }
                    let response = request.send().await.expect("an answer");
                    assert!(response.status().is_success(), "{}", response.status());
                    response.bytes().await.expect("a body");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker finished");
    }
    done.load(Ordering::Relaxed) as f64 / seconds as f64
}
