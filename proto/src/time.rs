//! Wall-clock helpers shared by master and clients.

use crate::pb::Timespec;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn now() -> Timespec {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Timespec { sec: d.as_secs() as i64, nsec: d.subsec_nanos() }
}

pub fn to_system_time(t: &Timespec) -> SystemTime {
    if t.sec >= 0 {
        UNIX_EPOCH + std::time::Duration::new(t.sec as u64, t.nsec)
    } else {
        UNIX_EPOCH - std::time::Duration::from_secs(t.sec.unsigned_abs())
            + std::time::Duration::from_nanos(t.nsec as u64)
    }
}

pub fn from_system_time(t: SystemTime) -> Timespec {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timespec { sec: d.as_secs() as i64, nsec: d.subsec_nanos() },
        Err(e) => {
            let d = e.duration();
            let mut sec = -(d.as_secs() as i64);
            let mut nsec = d.subsec_nanos();
            if nsec > 0 {
                sec -= 1;
                nsec = 1_000_000_000 - nsec;
            }
            Timespec { sec, nsec }
        }
    }
}
