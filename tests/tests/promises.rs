//! What the README promises over plain HTTP, held to it: a space's change number as its `ETag`
//! and `If-Match` refusing a stale write (412), `403 NotATablet` for a headset that writes, the
//! browser cookie's 24-hour lifetime and sign-out, and account keys stored only as hashes.

use parallax_core::space::Role;
use parallax_tests::{
    ArrClient, SignedIn, TestServer, browser, browser_sign_in, data_dir, get_json,
};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spaces_change_number_is_its_etag_and_a_stale_write_is_refused() {
    let signed_in = SignedIn::start().await;
    let tablet = signed_in.space("review", "default").await;
    let url = format!("{}/v1/spaces/review", signed_in.server.url());
    let http = reqwest::Client::new();
    let read = http
        .get(&url)
        .bearer_auth(&signed_in.coordinator.token)
        .header("parallax-member", &tablet.token)
        .send()
        .await
        .unwrap();
    let etag = read.headers()["etag"].to_str().unwrap().to_string();
    let body: Value = read.json().await.unwrap();
    assert_eq!(
        etag,
        format!("\"{}\"", body["change"]),
        "the ETag is the change number"
    );

    let write = |if_match: String, model: &'static str| {
        http.patch(format!("{url}/properties"))
            .bearer_auth(&signed_in.coordinator.token)
            .header("parallax-member", &tablet.token)
            .header("if-match", if_match)
            .json(&json!({ "selectedModel": model }))
            .send()
    };
    let written = write(etag.clone(), "gear").await.unwrap();
    assert_eq!(written.status(), 200);
    let newer = written.headers()["etag"].to_str().unwrap().to_string();
    assert_ne!(newer, etag, "a write moves the change number");
    // Written on top of what it read before: someone else's write came in between.
    let stale = write(etag, "shaft").await.unwrap();
    assert_eq!(stale.status(), 412);
    // Tags are opaque: one that is not ours, a weak copy of the current one or no tag at all is
    // not the current representation either.
    let weak = format!("W/{newer}");
    for tag in ["\"0-stale\"", "0-stale", weak.as_str(), "\"\"", "12"] {
        let refused = write(tag.to_string(), "shaft").await.unwrap();
        assert_eq!(refused.status(), 412, "If-Match: {tag}");
        let error: Value = refused.json().await.unwrap();
        assert_eq!(error["error"]["code"], "PreconditionFailed", "{error}");
    }
    let now = get_json(
        &signed_in.server,
        "/v1/spaces/review",
        &signed_in.coordinator.token,
    )
    .await;
    assert_eq!(
        now["properties"]["selectedModel"], "gear",
        "the stale write changed nothing"
    );
    // `*` is any representation, and a list passes when one of its tags is the current one.
    let listed = write(format!("\"1000\", {newer}"), "bracket")
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let any = write("*".into(), "gear").await.unwrap();
    assert_eq!(any.status(), 200);
    signed_in.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_headset_that_writes_the_properties_is_told_it_is_not_a_tablet() {
    let signed_in = SignedIn::start().await;
    signed_in.space("review", "default").await;
    let headset = signed_in
        .coordinator
        .join_space("review", "quest", Role::Headset, None)
        .await
        .unwrap();
    let refused = reqwest::Client::new()
        .patch(format!(
            "{}/v1/spaces/review/properties",
            signed_in.server.url()
        ))
        .bearer_auth(&signed_in.coordinator.token)
        .header("parallax-member", &headset.token)
        .json(&json!({ "selectedModel": "gear" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "NotATablet", "{body}");
    signed_in.server.stop().await;
}

#[tokio::test]
async fn the_browser_cookie_lasts_a_day_and_sign_out_forgets_it() {
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "showroom").await;
    let server = TestServer::start(dir.path()).await;
    let browser = browser(&server);
    let signed_in = browser_sign_in(&browser, &server, (&account, &key), &[]).await;
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("Max-Age=86400"), "{cookie}");
    let signed_out = browser
        .post(format!("{}/v1/browser/sign-out", server.url()))
        .header("cookie", cookie.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    let cleared = signed_out.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("parallax_session=;"), "{cleared}");
    assert!(
        cleared.contains("Max-Age=0") || cleared.contains("1970"),
        "the browser drops it at once: {cleared}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_account_key_is_stored_only_as_its_hash() {
    let dir = data_dir();
    let (_account, key) = ArrClient::create_account(dir.path(), "showroom").await;
    let mut stored = Vec::new();
    for file in std::fs::read_dir(dir.path()).unwrap() {
        let path = file.unwrap().path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("parallax.db"))
        {
            stored.extend(std::fs::read(path).unwrap());
        }
    }
    let stored = String::from_utf8_lossy(&stored);
    assert!(stored.contains("$argon2"), "an Argon2 hash is kept");
    assert!(
        !stored.contains(&key),
        "the key itself is nowhere in the database"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_headset_may_join_without_a_render_session_and_hears_when_the_pool_is_full() {
    let pool = parallax_server::config::PoolArgs {
        standard: 1,
        premium: 0,
        standard_standby: 1,
        premium_standby: 0,
        ..Default::default()
    };
    let signed_in = SignedIn::start_with(&pool).await;
    signed_in.space("review", "default").await;
    let join = |device: &'static str, render_session: Option<bool>| {
        let mut body = json!({ "device": device, "role": "headset" });
        if let Some(leases) = render_session {
            body["renderSession"] = json!(leases);
        }
        reqwest::Client::new()
            .post(format!(
                "{}/v1/spaces/review/members",
                signed_in.server.url()
            ))
            .bearer_auth(&signed_in.coordinator.token)
            .json(&body)
            .send()
    };
    // One that renders by itself follows the space without taking a host.
    let follower = join("follower", Some(false)).await.unwrap();
    assert_eq!(follower.status(), 201);
    let follower: Value = follower.json().await.unwrap();
    assert!(follower["renderSession"].is_null(), "{follower}");
    // The only host goes to the first headset that wants one; the next is told the pool is full.
    let first = join("first", None).await.unwrap();
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["renderSession"]["size"], "Standard", "{first}");
    let second = join("second", None).await.unwrap();
    assert_eq!(second.status(), 503);
    let second: Value = second.json().await.unwrap();
    assert_eq!(second["error"]["code"], "PoolExhausted", "{second}");
    // It did not join halfway: the space has the tablet, the follower and the first headset.
    let space = get_json(
        &signed_in.server,
        "/v1/spaces/review",
        &signed_in.coordinator.token,
    )
    .await;
    assert_eq!(space["memberCount"], 3, "{space}");
    signed_in.server.stop().await;
}
