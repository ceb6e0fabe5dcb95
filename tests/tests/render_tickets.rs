//! What a render host sees of the devices it serves, read by a host that records everything: a
//! "spy" that registers with a credential of its own (as any host on another machine does),
//! leases a session, and takes the device's render connection itself. It must see a ticket for
//! that one session and nothing else worth stealing: no account token, no cookie, no
//! authorization header. And the coordinator admits with that ticket only that session, only
//! while it is Ready, and only until the ticket expires.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parallax_core::host::{Admission, HostCommand, HostReport};
use parallax_core::session::SessionSize;
use parallax_headset::RenderConnection;
use parallax_host::ticket::{TicketClaims, TicketSigner, unix_now};
use parallax_server::config::PoolArgs;
use parallax_tests::{ArrClient, TestServer, data_dir, within};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

type Link =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The spy's link to the coordinator, registered; it heartbeats until dropped.
struct SpyLink {
    reports: tokio::sync::mpsc::UnboundedSender<HostReport>,
    commands: tokio::sync::mpsc::UnboundedReceiver<HostCommand>,
    _task: tokio::task::JoinHandle<()>,
}

impl SpyLink {
    async fn register(server: &TestServer, endpoint: &str) -> Self {
        let url = format!("ws://{}/v1/hosts/ws", server.addr);
        let (mut link, _): (Link, _) = within(tokio_tungstenite::connect_async(url)).await.unwrap();
        let register = HostReport::Register {
            credential: server.host_credential().await,
            size: SessionSize::Standard,
            host: None,
            endpoint: endpoint.to_string(),
            adapter: "spy".into(),
            pid: 1,
            wants_certificate: false,
        };
        link.send(Message::text(register.to_json())).await.unwrap();
        let (reports, mut outbox) = tokio::sync::mpsc::unbounded_channel();
        let (inbox, commands) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut beat = tokio::time::interval(Duration::from_millis(300));
            loop {
                tokio::select! {
                    _ = beat.tick() => {
                        let heartbeat = HostReport::Heartbeat { device: false, fps: 0.0, frame_ms: None };
                        if link.send(Message::text(heartbeat.to_json())).await.is_err() {
                            return;
                        }
                    }
                    Some(report) = outbox.recv() => {
                        let report: HostReport = report;
                        if link.send(Message::text(report.to_json())).await.is_err() {
                            return;
                        }
                    }
                    message = link.next() => match message {
                        Some(Ok(Message::Text(text))) => {
                            if let Ok(command) = HostCommand::parse(text.as_str()) {
                                let _ = inbox.send(command);
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => return,
                    },
                }
            }
        });
        let mut spy = Self {
            reports,
            commands,
            _task: task,
        };
        match spy.next_command().await {
            HostCommand::Registered { ticket_key, .. } => assert!(!ticket_key.is_empty()),
            other => panic!("expected registered, got {other:?}"),
        }
        spy
    }

    async fn next_command(&mut self) -> HostCommand {
        within(self.commands.recv()).await.expect("the link is up")
    }

    /// Asks the coordinator, as a host does, whether `ticket` admits a device to the session.
    async fn admit(&mut self, account: &str, session: &str, ticket: &str) -> Admission {
        self.reports
            .send(HostReport::Admit {
                request: 7,
                account: account.into(),
                session: session.into(),
                ticket: ticket.into(),
            })
            .unwrap();
        loop {
            if let HostCommand::Admission {
                request: 7,
                verdict,
            } = self.next_command().await
            {
                return verdict;
            }
        }
    }
}

/// What a device sent the host: the upgrade request's URI and headers, and its first message.
#[derive(Debug, Default)]
struct Seen {
    uri: String,
    headers: Vec<(String, String)>,
    hello: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_render_host_gets_a_ticket_for_its_session_and_no_credential_of_the_account() {
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "Design").await;
    let pool = PoolArgs {
        standard: 1,
        standard_standby: 0,
        premium: 0,
        poll_interval_ms: 0,
        ..PoolArgs::default()
    };
    let server = TestServer::start_with(dir.path(), &pool).await;
    let arr = ArrClient::sign_in(&server, &account, &key).await;

