//! The cluster's certificates: a CA that `tessera up` (or an operator)
//! creates once, and one certificate per process, naming the process
//! (subject CN) and its role (subject OU). The role is what the servers
//! authorise by (`authz`); the name is what they log and what a
//! chunkserver's id must match.
//!
//! A directory holding one identity has `ca.pem` (the cluster CA, the only
//! root its holder trusts), `cert.pem` and `key.pem` (mode 0600). The CA's
//! own directory has `ca.pem` and `ca.key`.

use crate::uid_map::UidMap;
use std::path::Path;
use std::time::Duration;

/// What a certificate allows its holder to do (see `authz` for the table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// A member of the Raft group.
    Master,
    /// Stores chunks; registers and heartbeats with the masters.
    Chunkserver,
    /// Uses the namespace and the data (a mount, the CLI, a batch job).
    Client,
    /// A client that may also change the cluster (masters, drains).
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Master, Role::Chunkserver, Role::Client, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Master => "master",
            Role::Chunkserver => "chunkserver",
            Role::Client => "client",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The DNS name a server of this role presents and its callers check:
    /// a process is reached by whatever address it advertises, so the
    /// check is of the role, not of a host name (a client certificate
    /// carries none, so it cannot pose as a server).
    pub fn server_name(self) -> Option<&'static str> {
        match self {
            Role::Master => Some("master.tessera"),
            Role::Chunkserver => Some("chunkserver.tessera"),
            Role::Client | Role::Admin => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who is at the other end of a connection, from its certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub role: Role,
    /// How far the masters believe the uid/gid its requests carry.
    pub uid_map: UidMap,
    /// The certificate's serial number, lowercase hex: what a revocation
    /// names (a name may be issued again; a serial is not).
    pub serial: String,
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{0}")]
    Invalid(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CertError + '_ {
    move |source| CertError::Io { path: path.display().to_string(), source }
}

/// A name a certificate may carry: what ids and host names are made of.
pub fn check_name(name: &str) -> Result<(), CertError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(CertError::Invalid(format!("certificate name {name:?}: 1-64 of A-Z a-z 0-9 - _ .")))
    }
}

/// The cluster CA: its certificate and signing key, in PEM.
pub struct Ca {
    pub cert_pem: String,
    key_pem: String,
}

const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 86_400);
/// Process certificates last a year by default; `admin cert issue --days`.
pub const DEFAULT_DAYS: u32 = 365;

fn validity(p: &mut rcgen::CertificateParams, life: Duration) {
    let now = time::OffsetDateTime::now_utc();
    // An hour back: a peer whose clock is a little behind still accepts it.
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + life;
}

impl Ca {
    /// A new CA (ECDSA P-256, ten years).
    pub fn generate(cluster: &str) -> Result<Ca, CertError> {
        let key = rcgen::KeyPair::generate()?;
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new())?;
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        p.distinguished_name.push(rcgen::DnType::CommonName, format!("Tessera CA {cluster}"));
        p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        validity(&mut p, CA_LIFETIME);
        let cert = p.self_signed(&key)?;
        Ok(Ca { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }

    /// Reads `ca.pem` and `ca.key` from `dir`.
    pub fn load(dir: &Path) -> Result<Ca, CertError> {
        let read = |f: &str| {
            let p = dir.join(f);
            std::fs::read_to_string(&p).map_err(io_err(&p))
        };
        Ok(Ca { cert_pem: read("ca.pem")?, key_pem: read("ca.key")? })
    }

    /// Writes `ca.pem` and `ca.key` (0600) into `dir`, each atomically.
    pub fn save(&self, dir: &Path) -> Result<(), CertError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        write_file(&dir.join("ca.key"), &self.key_pem, true)?;
        write_file(&dir.join("ca.pem"), &self.cert_pem, false)
    }

    /// A certificate for `name` in `role`, valid for `days`, written with
    /// its key and this CA's certificate into `dir`.
    pub fn issue_into(&self, role: Role, name: &str, days: u32, dir: &Path) -> Result<(), CertError> {
        self.issue_mapped_into(role, name, days, UidMap::Trusted, dir)
    }

    /// `issue_into`, with a uid map for the holder's credentials.
    pub fn issue_mapped_into(
        &self,
        role: Role,
        name: &str,
        days: u32,
        map: UidMap,
        dir: &Path,
    ) -> Result<(), CertError> {
        let (cert, key) = self.issue_mapped(role, name, days, map)?;
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        write_file(&dir.join("key.pem"), &key, true)?;
        write_file(&dir.join("cert.pem"), &cert, false)?;
        write_file(&dir.join("ca.pem"), &self.cert_pem, false)
    }

    /// A certificate and key (PEM) for `name` in `role`.
    pub fn issue(&self, role: Role, name: &str, days: u32) -> Result<(String, String), CertError> {
        self.issue_mapped(role, name, days, UidMap::Trusted)
    }

