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
