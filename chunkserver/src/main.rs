use clap::Parser;
use std::time::Duration;

/// Tessera chunkserver: stores content-addressed chunks.
#[derive(Parser, Debug)]
#[command(name = "tessera-chunkserver", version, args_override_self = true)]
struct Args {
    /// Stable identity of this chunkserver (its place on the ring).
    #[arg(long)]
    id: String,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7410")]
    listen: std::net::SocketAddr,
    /// Address advertised to the master and peers (default: --listen).
    #[arg(long)]
    advertise: Option<String>,
    /// Directory holding the chunk files.
    #[arg(long)]
    data_dir: std::path::PathBuf,
    /// Master addresses, comma separated.
    #[arg(
        long,
        env = "TESSERA_MASTERS",
        default_value = "127.0.0.1:7400,127.0.0.1:7401,127.0.0.1:7402",
        value_delimiter = ','
    )]
    masters: Vec<String>,
    /// Failure domain (zone or rack) for replica spreading.
    #[arg(long, default_value = "")]
    zone: String,
    /// Refuse writes when free disk space would fall below this many bytes.
    #[arg(long, default_value_t = 256 << 20)]
    reserve_bytes: u64,
    /// Bandwidth for repair copies sent from this server, MB/s (0 = no
    /// byte budget: the masters' --copies-per-server bounds repair).
    #[arg(long, default_value_t = 0)]
    repair_mbps: u64,
    /// Scrub (background re-hash) rate in MB/s (0 = off).
    #[arg(long, default_value_t = 20)]
    scrub_mbps: u64,
    /// Seconds between scrub passes.
    #[arg(long, default_value_t = 3600)]
    scrub_pause_s: u64,
    /// Heartbeat interval in milliseconds.
    #[arg(long, default_value_t = 1000)]
    heartbeat_ms: u64,
    /// Chunk ids per page of a full chunk report (a report of millions of
    /// chunks goes in pages, each well under the message limit).
    #[arg(long, default_value_t = tessera_proto::REPORT_PAGE_IDS)]
    report_page_ids: usize,
    /// How often small chunks acknowledged through the journal are written
    /// out as chunk files, in milliseconds (sooner when 16 MiB accumulate).
    #[arg(long, default_value_t = 500)]
    journal_checkpoint_ms: u64,
    #[command(flatten)]
    common: tessera_util::process::CommonArgs,
    #[command(flatten)]
    tls: tessera_rpc::tls::TlsArgs,
}

#[tokio::main]
async fn main() {
    let a: Args = tessera_util::config::parse();
    a.common.start("tessera-chunkserver", "info", &a);
    if let Err(e) = a.tls.install(&[tessera_rpc::Role::Chunkserver]) {
        eprintln!("tessera-chunkserver: {e}");
        std::process::exit(2);
    }
    // The masters take a chunkserver's id from its certificate's name.
    if let Ok(tessera_rpc::tls::Security::Tls(t)) = tessera_rpc::tls::security() {
        if t.me.name != a.id {
            eprintln!("tessera-chunkserver: --id {} but the certificate is for {:?}", a.id, t.me.name);
            std::process::exit(2);
        }
    }
    let cfg = tessera_chunkserver::Config {
        advertise: a.advertise.unwrap_or_else(|| a.listen.to_string()),
        id: a.id,
        listen: a.listen,
        data_dir: a.data_dir,
        masters: a.masters,
        zone: a.zone,
        reserve_bytes: a.reserve_bytes,
        heartbeat: Duration::from_millis(a.heartbeat_ms),
        report_page_ids: a.report_page_ids.max(1),
        repair_rate: a.repair_mbps * 1_000_000,
        scrub_rate: a.scrub_mbps * 1_000_000,
        scrub_pause: Duration::from_secs(a.scrub_pause_s),
        journal_checkpoint: Duration::from_millis(a.journal_checkpoint_ms.max(1)),
    };
    if let Err(e) = tessera_chunkserver::run(cfg).await {
        eprintln!("tessera-chunkserver: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    /// Every flag can come from `--config FILE` (deploy/ has an example).
    #[test]
    fn every_flag_can_be_set_in_a_config_file() {
        use tessera_util::config::{assert_every_flag_settable, SAMPLE_VALUES};
        assert_every_flag_settable::<super::Args>(&[], SAMPLE_VALUES);
    }
}
