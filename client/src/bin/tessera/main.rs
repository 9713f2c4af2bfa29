//! `tessera`: the command-line client, and the launcher of a local cluster.
//! The servers are sibling binaries (`tessera-master`, `tessera-chunkserver`)
//! found next to this executable, git-style.

#[macro_use]
mod out;

mod admin;
mod bench;
mod cert;
mod cluster;
mod namespace;
mod transfer;
mod up;

use clap::{Parser, Subcommand};
use tessera_client::ClientConfig;

#[derive(Parser)]
#[command(name = "tessera", version, about = "Tessera distributed file system")]
struct Cli {
    /// Master addresses, comma separated (before the verb: `tessera --masters A,B ls /`).
    #[arg(long, env = "TESSERA_MASTERS", default_value = tessera_client::DEFAULT_MASTERS)]
    masters: String,
    /// Give up on an unreachable cluster after this many seconds.
    #[arg(long, global = true, default_value_t = 30)]
    timeout: u64,
    /// Sizes as exact byte counts (default: 4.0K, 512M, 1.5G).
    #[arg(short = 'b', long = "bytes", global = true)]
    bytes: bool,
    /// Let any master answer reads from its applied state: possibly behind
    /// the leader, but available without a quorum. Writes are unaffected.
    #[arg(long, global = true, env = "TESSERA_STALE_READS")]
    stale_reads: bool,
    #[command(flatten)]
    tls: tessera_rpc::tls::TlsArgs,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Start a local cluster (masters + chunkservers on 127.0.0.1) until Ctrl-C.
    Up(up::UpArgs),
    /// Upload files or directory trees.
    Put(transfer::PutArgs),
    /// Download a file or a directory tree.
    Get(transfer::GetArgs),
    /// Write a file's content to stdout.
    Cat { path: String },
    /// List a directory.
    Ls {
        path: Option<String>,
        #[arg(short = 'l')]
        long: bool,
        /// One JSON array of entries with their attributes.
        #[arg(long)]
        json: bool,
    },
    /// Show a file's attributes.
    Stat {
        path: String,
        /// The attributes as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Create a directory.
    Mkdir {
        path: String,
        #[arg(short = 'p')]
        parents: bool,
    },
    /// Remove a file (or, with -r, a directory tree).
    Rm {
        paths: Vec<String>,
        #[arg(short = 'r')]
        recursive: bool,
    },
    /// Rename or move a file or directory.
    Mv { from: String, to: String },
    /// Space used by a file or tree.
    Du {
        path: Option<String>,
        #[arg(short = 's')]
        summary: bool,
        /// One JSON object: the total and (without -s) each entry.
        #[arg(long)]
        json: bool,
    },
    /// Mount the file system (runs tessera-mount; see its --help for options).
    Mount {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// Per-file health: chunks and replicas found (non-zero exit if a file cannot be read).
    Fsck { path: Option<String> },
    /// Administration: chunkserver list, drain.
    Admin {
        #[command(subcommand)]
        cmd: admin::AdminCmd,
    },
    /// Benchmarks against the cluster (metadata operations per second).
    Bench {
        #[command(subcommand)]
        cmd: bench::BenchCmd,
    },
    /// Cluster state.
    Cluster {
        #[command(subcommand)]
        cmd: cluster::ClusterCmd,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Write man pages (tessera.1 and one per command) into DIR.
    Man { dir: std::path::PathBuf },
}

fn main() {
    // SIGPIPE stays ignored (Rust's default): see `out` for why, and for
    // how a reader of our stdout going away ends the process quietly.
    let cli = Cli::parse();
    let filter = std::env::var("TESSERA_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tessera: cannot start runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = rt.block_on(run(cli));
    std::process::exit(code);
}

async fn run(cli: Cli) -> i32 {
    let mut cfg = ClientConfig {
        masters: cli.masters.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
        ..Default::default()
    };
    out::set_exact_sizes(cli.bytes);
    cfg.meta.total_timeout = std::time::Duration::from_secs(cli.timeout);
    // A wrong or dead --masters (every connection refused, or the names do
    // not resolve, and no master ever answered) is an error in 3 s.
    cfg.meta.unreachable_after = Some(std::time::Duration::from_secs(3));
    cfg.meta.stale_reads = cli.stale_reads;
    // What talks to the cluster needs this process's identity; what starts
    // servers, makes certificates or prints help does not.
    let offline = matches!(
        cli.cmd,
        Cmd::Up(_)
            | Cmd::Mount { .. }
            | Cmd::Completions { .. }
            | Cmd::Man { .. }
            | Cmd::Admin { cmd: admin::AdminCmd::Cert { .. } }
    );
    if !offline {
        if let Err(e) = cli.tls.install(&[tessera_rpc::Role::Client, tessera_rpc::Role::Admin]) {
            eprintln!("tessera: {e}");
            return 1;
        }
    }
    let res: anyhow::Result<()> = match cli.cmd {
        Cmd::Up(a) => up::run(a).await,
        Cmd::Put(a) => transfer::put(&cfg, a).await,
        Cmd::Get(a) => transfer::get(&cfg, a).await,
        Cmd::Cat { path } => transfer::cat(&cfg, &path).await,
        Cmd::Ls { path, long, json } => namespace::ls(&cfg, path.as_deref().unwrap_or("/"), long, json).await,
        Cmd::Stat { path, json } => namespace::stat(&cfg, &path, json).await,
        Cmd::Mkdir { path, parents } => namespace::mkdir(&cfg, &path, parents).await,
        Cmd::Rm { paths, recursive } => namespace::rm(&cfg, &paths, recursive).await,
        Cmd::Mv { from, to } => namespace::mv(&cfg, &from, &to).await,
        Cmd::Du { path, summary, json } => namespace::du(&cfg, path.as_deref().unwrap_or("/"), summary, json).await,
        Cmd::Cluster { cmd } => cluster::run(&cfg, cmd).await,
        Cmd::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "tessera", &mut std::io::stdout());
            Ok(())
        }
        Cmd::Man { dir } => write_man_pages(&dir),
        Cmd::Bench { cmd } => bench::run(&cfg, cmd).await,
        Cmd::Fsck { path } => admin::fsck(&cfg, path.as_deref().unwrap_or("/")).await,
        Cmd::Admin { cmd } => admin::admin(&cfg, cmd).await,
        Cmd::Mount { args } => up::exec_mount(&cli.masters, &cli.tls, &args),
    };
    match res {
        Ok(()) => 0,
        Err(e) if out::is_reader_gone(&e) => out::reader_gone(),
        Err(e) => {
            // One line, the cause chain joined.
            eprintln!("tessera: {}", format!("{e:#}").replace('\n', " "));
            1
        }
    }
}

/// tessera.1, and tessera-VERB.1 for each command (tessera-admin-… for
/// nested ones), as clap_mangen renders them from the same definitions
/// as `--help`.
fn write_man_pages(dir: &std::path::Path) -> anyhow::Result<()> {
    fn render(cmd: clap::Command, name: String, dir: &std::path::Path, n: &mut usize) -> anyhow::Result<()> {
        let cmd = cmd.name(name.clone());
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
        let path = dir.join(format!("{name}.1"));
        std::fs::write(&path, page).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        *n += 1;
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            render(sub.clone(), format!("{name}-{}", sub.get_name()), dir, n)?;
        }
        Ok(())
    }
    std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
    let mut n = 0;
    render(<Cli as clap::CommandFactory>::command(), "tessera".into(), dir, &mut n)?;
    outln!("{n} man pages written to {}", dir.display());
    Ok(())
}
