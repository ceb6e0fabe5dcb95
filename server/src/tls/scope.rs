//! What the coordinator's certificate authority may sign: its X.509 name constraints.
//!
//! Every device in the room trusts the authority as a root, so a copy of its key must not be a
//! key to every site on the internet. The authority carries *permitted subtrees*: the
//! coordinator's own names and addresses, its `--tls-name` aliases, and the operator's
//! `--host-domain` entries for render hosts. Browsers and rustls refuse any certificate it signs
//! for another name, whoever signed it.

use std::fmt;
use std::net::IpAddr;

use rcgen::{CidrSubnet, GeneralSubtree, NameConstraints};
use x509_parser::extensions::GeneralName;

/// One permitted subtree: a DNS name with every name below it, or a block of addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Permit {
    /// `showroom.lan` permits `showroom.lan` and `a.showroom.lan` (RFC 5280's DNS subtree).
    Dns(String),
    /// An address block: an address with its prefix length (32 or 128 for one address).
    Net(IpAddr, u8),
}

/// Why a name cannot be in the scope, or cannot be signed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    #[error("{0:?} is a wildcard: the authority signs only whole names")]
    Wildcard(String),
    #[error("{0:?} is not a DNS name, an IP address or an address block (e.g. 10.0.5.0/24)")]
    Unreadable(String),
    #[error("{name:?} is outside the names this coordinator's authority may sign ({scope})")]
    Outside { name: String, scope: String },
}

impl Permit {
    /// Reads `hosts.showroom.lan`, `10.0.5.7`, `10.0.5.0/24` or `fd00::/64`.
    pub fn parse(text: &str) -> Result<Self, ScopeError> {
        let text = text.trim().trim_end_matches('.');
        if text.contains('*') {
            return Err(ScopeError::Wildcard(text.to_string()));
        }
        if let Some((address, prefix)) = text.split_once('/') {
            let address: IpAddr = address
                .parse()
                .map_err(|_| ScopeError::Unreadable(text.to_string()))?;
            let most = if address.is_ipv4() { 32 } else { 128 };
            let prefix = prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= most)
                .ok_or_else(|| ScopeError::Unreadable(text.to_string()))?;
            return Ok(Self::Net(network(address, prefix), prefix));
        }
        if let Ok(address) = text.trim_matches(['[', ']']).parse::<IpAddr>() {
            return Ok(Self::one(address));
        }
        let valid = !text.is_empty()
            && text.len() <= 253
            && text.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !valid {
            return Err(ScopeError::Unreadable(text.to_string()));
        }
        Ok(Self::Dns(text.to_ascii_lowercase()))
    }

    /// Exactly one address.
    pub fn one(address: IpAddr) -> Self {
        Self::Net(address, if address.is_ipv4() { 32 } else { 128 })
    }

    /// Whether the address `ip` falls under this block (never under a DNS name).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.covers(&Permit::one(ip))
    }

    /// Whether the name `name` (already read as a [`Permit`] of one name) falls under this one.
    fn covers(&self, other: &Permit) -> bool {
        match (self, other) {
            (Self::Dns(domain), Self::Dns(name)) => {
                name == domain
                    || name
                        .strip_suffix(domain.as_str())
                        .is_some_and(|head| head.ends_with('.'))
            }
            (Self::Net(net, prefix), Self::Net(address, their)) => {
                their >= prefix && network(*address, *prefix) == *net
            }
            _ => false,
        }
    }

    fn subtree(&self) -> GeneralSubtree {
        match self {
            Self::Dns(name) => GeneralSubtree::DnsName(name.clone()),
            Self::Net(address, prefix) => {
                GeneralSubtree::IpAddress(CidrSubnet::from_addr_prefix(*address, *prefix))
            }
        }
    }
}

impl fmt::Display for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(name) => write!(f, "{name}"),
            Self::Net(address, _) if Self::one(*address) == *self => write!(f, "{address}"),
            Self::Net(address, prefix) => write!(f, "{address}/{prefix}"),
        }
    }
}

/// The first address of `address`'s block of `prefix` bits.
fn network(address: IpAddr, prefix: u8) -> IpAddr {
    match address {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::from((u32::from(v4) & mask).to_be_bytes())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::from((u128::from(v6) & mask).to_be_bytes())
        }
    }
}

/// A set of permitted subtrees.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope(Vec<Permit>);

impl Scope {
    /// The scope of `entries`, each read by [`Permit::parse`].
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, ScopeError> {
        entries.into_iter().map(Permit::parse).collect()
    }

