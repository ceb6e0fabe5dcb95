//! HTTPS out of the box. Browsers offer WebXR and WebCodecs only in a secure context, so a
//! headset on the showroom network needs `https://`. Unless the operator brings a certificate,
//! the coordinator makes, once, a certificate authority of its own in `DATA/tls/` and issues
//! itself a server certificate for this machine's names and addresses — anew at every start and
//! before it expires. Devices trust the authority once (`GET /ca.crt`, the `/trust` page).
//!
//! Local render hosts serve their render connections with the same certificate (devices reach
//! them at the name they reached the coordinator by), and link to the coordinator at
//! `wss://localhost`, verified against the authority.
//!
//! The authority is name-constrained ([`scope`]): it can sign only for the coordinator's own
//! names and addresses and the operator's `--host-domain` entries, so even its key, stolen,
//! cannot pass for another site on a device that trusts it. Render hosts on other machines get
//! certificates only for names under `--host-domain`, never for the coordinator's own names.

pub mod scope;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use parallax_core::host::IssuedCertificate;
use parallax_host::tls::{CertFiles, ServerCerts, certified_key};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use self::scope::{Permit, Scope, ScopeError};

/// How long the authority is valid: devices trust it once, so for years.
const CA_VALIDITY: time::Duration = time::Duration::days(3650);
/// How long a server certificate is valid (Apple's platforms refuse more than 825 days).
const SERVER_VALIDITY: time::Duration = time::Duration::days(365);
/// A server certificate is issued anew when it has less than this left.
const RENEW_BEFORE: time::Duration = time::Duration::days(30);
/// How often a running coordinator looks whether its certificate is due.
const RENEW_CHECK: Duration = Duration::from_secs(6 * 60 * 60);

/// How the coordinator speaks TLS.
#[derive(Debug, Clone)]
pub enum TlsSetup {
    /// Plain HTTP (behind a proxy that terminates TLS).
    Off,
    /// Its own authority issues its certificate, for these names and addresses, and render
    /// hosts' certificates for names in `host_domains`.
    Local {
        names: Vec<String>,
        host_domains: Scope,
    },
    /// The operator's certificate, reloaded when its files change.
    Files(CertFiles),
}

impl TlsSetup {
    /// Its own authority, for `names`, issuing no certificates to render hosts.
    pub fn local<S: ToString>(names: &[S]) -> Self {
        Self::Local {
            names: names.iter().map(ToString::to_string).collect(),
            host_domains: Scope::default(),
        }
    }
}

/// The coordinator's TLS, once set up.
pub struct Tls {
    pub certs: Arc<ServerCerts>,
    /// The authority's certificate file: what local hosts verify the coordinator with.
    pub ca_file: PathBuf,
    /// What local render hosts serve their render connections with.
    pub host_files: CertFiles,
    served: Served,
}

/// Whose certificate the coordinator serves.
enum Served {
    /// Its authority's, for `names`; renewed before `not_after`.
    Own {
        authority: Box<Authority>,
        names: Vec<String>,
        not_after: std::sync::Mutex<OffsetDateTime>,
        /// What render hosts may have certificates for.
        host_domains: Scope,
    },
    /// The operator's, from [`Tls::host_files`], reloaded when they change.
    Operator,
}

/// The certificate authority in the data dir, read once.
struct Authority {
    dir: PathBuf,
    pem: String,
    issuer: Issuer<'static, KeyPair>,
    /// What it may sign (its name constraints).
    scope: Scope,
    /// When and why it replaced an earlier one, as the data dir's note says.
    replaced: Option<String>,
}

/// Why a render host gets no certificate.
#[derive(Debug, thiserror::Error)]
pub enum HostCertificateError {
    /// Devices trust the operator's authority, which the coordinator cannot sign with.
    #[error(
        "this coordinator serves its operator's certificate (--tls-cert) or plain HTTP, so it \
         has no authority devices trust: give the host --tls-cert/--tls-key"
    )]
    NoAuthority,
    #[error("no certificate for this host: {0}; start the coordinator with --host-domain")]
    Refused(ScopeError),
    #[error(
        "{0:?} is a name of the coordinator itself: no render host may have a certificate for it"
    )]
    CoordinatorName(String),
    #[error("could not issue the host's certificate: {0:#}")]
    Failed(anyhow::Error),
}

