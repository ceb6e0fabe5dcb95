//! TLS for what a Parallax process serves and for the links it opens. The coordinator's port and
//! a render host's port serve rustls with a certificate that is reloaded when its files change,
//! and answer plain HTTP with a redirect to `https://` rather than a broken handshake. Clients
//! trust exactly the certificate authorities they were given: no code path accepts any
//! certificate.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use axum::serve::Listener;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parallax_core::trust::Trust;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// How long a client has from connecting to finishing its TLS handshake (or its plain request).
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);
/// How often certificate files are looked at for changes.
const RELOAD_POLL: Duration = Duration::from_secs(2);
/// Handshakes finished but not yet taken by the server.
const ACCEPT_QUEUE: usize = 64;
/// The first byte of every TLS connection (a handshake record).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// A certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl CertFiles {
    /// Reads and checks both files.
    pub fn load(&self) -> anyhow::Result<Arc<CertifiedKey>> {
        let cert = std::fs::read(&self.cert)
            .with_context(|| format!("reading the certificate {}", self.cert.display()))?;
        let key = std::fs::read(&self.key)
            .with_context(|| format!("reading the private key {}", self.key.display()))?;
        certified_key(&cert, &key).with_context(|| {
            format!(
                "loading the certificate {} with the key {}",
                self.cert.display(),
                self.key.display()
            )
        })
    }

    /// When either file last changed.
    fn modified(&self) -> Option<(SystemTime, SystemTime)> {
        let time = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        Some((time(&self.cert)?, time(&self.key)?))
    }
}

/// A chain and key from PEM text: the chain's certificates in order, leaf first, and the key in
/// PKCS#8, PKCS#1 or SEC1 form.
pub fn certified_key(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<Arc<CertifiedKey>> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .context("the certificate file is not PEM")?;
    anyhow::ensure!(
        !chain.is_empty(),
        "the certificate file holds no certificate"
    );
    let key = PrivateKeyDer::from_pem_slice(key_pem).context("the key file holds no PEM key")?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key)
        .context("the key is of a kind TLS cannot use")?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .context("the key does not belong to the certificate")?;
    Ok(Arc::new(certified))
}

/// The certificates a TLS port serves, swappable while it runs.
pub struct ServerCerts {
    /// `None` until a host that asked its coordinator for a certificate has it: handshakes fail
    /// until then (no device can hold a session before the host registered anyway).
    current: RwLock<Option<Arc<CertifiedKey>>>,
    /// Served instead to clients that ask for `localhost` by name: a coordinator serving an
    /// operator's certificate for its public name gives its own render hosts (which link to it
    /// at `localhost`) one from its own authority.
    localhost: Option<Arc<CertifiedKey>>,
}

impl fmt::Debug for ServerCerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerCerts")
            .field("localhost", &self.localhost.is_some())
            .finish_non_exhaustive()
    }
}

impl ServerCerts {
    pub fn new(current: Arc<CertifiedKey>, localhost: Option<Arc<CertifiedKey>>) -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(Some(current)),
            localhost,
        })
    }

    /// None yet: one is to come from the coordinator ([`Self::replace`]).
    pub fn awaiting() -> Arc<Self> {
        Arc::new(Self {
            current: RwLock::new(None),
            localhost: None,
        })
    }

    /// What a handshake that does not ask for `localhost` is served now.
    pub fn serving(&self) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Serves `certified` to every handshake from now on.
    pub fn replace(&self, certified: Arc<CertifiedKey>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(certified);
    }

    /// A rustls configuration serving these certificates over HTTP/1.1 (WebSockets upgrade
    /// from it).
    pub fn server_config(self: &Arc<Self>) -> Arc<ServerConfig> {
        let mut config = ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// Reloads `files` whenever they change, until `stop`. A pair that does not load (say the
    /// certificate was written and the key not yet) keeps the one served until the next change.
    pub fn reload_on_change(self: Arc<Self>, files: CertFiles, stop: CancellationToken) {
        tokio::spawn(async move {
            let mut seen = files.modified();
            loop {
                tokio::select! {
                    () = tokio::time::sleep(RELOAD_POLL) => {}
                    () = stop.cancelled() => return,
                }
                let now = files.modified();
                if now == seen {
                    continue;
                }
                match files.load() {
                    Ok(certified) => {
                        self.replace(certified);
                        seen = now;
                        tracing::info!(cert = %files.cert.display(), "reloaded the TLS certificate");
                    }
                    Err(e) => tracing::warn!("keeping the TLS certificate served: {e:#}"),
                }
            }
        });
    }
}

