//! A browser signs in once with its account key; the HTTP-only cookie it gets then stands in for
//! the bearer token on the API and on the space WebSocket.

use futures_util::{SinkExt, StreamExt};
use parallax_core::space::Role;
use parallax_headset::Coordinator;
use parallax_tests::{ArrClient, TestServer, data_dir};
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
    let elsewhere = browser()
        .post(url("/v1/browser/sign-in"))
        .form(&[
            ("account", account.as_str()),
            ("key", key.as_str()),
            ("next", "//evil.example/"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.headers()["location"], "/");

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

    // …and refused, with the reason, without it.
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
}
