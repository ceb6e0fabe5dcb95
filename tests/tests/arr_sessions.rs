//! The render session service as an Azure Remote Rendering client sees it: real HTTP against a
//! real coordinator with its own SQLite file.

use std::time::Duration;

use parallax_server::config::PoolArgs;

#[path = "../../server/tests/support/postgres.rs"]
mod postgres;
use parallax_tests::{API_VERSION, ArrClient, TestServer, data_dir, send};
use reqwest::Method;
use serde_json::json;

fn pool(standard: u32, standard_standby: u32, poll_interval_ms: u64) -> PoolArgs {
    PoolArgs {
        standard,
        premium: 1,
        standard_standby,
        premium_standby: 0,
        poll_interval_ms,
        ..PoolArgs::default()
    }
}

async fn signed_in(pool: PoolArgs) -> (tempfile::TempDir, TestServer, ArrClient) {
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "showroom").await;
    let server = TestServer::start_with(dir.path(), &pool).await;
    let client = ArrClient::sign_in(&server, &account, &key).await;
    (dir, server, client)
}

#[tokio::test]
async fn an_arr_client_leases_polls_extends_and_stops_a_session() {
    // No warm standby: the session starts cold and the client polls until it is Ready.
    let (_dir, server, arr) = signed_in(pool(1, 0, 100)).await;

    let created = arr.put("design-review", "Standard", 30).await;
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(created.body["id"], "design-review");
    assert_eq!(created.body["size"], "Standard");
    assert_eq!(created.body["maxLeaseTimeMinutes"], 30);
    assert!(
        created.body["creationTime"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );

    let mut status = created.body["status"].as_str().unwrap().to_string();
    let mut polls = 0;
    while status == "Starting" {
        tokio::time::sleep(Duration::from_millis(150)).await;
        let answer = arr.get("design-review").await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        status = answer.body["status"].as_str().unwrap().to_string();
        polls += 1;
        assert!(polls < 50, "still Starting after {polls} polls");
    }
    assert_eq!(status, "Ready");

    let extended = arr.patch("design-review", 90).await;
    assert_eq!(extended.status, 200, "{}", extended.body);
    assert_eq!(extended.body["maxLeaseTimeMinutes"], 90);

    let stopped = arr.stop("design-review").await;
    assert_eq!(stopped.status, 204);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let after = arr.get("design-review").await;
    assert_eq!(after.body["status"], "Stopped");
    assert_eq!(after.body["elapsedTimeMinutes"], 0);
    server.stop().await;
}

#[tokio::test]
async fn a_warm_standby_host_makes_the_put_answer_ready_and_the_first_get_is_never_throttled() {
    let (_dir, server, arr) = signed_in(pool(2, 1, 5_000)).await;
    let created = arr.put("walkthrough", "Standard", 10).await;
    assert_eq!(
        (created.status, created.body["status"].as_str()),
        (201, Some("Ready"))
    );
    let first = arr.get("walkthrough").await;
    assert_eq!(
        first.status, 200,
        "the first poll after a create is allowed"
    );
    let second = arr.get("walkthrough").await;
    assert_eq!((second.status, second.code()), (429, "TooManyRequests"));
    let wait: u64 = second.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=5).contains(&wait), "Retry-After {wait}");
    server.stop().await;
}

