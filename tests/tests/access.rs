//! Access control, route by route. The routes are read from the source of the coordinator's HTTP
//! edge (`server/src/http/`), the render host's connection and the app's pages, so a route added
//! later without a rule here fails this test. Each is tried, over HTTPS, with every path parameter
//! naming a real thing of account A (a session, a space, a model, a conversion), and with
//! credentials that must not reach it — none, another account's token, a guest of another
//! account's space, a guest of another of A's own spaces, a render host's credential where an
//! account belongs — and must be refused as designed (401, 403 or 404) with ARR's error body,
//! giving nothing of A's away. The WebSockets are tried as devices would: a device holding another
//! account's token is refused on a space socket and on a render connection.

use futures_util::{SinkExt, StreamExt};
use parallax_core::space::Role;
use parallax_headset::Coordinator;
use parallax_render::samples;
use parallax_tests::{ArrClient, TestServer, data_dir, guest_cookie, upload, within};
use reqwest::Method;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

#[path = "support/routes.rs"]
mod routes;
use routes::{Route, all_routes};

/// Who a route is for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    /// Anyone: probes, the API document, sign-in and guest joins (rate-limited), the pages (they
    /// fetch their data with the caller's own sign-in), `/metrics` unless a token is set.
    Public,
    /// Trading the account's key for a token: `Bearer <account id>:<key>` only.
    AccountKey,
    /// The account named in the path, with its own token (guests refused).
    Account,
    /// An account's token or a guest's; what it shows is the caller's own.
    SignedIn,
    /// An account's own token, no path account (guests refused).
    AccountOnly,
    /// The space named in the path: its owner, or a guest of exactly that space.
    Space,
    /// A model in the path: visible to its account and the guests of that account's spaces.
    Model,
    /// An upload in the path, to delete: its own account only.
    OwnModel,
    /// The render hosts' mesh download: a host's own credential, and only for the account of the
    /// session it renders.
    HostCredential,
    /// A WebSocket, tried with real sockets below.
    Socket,
}

fn rule(route: &Route) -> Option<Rule> {
    use Rule::*;
    let rule = match (route.method.as_str(), route.path.as_str()) {
        ("GET", "/v1/ping" | "/v1/health" | "/openapi.json" | "/metrics") => Public,
        // A device fetches the authority before it trusts anything here; it is no secret.
        ("GET", "/ca.crt" | "/v1/trust") => Public,
        ("POST", "/v1/browser/sign-in" | "/v1/browser/sign-out" | "/v1/browser/join") => Public,
        (
            "GET",
            "/"
            | "/headset"
            | "/sign-in"
            | "/join"
            | "/trust"
            | "/spaces"
            | "/spaces/:name"
            | "/spaces/:name/headset"
            | "/pool",
        ) => Public,
        ("GET", "/accounts/{account_id}/token") => AccountKey,
        (_, p) if p.starts_with("/accounts/{account_id}/") => Account,
        (_, p) if p.starts_with("/v1/accounts/{account_id}/") => Account,
        ("GET", "/v1/browser/me" | "/v1/models") => SignedIn,
        ("POST", "/v1/models") => AccountOnly,
        ("GET", "/v1/templates" | "/v1/spaces" | "/v1/pool/history") => AccountOnly,
        ("PUT", "/v1/spaces/{name}") => AccountOnly,
        ("GET", "/v1/models/{id}" | "/v1/models/{id}/thumbnail.png" | "/v1/models/{id}/parts") => {
            Model
        }
        ("DELETE", "/v1/models/{id}") => OwnModel,
        ("GET", "/v1/hosts/models/{model_id}/mesh") => HostCredential,
        (
            "GET",
            "/v1/spaces/{name}/ws" | "/v1/hosts/ws" | "/v1/render/{account_id}/{session_id}",
        ) => Socket,
        (_, p) if p.starts_with("/v1/spaces/{name}") => Space,
        _ => return None,
    };
    Some(rule)
}

/// Account A's things that the others try to reach.
struct Targets {
    account: String,
    session: String,
    space: String,
    model: String,
    conversion: String,
}