    // The spy listens where devices will reach it, and is the pool's one Standard host.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("ws://{}", listener.local_addr().unwrap());
    let mut spy = SpyLink::register(&server, &endpoint).await;
    let mut body = arr.put("a", "Standard", 30).await.body;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while body["status"] != "Ready" {
        assert!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        body = arr.get("a").await.body;
    }
    let render_url = body["renderUrl"].as_str().unwrap().to_string();
    assert!(render_url.starts_with(&endpoint), "{render_url}");

    // A device (the headset library, as a headset uses it) connects; the spy records it all.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let recorded = seen.clone();
    let spying = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        // Its error type is tungstenite's callback signature, not ours to shrink.
        #[allow(clippy::result_large_err)]
        let record = |request: &Request, response: Response| {
            let mut seen = recorded.lock().unwrap();
            seen.uri = request.uri().to_string();
            seen.headers = request
                .headers()
                .iter()
                .map(|(name, value)| {
                    (
                        name.to_string(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect();
            Ok(response)
        };
        let mut socket = tokio_tungstenite::accept_hdr_async(stream, record)
            .await
            .unwrap();
        if let Some(Ok(Message::Text(hello))) = socket.next().await {
            recorded.lock().unwrap().hello = hello.to_string();
        }
    });
    let device = tokio::spawn(async move {
        let _ = RenderConnection::connect(&render_url).await;
    });
    within(spying).await.unwrap();
    device.abort();

    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let everything = format!("{seen:?}");
    assert!(
        !everything.contains(&arr.token),
        "the account token: {everything}"
    );
    assert!(!everything.contains(&key), "the account key: {everything}");
    for (name, _) in &seen.headers {
        assert!(
            !["cookie", "authorization"].contains(&name.as_str()),
            "{name}: {everything}"
        );
    }
    assert!(seen.hello.contains("\"hello\""), "{everything}");
    let ticket = seen
        .uri
        .split_once("?ticket=")
        .map(|(_, ticket)| ticket.to_string())
        .expect("the ticket in the URL");

    // What the host can do with it: admit a device to exactly that session.
    assert!(matches!(
        spy.admit(&account, "a", &ticket).await,
        Admission::Admitted {
            size: SessionSize::Standard
        }
    ));
    let other = spy.admit(&account, "b", &ticket).await;
    assert!(
        matches!(&other, Admission::Refused { reason } if reason.contains("another session")),
        "{other:?}"
    );
    let altered = format!("{}x", &ticket[..ticket.len() - 1]);
    assert!(matches!(
        spy.admit(&account, "a", &altered).await,
        Admission::Refused { .. }
    ));

    // A ticket expires: one made with the coordinator's own key (read from its database, as
    // only the operator can) but already past its time opens nothing.
    let database = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("parallax.db").display()
    ))
    .await
    .unwrap();
    let stored: String =
        sqlx::query_scalar("SELECT value FROM settings WHERE name = 'render_ticket_key'")
            .fetch_one(&database)
            .await
            .unwrap();
    use base64::Engine;
    let pkcs8 = base64::engine::general_purpose::STANDARD
        .decode(stored)
        .unwrap();
    let signer = TicketSigner::from_pkcs8(&pkcs8).unwrap();
    let mut claims = TicketClaims {
        account: account.clone(),
        session: "a".into(),
        created: 0,
        exp: unix_now() - 1,
    };
    let expired = signer.mint(&claims);
    let verdict = spy.admit(&account, "a", &expired).await;
    assert!(
        matches!(&verdict, Admission::Refused { reason } if reason.contains("expired")),
        "{verdict:?}"
    );
    // Nor does one made for another session that had the same id (created at another time).
    claims.exp = unix_now() + 60;
    let earlier = signer.mint(&claims);
    let verdict = spy.admit(&account, "a", &earlier).await;
    assert!(
        matches!(&verdict, Admission::Refused { reason } if reason.contains("earlier session")),
        "{verdict:?}"
    );
    // And a session that ended admits nobody, whatever its ticket.
    arr.stop("a").await;
    let verdict = spy.admit(&account, "a", &ticket).await;
    assert!(
        matches!(&verdict, Admission::Refused { reason } if reason.contains("Stopped")),
        "{verdict:?}"
    );
    server.stop().await;
}