#[tokio::test]
async fn retries_conflicts_and_bad_input_get_arr_answers() {
    let (_dir, server, arr) = signed_in(pool(2, 1, 0)).await;
    assert_eq!(arr.put("s1", "Standard", 30).await.status, 201);
    let retry = arr.put("s1", "Standard", 30).await;
    assert_eq!(retry.status, 200, "same id and settings: a safe retry");
    let other = arr.put("s1", "Premium", 30).await;
    assert_eq!((other.status, other.code()), (409, "Conflict"));

    let cases = [
        (
            "bad id",
            arr.session_url("has%20space"),
            json!({"maxLeaseTimeMinutes": 5, "size": "Standard"}),
            "sessionId",
        ),
        (
            "long id",
            arr.session_url(&"x".repeat(257)),
            json!({"maxLeaseTimeMinutes": 5, "size": "Standard"}),
            "sessionId",
        ),
        (
            "no size",
            arr.session_url("s2"),
            json!({"maxLeaseTimeMinutes": 5}),
            "size",
        ),
        (
            "bad size",
            arr.session_url("s2"),
            json!({"maxLeaseTimeMinutes": 5, "size": "Huge"}),
            "size",
        ),
        (
            "no lease",
            arr.session_url("s2"),
            json!({"size": "Standard"}),
            "maxLeaseTimeMinutes",
        ),
        (
            "lease too long",
            arr.session_url("s2"),
            json!({"maxLeaseTimeMinutes": 1441, "size": "Standard"}),
            "maxLeaseTimeMinutes",
        ),
        (
            "lease not a number",
            arr.session_url("s2"),
            json!({"maxLeaseTimeMinutes": "ten", "size": "Standard"}),
            "maxLeaseTimeMinutes",
        ),
        (
            "no api-version",
            format!("{}/accounts/{}/sessions/s2", arr.base, arr.account),
            json!({"maxLeaseTimeMinutes": 5, "size": "Standard"}),
            "api-version",
        ),
    ];
    for (name, url, body, target) in cases {
        let answer = arr.call(Method::PUT, &url, Some(body)).await;
        assert_eq!(
            (answer.status, answer.code()),
            (400, "BadRequest"),
            "{name}: {}",
            answer.body
        );
        assert_eq!(answer.body["error"]["target"], target, "{name}");
        assert!(!answer.body["error"]["message"].as_str().unwrap().is_empty());
    }
    let not_json = send(
        reqwest::Client::new()
            .put(arr.session_url("s2"))
            .bearer_auth(&arr.token)
            .header("content-type", "application/json")
            .body("{oops"),
    )
    .await;
    assert_eq!((not_json.status, not_json.code()), (400, "BadRequest"));

    let missing = arr.get("never-made").await;
    assert_eq!((missing.status, missing.code()), (404, "NotFound"));

    assert_eq!(
        arr.patch("s1", 20).await.status,
        409,
        "a lease may only grow"
    );
    assert_eq!(
        arr.patch("s1", 1441).await.status,
        400,
        "at most 1440 minutes"
    );
    arr.stop("s1").await;
    let ended = arr.patch("s1", 60).await;
    assert_eq!((ended.status, ended.code()), (409, "Conflict"));

    // Nothing above disturbed the stored session.
    let s1 = arr.get("s1").await;
    assert_eq!(
        (
            s1.body["status"].as_str(),
            s1.body["maxLeaseTimeMinutes"].as_u64()
        ),
        (Some("Stopped"), Some(30))
    );
    server.stop().await;
}

#[tokio::test]
async fn callers_without_a_valid_token_or_for_another_account_are_refused() {
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "a").await;
    let (other, other_key) = ArrClient::create_account(dir.path(), "b").await;
    let server = TestServer::start_with(dir.path(), &pool(2, 1, 0)).await;
    let arr = ArrClient::sign_in(&server, &account, &key).await;
    let http = reqwest::Client::new();

    let anonymous = send(http.get(arr.session_url("x"))).await;
    assert_eq!((anonymous.status, anonymous.code()), (401, "Unauthorized"));
    assert!(
        anonymous
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    let forged = send(http.get(arr.session_url("x")).bearer_auth("not.a.token")).await;
    assert_eq!(forged.status, 401);
    assert!(forged.header("www-authenticate").is_some());

    let wrong_key = send(
        http.get(format!("{}/accounts/{account}/token", server.url()))
            .bearer_auth(format!("{account}:{other_key}")),
    )
    .await;
    assert_eq!(wrong_key.status, 401);
    let foreign_key = send(
        http.get(format!("{}/accounts/{account}/token", server.url()))
            .bearer_auth(format!("{other}:{other_key}")),
    )
    .await;
    assert_eq!(foreign_key.status, 403);

    let theirs = format!("{}/accounts/{other}/sessions/x?{API_VERSION}", server.url());
    let answer = arr
        .call(
            Method::PUT,
            &theirs,
            Some(json!({"maxLeaseTimeMinutes": 5, "size": "Standard"})),
        )
        .await;
    assert_eq!((answer.status, answer.code()), (403, "Forbidden"));
    server.stop().await;
}

