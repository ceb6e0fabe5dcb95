//! HTTPS and WSS as a headset on the showroom network meets them: the coordinator serves TLS with
//! a certificate from its own authority, hands out `wss://` render URLs, its render hosts (its
//! own and one on another machine) link over `wss://` and serve devices over `wss://`, and every
//! client trusts only the authority it was given.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parallax_headset::load::{self, LoadConfig};
use parallax_headset::{ClientError, Coordinator, Trust};
use parallax_host::HostConfig;
use parallax_host::tls::CertFiles;
use parallax_server::Options;
use parallax_server::config::PoolArgs;
use parallax_server::tls::scope::Scope;
use parallax_server::tls::{Tls, TlsSetup};
use parallax_tests::{
    ArrClient, TestServer, browser, browser_sign_in, data_dir, frame_trusting, get_json,
};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A coordinator on TLS with its own authority, for `localhost` and `127.0.0.1`; one account.
async fn tls_server(dir: &Path, pool: PoolArgs) -> (TestServer, (String, String)) {
    let account = ArrClient::create_account(dir, "showroom").await;
    let options = Options {
        pool,
        tls: TlsSetup::Local {
            names: vec!["localhost".into(), "127.0.0.1".into()],
            // The remote hosts of these tests run on this machine, each at a loopback address of
            // its own.
            host_domains: Scope::parse(["localhost", "127.0.0.2", "127.0.0.3"]).unwrap(),
        },
        ..TestServer::options(dir)
    };
    (TestServer::start_with_options(dir, &options).await, account)
}

/// At most one Standard host, `standby` of them kept warm, no Premium, no poll limit.
fn one_standard_host(standby: u32) -> PoolArgs {
    PoolArgs {
        standard: 1,
        standard_standby: standby,
        premium: 0,
        poll_interval_ms: 0,
        ..PoolArgs::default()
    }
}

/// The authority of another coordinator (another data dir on this machine): `dir/tls/ca.crt`.
fn another_authority() -> tempfile::TempDir {
    let elsewhere = data_dir();
    Tls::open(elsewhere.path(), &TlsSetup::local(&["localhost"])).unwrap();
    elsewhere
}

/// Waits until a host registered with `server`.
async fn wait_for_a_host(server: &TestServer) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while registered_hosts(server).await == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no host registered over wss in 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a client that trusts the authority in `dir` (as every device in the room does) says of a
/// certificate for `name` signed with that authority's key, as a thief of the key would sign it.
fn verdict_on_a_forged_certificate(dir: &Path, name: &str) -> Result<(), rustls::Error> {
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

    let tls = dir.join("tls");
    let ca_pem = std::fs::read_to_string(tls.join("ca.crt")).unwrap();
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(tls.join("ca.key")).unwrap()).unwrap();
    let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let forged = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let verifier = rustls::client::WebPkiServerVerifier::builder(Arc::new(roots))
        .build()
        .unwrap();
    verifier
        .verify_server_cert(
            forged.der(),
            &[],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_authority_can_sign_only_the_coordinators_names_and_hosts_get_no_other() {
    let dir = data_dir();
    let pool = PoolArgs {
        standard: 4,
        ..one_standard_host(0)
    };
    let (server, _) = tls_server(dir.path(), pool).await;

    // Even with the authority's key, a certificate for another site is refused by a client
    // that trusts the authority; one for the coordinator's own name passes.
    let forged = verdict_on_a_forged_certificate(dir.path(), "login.bank.example");
    assert!(
        matches!(
            forged,
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(_)
                    | rustls::CertificateError::NotValidForName
                    | rustls::CertificateError::NotValidForNameContext { .. }
            ))
        ),
        "{forged:?}"
    );
    assert!(
        format!("{forged:?}").contains("NameConstraint"),
        "{forged:?}"
    );
    verdict_on_a_forged_certificate(dir.path(), "localhost").expect("its own name passes");

    // A host (with a valid credential) asking for a certificate for another name is refused,
    // with the reason, and given nothing.
    let credential = server.host_credential().await;
    let refused = register_asking_for(&server, &credential, "wss://login.bank.example:443").await;
    assert!(
        matches!(&refused, Err(reason) if reason.contains("login.bank.example") && reason.contains("outside")),
        "{refused:?}"
    );
    assert_eq!(registered_hosts(&server).await, 0);

    // Under --host-domain, but the coordinator's own name: refused (a host with it could pass
    // for the coordinator). A name is one host's: the first to be issued it keeps it, and has
    // no other.
    let (first, second) = (
        server.host_credential().await,
        server.host_credential().await,
    );
    for (credential, endpoint, refused) in [
        (
            &first,
            "wss://localhost:7000",
            Some("a name of the coordinator itself"),
        ),
        (&first, "wss://127.0.0.2:7000", None),
        (&second, "wss://127.0.0.2:7001", Some("another host")),
        (&first, "wss://127.0.0.3:7000", Some("another name")),
        (&second, "wss://127.0.0.3:7001", None),
    ] {
        let answer = register_asking_for(&server, credential, endpoint).await;
        match refused {
            Some(why) => assert!(
                matches!(&answer, Err(reason) if reason.contains(why)),
                "{endpoint}: {answer:?}"
            ),
            None => assert!(answer.is_ok(), "{endpoint}: {answer:?}"),
        }
    }
    server.stop().await;
}

