//! `/metrics`: what an operator's Prometheus scrapes, read from a running coordinator.

use std::time::Duration;

use parallax_tests::{SignedIn, get_json};

/// The value of the sample `name` (with its labels, as printed), if present.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_pool_the_spaces_and_how_fast_events_reach_members() {
    let signed_in = SignedIn::start().await;
    let (server, coordinator) = (&signed_in.server, &signed_in.coordinator);
    let tablet = signed_in.space("room", "default").await;
    let mut socket = tablet.connect().await.unwrap();
    socket.next().await.unwrap(); // The welcome's snapshot.
    for model in ["gear", "shaft", "bracket"] {
        tablet.select(model).await.unwrap();
        socket.next_within(Duration::from_secs(5)).await.unwrap();
    }

    let response = reqwest::get(format!("{}/metrics", server.url()))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = response.text().await.unwrap();
    assert_eq!(sample(&text, "parallax_spaces"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "parallax_space_sockets"), Some(1.0));
    assert_eq!(
        sample(&text, r#"parallax_space_members{status="active"}"#),
        Some(1.0)
    );
    // At least the three selections (and the status change) reached the tablet's socket.
    let delivered = sample(&text, "parallax_space_event_delivery_seconds_count").unwrap();
    assert!(delivered >= 3.0, "{delivered}");
    // One Standard host kept warm by default.
    assert!(sample(&text, r#"parallax_pool_hosts{size="Standard"}"#).unwrap() >= 1.0);
    assert!(text.trim_end().ends_with("# EOF"));

    // The operator's charts read the same figures over the last hour; the interval still
    // running is the last sample.
    let history = get_json(server, "/v1/pool/history", &coordinator.token).await;
    assert_eq!(history["intervalSeconds"], 30);
    let now = history["samples"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert!(now["broadcastMs"]["count"].as_u64().unwrap() >= 3, "{now}");
    assert!(now["broadcastMs"]["p95"].as_f64().unwrap() > 0.0, "{now}");
    assert_eq!(now["pool"][0]["size"], "Standard", "{now}");
    assert!(now["pool"][0]["hosts"].as_u64().unwrap() >= 1, "{now}");
    let anonymous = reqwest::get(format!("{}/v1/pool/history", server.url()))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

/// With `--metrics-token`, a scraper without it (or with an account's token) gets 401.
#[tokio::test]
async fn a_metrics_token_keeps_metrics_to_the_scraper_that_has_it() {
    let dir = parallax_tests::data_dir();
    let (account, key) = parallax_tests::ArrClient::create_account(dir.path(), "ops").await;
    let options = parallax_server::Options {
        metrics_token: Some("scrape-me".into()),
        ..parallax_tests::TestServer::options(dir.path())
    };
    let server = parallax_tests::TestServer::start_with_options(dir.path(), &options).await;
    let arr = parallax_tests::ArrClient::sign_in(&server, &account, &key).await;
    let url = format!("{}/metrics", server.url());
    let status = |token: Option<&str>| {
        let mut request = reqwest::Client::new().get(&url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status() }
    };
    assert_eq!(status(None).await, 401);
    assert_eq!(status(Some("scrape")).await, 401);
    assert_eq!(status(Some(&arr.token)).await, 401);
    assert_eq!(status(Some("scrape-me")).await, 200);
    server.stop().await;
}

/// Render sessions by state, and the hosts' frame times as their heartbeats report them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_render_sessions_by_state_and_time_the_hosts_frames() {
    let signed_in = SignedIn::start().await;
    let (server, coordinator) = (&signed_in.server, &signed_in.coordinator);
    signed_in.space("room", "default").await;
    let headset = coordinator
        .join_space("room", "quest", parallax_core::space::Role::Headset, None)
        .await
        .unwrap();
    let url = headset.render_url(Duration::from_secs(10)).await.unwrap();
    // A few frames rendered, then a heartbeat (every 500 ms) carries their mean time.
    for _ in 0..3 {
        parallax_tests::frame_of(&url, "gear").await;
    }
    let scrape = || async {
        reqwest::get(format!("{}/metrics", server.url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let mut text = scrape().await;
    for _ in 0..40 {
        if sample(&text, "parallax_render_frame_seconds_count").is_some_and(|n| n >= 1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        text = scrape().await;
    }
    assert_eq!(
        sample(&text, r#"parallax_render_sessions{status="Ready"}"#),
        Some(1.0),
        "{text}"
    );
    let frames = sample(&text, "parallax_render_frame_seconds_count").unwrap_or(0.0);
    assert!(frames >= 1.0, "{text}");
    let spent = sample(&text, "parallax_render_frame_seconds_sum").unwrap();
    assert!(
        spent > 0.0 && spent / frames < 5.0,
        "{spent} s over {frames} heartbeats"
    );
    signed_in.server.stop().await;
}
