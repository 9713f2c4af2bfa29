//! `tessera up`: a whole cluster on 127.0.0.1, each server a child process
//! with its own data directory on its command line.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct UpArgs {
    /// Directory for all data and logs.
    #[arg(long)]
    dir: PathBuf,
    /// Number of masters (1, 3 or 5).
    #[arg(long, default_value_t = 3)]
    masters: usize,
    /// Number of chunkservers.
    #[arg(long, default_value_t = 3)]
    chunkservers: usize,
    /// Also mount the file system at this directory.
    #[arg(long)]
    mount: Option<PathBuf>,
    /// First master port; chunkservers start at this + 10, the masters'
    /// Raft listeners at this + 160.
    #[arg(long, default_value_t = 7400)]
    base_port: u16,
    /// Serve no Prometheus metrics (for measuring what they cost:
    /// bench/metrics_ab.sh).
    #[arg(long)]
    no_metrics: bool,
    /// Plaintext, no authentication (default: mutual TLS, with a CA and
    /// a certificate per process made under DIR/tls on first start).
    #[arg(long)]
    insecure: bool,
}

/// The security flags of the process `name` in `role`: its identity
/// (made under `dir/tls` if missing), or `--insecure`.
fn security_args(a: &UpArgs, dir: &Path, role: tessera_rpc::Role, name: &str) -> Result<Vec<String>> {
    if a.insecure {
        return Ok(vec!["--insecure".into()]);
    }
    let id = crate::cert::ensure(&dir.join("tls"), role, name)?;
    Ok(vec!["--tls-dir".into(), id.display().to_string()])
}

/// The sibling binary `name` next to the running `tessera`.
pub fn sibling(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the tessera executable")?;
    let p = exe.parent().map(|d| d.join(name)).unwrap_or_else(|| PathBuf::from(name));
    if !p.exists() {
        bail!("{} not found next to {} (build the whole workspace)", p.display(), exe.display());
    }
    Ok(p)
}

/// A shell line that starts `bin` with `args` as `tessera up` did, its
/// output appended to `log` (for restarting one server by hand).
fn command_line(bin: &Path, args: &[String], log: &Path) -> String {
    let q = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let mut line = q(&bin.display().to_string());
    for a in args {
        line.push(' ');
        line.push_str(&q(a));
    }
    format!("{line} >>{} 2>&1 &", q(&log.display().to_string()))
}

/// How a child ended, in words: "exit status 1", "killed by signal 9 (SIGKILL)".
fn describe_exit(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => {
            let name = match sig {
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGTERM => " (SIGTERM)",
                libc::SIGINT => " (SIGINT)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGABRT => " (SIGABRT)",
                _ => "",
            };
            format!("killed by signal {sig}{name}")
        }
        _ => "ended".into(),
    }
}

fn spawn(bin: &Path, args: &[String], log: &Path, commands: &mut String) -> Result<Child> {
    commands.push_str(&command_line(bin, args, log));
    commands.push('\n');
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("{}", log.display()))?;
    let err = out.try_clone()?;
    Command::new(bin)
        .args(args)
        // Each server gets its identity (or --insecure) on its command
        // line; the caller's own TESSERA_TLS_DIR / TESSERA_INSECURE would
        // contradict it.
        .env_remove("TESSERA_TLS_DIR")
        .env_remove("TESSERA_INSECURE")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}

