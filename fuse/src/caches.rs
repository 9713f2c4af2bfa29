//! What the mount remembers about names and attributes between requests,
//! all of it valid only under its cache lease (lease_state.rs): dropped
//! together when the lease ends.

use crate::dircache::DirCache;
use crate::ttl_map::TtlMap;
use std::time::Duration;
use tessera_proto::pb::Attr;

/// Listings are kept while the lease holds and nothing revoked them; this
/// only bounds how long an idle one takes memory.
const LISTING_MAX_AGE: Duration = Duration::from_secs(60);

pub struct Caches {
    /// Lookups answered from recent listings (see dircache.rs).
    pub dir: DirCache,
    /// Directories' attributes as this mount's last change in them left
    /// them (post-op attributes in the master's reply). The kernel drops a
    /// directory's attributes after each create or unlink in it and asks
    /// again before the next path walk; this answers that.
    pub(crate) post_op: TtlMap<Attr>,
    /// Files seen with no extended attributes.
    pub(crate) no_xattrs: TtlMap<()>,
}

impl Caches {
    pub fn new(ttl: Duration) -> Caches {
        Caches {
            dir: DirCache::new(LISTING_MAX_AGE),
            post_op: TtlMap::new(ttl, 10_000),
            no_xattrs: TtlMap::new(ttl, 100_000),
        }
    }

    pub fn clear(&self) {
        self.dir.clear();
        self.post_op.clear();
        self.no_xattrs.clear();
    }
}