/// Registers with `credential` over a raw link, asking for a certificate for `endpoint`'s name;
/// `Ok` with the certificate's chain, `Err` with the close reason. The link closes at once.
async fn register_asking_for(
    server: &TestServer,
    credential: &str,
    endpoint: &str,
) -> Result<String, String> {
    use tokio_tungstenite::tungstenite::Message;
    let mut link = parallax_host::tls::connect_ws(
        format!("wss://localhost:{}/v1/hosts/ws", server.addr.port()),
        server.trust.as_ref(),
    )
    .await
    .unwrap();
    let register = serde_json::json!({
        "type": "register", "credential": credential, "host": null, "size": "Standard",
        "endpoint": endpoint, "adapter": "none", "pid": 1, "wants_certificate": true,
    });
    link.send(Message::text(register.to_string()))
        .await
        .unwrap();
    let answer = match parallax_tests::within(link.next()).await {
        Some(Ok(Message::Text(text))) => {
            let registered: Value = serde_json::from_str(text.as_str()).unwrap();
            Ok(registered["certificate"]["cert"]
                .as_str()
                .unwrap_or_default()
                .to_string())
        }
        Some(Ok(Message::Close(Some(frame)))) => Err(frame.reason.to_string()),
        other => Err(format!("{other:?}")),
    };
    let _ = link.close(None).await;
    answer
}

