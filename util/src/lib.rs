//! Storage helpers shared by the masters and the chunkservers: the segment
//! files their journals are made of, and durable (atomic, fsynced) writes.

pub mod durable;
pub mod segment_files;
