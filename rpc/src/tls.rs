//! Transport security for every connection a process makes or accepts:
//! TLS 1.3 with both sides authenticated by the cluster CA (mutual TLS),
//! or, only when asked for explicitly, plaintext (`--insecure`).
//!
//! A process has one identity for its life (`install`, from its
//! `--tls-dir`); the channel pool and the servers' listeners read it here.
//! A library user that installs nothing gets the identity the environment
//! names (`TESSERA_TLS_DIR`, or `TESSERA_INSECURE=1`), else every
//! connection fails with a clear error: never plaintext by accident.

use crate::certs::{identity_of, CertError, Identity, Role};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// How this process's connections are secured.
pub enum Security {
    /// Plaintext, every caller trusted: only with an explicit `--insecure`.
    Insecure,
    Tls(Arc<Tls>),
}

/// A process's TLS identity and the configurations built from it.
pub struct Tls {
    /// Who this process is (from its own certificate).
    pub me: Identity,
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
}

static SECURITY: OnceLock<Result<Security, String>> = OnceLock::new();

/// Sets this process's security; the first call wins (later ones are
/// ignored: one process, one identity). Call before any connection.
pub fn install(s: Security) {
    let _ = SECURITY.set(Ok(s));
}

/// This process's security: what was installed, else what the environment
/// names, else an error naming what to set.
pub fn security() -> Result<&'static Security, String> {
    SECURITY.get_or_init(from_env).as_ref().map_err(Clone::clone)
}

fn from_env() -> Result<Security, String> {
    if let Some(dir) = std::env::var_os("TESSERA_TLS_DIR").filter(|d| !d.is_empty()) {
        return Tls::load(Path::new(&dir)).map(|t| Security::Tls(Arc::new(t))).map_err(|e| e.to_string());
    }
    if std::env::var("TESSERA_INSECURE").is_ok_and(|v| v == "1" || v == "true") {
        return Ok(Security::Insecure);
    }
    Err(NO_IDENTITY.into())
}

const NO_IDENTITY: &str = "no TLS identity: give --tls-dir DIR (or TESSERA_TLS_DIR) holding ca.pem, cert.pem \
                           and key.pem, or --insecure (TESSERA_INSECURE=1) for plaintext";

fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_file_iter(path)
        .map_err(|e| CertError::Invalid(format!("{}: {e}", path.display())))?
        .collect();
    let certs = certs.map_err(|e| CertError::Invalid(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(CertError::Invalid(format!("{}: no certificate in it", path.display())));
    }
    Ok(certs)
}

fn tls_err(what: &str) -> impl FnOnce(rustls::Error) -> CertError + '_ {
    move |e| CertError::Invalid(format!("{what}: {e}"))
}

impl Tls {
    /// Loads `ca.pem`, `cert.pem` and `key.pem` from `dir`.
    pub fn load(dir: &Path) -> Result<Tls, CertError> {
        let ca = read_pem_certs(&dir.join("ca.pem"))?;
        let chain = read_pem_certs(&dir.join("cert.pem"))?;
        let key_path = dir.join("key.pem");
        let key = PrivateKeyDer::from_pem_file(&key_path)
            .map_err(|e| CertError::Invalid(format!("{}: {e}", key_path.display())))?;
        let me = identity_of(&chain[0])?;
        let mut roots = rustls::RootCertStore::empty();
        for c in ca {
            roots.add(c).map_err(tls_err("ca.pem"))?;
        }
        let roots = Arc::new(roots);
        // ring: no C toolchain beyond what the build has (aws-lc-rs wants
        // cmake); its lack of post-quantum key exchange is what rustls
        // deprecates it for, acceptable inside a cluster for now.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls13: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
        let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(tls13)
            .map_err(tls_err("client config"))?
            .with_root_certificates(roots.clone())
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .map_err(tls_err("cert.pem/key.pem"))?;
        client.alpn_protocols = vec![b"h2".to_vec()];
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| CertError::Invalid(format!("ca.pem: {e}")))?;
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(tls13)
            .map_err(tls_err("server config"))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .map_err(tls_err("cert.pem/key.pem"))?;
        server.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Tls { me, client: Arc::new(client), server: Arc::new(server) })
    }

    pub(crate) fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server.clone())
    }

    pub(crate) fn connector(&self) -> tokio_rustls::TlsConnector {
        tokio_rustls::TlsConnector::from(self.client.clone())
    }
}

/// The name a connection to a server of `role` checks its certificate
/// against.
pub(crate) fn server_name(role: Role) -> ServerName<'static> {
    let name = role.server_name().unwrap_or("master.tessera");
    ServerName::try_from(name).expect("a fixed, valid DNS name")
}

/// The security flags every Tessera binary takes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Directory holding this process's TLS identity: ca.pem (the cluster
    /// CA), cert.pem and key.pem (`tessera admin cert issue` makes one;
    /// `tessera up` makes every one it needs).
    #[arg(long, env = "TESSERA_TLS_DIR", global = true)]
    pub tls_dir: Option<PathBuf>,
    /// Plaintext, no authentication: anyone who reaches a port may do
    /// anything. For a sealed test network only; logged loudly.
    #[arg(long, env = "TESSERA_INSECURE", global = true, value_parser = clap::builder::BoolishValueParser::new())]
    pub insecure: bool,
}

impl TlsArgs {
    /// Installs the process's security from the flags, checking that its
    /// certificate has one of the `roles` this program runs as. The
    /// error is one line for the caller to print.
    pub fn install(&self, roles: &[Role]) -> Result<(), String> {
        let sec = match (&self.tls_dir, self.insecure) {
            (Some(_), true) => return Err("--tls-dir and --insecure (or their variables): give one".into()),
            (None, true) => {
                tracing::warn!("INSECURE: plaintext connections, no peer authentication (--insecure)");
                Security::Insecure
            }
            (Some(dir), false) => {
                let tls = Tls::load(dir).map_err(|e| format!("--tls-dir {}: {e}", dir.display()))?;
                if !roles.contains(&tls.me.role) {
                    let want: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
                    return Err(format!(
                        "--tls-dir {}: the certificate of {:?} is for role {}, this program needs {}",
                        dir.display(),
                        tls.me.name,
                        tls.me.role,
                        want.join(" or ")
                    ));
                }
                tracing::info!(name = %tls.me.name, role = %tls.me.role, credentials = %tls.me.uid_map, "TLS identity");
                Security::Tls(Arc::new(tls))
            }
            (None, false) => return Err(NO_IDENTITY.into()),
        };
        install(sec);
        Ok(())
    }
}

/// How the masters read this process's credentials (its certificate's uid
/// map; Trusted without TLS): a mount applies it to its own checks, so
/// that what it grants locally is what the masters will accept.
pub fn own_uid_map() -> crate::uid_map::UidMap {
    match security() {
        Ok(Security::Tls(t)) => t.me.uid_map,
        _ => Default::default(),
    }
}

/// Whether this process runs without TLS (for `cluster status`).
pub fn insecure() -> bool {
    matches!(security(), Ok(Security::Insecure))
}