/// Waits until session `id` is Ready; its properties.
async fn ready(arr: &ArrClient, id: &str) -> Value {
    let mut body = arr.put(id, "Standard", 30).await.body;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while body["status"] != "Ready" {
        assert!(tokio::time::Instant::now() < deadline, "not Ready: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        body = arr.get(id).await.body;
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_by_default_with_wss_render_urls_served_by_hosts_linked_over_wss() {
    let dir = data_dir();
    let (server, (account, key)) = tls_server(dir.path(), one_standard_host(1)).await;
    // `start` waited for the standby host to register: it linked over wss, verifying the
    // coordinator against the authority.
    assert!(server.url().starts_with("https://"));

    // The authority devices trust once.
    let ca = server
        .http()
        .get(format!("{}/ca.crt", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ca.status(), 200);
    assert_eq!(
        ca.headers()["content-type"],
        "application/x-x509-ca-cert",
        "browsers offer to install it"
    );
    assert_eq!(
        ca.text().await.unwrap(),
        std::fs::read_to_string(dir.path().join("tls/ca.crt")).unwrap()
    );

    // A render session's address is wss://, at the name the client used, and serves frames.
    let arr = ArrClient::sign_in(&server, &account, &key).await;
    let session = ready(&arr, "tls").await;
    let url = session["renderUrl"].as_str().unwrap();
    assert!(url.starts_with("wss://localhost:"), "{url}");
    let frame = frame_trusting(url, "gear", server.trust.as_ref()).await;
    assert_eq!((frame.width, frame.height), (320, 240));

    // Without the authority, the device cannot even connect.
    let refused = parallax_headset::RenderConnection::connect(url).await;
    assert!(
        matches!(refused, Err(ClientError::Transport(ref m)) if m.contains("--ca")),
        "{refused:?}"
    );
    server.stop().await;
}

/// Over https the browser's cookie is `Secure`, every answer carries HSTS, and the data dir keeps
/// its secrets to its owner.
#[tokio::test]
async fn over_https_the_cookie_is_secure_and_browsers_are_told_to_stay_on_https() {
    let dir = data_dir();
    let (server, (account, key)) = tls_server(dir.path(), PoolArgs::default()).await;
    let browser = browser(&server);
    let signed_in = browser_sign_in(&browser, &server, (&account, &key), &[]).await;
    let cookie = signed_in.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    assert_eq!(
        signed_in.headers()["strict-transport-security"],
        "max-age=31536000"
    );
    let page = browser
        .get(format!("{}/v1/ping", server.url()))
        .send()
        .await
        .unwrap();
    assert!(page.headers().contains_key("strict-transport-security"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("parallax.db")), 0o600);
        assert_eq!(mode(dir.path()), 0o700);
        assert_eq!(mode(&dir.path().join("tls")), 0o700);
        assert_eq!(mode(&dir.path().join("tls/ca.key")), 0o600);
    }
    server.stop().await;
}

#[tokio::test]
async fn plain_http_on_the_https_port_is_redirected_to_https() {
    let dir = data_dir();
    let (server, _) = tls_server(dir.path(), PoolArgs::default()).await;
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = plain
        .get(format!(
            "http://localhost:{}/join?code=123456",
            server.addr.port()
        ))
        .send()
        .await
        .expect("an answer, not a broken handshake");
    assert_eq!(answer.status(), 308);
    assert_eq!(
        answer.headers()["location"],
        format!("https://localhost:{}/join?code=123456", server.addr.port())
    );
    server.stop().await;
}

#[tokio::test]
async fn clients_trust_only_the_authority_they_were_given() {
    let dir = data_dir();
    let (server, (account, key)) = tls_server(dir.path(), PoolArgs::default()).await;

    // Another coordinator's authority (another data dir, the same machine) is not this one's.
    let elsewhere = another_authority();
    let stranger = Trust::from_file(&elsewhere.path().join("tls/ca.crt")).unwrap();
    let refused =
        Coordinator::sign_in_trusting(&server.url(), &account, &key, Some(stranger)).await;
    assert!(
        matches!(&refused, Err(ClientError::Transport(m)) if m.contains("invalid peer certificate: UnknownIssuer")),
        "{:?}",
        refused.err()
    );
    // No authority at all: no built-in roots either.
    assert!(
        Coordinator::sign_in(&server.url(), &account, &key)
            .await
            .is_err()
    );
    // The coordinator's own, as `/ca.crt` hands it out: signed in.
    let coordinator =
        Coordinator::sign_in_trusting(&server.url(), &account, &key, server.trust.clone())
            .await
            .expect("trusting the coordinator's authority");
    assert!(coordinator.models().await.is_ok());
    server.stop().await;
}

/// `parallax render-host` on another machine, run here: links to the coordinator trusting `ca`,
/// serves devices with `cert` (without: with one the coordinator issues), reached at `address`
/// (a loopback address of its own, or `localhost` with the coordinator's own files).
async fn remote_host(
    server: &TestServer,
    ca: &Path,
    cert: Option<CertFiles>,
    address: &str,
    stop: &CancellationToken,
) -> tokio::task::JoinHandle<()> {
    let listen = match address.parse::<std::net::IpAddr>() {
        Ok(ip) => std::net::SocketAddr::new(ip, 0),
        Err(_) => "127.0.0.1:0".parse().unwrap(),
    };
    let config = HostConfig {
        coordinators: vec![format!(
            "wss://localhost:{}/v1/hosts/ws",
            server.addr.port()
        )],
        ca: Some(ca.to_path_buf()),
        tls: cert,
        size: parallax_core::session::SessionSize::Standard,
        credential: server.host_credential().await,
        host: None,
        listen,
        advertise: Some(address.into()),
        advertise_port: None,
        local: false,
        coordinator_wait: std::time::Duration::from_secs(
            parallax_host::config::DEFAULT_COORDINATOR_WAIT_S,
        ),
        target_fps: 30,
        bitrate: None,
        mesh_cache_bytes: HostConfig::mib(64),
        gpu_cache_bytes: HostConfig::mib(64),
    };
    let stop = stop.clone();
    tokio::spawn(async move {
        let _ = parallax_host::run(config, stop).await;
    })
}

async fn registered_hosts(server: &TestServer) -> usize {
    let health = get_json(server, "/v1/health", &server.operator).await;
    health["hosts"].as_array().map_or(0, Vec::len)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_render_host_registers_over_wss_and_serves_a_device_over_wss() {
    let dir = data_dir();
    let (server, (account, key)) = tls_server(dir.path(), one_standard_host(0)).await;
    let tls = dir.path().join("tls");
    let stop = CancellationToken::new();

    // A host told to trust another authority does not register.
    let elsewhere = another_authority();
    let wrong = remote_host(
        &server,
        &elsewhere.path().join("tls/ca.crt"),
        None,
        "127.0.0.2",
        &stop,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(registered_hosts(&server).await, 0);
    wrong.abort();

    // The coordinator's authority, and no certificate of its own: the coordinator issues one for
    // its --advertise name when it registers.
    remote_host(&server, &tls.join("ca.crt"), None, "127.0.0.2", &stop).await;
    wait_for_a_host(&server).await;
    let arr = ArrClient::sign_in(&server, &account, &key).await;
    let session = ready(&arr, "remote").await;
    let url = session["renderUrl"].as_str().unwrap();
    assert!(url.starts_with("wss://127.0.0.2:"), "{url}");
    let frame = frame_trusting(url, "gear", server.trust.as_ref()).await;
    assert_eq!(frame.width, 320);
    stop.cancel();

    // A host with a certificate of its own (the operator's files) serves that instead.
    let stop = CancellationToken::new();
    arr.stop("remote").await;
    let cert = CertFiles {
        cert: tls.join("server.crt"),
        key: tls.join("server.key"),
    };
    remote_host(&server, &tls.join("ca.crt"), Some(cert), "localhost", &stop).await;
    wait_for_a_host(&server).await;
    let session = ready(&arr, "own-cert").await;
    let url = session["renderUrl"].as_str().unwrap();
    let frame = frame_trusting(url, "gear", server.trust.as_ref()).await;
    assert_eq!(frame.width, 320);
    stop.cancel();
    server.stop().await;
}

/// Every member of a large space gets every selection over wss as over ws. (TLS holds the last
/// bytes of what it is given until flushed: before the space sockets flushed, only about 120 of
/// 300 members got each selection.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_member_of_a_large_space_gets_every_selection_over_wss() {
    let signed_in = parallax_tests::SignedIn::start_https().await;
    let config = LoadConfig {
        space: "large-wss".into(),
        code: None,
        devices: 300,
        render: false,
        duration: Duration::from_millis(1500),
        every: Duration::from_millis(250),
        concurrency: 16,
        pose_rate: 0,
        viewport: (320, 240),
        codecs: parallax_core::device::Codec::PREFERENCE.to_vec(),
        review: false,
    };
    let report = load::run(&signed_in.coordinator, &config, |_| {})
        .await
        .unwrap();
    assert!(report.selections >= 4, "{report:?}");
    assert_eq!(report.messages, 300 * report.selections, "{report:?}");
    assert_eq!((report.lost, report.duplicated), (0, 0), "{report:?}");
}

/// With the operator's certificate (`--tls-cert`), the coordinator has no authority devices
/// should trust: `/ca.crt` answers 404, its local hosts serve the operator's certificate (a device
/// trusting only the operator's authority gets frames), and a remote host asking for a
/// certificate is told to bring its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_operators_certificate_there_is_no_authority_to_hand_out() {
    let operators = another_authority();
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "showroom").await;
    let options = Options {
        pool: one_standard_host(1),
        tls: TlsSetup::Files(CertFiles {
            cert: operators.path().join("tls/server.crt"),
            key: operators.path().join("tls/server.key"),
        }),
        ..TestServer::options(dir.path())
    };
    // `server.trust` is the coordinator's own loopback authority, which only its local hosts'
    // links to it use; devices trust the operator's.
    let server = TestServer::start_with_options(dir.path(), &options).await;
    let devices = Trust::from_file(&operators.path().join("tls/ca.crt")).unwrap();
    let ca = server
        .http()
        .get(format!("{}/ca.crt", server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ca.status(), 404);

    let arr = ArrClient::sign_in(&server, &account, &key).await;
    let session = ready(&arr, "operators").await;
    let url = session["renderUrl"].as_str().unwrap();
    assert!(url.starts_with("wss://localhost:"), "{url}");
    let frame = frame_trusting(url, "gear", Some(&devices)).await;
    assert_eq!(frame.width, 320);

    let refused = register_asking_for(
        &server,
        &server.host_credential().await,
        "wss://localhost:1",
    )
    .await;
    assert!(
        matches!(&refused, Err(reason) if reason.contains("--tls-cert")),
        "{refused:?}"
    );
    server.stop().await;
}

/// With `--tls off` there is no authority either (`/ca.crt` 404). Behind a proxy that terminates
/// TLS and says `X-Forwarded-Proto: https`, the browser's cookie is `Secure` and the API's links
/// are https; render hosts, which devices reach directly, keep their own scheme.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_tls_proxy_the_links_handed_out_stay_on_https() {
    let dir = data_dir();
    let (account, key) = ArrClient::create_account(dir.path(), "showroom").await;
    let server = TestServer::start_with(dir.path(), &one_standard_host(1)).await;
    assert!(server.url().starts_with("http://"));
    let ca = reqwest::get(format!("{}/ca.crt", server.url()))
        .await
        .unwrap();
    assert_eq!(ca.status(), 404);

    let browser = browser(&server);
    let cookie = |headers: &'static [(&'static str, &'static str)]| {
        let credentials = (account.as_str(), key.as_str());
        let (browser, server) = (&browser, &server);
        async move {
            let answer = browser_sign_in(browser, server, credentials, headers).await;
            answer.headers()["set-cookie"].to_str().unwrap().to_string()
        }
    };
    assert!(!cookie(&[]).await.contains("Secure"));
    assert!(
        cookie(&[("x-forwarded-proto", "https")])
            .await
            .contains("Secure")
    );

    let arr = ArrClient::sign_in(&server, &account, &key).await;
    ready(&arr, "proxied").await;
    let list: Value = reqwest::Client::new()
        .get(format!(
            "{}/accounts/{account}/sessions?api-version=2021-01-01",
            server.url()
        ))
        .bearer_auth(&arr.token)
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = list["sessions"][0]["renderUrl"]
        .as_str()
        .unwrap_or_default();
    assert!(url.starts_with("ws://"), "{list}");
    server.stop().await;
}
