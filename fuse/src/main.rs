use clap::Parser;
use std::time::Duration;

/// Mount a Tessera cluster as a local file system.
#[derive(Parser, Debug)]
#[command(name = "tessera-mount", version, args_override_self = true)]
struct Args {
    /// Directory to mount on.
    mountpoint: std::path::PathBuf,
    /// Master addresses, comma separated.
    #[arg(long, env = "TESSERA_MASTERS", default_value = tessera_client::DEFAULT_MASTERS)]
    masters: String,
    /// Chunk cache size in MiB.
    #[arg(long, default_value_t = 512)]
    cache_mb: u64,
    /// How long a call waits for a master before failing with EIO (seconds).
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// How long any request may wait on the cluster (no master quorum, too
    /// few chunkservers, a stalled server) before it fails with EIO, in
    /// seconds, like an NFS `soft` mount; 0 waits forever, like `hard`. A
    /// waiting process can always be interrupted (Ctrl-C, kill).
    #[arg(long, default_value_t = 60)]
    io_timeout: u64,
    /// Kernel attribute cache lifetime in milliseconds.
    #[arg(long, default_value_t = 1000)]
    attr_ttl_ms: u64,
    /// Chunk size for data written through the mount.
    #[arg(long, default_value_t = tessera_proto::DEFAULT_CHUNK_SIZE)]
    chunk_size: usize,
    /// FUSE worker threads.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Let other users access the mount (always on when mounted by root,
    /// as a system file system; otherwise needs user_allow_other).
    #[arg(long)]
    allow_other: bool,
    /// Detach and run in the background.
    #[arg(long)]
    daemon: bool,
    /// Let any master answer lookups and attribute reads from its applied
    /// state: available without a quorum, but may lag the leader (weaker
    /// than close-to-open across mounts). Writes are unaffected.
    #[arg(long)]
    stale_reads: bool,
    /// Acknowledge every unlink at once and send it to the masters behind,
    /// pipelined (like CephFS's asynchronous unlink). By default that is
    /// done only in directories no other mount has cached, where the
    /// masters recall it before another mount looks; with this flag also
    /// elsewhere, where other mounts see the unlink a few milliseconds
    /// after it returned (not at their next call). Either way an unlink
    /// not yet sent is lost if this process is killed (as a local file
    /// system's is without fsync); fsync of the directory waits for it.
    #[arg(long)]
    unlink_behind: bool,
    /// Each unlink waits for its commit (overrides --unlink-behind).
    #[arg(long)]
    sync_unlink: bool,
    /// Send each create to the master before returning from it, instead of
    /// acknowledging it at once (with an inode number leased from the
    /// masters) and sending it with the file's first commit (see
    /// docs/architecture.md: other mounts see the name at the close, the
    /// fsync or within an attribute lifetime, whichever comes first).
    #[arg(long)]
    sync_create: bool,
    /// How often (seconds) to tell the masters that files unlinked while
    /// open here are still open; keep it well under their
    /// --orphan-file-max-age-s.
    #[arg(long, default_value_t = 600)]
    orphan_renew_s: u64,
    /// Seconds uploaded chunks of a file left open wait for their commit;
    /// keep it well under the masters' --gc-grace-s.
    #[arg(long, default_value_t = 60)]
    commit_idle_s: u64,
    /// Kernel read-ahead of the mount in KiB (set through
    /// /sys/class/bdi, needs root; 0 leaves the kernel's 128).
    #[arg(long, default_value_t = 4096)]
    read_ahead_kb: u32,
    #[command(flatten)]
    common: tessera_util::process::CommonArgs,
    #[command(flatten)]
    tls: tessera_rpc::tls::TlsArgs,
}

fn main() {
    let a: Args = tessera_util::config::parse();
    // Before daemonising, so that a bad identity is reported where the
    // mount was started.
    if let Err(e) = a.tls.install(&[tessera_rpc::Role::Client, tessera_rpc::Role::Admin]) {
        eprintln!("tessera-mount: {e}");
        std::process::exit(2);
    }
    if a.daemon {
        // SAFETY: fork before any thread exists; the parent exits at once.
        match unsafe { libc::fork() } {
            -1 => {
                eprintln!("tessera-mount: fork failed: {}", std::io::Error::last_os_error());
                std::process::exit(1);
            }
            0 => unsafe {
                libc::setsid();
            },
            _ => std::process::exit(0),
        }
    }
    a.common.start("tessera-mount", "info", &a);
    let mut client = tessera_client::ClientConfig {
        masters: a.masters.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
        cache_bytes: a.cache_mb << 20,
        chunk_size: a.chunk_size.clamp(4096, tessera_proto::MAX_CHUNK_SIZE as usize),
        ..Default::default()
    };
    // A master call gives up within the I/O timeout (or, with none, keeps
    // trying as an NFS hard mount does).
    client.meta.total_timeout = match a.io_timeout {
        0 => Duration::from_secs(365 * 86_400),
        io => Duration::from_secs(a.timeout.min(io)),
    };
    client.meta.stale_reads = a.stale_reads;
    let cfg = tessera_fuse::MountConfig {
        client,
        mountpoint: a.mountpoint,
        ttl: Duration::from_millis(a.attr_ttl_ms),
        threads: a.threads,
        write_behind_unlink: match (a.sync_unlink, a.unlink_behind) {
            (true, _) => tessera_fuse::UnlinkBehind::Never,
            (false, true) => tessera_fuse::UnlinkBehind::Always,
            (false, false) => tessera_fuse::UnlinkBehind::Exclusive,
        },
        write_behind_create: !a.sync_create,
        orphan_renew: Duration::from_secs(a.orphan_renew_s),
        commit_idle: Duration::from_secs(a.commit_idle_s),
        read_ahead_kb: a.read_ahead_kb,
        io_timeout: (a.io_timeout > 0).then(|| Duration::from_secs(a.io_timeout)),
        // SAFETY: geteuid has no preconditions.
        allow_other: a.allow_other || unsafe { libc::geteuid() } == 0,
    };
    if let Err(e) = tessera_fuse::mount(cfg) {
        eprintln!("tessera-mount: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    /// Every flag can come from `--config FILE` (deploy/ has an example).
    #[test]
    fn every_flag_can_be_set_in_a_config_file() {
        use tessera_util::config::{assert_every_flag_settable, SAMPLE_VALUES};
        assert_every_flag_settable::<super::Args>(&["/mnt/tessera"], SAMPLE_VALUES);
    }
}
