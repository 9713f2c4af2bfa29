//! What every server process (master, chunkserver, mount) takes and does
//! at start: the flags for logs, config file and metrics (flattened into
//! each binary's own), then logging and the metrics listener.

use crate::logging::LogFormat;
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct CommonArgs {
    /// Log lines as plain text (colour only on a terminal) or one JSON
    /// object per line (text or json).
    #[arg(long, env = "TESSERA_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// A TOML file of settings, one per flag (`election-timeout-ms = 300`);
    /// the environment and the command line override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Serve Prometheus metrics over HTTP on this address (off if unset).
    #[arg(long, env = "TESSERA_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

impl CommonArgs {
    /// Starts logging (`default_filter` unless RUST_LOG says otherwise),
    /// logs the effective `settings` at debug level, and starts the
    /// metrics listener if asked for; a listener that cannot start ends
    /// the process with one line naming `program`.
    pub fn start(&self, program: &str, default_filter: &str, settings: &impl std::fmt::Debug) {
        crate::logging::init(default_filter, self.log_format);
        tracing::debug!(settings = ?settings, "effective settings");
        if let Some(addr) = self.metrics_listen {
            if let Err(e) = crate::metrics::serve(addr) {
                eprintln!("{program}: {e}");
                std::process::exit(1);
            }
            tracing::info!(listen = %addr, "metrics served");
        }
    }
}
