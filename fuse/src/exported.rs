//! The mount's gauges and cache counters, published once a second on the
//! metrics listener (`--metrics-listen`): what is queued behind, what is
//! open, how the chunk cache fares. Counters of events (bytes, lookups,
//! FUSE operations, changes written behind) are counted where they happen.

use crate::fs::Mount;

impl Mount {
    /// Sets the gauges from the mount's state now.
    pub fn export_metrics(&self) {
        let behind = self.fs.meta.write_behind();
        metrics::gauge!("tessera_mount_write_behind_in_flight").set(behind.in_flight() as f64);
        let (held, riding) = {
            let s = self.behind.creates.lock();
            (s.held.len(), s.riding.len())
        };
        metrics::gauge!("tessera_mount_write_behind_queued", "kind" => "create").set((held + riding) as f64);
        let (unlinks, dir_attrs, exclusive) = {
            let q = self.behind.unlinks.lock();
            (q.queued.len(), q.dir_attrs.values().map(|d| d.queue.len()).sum::<usize>(), q.exclusive.len())
        };
        metrics::gauge!("tessera_mount_write_behind_queued", "kind" => "unlink").set(unlinks as f64);
        metrics::gauge!("tessera_mount_write_behind_queued", "kind" => "dir_attrs").set(dir_attrs as f64);
        metrics::gauge!("tessera_mount_exclusive_dirs").set(exclusive as f64);
        metrics::gauge!("tessera_mount_open_files").set(self.open.files.lock().len() as f64);
        if let Some(c) = &self.fs.transfer.cache {
            let s = c.stats();
            metrics::counter!("tessera_mount_chunk_cache_reads_total", "result" => "hit").absolute(s.hits);
            metrics::counter!("tessera_mount_chunk_cache_reads_total", "result" => "joined").absolute(s.joined);
            metrics::counter!("tessera_mount_chunk_cache_reads_total", "result" => "miss").absolute(s.misses);
            metrics::gauge!("tessera_mount_chunk_cache_bytes").set(s.bytes as f64);
            metrics::gauge!("tessera_mount_chunk_cache_chunks").set(s.chunks as f64);
        }
    }
}

/// Counts every FUSE reply by operation and outcome, with its latency
/// from the kernel's request to the reply (installed once per process).
/// The metric handles are kept per thread and operation: a reply costs a
/// small map lookup and three atomic updates, not a registry lookup.
pub(crate) fn count_fuse_replies() {
    struct Handles {
        ok: metrics::Counter,
        error: metrics::Counter,
        latency: metrics::Histogram,
    }
    thread_local! {
        static HANDLES: std::cell::RefCell<std::collections::HashMap<&'static str, Handles>> =
            std::cell::RefCell::new(std::collections::HashMap::new());
    }
    fn hook(op: &'static str, elapsed: std::time::Duration, error: bool) {
        HANDLES.with(|h| {
            let mut h = h.borrow_mut();
            let e = h.entry(op).or_insert_with(|| Handles {
                ok: metrics::counter!("tessera_mount_fuse_ops_total", "op" => op, "result" => "ok"),
                error: metrics::counter!("tessera_mount_fuse_ops_total", "op" => op, "result" => "error"),
                latency: metrics::histogram!("tessera_mount_fuse_op_seconds", "op" => op),
            });
            if error { &e.error } else { &e.ok }.increment(1);
            e.latency.record(elapsed.as_secs_f64());
        });
    }
    fuser::set_reply_hook(hook);
}

/// Counts a change acknowledged before the masters committed it.
pub(crate) fn written_behind(kind: &'static str) {
    metrics::counter!("tessera_mount_write_behind_total", "kind" => kind).increment(1);
}