impl Targets {
    /// `pattern` with each parameter naming one of A's things; every parameter is filled.
    fn path(&self, pattern: &str) -> String {
        let path = pattern
            .replace("{account_id}", &self.account)
            .replace("{session_id}", &self.session)
            .replace("{action}", ":stop")
            .replace("{name}", &self.space)
            .replace("{model_id}", &self.model)
            .replace("{id}", &self.model)
            .replace("{conversion_id}", &self.conversion);
        assert!(
            !path.contains('{'),
            "a parameter of {pattern} is not filled"
        );
        path
    }
}

/// Who tries.
#[derive(Debug, Clone, Copy)]
enum Who {
    Nobody,
    OtherAccount,
    /// A guest of a space of another account.
    GuestOfOtherSpace,
    /// A guest of another space of account A itself.
    GuestOfTargetAccount,
    /// A render host's own credential (a host that renders none of A's sessions), where an
    /// account's token belongs.
    RenderHost,
}

/// The statuses that count as refused, for `who` on a route of `rule`.
fn refusals(rule: Rule, who: Who) -> &'static [u16] {
    use Rule::*;
    use Who::*;
    match (rule, who) {
        (Public | Socket, _) => &[],
        // A host may fetch only what the session it renders may load: it renders none of A's.
        (HostCredential, RenderHost) => &[403],
        (AccountKey | HostCredential, _) => &[401],
        (_, Nobody | RenderHost) => &[401],
        (Account, OtherAccount | GuestOfOtherSpace | GuestOfTargetAccount) => &[403],
        (AccountOnly, GuestOfOtherSpace | GuestOfTargetAccount) => &[403],
        (Space, OtherAccount) => &[404],
        (Space, GuestOfOtherSpace | GuestOfTargetAccount) => &[403],
        (Model, OtherAccount | GuestOfOtherSpace) => &[404],
        // A's models are shown in A's spaces: a guest of any of them sees them.
        (Model, GuestOfTargetAccount) => &[],
        (OwnModel, OtherAccount) => &[404],
        (OwnModel, GuestOfOtherSpace | GuestOfTargetAccount) => &[403],
        // What is theirs to see (their own catalog, their own spaces): not a refusal.
        (SignedIn | AccountOnly, _) => &[],
    }
}

#[test]
fn every_route_has_a_rule() {
    let routes = all_routes();
    assert!(routes.len() > 30, "the routes were found: {routes:?}");
    let missing: Vec<_> = routes.iter().filter(|r| rule(r).is_none()).collect();
    assert!(
        missing.is_empty(),
        "routes without an access rule in tests/tests/access.rs: {missing:?}"
    );
}