impl ResolvesServerCert for ServerCerts {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if hello.server_name() == Some("localhost")
            && let Some(localhost) = &self.localhost
        {
            return Some(localhost.clone());
        }
        self.serving()
    }
}

/// A listener whose connections are TLS, for `axum::serve`. Handshakes run concurrently (a slow
/// client never holds up the next); a client speaking plain HTTP gets a redirect to the same
/// address over `https://`.
pub struct TlsListener {
    incoming: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> io::Result<Self> {
        let local = listener.local_addr()?;
        let (done, incoming) = mpsc::channel(ACCEPT_QUEUE);
        let acceptor = TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(e) => {
                            // Out of file descriptors and the like: give it a moment.
                            tracing::debug!("accept failed: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                    () = done.closed() => return,
                };
                let _ = stream.set_nodelay(true);
                let (acceptor, done) = (acceptor.clone(), done.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_LIMIT, handshake(stream, &acceptor)).await
                    {
                        Ok(Ok(Some(tls))) => {
                            let _ = done.send((tls, peer)).await;
                        }
                        Ok(Ok(None)) => {}
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { incoming, local })
    }
}

/// The TLS stream, or `None` when the client spoke plain HTTP and was redirected.
async fn handshake(
    stream: TcpStream,
    acceptor: &TlsAcceptor,
) -> io::Result<Option<TlsStream<TcpStream>>> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 {
        return Ok(None);
    }
    if first[0] == TLS_HANDSHAKE_RECORD {
        return acceptor.accept(stream).await.map(Some);
    }
    let redirect = service_fn(
        |request: hyper::Request<hyper::body::Incoming>| async move {
            Ok::<_, std::convert::Infallible>(redirect_to_https(&request))
        },
    );
    hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), redirect)
        .await
        .map_err(io::Error::other)?;
    Ok(None)
}

/// `308` to the same host, port and path over `https://`.
fn redirect_to_https<B>(request: &hyper::Request<B>) -> hyper::Response<String> {
    let host = request
        .headers()
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && !h.contains(['/', ' ', '@']));
    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
    let mut response = hyper::Response::new(String::new());
    match host {
        Some(host) => {
            let location = format!("https://{host}{path}");
            *response.status_mut() = hyper::StatusCode::PERMANENT_REDIRECT;
            *response.body_mut() = format!("This server speaks HTTPS only: {location}\n");
            if let Ok(value) = location.parse() {
                response
                    .headers_mut()
                    .insert(hyper::header::LOCATION, value);
            }
        }
        None => {
            *response.status_mut() = hyper::StatusCode::BAD_REQUEST;
            *response.body_mut() = "This server speaks HTTPS only.\n".into();
        }
    }
    response
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.incoming.recv().await {
            Some(accepted) => accepted,
            // The accept loop ends only when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// An HTTP client trusting `trust`'s authorities and no others (none: plain http only).
pub fn http_client(trust: Option<&Trust>) -> anyhow::Result<reqwest::Client> {
    let builder = reqwest::Client::builder().tls_built_in_root_certs(false);
    let builder = match trust {
        Some(trust) => builder.use_preconfigured_tls((*trust.config).clone()),
        None => builder,
    };
    Ok(builder.build()?)
}

/// A WebSocket client connection over `ws://`, or over `wss://` trusting `trust`.
pub type ClientSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket to `url` with Nagle off; `wss://` needs `trust`.
pub async fn connect_ws(
    url: impl IntoClientRequest + Unpin,
    trust: Option<&Trust>,
) -> Result<ClientSocket, tokio_tungstenite::tungstenite::Error> {
    let connector = match trust {
        Some(trust) => Connector::Rustls(trust.config.clone()),
        None => Connector::Plain,
    };
    let (socket, _) =
        tokio_tungstenite::connect_async_tls_with_config(url, None, true, Some(connector)).await?;
    Ok(socket)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_is_sent_to_the_same_address_over_https() {
        let request = hyper::Request::builder()
            .uri("/join?space=abc")
            .header("host", "showroom.local:3000")
            .body(())
            .unwrap();
        let response = redirect_to_https(&request);
        assert_eq!(response.status(), 308);
        assert_eq!(
            response.headers()["location"],
            "https://showroom.local:3000/join?space=abc"
        );
        let nameless = hyper::Request::builder().uri("/").body(()).unwrap();
        assert_eq!(redirect_to_https(&nameless).status(), 400);
    }
}