pub async fn run(a: UpArgs) -> Result<()> {
    if a.masters == 0 || a.chunkservers == 0 {
        bail!("need at least one master and one chunkserver");
    }
    std::fs::create_dir_all(a.dir.join("logs"))?;
    let dir = std::fs::canonicalize(&a.dir)?;
    let master_bin = sibling("tessera-master")?;
    let cs_bin = sibling("tessera-chunkserver")?;
    let maddrs: Vec<String> = (0..a.masters).map(|i| format!("127.0.0.1:{}", a.base_port + i as u16)).collect();
    // Each master serves Raft on a port of its own (masters only).
    let raft_addrs: Vec<String> =
        (0..a.masters).map(|i| format!("127.0.0.1:{}", metrics_port(a.base_port, 160 + i))).collect();
    let peers = maddrs
        .iter()
        .zip(&raft_addrs)
        .enumerate()
        .map(|(i, (m, r))| format!("{}={m}/{r}", i + 1))
        .collect::<Vec<_>>()
        .join(",");
    let mut children: Vec<(String, Child)> = Vec::new();
    let mut commands = String::from("# How `tessera up` started each server; to restart one, run its line.\n");
    for (i, addr) in maddrs.iter().enumerate() {
        let name = format!("master-{}", i + 1);
        let args = vec![
            "--id".into(),
            (i + 1).to_string(),
            "--listen".into(),
            addr.clone(),
            "--raft-listen".into(),
            raft_addrs[i].clone(),
            "--peers".into(),
            peers.clone(),
            "--data-dir".into(),
            dir.join(&name).display().to_string(),
            "--metrics-listen".into(),
            format!("127.0.0.1:{}", metrics_port(a.base_port, 100 + i)),
            "--console-listen".into(),
            format!("127.0.0.1:{}", metrics_port(a.base_port, 140 + i)),
        ];
        let mut args = without_metrics(args, a.no_metrics);
        args.extend(security_args(&a, &dir, tessera_rpc::Role::Master, &name)?);
        children.push((
            name.clone(),
            spawn(&master_bin, &args, &dir.join("logs").join(format!("{name}.log")), &mut commands)?,
        ));
        outln!("master {} at {addr} (Raft at {})", i + 1, raft_addrs[i]);
    }
    for j in 0..a.chunkservers {
        let name = format!("chunkserver-{}", j + 1);
        let addr = format!("127.0.0.1:{}", a.base_port + 10 + j as u16);
        let id = format!("cs-{}", j + 1);
        let args = vec![
            "--id".into(),
            id.clone(),
            "--listen".into(),
            addr.clone(),
            "--masters".into(),
            maddrs.join(","),
            "--data-dir".into(),
            dir.join(&name).display().to_string(),
            "--metrics-listen".into(),
            format!("127.0.0.1:{}", metrics_port(a.base_port, 120 + j)),
        ];
        let mut args = without_metrics(args, a.no_metrics);
        args.extend(security_args(&a, &dir, tessera_rpc::Role::Chunkserver, &id)?);
        children
            .push((name.clone(), spawn(&cs_bin, &args, &dir.join("logs").join(format!("{name}.log")), &mut commands)?));
        outln!("chunkserver cs-{} at {addr}", j + 1);
    }
    if let Some(mnt) = &a.mount {
        std::fs::create_dir_all(mnt)?;
        let bin = sibling("tessera-mount")?;
        let args = vec![
            "--masters".into(),
            maddrs.join(","),
            "--metrics-listen".into(),
            format!("127.0.0.1:{}", metrics_port(a.base_port, 119)),
        ];
        let mut args = without_metrics(args, a.no_metrics);
        args.extend(security_args(&a, &dir, tessera_rpc::Role::Client, "mount")?);
        args.push(mnt.display().to_string());
        children.push(("mount".into(), spawn(&bin, &args, &dir.join("logs").join("mount.log"), &mut commands)?));
        outln!("mounting at {}", mnt.display());
    }
    let commands_file = dir.join("commands.sh");
    // Atomically: whoever reads it (an operator, a test) sees all of it or none.
    tessera_util::durable::write_atomic(&commands_file, commands.as_bytes())
        .with_context(|| format!("{}", commands_file.display()))?;
    outln!("logs in {}; TESSERA_MASTERS={}", dir.join("logs").display(), maddrs.join(","));
    if a.insecure {
        outln!("INSECURE: plaintext, no authentication (--insecure)");
    } else {
        let admin = security_args(&a, &dir, tessera_rpc::Role::Admin, "admin")?;
        outln!("mutual TLS; for the CLI: export TESSERA_TLS_DIR={}", admin[1]);
    }
    outln!(
        "Prometheus metrics at http://127.0.0.1:{}/metrics (masters from there up; chunkservers from {}; the mount {})",
        metrics_port(a.base_port, 100),
        metrics_port(a.base_port, 120),
        metrics_port(a.base_port, 119)
    );
    outln!(
        "web console at http://127.0.0.1:{}/ (master 1; master i at {} + i - 1)",
        metrics_port(a.base_port, 140),
        metrics_port(a.base_port, 140)
    );
    outln!("command lines in {} (to restart one server)", commands_file.display());
    outln!("press Ctrl-C to stop");
    supervise(&mut children).await;
    outln!("stopping");
    // The mount first (it flushes and unmounts), then chunkservers, then masters.
    for (name, c) in children.iter_mut().rev() {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match c.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
                _ => {
                    eprintln!("{name} did not stop; killing it");
                    let _ = c.kill();
                    let _ = c.wait();
                    break;
                }
            }
        }
    }
    if let Some(mnt) = &a.mount {
        // A mount that died (or was killed above) leaves its mount point
        // dead ("transport endpoint is not connected"): detach it.
        if std::fs::metadata(mnt).is_err() {
            let _ = Command::new("fusermount3").arg("-u").arg("-z").arg(mnt).status();
        }
    }
    Ok(())
}

/// Waits for Ctrl-C or SIGTERM. A child that exits meanwhile is reaped and
/// reported (which, pid, how); the others keep running.
async fn supervise(children: &mut Vec<(String, Child)>) {
    let stop = tessera_wait_signal();
    tokio::pin!(stop);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        children.retain_mut(|(name, c)| match c.try_wait() {
            Ok(Some(status)) => {
                eprintln!(
                    "{name} (pid {}) stopped: {}; the others keep running (its command line is in commands.sh)",
                    c.id(),
                    describe_exit(status)
                );
                false
            }
            _ => true,
        });
    }
}

async fn tessera_wait_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// `tessera mount ARGS...`: replaces this process with `tessera-mount`
/// (with the CLI's own security flags; the environment passes as is).
pub fn exec_mount(masters: &str, tls: &tessera_rpc::tls::TlsArgs, args: &[String]) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let bin = sibling("tessera-mount")?;
    let mut cmd = Command::new(bin);
    cmd.arg("--masters").arg(masters);
    if let Some(d) = &tls.tls_dir {
        cmd.arg("--tls-dir").arg(d);
    }
    if tls.insecure {
        cmd.arg("--insecure");
    }
    let err = cmd.args(args).exec();
    bail!("cannot run tessera-mount: {err}")
}

/// `args` without its `--metrics-listen ADDR` when `off`.
fn without_metrics(args: Vec<String>, off: bool) -> Vec<String> {
    if !off {
        return args;
    }
    let mut out = Vec::with_capacity(args.len());
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        if a == "--metrics-listen" {
            it.next();
        } else {
            out.push(a);
        }
    }
    out
}

/// Where a server of the local cluster serves its metrics: the base port
/// plus 100 + i for master i, 120 + j for chunkserver j, 119 the mount;
/// the masters' web consoles at 140 + i.
fn metrics_port(base: u16, offset: usize) -> u16 {
    base.saturating_add(offset as u16)
}