#[tokio::test]
async fn a_full_pool_fails_clearly_or_queues_and_hands_the_host_on() {
    let (_dir, server, arr) = signed_in(pool(1, 1, 0)).await;
    assert_eq!(
        arr.put("first", "Standard", 30).await.body["status"],
        "Ready"
    );

    let refused = arr.put("second", "Standard", 30).await;
    assert_eq!((refused.status, refused.code()), (503, "PoolExhausted"));
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Standard")
    );
    assert_eq!(
        arr.get("second").await.status,
        404,
        "a refused create leaves no session behind"
    );

    let queued_url = format!("{}&queue=true", arr.session_url("second"));
    let queued = arr
        .call(
            Method::PUT,
            &queued_url,
            Some(json!({"maxLeaseTimeMinutes": 30, "size": "Standard"})),
        )
        .await;
    assert_eq!(queued.status, 201);
    assert_eq!(
        (
            queued.body["status"].as_str(),
            queued.body["queuePosition"].as_u64()
        ),
        (Some("Starting"), Some(1))
    );

    arr.stop("first").await;
    let second = arr.get("second").await;
    assert_eq!(
        (
            second.body["status"].as_str(),
            second.body["queuePosition"].as_u64()
        ),
        (Some("Ready"), None)
    );
    server.stop().await;
}

#[tokio::test]
async fn the_list_holds_starting_and_ready_sessions_in_pages() {
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "showroom").await;
    let options = parallax_server::Options {
        pool: pool(1, 1, 0),
        // 55 sessions of one account, queued: more than its default quota.
        quotas: parallax_server::QuotaArgs {
            sessions: 0,
            ..Default::default()
        },
        ..TestServer::options(dir.path())
    };
    let server = TestServer::start_with_options(dir.path(), &options).await;
    let arr = ArrClient::sign_in(&server, &account, &key).await;
    for i in 0..55 {
        let url = format!("{}&queue=true", arr.session_url(&format!("s{i:02}")));
        let answer = arr
            .call(
                Method::PUT,
                &url,
                Some(json!({"maxLeaseTimeMinutes": 5, "size": "Standard"})),
            )
            .await;
        assert_eq!(answer.status, 201);
    }
    arr.stop("s00").await;
    let list_url = format!(
        "{}/accounts/{}/sessions?{API_VERSION}",
        arr.base, arr.account
    );
    let page = arr.call(Method::GET, &list_url, None).await;
    assert_eq!(page.body["sessions"].as_array().unwrap().len(), 50);
    assert_eq!(
        page.body["sessions"][0]["id"], "s01",
        "stopped sessions are not listed"
    );
    let next = page.body["@nextLink"].as_str().expect("a next link");
    let rest = arr.call(Method::GET, next, None).await;
    assert_eq!(rest.body["sessions"].as_array().unwrap().len(), 4);
    assert!(rest.body.get("@nextLink").is_none());
    server.stop().await;
}