    /// `issue`, with a uid map (carried as a SAN URI).
    pub fn issue_mapped(&self, role: Role, name: &str, days: u32, map: UidMap) -> Result<(String, String), CertError> {
        check_name(name)?;
        let ca_key = rcgen::KeyPair::from_pem(&self.key_pem)?;
        let issuer = rcgen::Issuer::from_ca_cert_pem(&self.cert_pem, ca_key)?;
        let key = rcgen::KeyPair::generate()?;
        let sans: Vec<String> = role.server_name().map(|s| vec![s.to_string()]).unwrap_or_default();
        let mut p = rcgen::CertificateParams::new(sans)?;
        if let Some(uri) = map.to_uri() {
            let uri = rcgen::string::Ia5String::try_from(uri)?;
            p.subject_alt_names.push(rcgen::SanType::URI(uri));
        }
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.distinguished_name.push(rcgen::DnType::OrganizationalUnitName, role.as_str());
        p.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        // Servers are clients of each other too (Raft, forwards, repair).
        p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        if role.server_name().is_some() {
            p.extended_key_usages.push(rcgen::ExtendedKeyUsagePurpose::ServerAuth);
        }
        validity(&mut p, Duration::from_secs(u64::from(days.max(1)) * 86_400));
        let cert = p.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

fn write_file(path: &Path, text: &str, secret: bool) -> Result<(), CertError> {
    let mode = if secret { 0o600 } else { 0o644 };
    tessera_util::durable::write_atomic_mode(path, text.as_bytes(), mode).map_err(io_err(path))
}

/// The identity a (chain-verified) certificate names: CN and OU.
pub fn identity_of(der: &[u8]) -> Result<Identity, CertError> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(der)
        .map_err(|e| CertError::Invalid(format!("unreadable certificate: {e}")))?;
    let subject = cert.subject();
    let one = |it: &mut dyn Iterator<Item = &x509_parser::x509::AttributeTypeAndValue>, what: &str| {
        let v = it.next().and_then(|a| a.as_str().ok()).map(str::to_string);
        v.ok_or_else(|| CertError::Invalid(format!("certificate has no {what}")))
    };
    let name = one(&mut subject.iter_common_name(), "common name")?;
    let role = one(&mut subject.iter_organizational_unit(), "role (OU)")?;
    let role = Role::parse(&role).ok_or_else(|| CertError::Invalid(format!("unknown role {role:?}")))?;
    check_name(&name)?;
    let serial = hex::encode(cert.raw_serial());
    Ok(Identity { name, role, uid_map: uid_map_of(&cert)?, serial })
}

/// The identity in a PEM certificate file (`cert.pem`, or a directory
/// holding one): for `tessera admin revoke`.
pub fn identity_of_pem_file(path: &Path) -> Result<Identity, CertError> {
    let file = if path.is_dir() { path.join("cert.pem") } else { path.to_path_buf() };
    let der = rustls::pki_types::pem::PemObject::from_pem_file(&file);
    let der: rustls::pki_types::CertificateDer =
        der.map_err(|e| CertError::Invalid(format!("{}: {e}", file.display())))?;
    identity_of(&der)
}

/// The uid map a certificate carries (Trusted without one); more than one,
/// or one that cannot be read, refuses the certificate.
fn uid_map_of(cert: &x509_parser::certificate::X509Certificate) -> Result<UidMap, CertError> {
    use x509_parser::extensions::GeneralName;
    let san = cert.subject_alternative_name().map_err(|e| CertError::Invalid(format!("unreadable SAN: {e}")))?;
    let mut found = None;
    for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
        let GeneralName::URI(uri) = name else { continue };
        let Some(map) = UidMap::from_uri(uri) else { continue };
        let map = map.map_err(CertError::Invalid)?;
        if found.replace(map).is_some() {
            return Err(CertError::Invalid("certificate carries two uid maps".into()));
        }
    }
    Ok(found.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_issued_certificate_names_its_holder_and_role() {
        let ca = Ca::generate("t").unwrap();
        for role in Role::ALL {
            let (cert, _) = ca.issue(role, "cs-7", 1).unwrap();
            let der = rustls::pki_types::pem::PemObject::from_pem_slice(cert.as_bytes());
            let der: rustls::pki_types::CertificateDer = der.unwrap();
            let id = identity_of(&der).unwrap();
            assert_eq!((id.name.as_str(), id.role, id.uid_map), ("cs-7", role, UidMap::Trusted));
            assert!(id.serial.len() >= 2 && id.serial.bytes().all(|b| b.is_ascii_hexdigit()), "{}", id.serial);
        }
    }

    #[test]
    fn a_certificate_carries_its_uid_map() {
        let ca = Ca::generate("t").unwrap();
        for map in [UidMap::SquashRoot, UidMap::Fixed { uid: 5, gid: 6 }, UidMap::Range { lo: 1, hi: 9 }] {
            let (cert, _) = ca.issue_mapped(Role::Client, "host-a", 1, map).unwrap();
            let der = rustls::pki_types::pem::PemObject::from_pem_slice(cert.as_bytes());
            let der: rustls::pki_types::CertificateDer = der.unwrap();
            assert_eq!(identity_of(&der).unwrap().uid_map, map);
        }
    }

    #[test]
    fn names_are_checked() {
        let ca = Ca::generate("t").unwrap();
        assert!(ca.issue(Role::Client, "a b", 1).is_err());
        assert!(ca.issue(Role::Client, "", 1).is_err());
        assert!(ca.issue(Role::Client, &"x".repeat(65), 1).is_err());
        assert!(ca.issue(Role::Client, "host-1.example_a", 1).is_ok());
    }

    #[test]
    fn a_ca_survives_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::generate("t").unwrap();
        ca.save(dir.path()).unwrap();
        let back = Ca::load(dir.path()).unwrap();
        assert_eq!(back.cert_pem, ca.cert_pem);
        back.issue_into(Role::Admin, "ops", 1, &dir.path().join("ops")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ops/key.pem")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
