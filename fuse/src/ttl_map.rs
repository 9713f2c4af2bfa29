//! A map from inode to a value that is good for one attribute lifetime: the
//! shape of the mount's small caches (files seen without xattrs, post-op
//! directory attributes). Bounded: past `cap` entries the expired ones go.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

pub struct TtlMap<V> {
    ttl: Duration,
    cap: usize,
    map: Mutex<HashMap<u64, (V, Instant)>>,
}

impl<V: Copy> TtlMap<V> {
    pub fn new(ttl: Duration, cap: usize) -> TtlMap<V> {
        TtlMap { ttl, cap, map: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, HashMap<u64, (V, Instant)>> {
        self.map.lock()
    }

    pub fn insert(&self, ino: u64, v: V) {
        let mut m = self.lock();
        if m.len() >= self.cap {
            m.retain(|_, (_, at)| at.elapsed() < self.ttl);
        }
        m.insert(ino, (v, Instant::now()));
    }

    /// The value and what is left of its lifetime, if it has some left.
    pub fn get(&self, ino: u64) -> Option<(V, Duration)> {
        let (v, at) = *self.lock().get(&ino)?;
        self.ttl.checked_sub(at.elapsed()).map(|left| (v, left))
    }

    /// The value however old (until the cap pushes it out), for a caller
    /// that knows nothing else could have changed it.
    pub fn get_any_age(&self, ino: u64) -> Option<V> {
        self.lock().get(&ino).map(|(v, _)| *v)
    }

    pub fn remove(&self, ino: u64) {
        self.lock().remove(&ino);
    }

    pub fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_live_one_lifetime_and_the_map_stays_bounded() {
        let m = TtlMap::new(Duration::from_millis(50), 4);
        m.insert(1, 'a');
        assert!(matches!(m.get(1), Some(('a', left)) if left <= Duration::from_millis(50)));
        assert!(m.get(2).is_none());
        m.remove(1);
        assert!(m.get(1).is_none());
        for i in 0..4 {
            m.insert(i, 'x');
        }
        std::thread::sleep(Duration::from_millis(60));
        assert!(m.get(0).is_none(), "expired");
        assert_eq!(m.get_any_age(0), Some('x'), "kept until the cap pushes it out");
        m.insert(9, 'y');
        assert_eq!(m.lock().len(), 1, "expired entries dropped once the cap is reached");
        m.clear();
        assert!(m.get(9).is_none());
    }
}