#[tokio::test]
async fn the_legacy_create_call_returns_a_uuid_that_the_v1_calls_accept() {
    let (_dir, server, arr) = signed_in(pool(2, 1, 0)).await;
    let v1 = format!("{}/v1/accounts/{}/sessions", arr.base, arr.account);
    let created = arr
        .call(
            Method::POST,
            &format!("{v1}/create"),
            Some(json!({"maxLeaseTime": "4:0:0", "models": [], "size": "standard"})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["sessionId"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a UUID");

    let properties = arr
        .call(Method::GET, &format!("{v1}/{id}/properties"), None)
        .await;
    assert_eq!(properties.body["sessionStatus"], "Ready");
    assert_eq!(properties.body["sessionMaxLeaseTime"], "4:0:0");
    // The same session is visible through the 2021 API.
    assert_eq!(arr.get(&id).await.body["maxLeaseTimeMinutes"], 240);

    let updated = arr
        .call(
            Method::POST,
            &format!("{v1}/{id}/update"),
            Some(json!({"maxLeaseTime": "5:30:0"})),
        )
        .await;
    assert_eq!(updated.body["sessionMaxLeaseTime"], "5:30:0");
    let bad = arr
        .call(
            Method::POST,
            &format!("{v1}/create"),
            Some(json!({"maxLeaseTime": "forever", "size": "standard"})),
        )
        .await;
    assert_eq!(
        (bad.status, bad.body["error"]["target"].as_str()),
        (400, Some("maxLeaseTime"))
    );

    assert_eq!(
        arr.call(Method::POST, &format!("{v1}/{id}/stop"), None)
            .await
            .status,
        204
    );
    assert_eq!(arr.get(&id).await.body["status"], "Stopped");
    server.stop().await;
}

#[tokio::test]
async fn every_response_carries_a_correlation_vector() {
    let (_dir, server, arr) = signed_in(pool(2, 1, 0)).await;
    let http = reqwest::Client::new();
    let echoed = send(
        http.get(arr.session_url("x"))
            .bearer_auth(&arr.token)
            .header("MS-CV", "abc.1"),
    )
    .await;
    assert_eq!(echoed.header("ms-cv"), Some("abc.1"));
    let fresh = send(http.get(format!("{}/v1/health", server.url()))).await;
    assert!(fresh.header("ms-cv").is_some_and(|cv| cv.len() >= 16));
    server.stop().await;
}

#[tokio::test]
async fn usage_reports_ready_time_per_size() {
    let (_dir, server, arr) = signed_in(pool(2, 1, 0)).await;
    arr.put("billed", "Standard", 30).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    arr.stop("billed").await;
    let url = format!("{}/accounts/{}/usage?{API_VERSION}", arr.base, arr.account);
    let usage = arr.call(Method::GET, &url, None).await;
    assert_eq!(usage.status, 200, "{}", usage.body);
    let standard = &usage.body["usage"][0];
    assert_eq!(standard["size"], "Standard");
    let seconds = standard["readySeconds"].as_f64().unwrap();
    assert!((0.25..5.0).contains(&seconds), "ready for {seconds} s");
    assert_eq!(standard["billedMinutes"], 1, "a started minute is billed");
    assert_eq!(
        usage.body["usage"][1]["billedMinutes"], 0,
        "no Premium time"
    );

    let bad = arr
        .call(Method::GET, &format!("{url}&from=yesterday"), None)
        .await;
    assert_eq!(
        (bad.status, bad.body["error"]["target"].as_str()),
        (400, Some("from"))
    );

    // The same window as a spreadsheet: one row per session that was Ready in it.
    let csv_url = url.replace("/usage?", "/usage.csv?");
    // A window to the end of time (past year 9999 in UTC) and from before 1970 is answered.
    let edges = reqwest::Client::new()
        .get(format!(
            "{csv_url}&from=1900-01-01T00:00:00Z&to=9999-12-31T23:59:59-01:00"
        ))
        .bearer_auth(&arr.token)
        .send()
        .await
        .unwrap();
    assert_eq!(edges.status(), 200);
    assert!(
        edges
            .headers()
            .get("content-disposition")
            .is_some_and(|v| v.to_str().unwrap().contains("1970-01-01-9999-12-31")),
        "{:?}",
        edges.headers()
    );
    let download = reqwest::Client::new()
        .get(&csv_url)
        .bearer_auth(&arr.token)
        .send()
        .await
        .unwrap();
    assert_eq!(download.status(), 200);
    assert!(
        download.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"parallax-usage-")
    );
    let text = download.text().await.unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows[0],
        [
            "account",
            "session",
            "size",
            "from",
            "to",
            "ready_seconds",
            "billed_minutes"
        ]
    );
    assert_eq!(rows.len(), 2, "{text}");
    assert_eq!(
        (rows[1][0], rows[1][1], rows[1][2]),
        (arr.account.as_str(), "billed", "Standard")
    );
    let csv_seconds: f64 = rows[1][5].parse().unwrap();
    assert!(
        (csv_seconds - seconds).abs() < 0.01,
        "{csv_seconds} vs {seconds}"
    );
    assert_eq!(rows[1][6], "1");
    let anonymous = reqwest::get(&csv_url).await.unwrap();
    assert_eq!(anonymous.status(), 401);
    server.stop().await;
}

#[tokio::test]
async fn leases_expire_on_time_and_ended_sessions_are_purged_after_thirty_days() {
    use std::sync::Arc;

    use parallax_core::time::Timestamp;
    use parallax_server::Options;
    use parallax_server::clock::ManualClock;

    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "clocked").await;
    let clock = Arc::new(ManualClock::starting_at(Timestamp::from_millis(
        1_800_000_000_000,
    )));
    let options = Options {
        pool: pool(2, 1, 0),
        clock: clock.clone(),
        ..TestServer::options(dir.path())
    };
    let server = TestServer::start_with_options(dir.path(), &options).await;
    let arr = ArrClient::sign_in(&server, &account, &key).await;

    assert_eq!(
        arr.put("short", "Standard", 1).await.body["status"],
        "Ready"
    );
    clock.advance(Duration::from_secs(59));
    let before = arr.get("short").await;
    assert_eq!(
        (
            before.body["status"].as_str(),
            before.body["elapsedTimeMinutes"].as_u64()
        ),
        (Some("Ready"), Some(0))
    );
    clock.advance(Duration::from_secs(2));
    let after = arr.get("short").await;
    assert_eq!(
        (
            after.body["status"].as_str(),
            after.body["elapsedTimeMinutes"].as_u64()
        ),
        (Some("Expired"), Some(1))
    );

    // Kept for 30 days after it ended (at the end of its lease)...
    clock.advance(Duration::from_secs(30 * 24 * 3600 - 2));
    // A month on, the old token has expired: sign in again, as a client would.
    let arr = ArrClient::sign_in(&server, &account, &key).await;
    assert_eq!(arr.get("short").await.status, 200);
    // ...then gone, from memory and from the database.
    clock.advance(Duration::from_secs(2));
    assert_eq!(arr.get("short").await.status, 404);
    server.stop().await;
    let server = TestServer::start_with_options(dir.path(), &options).await;
    let arr = ArrClient::sign_in(&server, &account, &key).await;
    assert_eq!(
        arr.get("short").await.status,
        404,
        "the purge reached SQLite"
    );
    server.stop().await;
}

