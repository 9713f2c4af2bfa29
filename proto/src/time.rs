//! Wall-clock helpers shared by master and clients.

use crate::pb::Timespec;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn now() -> Timespec {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    Timespec { sec: d.as_secs() as i64, nsec: d.subsec_nanos() }
}

/// The time a Timespec names. Never panics, whatever a peer sent: the
/// nanoseconds are clamped below one second, and a time beyond what the
/// platform represents becomes the nearest one it does.
pub fn to_system_time(t: &Timespec) -> SystemTime {
    let nsec = std::time::Duration::from_nanos(u64::from(t.nsec.min(999_999_999)));
    let secs = std::time::Duration::from_secs(t.sec.unsigned_abs());
    let whole = if t.sec >= 0 { UNIX_EPOCH.checked_add(secs) } else { UNIX_EPOCH.checked_sub(secs) };
    match whole.and_then(|w| w.checked_add(nsec)) {
        Some(st) => st,
        None if t.sec >= 0 => latest(),
        None => earliest(),
    }
}

/// The latest and earliest times a SystemTime holds here (i64 seconds).
fn latest() -> SystemTime {
    UNIX_EPOCH.checked_add(std::time::Duration::new(i64::MAX as u64, 999_999_999)).unwrap_or(UNIX_EPOCH)
}

fn earliest() -> SystemTime {
    UNIX_EPOCH.checked_sub(std::time::Duration::from_secs(i64::MIN.unsigned_abs())).unwrap_or(UNIX_EPOCH)
}

pub fn from_system_time(t: SystemTime) -> Timespec {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timespec { sec: d.as_secs() as i64, nsec: d.subsec_nanos() },
        Err(e) => {
            let d = e.duration();
            let mut sec = 0i64.saturating_sub_unsigned(d.as_secs());
            let mut nsec = d.subsec_nanos();
            if nsec > 0 {
                sec = sec.saturating_sub(1);
                nsec = 1_000_000_000 - nsec;
            }
            Timespec { sec, nsec }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_known_crash_is_gone() {
        // sec = i64::MAX with nsec >= 10^9 panicked `UNIX_EPOCH + Duration`
        // in every mount that stat'ed such a file.
        let t = to_system_time(&Timespec { sec: i64::MAX, nsec: 1_500_000_000 });
        assert!(t > UNIX_EPOCH);
        let t = to_system_time(&Timespec { sec: i64::MIN, nsec: u32::MAX });
        assert!(t < UNIX_EPOCH);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        /// Any pair a peer can send converts without a panic; a valid one
        /// converts back to itself.
        #[test]
        fn any_timespec_converts_and_valid_ones_round_trip(sec in any::<i64>(), nsec in any::<u32>()) {
            let t = Timespec { sec, nsec };
            let st = to_system_time(&t);
            if nsec < 1_000_000_000 && sec > i64::MIN {
                prop_assert_eq!(from_system_time(st), t);
            } else {
                let _ = from_system_time(st);
            }
        }
    }
}