/// What a refusal with `status` says: ARR's error body, with the code of that status.
fn refusal_code(status: u16) -> &'static str {
    match status {
        401 => "Unauthorized",
        403 => "Forbidden",
        _ => "NotFound",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_refuses_those_it_is_not_for() {
    let dir = data_dir();
    let (a_id, a_key) = ArrClient::create_account(dir.path(), "Design").await;
    let (b_id, b_key) = ArrClient::create_account(dir.path(), "Visitors").await;
    let options = parallax_server::Options {
        tls: parallax_server::tls::TlsSetup::local(&["localhost", "127.0.0.1"]),
        ..TestServer::options(dir.path())
    };
    let server = TestServer::start_with_options(dir.path(), &options).await;
    assert!(server.url().starts_with("https://"), "{}", server.url());
    let a = ArrClient::sign_in(&server, &a_id, &a_key).await;
    let b = ArrClient::sign_in(&server, &b_id, &b_key).await;
    let created = a.put("s1", "Standard", 10).await;
    assert!(created.status == 201, "{}", created.body);
    let model = upload(
        &server,
        &a.token,
        &[("part.stl", samples::shaft().to_binary_stl())],
    )
    .await;
    // A conversion of A's, from a container in A's storage.
    let container = dir.path().join("storage").join(&a_id).join("designs");
    std::fs::create_dir_all(&container).unwrap();
    std::fs::write(
        container.join("part.stl"),
        samples::bracket().to_binary_stl(),
    )
    .unwrap();
    let container = url::Url::from_file_path(container.canonicalize().unwrap())
        .unwrap()
        .to_string();
    let conversion_url = |id: &str| {
        format!(
            "{}/accounts/{a_id}/conversions/{id}?api-version=2021-01-01",
            server.url()
        )
    };
    let conversion = a
        .call(
            Method::PUT,
            &conversion_url("c1"),
            Some(json!({ "settings": {
                "inputLocation": {
                    "storageContainerUri": container,
                    "blobPrefix": "",
                    "relativeInputAssetPath": "part.stl",
                },
                "outputLocation": { "storageContainerUri": container, "blobPrefix": "out" },
            }})),
        )
        .await;
    assert_eq!(conversion.status, 201, "{}", conversion.body);
    let url = server.url();
    let a_coordinator = Coordinator::sign_in_trusting(&url, &a_id, &a_key, server.trust.clone())
        .await
        .unwrap();
    let b_coordinator = Coordinator::sign_in_trusting(&url, &b_id, &b_key, server.trust.clone())
        .await
        .unwrap();
    a_coordinator
        .create_space("alpha", "private", json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    let lobby = a_coordinator
        .create_space("lobby", "private", json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    let beta = b_coordinator
        .create_space("beta", "private", json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    let guest_of_b = guest_cookie(&server, beta.join_code.as_deref().unwrap()).await;
    let guest_of_a = guest_cookie(&server, lobby.join_code.as_deref().unwrap()).await;
    let targets = Targets {
        account: a_id.clone(),
        session: "s1".into(),
        space: "alpha".into(),
        model: model.body["id"].as_str().unwrap().to_string(),
        conversion: "c1".into(),
    };

    let host_credential = server.host_credential().await;
    // What no refusal may show: A's credentials, a render ticket, where A's files are.
    let secrets = [
        a_key.as_str(),
        a.token.as_str(),
        "ticket=",
        dir.path().to_str().unwrap(),
    ];
    let mut failures = Vec::new();
    let http = server.http();
    for route in all_routes() {
        let rule = rule(&route).unwrap();
        for who in [
            Who::Nobody,
            Who::OtherAccount,
            Who::GuestOfOtherSpace,
            Who::GuestOfTargetAccount,
            Who::RenderHost,
        ] {
            let refused = refusals(rule, who);
            if refused.is_empty() {
                continue;
            }
            // A well-formed call (ARR's routes want their api-version), so the refusal is
            // about who asks, not how.
            let url = format!(
                "{}{}?api-version=2021-01-01",
                server.url(),
                targets.path(&route.path)
            );
            let method = Method::from_bytes(route.method.as_bytes()).unwrap();
            let mut request = http.request(method, &url);
            if route.method != "GET" && route.method != "DELETE" {
                request = request.json(&json!({}));
            }
            request = match who {
                Who::Nobody => request,
                Who::OtherAccount => request.bearer_auth(&b.token),
                Who::GuestOfOtherSpace => request.header("cookie", &guest_of_b),
                Who::GuestOfTargetAccount => request.header("cookie", &guest_of_a),
                Who::RenderHost => request.bearer_auth(&host_credential),
            };
            let answer = request.send().await.unwrap();
            let status = answer.status().as_u16();
            let text = answer.text().await.unwrap();
            let said = format!("{} {} as {who:?}", route.method, route.path);
            if !refused.contains(&status) {
                failures.push(format!("{said}: {status}, expected {refused:?}: {text}"));
                continue;
            }
            let body: Value = serde_json::from_str(&text).unwrap_or_default();
            if body["error"]["code"] != refusal_code(status)
                || body["error"]["message"].as_str().is_none_or(str::is_empty)
            {
                failures.push(format!("{said}: {status} without ARR's error body: {text}"));
            }
            if let Some(secret) = secrets.iter().find(|s| text.contains(*s)) {
                failures.push(format!("{said}: the refusal shows {secret:?}: {text}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // What was tried was only refused: A's things are all still there, as they were.
    let still: Value = a.call(Method::GET, &a.session_url("s1"), None).await.body;
    assert_eq!(still["status"], "Ready", "{still}");
    let listed = a
        .call(Method::GET, &format!("{}/v1/models", server.url()), None)
        .await;
    assert!(listed.body.to_string().contains(&targets.model));
    let kept = a.call(Method::GET, &conversion_url("c1"), None).await;
    assert_eq!(kept.status, 200, "{}", kept.body);
    assert_eq!(kept.body["settings"], conversion.body["settings"]);
    assert!(
        a_coordinator.space("alpha").await.is_ok(),
        "A's space is still there"
    );
    server.stop().await;
}

/// The first message a socket gets after `hello`: a close's code and reason, or what came.
async fn answer_to_hello(url: &str, hello: Value) -> Result<(u16, String), String> {
    let (mut socket, _) = within(tokio_tungstenite::connect_async(url)).await.unwrap();
    socket.send(Message::text(hello.to_string())).await.unwrap();
    match within(socket.next()).await {
        Some(Ok(Message::Close(Some(frame)))) => Ok((frame.code.into(), frame.reason.to_string())),
        other => Err(format!("{other:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_with_another_accounts_token_is_refused_on_every_socket() {
    let dir = data_dir();
    let (a_id, a_key) = ArrClient::create_account(dir.path(), "Design").await;
    let (b_id, b_key) = ArrClient::create_account(dir.path(), "Visitors").await;
    let server = TestServer::start(dir.path()).await;
    let a = Coordinator::sign_in(&server.url(), &a_id, &a_key)
        .await
        .unwrap();
    let b = Coordinator::sign_in(&server.url(), &b_id, &b_key)
        .await
        .unwrap();
    a.create_space("alpha", "default", json!({}), "tablet", Role::Tablet)
        .await
        .unwrap();
    let headset = a
        .join_space("alpha", "headset", Role::Headset, None)
        .await
        .unwrap();
    let ws = server.url().replace("http://", "ws://");

    // The space socket: A's member token, but B's account.
    let space = answer_to_hello(
        &format!("{ws}/v1/spaces/alpha/ws"),
        json!({ "type": "hello", "token": b.token, "member": headset.token }),
    )
    .await;
    assert!(
        matches!(&space, Ok((1008, reason)) if reason.contains("no space named alpha")),
        "{space:?}"
    );

    // The render connection of A's headset's session, with B's token and no ticket (B cannot
    // read A's session, so gets none): refused. Only a render ticket opens it.
    let render_url = headset
        .render_url(std::time::Duration::from_secs(10))
        .await
        .unwrap();
    let (bare, _) = render_url.split_once("?ticket=").unwrap();
    let render = answer_to_hello(bare, json!({ "type": "hello", "token": b.token })).await;
    assert!(
        matches!(&render, Ok((1008, reason)) if reason.contains("ticket")),
        "{render:?}"
    );

    // The hosts' socket, with an account's token where a host's credential belongs.
    let register = |credential: &str, host: Option<&str>| {
        json!({ "type": "register", "credential": credential, "host": host,
                "size": "Standard", "endpoint": "ws://127.0.0.1:1", "adapter": "none", "pid": 1 })
    };
    let host = answer_to_hello(&format!("{ws}/v1/hosts/ws"), register(&a.token, None)).await;
    assert!(
        matches!(&host, Ok((1008, reason)) if reason.contains("credential is wrong")),
        "{host:?}"
    );
    // A host's own credential, claiming the name of a host the coordinator started (whose
    // session A's headset holds): refused.
    let credential = server.host_credential().await;
    let host = answer_to_hello(
        &format!("{ws}/v1/hosts/ws"),
        register(&credential, Some("standard-1")),
    )
    .await;
    assert!(
        matches!(&host, Ok((1008, reason)) if reason.contains("cannot register as another")),
        "{host:?}"
    );
    server.stop().await;
}
