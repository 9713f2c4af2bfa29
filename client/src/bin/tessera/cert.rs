//! `tessera admin cert ...`: the cluster CA and the certificates of the
//! processes and people that use the cluster. Nothing here connects to a
//! server: it works on files, with the CA's key, where the operator keeps it.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use tessera_rpc::certs::{Ca, Role, DEFAULT_DAYS};
use tessera_rpc::uid_map::UidMap;

#[derive(clap::Subcommand)]
pub enum CertCmd {
    /// Create a cluster CA (ca.pem, and ca.key: keep it safe) in DIR.
    Ca {
        #[arg(long)]
        dir: PathBuf,
        /// A name for the cluster, in the CA's subject.
        #[arg(long, default_value = "tessera")]
        cluster: String,
    },
    /// Issue a certificate for NAME in a role, signed by the CA in --ca,
    /// into --out (ca.pem, cert.pem, key.pem: what --tls-dir wants). A
    /// chunkserver's NAME is its --id.
    Issue {
        /// master, chunkserver, client or admin.
        #[arg(long, value_parser = parse_role)]
        role: Role,
        name: String,
        /// The CA's directory (ca.pem and ca.key).
        #[arg(long)]
        ca: PathBuf,
        /// Where to write the identity (created; must not hold one yet).
        #[arg(long)]
        out: PathBuf,
        /// Days the certificate is valid.
        #[arg(long, default_value_t = DEFAULT_DAYS)]
        days: u32,
        #[command(flatten)]
        map: MapArgs,
    },
}

/// How far the masters believe the uid/gid/groups this certificate's
/// requests carry. Without any of these, fully (a mount's host
/// certificate: the kernel on that host checks its users).
#[derive(clap::Args)]
#[group(multiple = false)]
pub struct MapArgs {
    /// Requests asking as uid 0 (gid 0) act as nobody (nogroup), like
    /// NFS's root_squash.
    #[arg(long)]
    squash_root: bool,
    /// Every request acts as this uid:gid, whatever it says (all_squash).
    #[arg(long, value_name = "UID:GID")]
    fixed: Option<String>,
    /// Only uids and gids in LO-HI are believed; others act as nobody.
    #[arg(long, value_name = "LO-HI")]
    uid_range: Option<String>,
}

impl MapArgs {
    fn map(&self) -> Result<UidMap> {
        let spec = match (&self.fixed, &self.uid_range) {
            _ if self.squash_root => "squash-root".to_string(),
            (Some(f), _) => format!("fixed:{f}"),
            (_, Some(r)) => format!("range:{r}"),
            (None, None) => return Ok(UidMap::Trusted),
        };
        UidMap::parse(&spec).with_context(|| format!("bad uid map {spec:?} (--fixed UID:GID, --uid-range LO-HI)"))
    }
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("{s:?}: one of master, chunkserver, client, admin"))
}

pub fn run(cmd: CertCmd) -> Result<()> {
    match cmd {
        CertCmd::Ca { dir, cluster } => {
            if dir.join("ca.key").exists() {
                bail!("{} already holds a CA (ca.key): not replacing it", dir.display());
            }
            Ca::generate(&cluster)?.save(&dir)?;
            outln!("CA created in {} (ca.key is its signing key: keep it off the servers)", dir.display());
        }
        CertCmd::Issue { role, name, ca, out, days, map } => {
            let map = map.map()?;
            if out.join("key.pem").exists() {
                bail!("{} already holds an identity (key.pem): not replacing it", out.display());
            }
            let ca = Ca::load(&ca)?;
            ca.issue_mapped_into(role, &name, days, map, &out)?;
            outln!("{role} certificate for {name} in {} (valid {days} days, credentials {map})", out.display());
        }
    }
    Ok(())
}

/// For `tessera up`: the CA under `tls` (made on first start), and an
/// identity for `name` in `role` under `tls/name` (made if missing).
/// Returns the identity's directory.
pub fn ensure(tls: &Path, role: Role, name: &str) -> Result<PathBuf> {
    let ca_dir = tls.join("ca");
    if !ca_dir.join("ca.key").exists() {
        Ca::generate("local")?.save(&ca_dir).context("creating the cluster CA")?;
    }
    let dir = tls.join(name);
    if !dir.join("key.pem").exists() {
        Ca::load(&ca_dir)?.issue_into(role, name, DEFAULT_DAYS, &dir)?;
    }
    Ok(dir)
}