/// When the authority was replaced, and why: devices that trusted the one before must trust it
/// again. Kept in `DATA/tls/ca-replaced.txt` for the `/trust` page.
const REPLACED_NOTE: &str = "ca-replaced.txt";

impl Tls {
    /// Sets up `setup` with the authority in `data_dir/tls/`; `None` for [`TlsSetup::Off`].
    pub fn open(data_dir: &Path, setup: &TlsSetup) -> anyhow::Result<Option<Arc<Self>>> {
        if let TlsSetup::Off = setup {
            return Ok(None);
        }
        let dir = data_dir.join("tls");
        // Owner only: the authority's key and the served key live here.
        crate::private::make_private_dir(&dir)?;
        let tls = match setup {
            TlsSetup::Off => return Ok(None),
            TlsSetup::Local {
                names,
                host_domains,
            } => {
                let mut scope = host_domains.clone();
                let mut usable = Vec::new();
                for name in names {
                    match Permit::parse(name) {
                        Ok(permit) => {
                            scope.add(permit);
                            usable.push(name.clone());
                        }
                        // A host name no certificate can hold must not keep TLS from starting.
                        Err(e) => tracing::warn!("left out of the certificate: {e}"),
                    }
                }
                let names = &usable;
                let authority = Authority::open(dir.clone(), scope)?;
                let (served, not_after) = authority.issue_server_cert(names)?;
                Self {
                    certs: ServerCerts::new(served, None),
                    ca_file: dir.join("ca.crt"),
                    host_files: server_files(&dir),
                    served: Served::Own {
                        authority: Box::new(authority),
                        names: names.clone(),
                        not_after: std::sync::Mutex::new(not_after),
                        host_domains: host_domains.clone(),
                    },
                }
            }
            TlsSetup::Files(files) => {
                // The operator's certificate is for the public names; local hosts link at
                // `localhost`, for which the authority issues one (and nothing else).
                let authority = Authority::open(dir.clone(), Scope::parse(LOOPBACK)?)?;
                let (localhost, _) = authority.issue_server_cert(&["localhost".to_string()])?;
                Self {
                    certs: ServerCerts::new(files.load()?, Some(localhost)),
                    ca_file: dir.join("ca.crt"),
                    host_files: files.clone(),
                    served: Served::Operator,
                }
            }
        };
        Ok(Some(Arc::new(tls)))
    }

    /// The authority's certificate (PEM) devices trust, when it is what the served certificate
    /// chains to (not with an operator's certificate).
    pub fn ca_pem(&self) -> Option<&str> {
        match &self.served {
            Served::Own { authority, .. } => Some(&authority.pem),
            Served::Operator => None,
        }
    }

    /// Keeps the served certificate current until `stop`: reloads the operator's files when
    /// they change, or issues the coordinator's own anew before it expires.
    pub fn keep_current(self: &Arc<Self>, stop: CancellationToken) {
        if let Served::Operator = self.served {
            self.certs
                .clone()
                .reload_on_change(self.host_files.clone(), stop);
            return;
        }
        let tls = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = tokio::time::sleep(RENEW_CHECK) => {}
                    () = stop.cancelled() => return,
                }
                if let Err(e) = tls.renew_if_due(OffsetDateTime::now_utc()) {
                    tracing::error!("could not renew the TLS certificate: {e:#}");
                }
            }
        });
    }

    /// A certificate for a render host's `name` (its `--advertise` name or address), when the
    /// served certificate is the authority's own (devices trust the authority, so they trust
    /// this too) and `name` is under `--host-domain`. Never for a wildcard, and never for a
    /// name the operator did not give for hosts (the coordinator's own names included).
    pub fn issue_for_host(&self, name: &str) -> Result<IssuedCertificate, HostCertificateError> {
        self.may_issue_for_host(name)?;
        let Served::Own { authority, .. } = &self.served else {
            return Err(HostCertificateError::NoAuthority);
        };
        let (issued, _) = authority
            .issue(&[name.to_string()])
            .map_err(HostCertificateError::Failed)?;
        Ok(issued)
    }

    /// Whether a render host may have a certificate for `name`: under `--host-domain`, not a
    /// wildcard, and none of the coordinator's own names (a host with one could pass for it).
    pub fn may_issue_for_host(&self, name: &str) -> Result<(), HostCertificateError> {
        let Served::Own {
            names,
            host_domains,
            ..
        } = &self.served
        else {
            return Err(HostCertificateError::NoAuthority);
        };
        host_domains
            .check(name)
            .map_err(HostCertificateError::Refused)?;
        let bare = name.trim_matches(['[', ']']).trim_end_matches('.');
        let same = |own: &String| match (own.parse::<IpAddr>(), bare.parse::<IpAddr>()) {
            (Ok(own), Ok(asked)) => own == asked,
            _ => own.eq_ignore_ascii_case(bare),
        };
        if names.iter().any(same) {
            return Err(HostCertificateError::CoordinatorName(name.to_string()));
        }
        Ok(())
    }

    /// What the authority devices trust may sign, and when and why it replaced an earlier one
    /// (devices that trusted that one must trust this one again); `None` without an authority
    /// devices trust.
    pub fn authority_notes(&self) -> Option<(String, Option<String>)> {
        let Served::Own { authority, .. } = &self.served else {
            return None;
        };
        Some((authority.scope.to_string(), authority.replaced.clone()))
    }

    /// Issues and serves a new certificate if the current one expires within [`RENEW_BEFORE`]
    /// of `now`; true if it did.
    fn renew_if_due(&self, now: OffsetDateTime) -> anyhow::Result<bool> {
        let Served::Own {
            authority,
            names,
            not_after,
            ..
        } = &self.served
        else {
            return Ok(false);
        };
        let mut not_after = not_after.lock().unwrap_or_else(|p| p.into_inner());
        if *not_after - now > RENEW_BEFORE {
            return Ok(false);
        }
        let (served, renewed) = authority.issue_server_cert(names)?;
        self.certs.replace(served);
        *not_after = renewed;
        tracing::info!("renewed the TLS certificate");
        Ok(true)
    }
}