    /// Adds `permit` unless the scope covers it already.
    pub fn add(&mut self, permit: Permit) {
        if !self.0.iter().any(|held| held.covers(&permit)) {
            self.0.retain(|held| !permit.covers(held));
            self.0.push(permit);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether every subtree of `other` lies inside this scope.
    pub fn contains(&self, other: &Scope) -> bool {
        other
            .0
            .iter()
            .all(|permit| self.0.iter().any(|held| held.covers(permit)))
    }

    /// The subtrees of this scope `other` does not cover and that reach past one address: DNS
    /// names and address blocks. (An address the machine no longer has is left alone: the
    /// authority is not replaced, and devices asked to trust it again, each time an interface
    /// comes or goes.)
    pub fn reaches_beyond(&self, other: &Scope) -> Scope {
        self.0
            .iter()
            .filter(|held| !other.0.iter().any(|permit| permit.covers(held)))
            .filter(|held| match held {
                Permit::Dns(_) => true,
                Permit::Net(address, _) => **held != Permit::one(*address),
            })
            .cloned()
            .collect()
    }

    /// Checks that a certificate for `name` (a DNS name or an address, as it would stand in the
    /// certificate) is inside the scope.
    pub fn check(&self, name: &str) -> Result<(), ScopeError> {
        // An address block is a scope, not a name a certificate is for.
        if name.contains('/') {
            return Err(ScopeError::Unreadable(name.to_string()));
        }
        let permit = Permit::parse(name)?;
        if self.0.iter().any(|held| held.covers(&permit)) {
            Ok(())
        } else {
            Err(ScopeError::Outside {
                name: name.to_string(),
                scope: self.to_string(),
            })
        }
    }

    /// The name constraints extension of an authority limited to this scope.
    pub fn constraints(&self) -> NameConstraints {
        NameConstraints {
            permitted_subtrees: self.0.iter().map(Permit::subtree).collect(),
            excluded_subtrees: Vec::new(),
        }
    }

    /// The permitted subtrees of the certificate `cert`; `None` when it has no name
    /// constraints (it may sign for any name).
    pub fn of_certificate(cert: &x509_parser::certificate::X509Certificate<'_>) -> Option<Self> {
        let constraints = cert.name_constraints().ok()??.value;
        let permitted = constraints.permitted_subtrees.as_ref()?;
        let mut scope = Self::default();
        for subtree in permitted {
            match &subtree.base {
                GeneralName::DNSName(name) => scope.0.push(Permit::Dns(name.to_ascii_lowercase())),
                GeneralName::IPAddress(bytes) => {
                    let (address, mask): (IpAddr, &[u8]) = match bytes.len() {
                        8 => (
                            IpAddr::from(<[u8; 4]>::try_from(&bytes[..4]).ok()?),
                            &bytes[4..],
                        ),
                        32 => (
                            IpAddr::from(<[u8; 16]>::try_from(&bytes[..16]).ok()?),
                            &bytes[16..],
                        ),
                        _ => return None,
                    };
                    let prefix = mask.iter().map(|b| b.count_ones()).sum::<u32>();
                    scope
                        .0
                        .push(Permit::Net(address, u8::try_from(prefix).ok()?));
                }
                // Names of other kinds (mail, URIs) say nothing of what a server may be.
                _ => {}
            }
        }
        Some(scope)
    }
}

impl FromIterator<Permit> for Scope {
    fn from_iter<I: IntoIterator<Item = Permit>>(permits: I) -> Self {
        let mut scope = Self::default();
        for permit in permits {
            scope.add(permit);
        }
        scope
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "no names");
        }
        let names: Vec<String> = self.0.iter().map(Permit::to_string).collect();
        write!(f, "{}", names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(entries: &[&str]) -> Scope {
        Scope::parse(entries.iter().copied()).unwrap()
    }

    #[test]
    fn a_domain_permits_itself_and_the_names_below_it_only() {
        let scope = scope(&["hosts.showroom.lan", "10.0.5.0/24", "127.0.0.1"]);
        assert!(scope.check("hosts.showroom.lan").is_ok());
        assert!(scope.check("gpu-1.hosts.showroom.lan").is_ok());
        assert!(scope.check("GPU-1.Hosts.Showroom.LAN").is_ok());
        assert!(scope.check("evilhosts.showroom.lan").is_err());
        assert!(scope.check("login.bank.example").is_err());
        assert!(scope.check("10.0.5.200").is_ok());
        assert!(scope.check("10.0.6.1").is_err());
        assert!(scope.check("127.0.0.1").is_ok());
        assert!(scope.check("127.0.0.2").is_err());
        assert!(matches!(
            scope.check("*.hosts.showroom.lan"),
            Err(ScopeError::Wildcard(_))
        ));
        assert!(scope.check("10.0.5.0/24").is_err(), "a block is not a name");
        let outside = scope.check("login.bank.example").unwrap_err().to_string();
        assert!(
            outside.contains("hosts.showroom.lan, 10.0.5.0/24, 127.0.0.1"),
            "{outside}"
        );
    }

    #[test]
    fn a_scope_contains_what_its_subtrees_cover() {
        let wide = scope(&["showroom.lan", "10.0.0.0/8", "::1"]);
        assert!(wide.contains(&scope(&["a.showroom.lan", "10.1.2.3", "::1"])));
        assert!(!wide.contains(&scope(&["showroom.example"])));
        assert!(!wide.contains(&scope(&["11.0.0.1"])));
        assert_eq!(
            wide.reaches_beyond(&scope(&["showroom.lan"])).to_string(),
            "10.0.0.0/8",
            "an address the machine no longer has does not count"
        );
        let mut merged = scope(&["a.showroom.lan"]);
        merged.add(Permit::parse("showroom.lan").unwrap());
        assert_eq!(merged, scope(&["showroom.lan"]), "the wider one stays");
    }

    #[test]
    fn unreadable_entries_are_refused() {
        for bad in [
            "",
            "a..b",
            "-a.lan",
            "10.0.0.0/33",
            "::1/129",
            "a b",
            "*.lan",
        ] {
            assert!(Permit::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            Permit::parse("10.0.5.77/24").unwrap(),
            Permit::Net("10.0.5.0".parse().unwrap(), 24)
        );
    }

    #[test]
    fn the_constraints_read_back_from_a_certificate() {
        let scope = scope(&["showroom.lan", "192.168.1.0/24", "::1"]);
        let mut params = rcgen::CertificateParams::default();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        params.name_constraints = Some(scope.constraints());
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).unwrap();
        assert_eq!(Scope::of_certificate(&parsed), Some(scope));
        let plain = rcgen::CertificateParams::default()
            .self_signed(&key)
            .unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(plain.der()).unwrap();
        assert_eq!(Scope::of_certificate(&parsed), None, "unconstrained");
    }
}
