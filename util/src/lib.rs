//! Helpers shared by the server processes: the segment files their
//! journals are made of, durable (atomic, fsynced) writes, log set-up, and
//! config files.

pub mod config;
#[cfg(feature = "fuzz")]
pub mod damage;
pub mod durable;
pub mod logging;
pub mod metrics;
pub mod process;
pub mod segment_files;
