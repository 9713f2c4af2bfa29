//! Standard output for the CLI. The process keeps Rust's default of ignoring
//! SIGPIPE: with the default disposition, a `writev` to a socket whose peer
//! just died (a chunkserver killed mid-upload) kills the whole CLI silently,
//! since only `send` carries MSG_NOSIGNAL. A reader of our stdout going away
//! (`tessera ls | head`) is handled here instead: the process ends quietly
//! with the status a shell reports for SIGPIPE.

use std::io::{self, Write};

/// Exit status of a process ended by SIGPIPE, as a shell reports it.
const EXIT_READER_GONE: i32 = 128 + libc::SIGPIPE;

/// `println!` to stdout, ending the process quietly if the reader has gone.
macro_rules! outln {
    () => { $crate::out::line(format_args!("")) };
    ($($arg:tt)*) => { $crate::out::line(format_args!($($arg)*)) };
}

pub fn line(args: std::fmt::Arguments) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        failed(&e);
    }
}

/// True if this error (anywhere in its chain) is our stdout reader going
/// away, which ends the process quietly rather than as a failure.
pub fn is_reader_gone(err: &anyhow::Error) -> bool {
    err.chain().any(|c| c.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe))
}

pub fn reader_gone() -> ! {
    std::process::exit(EXIT_READER_GONE)
}

fn failed(e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        reader_gone();
    }
    eprintln!("tessera: cannot write to stdout: {e}");
    std::process::exit(1)
}

/// `-b/--bytes`: sizes as exact byte counts instead of `ls -h` style.
static EXACT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn set_exact_sizes(exact: bool) {
    EXACT.store(exact, std::sync::atomic::Ordering::Relaxed);
}

/// A size for people (`ls -lh`, `du -h` style: 17, 4.0K, 512M, 1.5G),
/// or the exact byte count under `--bytes`.
pub fn size(n: u64) -> String {
    if EXACT.load(std::sync::atomic::Ordering::Relaxed) {
        return n.to_string();
    }
    human(n)
}

fn human(n: u64) -> String {
    const UNITS: [&str; 6] = ["K", "M", "G", "T", "P", "E"];
    if n < 1024 {
        return n.to_string();
    }
    let mut v = n as f64 / 1024.0;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if v < 10.0 {
        format!("{v:.1}{}", UNITS[u])
    } else {
        format!("{v:.0}{}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_like_ls_h() {
        use super::human;
        assert_eq!(human(0), "0");
        assert_eq!(human(1023), "1023");
        assert_eq!(human(4096), "4.0K");
        assert_eq!(human(1536 << 20), "1.5G");
        assert_eq!(human(512 << 20), "512M");
        assert_eq!(human(u64::MAX), "16E");
    }
}
