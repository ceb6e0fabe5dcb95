//! A browser signs in once with its account key; the HTTP-only cookie it gets then stands in for
//! the bearer token on the API and on the space WebSocket.

use futures_util::{SinkExt, StreamExt};
use parallax_core::space::Role;
use parallax_headset::Coordinator;
use parallax_tests::{ArrClient, SignedIn, TestServer, data_dir};
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_in_browser_uses_its_cookie_for_the_api_and_the_space_socket() {
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "showroom").await;
    let server = TestServer::start(dir.path()).await;
    let url = |path: &str| format!("{}{path}", server.url());

    // A wrong key goes back to the sign-in page with a message, and sets no cookie.
    let wrong = browser()
        .post(url("/v1/browser/sign-in"))
        .form(&[("account", account.as_str()), ("key", "not-the-key")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 303);
    let location = wrong.headers()["location"].to_str().unwrap();
    assert!(location.starts_with("/sign-in?error="), "{location}");
    assert!(location.contains("do+not+match"), "{location}");
    assert!(wrong.headers().get("set-cookie").is_none());

    // The right key: an HTTP-only, same-site cookie, and on to the page asked for (only paths
    // on this site).
    let signed_in = browser()
        .post(url("/v1/browser/sign-in"))
        .form(&[
            ("account", account.as_str()),
            ("key", key.as_str()),
            ("next", "/spaces"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    assert_eq!(signed_in.headers()["location"], "/spaces");
    let set_cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(set_cookie.starts_with("parallax_session="), "{set_cookie}");
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    let cookie = set_cookie.split(';').next().unwrap().to_string();

    // An account's pages send a visitor who is not signed in to sign in first, and back; a
    // signed-in browser gets them; the pages for everyone stay open.
    for (path, next) in [
        ("/", "%2F"),
        ("/pool", "%2Fpool"),
        ("/spaces?x=1", "%2Fspaces%3Fx%3D1"),
    ] {
        let page = browser().get(url(path)).send().await.unwrap();
        assert_eq!(page.status(), 303, "{path}");
        assert_eq!(page.headers()["location"], format!("/sign-in?next={next}"));
        let page = browser()
            .get(url(path))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{path} signed in");
    }
    for path in ["/sign-in", "/join", "/headset", "/trust"] {
        let page = browser().get(url(path)).send().await.unwrap();
        assert_eq!(page.status(), 200, "{path}");
    }
    // Wherever a browser would go off the site, it goes to the start page instead: `/\\host`
    // and a tab inside `//` are followed as `//host` by browsers.
    for (next, goes_to) in [
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("\\\\evil.example", "/"),
        ("/\t/evil.example", "/"),
        ("https://evil.example/spaces", "/"),
        ("javascript:alert(1)", "/"),
        ("/pool?period=day", "/pool?period=day"),
    ] {
        let signed_in = browser()
            .post(url("/v1/browser/sign-in"))
            .form(&[
                ("account", account.as_str()),
                ("key", key.as_str()),
                ("next", next),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(signed_in.headers()["location"], goes_to, "next={next:?}");
    }

    // The cookie works like a bearer token: the console lists the account's own spaces.
    let coordinator = Coordinator::sign_in(&server.url(), &account, &key)
        .await
        .unwrap();
    let tablet = coordinator
        .create_space("lobby", "private", json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    let listed: Value = browser()
        .get(url("/v1/spaces"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["spaces"][0]["name"], "lobby", "{listed}");
    assert_eq!(
        listed["spaces"][0]["joinCode"].as_str(),
        tablet.join_code.as_deref()
    );
    let anonymous = browser().get(url("/v1/spaces")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);

    // The space WebSocket: a hello without a token is accepted with the cookie…
    let ws_url = format!("ws://{}/v1/spaces/lobby/ws", server.addr);
    let mut request = ws_url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let hello = json!({ "type": "hello", "member": tablet.token });
    socket.send(Message::text(hello.to_string())).await.unwrap();
    let Some(Ok(Message::Text(welcome))) = socket.next().await else {
        panic!("expected a welcome");
    };
    let welcome: Value = serde_json::from_str(welcome.as_str()).unwrap();
    assert_eq!(welcome["type"], "welcome", "{welcome}");

    // …and refused, with the reason, without it…
    let (mut socket, _) = tokio_tungstenite::connect_async(ws_url.as_str())
        .await
        .unwrap();
    socket.send(Message::text(hello.to_string())).await.unwrap();
    match socket.next().await {
        Some(Ok(Message::Close(Some(frame)))) => {
            assert!(frame.reason.contains("access token"), "{}", frame.reason);
        }
        other => panic!("expected a close, got {other:?}"),
    }
    // …and from a page of another origin (another port of the same machine is one), whose
    // browser sends the cookie all the same, it counts for nothing.
    for (origin, welcomed) in [
        (format!("http://{}", server.addr), true),
        ("http://127.0.0.1:1".to_string(), false),
        ("https://evil.example".to_string(), false),
    ] {
        let mut request = ws_url.as_str().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("cookie", cookie.parse().unwrap());
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        socket.send(Message::text(hello.to_string())).await.unwrap();
        match socket.next().await {
            Some(Ok(Message::Text(text))) => assert!(welcomed, "{origin}: {text}"),
            Some(Ok(Message::Close(Some(frame)))) => {
                assert!(!welcomed, "{origin}: {}", frame.reason);
                assert!(frame.reason.contains("a page of"), "{}", frame.reason);
            }
            other => panic!("{origin}: {other:?}"),
        }
    }

    // JSON only when it says it is JSON: a form post (what another site's page can send
    // without asking) is refused before it is read.
    let form = browser()
        .put(url("/v1/spaces/formed"))
        .header("cookie", &cookie)
        .header("content-type", "text/plain")
        .body(json!({"device": "tablet", "role": "tablet"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
    let body: Value = form.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UnsupportedMediaType", "{body}");

    // Signing out ends the sign-in on the server: the old cookie's token fails from then on.
    let out = browser()
        .post(url("/v1/browser/sign-out"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 303);
    let after = browser()
        .get(url("/v1/spaces"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    let body: Value = after.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("signed out"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_joins_with_the_code_alone_and_reaches_only_that_space() {
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "showroom").await;
    let server = TestServer::start(dir.path()).await;
    server.wait_for_standby().await;
    let url = |path: &str| format!("{}{path}", server.url());
    let coordinator = Coordinator::sign_in(&server.url(), &account, &key)
        .await
        .unwrap();
    let room = coordinator
        .create_space("room", "private", json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    coordinator
        .create_space("other", "default", json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    let code = room.join_code.clone().unwrap();

    let wrong = browser()
        .post(url("/v1/browser/join"))
        .json(&json!({ "code": "000000x", "device": "guest", "role": "headset" }))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["code"], "WrongJoinCode", "{body}");

    let joined = browser()
        .post(url("/v1/browser/join"))
        .json(&json!({ "code": code, "device": "Guest headset", "role": "headset" }))
        .send()
        .await
        .unwrap();
    assert_eq!(joined.status(), 201);
    let cookie = joined.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let answer: Value = joined.json().await.unwrap();
    assert_eq!(answer["space"]["name"], "room");
    let member = answer["member"]["token"].as_str().unwrap().to_string();
    let session = answer["renderSession"]["id"].as_str().unwrap().to_string();
    assert!(session.starts_with("room-"), "{session}");

    let as_guest = |path: &str| {
        browser()
            .get(url(path))
            .header("cookie", &cookie)
            .header("parallax-member", &member)
    };
    // Its own space, as a member; its own render session (on the owner's account).
    let space: Value = as_guest("/v1/spaces/room")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(space["member"], answer["member"]["id"], "{space}");
    let properties = as_guest(&format!(
        "/accounts/{account}/sessions/{session}?api-version=2021-01-01"
    ))
    .send()
    .await
    .unwrap();
    assert_eq!(properties.status(), 200);
    // Nothing else of the account: not its list, not another space, not another session.
    for path in [
        "/v1/spaces".to_string(),
        "/v1/spaces/other".to_string(),
        format!("/accounts/{account}/sessions?api-version=2021-01-01"),
        format!("/accounts/{account}/sessions/other-x?api-version=2021-01-01"),
    ] {
        let refused = as_guest(&path).send().await.unwrap();
        assert_eq!(refused.status(), 403, "{path}");
    }
    let me: Value = as_guest("/v1/browser/me")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (me["account"].as_str(), me["guestOf"].as_str()),
        (Some(account.as_str()), Some("room"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessing_join_codes_is_slowed_down_per_address() {
    let signed_in = SignedIn::start().await;
    let server = &signed_in.server;
    let room = signed_in.space("room", "private").await;
    let code = room.join_code.clone().unwrap();
    let join_from = |address: [u8; 4], code: String| {
        let client = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(address))
            .build()
            .unwrap();
        let url = format!("{}/v1/browser/join", server.url());
        async move {
            client
                .post(url)
                .json(&json!({ "code": code, "device": "guest", "role": "tablet" }))
                .send()
                .await
                .unwrap()
        }
    };

    // A script trying codes from one address: 20 answers, then it has to wait.
    let mut refused = 0;
    let throttled = loop {
        let guess = format!("{:06}", 100_000 + refused);
        let answer = join_from([127, 0, 0, 1], guess).await;
        if answer.status() == 429 {
            break answer;
        }
        assert_eq!(answer.status(), 403);
        refused += 1;
        assert!(refused <= 20, "no limit after {refused} wrong codes");
    };
    assert_eq!(refused, 20);
    let wait: u64 = throttled.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=6).contains(&wait), "Retry-After: {wait}");
    let body: Value = throttled.json().await.unwrap();
    assert_eq!(body["error"]["code"], "TooManyRequests");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("too many join attempts"),
        "{body}"
    );
    // Even the right code waits at that address; a guest elsewhere joins at once.
    assert_eq!(join_from([127, 0, 0, 1], code.clone()).await.status(), 429);
    // The code is nine letters in three groups, and joins however it is typed.
    assert!(
        code.len() == 11 && code.split('-').all(|g| g.len() == 3),
        "{code}"
    );
    let typed = code.to_lowercase().replace('-', " ").replace('0', "o");
    assert_eq!(join_from([127, 0, 0, 2], typed).await.status(), 201);
    signed_in.server.stop().await;
}
