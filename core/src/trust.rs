//! The certificate authorities a native client trusts, and nothing else: Parallax's own
//! `ca.crt`, a company's CA, or the system's bundle for a publicly issued certificate. There is
//! no way to accept any certificate.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};

/// Why a CA file could not be trusted.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("reading the CA file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the CA file is not PEM: {0}")]
    NotPem(String),
    #[error("the CA file holds a certificate TLS cannot use: {0}")]
    Unusable(rustls::Error),
    #[error("the CA file holds no certificate")]
    Empty,
}

/// A TLS client configuration trusting exactly the authorities of one PEM file.
#[derive(Clone)]
pub struct Trust {
    pub config: Arc<ClientConfig>,
}

impl fmt::Debug for Trust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Trust").finish_non_exhaustive()
    }
}

impl Trust {
    /// The certificates of `pem`, each a trusted authority.
    pub fn from_pem(pem: &[u8]) -> Result<Self, TrustError> {
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| TrustError::NotPem(e.to_string()))?;
            roots.add(cert).map_err(TrustError::Unusable)?;
        }
        if roots.is_empty() {
            return Err(TrustError::Empty);
        }
        let config = ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
        })
    }

    pub fn from_file(path: &Path) -> Result<Self, TrustError> {
        let pem = std::fs::read(path).map_err(|source| TrustError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_pem(&pem)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        assert!(matches!(Trust::from_pem(b""), Err(TrustError::Empty)));
        assert!(Trust::from_pem(b"not a certificate").is_err());
    }
}
