//! Helpers shared by the server processes: the segment files their
//! journals are made of, durable (atomic, fsynced) writes, and log set-up.

pub mod durable;
pub mod logging;
pub mod segment_files;