/// A hundred creates at once, half of them willing to queue, against four warm hosts: exactly four
/// sessions are Ready, each on a host of its own; the others are refused (`PoolExhausted`) or
/// queued with places 1, 2, 3, … (no two the same); the first in the queue gets the next free host.
/// On the default SQLite store and on Postgres.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_creates_lease_each_of_four_hosts_exactly_once() {
    crowd_of_creates(None).await;
    let postgres = postgres::PostgresServer::start();
    crowd_of_creates(Some(postgres.new_database("parallax_crowd").await)).await;
}

async fn crowd_of_creates(database_url: Option<String>) {
    let dir = data_dir();
    let (account, key) =
        ArrClient::create_account_in(dir.path(), database_url.as_deref(), "showroom").await;
    let options = parallax_server::Options {
        pool: pool(4, 4, 0),
        // One account makes the whole crowd.
        quotas: parallax_server::QuotaArgs {
            sessions: 0,
            ..Default::default()
        },
        database_url,
        ..TestServer::options(dir.path())
    };
    let server = TestServer::start_with_options(dir.path(), &options).await;
    let arr = ArrClient::sign_in(&server, &account, &key).await;
    server.wait_for_standby().await;
    let arr = std::sync::Arc::new(arr);
    let creates: Vec<_> = (0..100)
        .map(|i| {
            let arr = arr.clone();
            tokio::spawn(async move {
                let id = format!("crowd-{i:03}");
                let queue = i % 2 == 1;
                let url = if queue {
                    format!("{}&queue=true", arr.session_url(&id))
                } else {
                    arr.session_url(&id)
                };
                let body = json!({"maxLeaseTimeMinutes": 30, "size": "Standard"});
                (id, queue, arr.call(Method::PUT, &url, Some(body)).await)
            })
        })
        .collect();
    let (mut ready, mut refused, mut queued) = (Vec::new(), 0, Vec::new());
    for create in creates {
        let (id, queue, answer) = create.await.unwrap();
        match (answer.status, answer.body["status"].as_str()) {
            (201, Some("Ready")) => ready.push((id, answer.body["renderUrl"].clone())),
            (201, Some("Starting")) if queue => {
                queued.push((answer.body["queuePosition"].as_u64().unwrap(), id));
            }
            (503, _) if !queue => {
                assert_eq!(answer.code(), "PoolExhausted");
                refused += 1;
            }
            other => panic!("{id} (queue {queue}): {other:?} {}", answer.body),
        }
    }
    assert_eq!(ready.len(), 4, "{ready:?}");
    let hosts: std::collections::BTreeSet<_> = ready
        .iter()
        .map(|(_, url)| {
            url.as_str()
                .expect("a Ready session has a renderUrl")
                .to_string()
        })
        .collect();
    assert_eq!(hosts.len(), 4, "no host is leased twice: {ready:?}");
    queued.sort();
    let places: Vec<u64> = queued.iter().map(|(place, _)| *place).collect();
    assert_eq!(places, (1..=queued.len() as u64).collect::<Vec<_>>());
    assert_eq!(refused + queued.len() + ready.len(), 100);

    // A host comes free: the first in the queue gets it, the second moves up.
    arr.stop(&ready[0].0).await;
    let first = arr.get(&queued[0].1).await;
    assert_eq!(first.body["status"], "Ready", "{}", first.body);
    let second = arr.get(&queued[1].1).await;
    assert_eq!(second.body["queuePosition"], 1, "{}", second.body);
    server.stop().await;
}