/// What the authority may sign behind an operator's certificate: only the loopback names local
/// hosts link at.
const LOOPBACK: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

fn server_files(dir: &Path) -> CertFiles {
    CertFiles {
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
    }
}

/// The names a certificate of this machine is for: its host name, `localhost`, the loopback
/// addresses, the address it listens on (every interface's, when it listens on all), and
/// `extra` (names it is reached by that it cannot know, such as a DNS alias).
pub fn machine_names(listen: IpAddr, extra: &[String]) -> Vec<String> {
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if let Ok(host) = nix::unistd::gethostname()
        && let Some(host) = host.to_str()
        && !host.is_empty()
    {
        names.push(host.to_string());
    }
    if listen.is_unspecified() {
        if let Ok(interfaces) = nix::ifaddrs::getifaddrs() {
            for interface in interfaces {
                let Some(address) = interface.address else {
                    continue;
                };
                if let Some(v4) = address.as_sockaddr_in() {
                    names.push(v4.ip().to_string());
                } else if let Some(v6) = address.as_sockaddr_in6()
                    && !v6.ip().is_unicast_link_local()
                {
                    names.push(v6.ip().to_string());
                }
            }
        }
    } else {
        names.push(listen.to_string());
    }
    names.extend(extra.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    names.retain(|name| seen.insert(name.clone()));
    names
}

impl Authority {
    /// The authority in `dir` for `scope`, made if missing or expired, or replaced if it may
    /// not sign for all of `scope`, or may sign for names or blocks beyond it (an operator who
    /// narrows `--host-domain` narrows the authority).
    fn open(dir: PathBuf, scope: Scope) -> anyhow::Result<Self> {
        let (pem, key, scope) = load_or_make_ca(&dir, OffsetDateTime::now_utc(), scope)?;
        let issuer = Issuer::from_ca_cert_pem(&pem, key)
            .context("reading the certificate authority in the data dir")?;
        let replaced = std::fs::read_to_string(dir.join(REPLACED_NOTE)).ok();
        Ok(Self {
            dir,
            pem,
            issuer,
            scope,
            replaced,
        })
    }

    /// Issues a server certificate for `names` into `server.crt`/`server.key` (what local hosts
    /// serve); returns it, ready to serve, and when it expires.
    fn issue_server_cert(
        &self,
        names: &[String],
    ) -> anyhow::Result<(Arc<rustls::sign::CertifiedKey>, OffsetDateTime)> {
        let (issued, not_after) = self.issue(names)?;
        let files = server_files(&self.dir);
        write_private(&files.key, issued.key.as_bytes())?;
        std::fs::write(&files.cert, &issued.cert).context("writing the server certificate")?;
        let served = certified_key(issued.cert.as_bytes(), issued.key.as_bytes())?;
        Ok((served, not_after))
    }

    /// A certificate for `names`: the chain and key, and when it expires. Refused for a name
    /// outside the authority's constraints (devices would refuse it anyway).
    fn issue(&self, names: &[String]) -> anyhow::Result<(IssuedCertificate, OffsetDateTime)> {
        for name in names {
            self.scope.check(name)?;
        }
        let now = OffsetDateTime::now_utc();
        let mut params = CertificateParams::new(names.to_vec())
            .with_context(|| format!("a certificate for {names:?}"))?;
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            names
                .iter()
                .find(|n| n.parse::<IpAddr>().is_err())
                .map_or("Parallax", |n| n),
        );
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + SERVER_VALIDITY;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().context("making a key")?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .context("issuing the certificate")?;
        // The chain: the certificate, then the authority's (some clients want it sent).
        let issued = IssuedCertificate {
            cert: format!("{}{}", cert.pem(), self.pem),
            key: key.serialize_pem(),
        };
        Ok((issued, params.not_after))
    }
}

