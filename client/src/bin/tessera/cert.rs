//! `tessera admin cert ...`: the cluster CA and the certificates of the
//! processes and people that use the cluster. Nothing here connects to a
//! server: it works on files, with the CA's key, where the operator keeps it.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use tessera_rpc::certs::{Ca, Role, DEFAULT_DAYS};

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
    },
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
        CertCmd::Issue { role, name, ca, out, days } => {
            if out.join("key.pem").exists() {
                bail!("{} already holds an identity (key.pem): not replacing it", out.display());
            }
            let ca = Ca::load(&ca)?;
            ca.issue_into(role, &name, days, &out)?;
            outln!("{role} certificate for {name} in {} (valid {days} days)", out.display());
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