/// The authority's certificate (PEM), key and scope: the one in `dir` if it is valid for a while
/// yet and constrained to exactly what `scope` covers; else a new one for `scope` (with a note of
/// why, when it replaces one devices may trust).
fn load_or_make_ca(
    dir: &Path,
    now: OffsetDateTime,
    scope: Scope,
) -> anyhow::Result<(String, KeyPair, Scope)> {
    let (cert_path, key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
    let mut replaced = None;
    if let (Ok(pem), Ok(key)) = (
        std::fs::read_to_string(&cert_path),
        std::fs::read_to_string(&key_path),
    ) {
        let key = KeyPair::from_pem(&key).context("reading the authority's key in the data dir")?;
        let (not_after, held) = read_ca(&pem).unwrap_or((now, None));
        let why = match held {
            _ if not_after <= now + RENEW_BEFORE => "it expires".to_string(),
            None => "it had no name constraints: it could sign for any site".to_string(),
            Some(held) if !held.contains(&scope) => format!(
                "this coordinator's names grew past what it may sign ({held}); it is now for \
                 {scope}"
            ),
            Some(held) if !held.reaches_beyond(&scope).is_empty() => format!(
                "it could sign for names no longer given ({}); it is now for {scope}",
                held.reaches_beyond(&scope)
            ),
            Some(held) => return Ok((pem, key, held)),
        };
        tracing::warn!(
            "replacing the certificate authority in {}: {why}. Devices that trusted the old one \
             must trust the new one again (/trust, /ca.crt)",
            dir.display()
        );
        replaced = Some(why);
    }
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    // Unique, so two coordinators' authorities (say on machines of the same name) never pass
    // for each other.
    let id = &uuid::Uuid::new_v4().simple().to_string()[..8];
    params.distinguished_name.push(
        DnType::CommonName,
        format!("Parallax local CA {host} {id}").replace("  ", " "),
    );
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Parallax");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.name_constraints = Some(scope.constraints());
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + CA_VALIDITY;
    let key = KeyPair::generate().context("making the authority's key")?;
    let cert = params
        .self_signed(&key)
        .context("making the certificate authority")?;
    write_private(&key_path, key.serialize_pem().as_bytes())?;
    std::fs::write(&cert_path, cert.pem()).context("writing the authority's certificate")?;
    let note = dir.join(REPLACED_NOTE);
    match replaced {
        Some(why) => {
            let when = now
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            std::fs::write(&note, format!("{when}: {why}"))
                .context("writing why the authority was replaced")?;
        }
        None => {
            let _ = std::fs::remove_file(&note);
        }
    }
    tracing::info!(
        "made a certificate authority in {} for {scope}: devices trust it once from /ca.crt",
        dir.display()
    );
    Ok((cert.pem(), key, scope))
}

/// When the authority `pem` expires, and what it may sign (`None`: anything).
fn read_ca(pem: &str) -> Option<(OffsetDateTime, Option<Scope>)> {
    let der = CertificateDer::from_pem_slice(pem.as_bytes()).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    Some((
        cert.validity().not_after.to_datetime(),
        Scope::of_certificate(&cert),
    ))
}

/// Writes a key readable by its owner only.
fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(contents)
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local(names: &[&str], host_domains: &[&str]) -> TlsSetup {
        TlsSetup::Local {
            names: names.iter().map(|n| n.to_string()).collect(),
            host_domains: Scope::parse(host_domains.iter().copied()).unwrap(),
        }
    }

    /// The certificate and key the coordinator serves from `dir`.
    fn served(dir: &Path) -> Arc<rustls::sign::CertifiedKey> {
        server_files(dir).load().unwrap()
    }

    #[test]
    fn the_authority_is_made_once_and_the_server_certificate_at_every_start() {
        let dir = tempfile::tempdir().unwrap();
        let names = ["localhost", "127.0.0.1"];
        let first = Tls::open(dir.path(), &local(&names, &[])).unwrap().unwrap();
        let leaf = served(&dir.path().join("tls"));
        let second = Tls::open(dir.path(), &local(&names, &[])).unwrap().unwrap();
        assert_eq!(
            first.ca_pem(),
            second.ca_pem(),
            "devices trust the authority once"
        );
        assert_ne!(
            leaf.cert[0],
            served(&dir.path().join("tls")).cert[0],
            "a fresh server certificate"
        );
        let key = std::fs::metadata(dir.path().join("tls/ca.key")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(key.permissions().mode() & 0o777, 0o600);
        }
        let _ = key;
        // Devices trust it once: it lasts ten years from its making (the README's promise).
        let der = CertificateDer::from_pem_slice(first.ca_pem().unwrap().as_bytes()).unwrap();
        let (_, ca) = x509_parser::parse_x509_certificate(&der).unwrap();
        let lasts = ca.validity().not_after.to_datetime() - ca.validity().not_before.to_datetime();
        assert_eq!(lasts.whole_days(), 3650, "{lasts}");
        assert!(ca.validity().not_before.to_datetime() <= OffsetDateTime::now_utc());
    }

    #[test]
    fn the_server_certificate_is_renewed_before_it_expires() {
        let dir = tempfile::tempdir().unwrap();
        let tls = Tls::open(dir.path(), &local(&["localhost"], &[]))
            .unwrap()
            .unwrap();
        let now = OffsetDateTime::now_utc();
        assert!(
            !tls.renew_if_due(now).unwrap(),
            "a new certificate is not due"
        );
        let before = served(&dir.path().join("tls")).cert[0].clone();
        assert!(
            tls.renew_if_due(now + SERVER_VALIDITY - RENEW_BEFORE + time::Duration::DAY)
                .unwrap()
        );
        assert_ne!(before, served(&dir.path().join("tls")).cert[0]);
        let der = CertificateDer::from_pem_slice(
            std::fs::read(dir.path().join("tls/server.crt"))
                .unwrap()
                .as_slice(),
        )
        .unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let not_after = cert.validity().not_after.to_datetime();
        assert!(not_after > now + SERVER_VALIDITY - time::Duration::DAY);
    }

    #[tokio::test]
    async fn the_operators_certificate_is_reloaded_when_its_files_change() {
        let local = |dir: &Path| {
            Tls::open(dir, &local(&["showroom.example"], &[])).unwrap();
            server_files(&dir.join("tls"))
        };
        let (first, second) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let operator = tempfile::tempdir().unwrap();
        let files = CertFiles {
            cert: operator.path().join("chain.pem"),
            key: operator.path().join("key.pem"),
        };
        let copy = |from: &CertFiles| {
            std::fs::copy(&from.cert, &files.cert).unwrap();
            std::fs::copy(&from.key, &files.key).unwrap();
        };
        let (a, b) = (local(first.path()), local(second.path()));
        copy(&a);
        let data = tempfile::tempdir().unwrap();
        let tls = Tls::open(data.path(), &TlsSetup::Files(files.clone()))
            .unwrap()
            .unwrap();
        assert_eq!(
            tls.ca_pem(),
            None,
            "devices trust the operator's CA, not ours"
        );
        let stop = CancellationToken::new();
        tls.keep_current(stop.clone());
        let serving = || tls.certs.serving().unwrap().cert[0].clone();
        assert_eq!(serving(), a.load().unwrap().cert[0]);
        // Renewed on disk (by certbot, say): served from then on, without a restart.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        copy(&b);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while serving() != b.load().unwrap().cert[0] {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not reloaded in 10 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stop.cancel();
    }

    /// The certificate authority in the data dir, parsed.
    fn authority_scope(dir: &Path) -> Option<Scope> {
        let pem = std::fs::read_to_string(dir.join("tls/ca.crt")).unwrap();
        read_ca(&pem).unwrap().1
    }

    #[test]
    fn the_authority_may_sign_only_the_coordinators_names_and_the_host_domains() {
        let dir = tempfile::tempdir().unwrap();
        let tls = Tls::open(
            dir.path(),
            &local(
                &["localhost", "127.0.0.1", "showroom.example"],
                &["hosts.showroom.lan", "10.0.5.0/24"],
            ),
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            authority_scope(dir.path()).unwrap().to_string(),
            "hosts.showroom.lan, 10.0.5.0/24, localhost, 127.0.0.1, showroom.example"
        );
        // Hosts: names under --host-domain only.
        assert!(tls.issue_for_host("gpu-1.hosts.showroom.lan").is_ok());
        assert!(tls.issue_for_host("10.0.5.20").is_ok());
        for refused in [
            "login.bank.example",
            "*.hosts.showroom.lan",
            "showroom.example",
            "localhost",
            "10.0.6.1",
        ] {
            let error = tls.issue_for_host(refused).unwrap_err();
            assert!(
                matches!(error, HostCertificateError::Refused(_)),
                "{refused}: {error}"
            );
        }
        let why = tls
            .issue_for_host("login.bank.example")
            .unwrap_err()
            .to_string();
        assert!(
            why.contains("login.bank.example") && why.contains("--host-domain"),
            "{why}"
        );
        // Not even the authority itself signs outside its constraints.
        let Served::Own { authority, .. } = &tls.served else {
            unreachable!()
        };
        assert!(authority.issue(&["login.bank.example".into()]).is_err());
    }

    #[test]
    fn an_unconstrained_authority_is_replaced_once_with_a_note() {
        let dir = tempfile::tempdir().unwrap();
        let tls_dir = dir.path().join("tls");
        std::fs::create_dir_all(&tls_dir).unwrap();
        // An authority of before: no name constraints.
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.not_after = OffsetDateTime::now_utc() + CA_VALIDITY;
        let key = KeyPair::generate().unwrap();
        let old = params.self_signed(&key).unwrap();
        std::fs::write(tls_dir.join("ca.crt"), old.pem()).unwrap();
        std::fs::write(tls_dir.join("ca.key"), key.serialize_pem()).unwrap();

        let setup = local(&["localhost", "127.0.0.1"], &[]);
        let tls = Tls::open(dir.path(), &setup).unwrap().unwrap();
        assert_ne!(tls.ca_pem(), Some(old.pem().as_str()));
        assert!(authority_scope(dir.path()).is_some());
        let (scope, replaced) = tls.authority_notes().unwrap();
        assert_eq!(scope, "localhost, 127.0.0.1");
        assert!(
            replaced.is_some_and(|why| why.contains("no name constraints")),
            "the /trust page says devices must trust it again"
        );
        // Once: the next start keeps it.
        let again = Tls::open(dir.path(), &setup).unwrap().unwrap();
        assert_eq!(again.ca_pem(), tls.ca_pem());
        // A name it does not cover (a new --tls-name) makes a new one, for the names now.
        let grown = Tls::open(
            dir.path(),
            &local(&["localhost", "127.0.0.1", "alias.lan"], &[]),
        )
        .unwrap()
        .unwrap();
        assert_ne!(grown.ca_pem(), tls.ca_pem());
        assert!(grown.authority_notes().unwrap().1.is_some());
        // Narrowing --host-domain narrows the authority; an address the machine lost does not
        // replace it.
        let names = ["localhost", "127.0.0.1", "alias.lan"];
        let hosts = Tls::open(dir.path(), &local(&names, &["hosts.lan", "10.0.5.0/24"]))
            .unwrap()
            .unwrap();
        let narrowed = Tls::open(dir.path(), &local(&names, &[])).unwrap().unwrap();
        assert_ne!(narrowed.ca_pem(), hosts.ca_pem());
        let fewer = Tls::open(dir.path(), &local(&["localhost", "alias.lan"], &[]))
            .unwrap()
            .unwrap();
        assert_eq!(fewer.ca_pem(), narrowed.ca_pem());
    }

    #[test]
    fn the_names_of_this_machine_include_localhost_and_extras() {
        let names = machine_names("127.0.0.1".parse().unwrap(), &["parallax.test".into()]);
        assert!(names.contains(&"localhost".to_string()));
        assert!(names.contains(&"parallax.test".to_string()));
        assert_eq!(names.iter().filter(|n| *n == "127.0.0.1").count(), 1);
    }
}
