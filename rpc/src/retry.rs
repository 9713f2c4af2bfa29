//! The one retry policy: capped exponential backoff with jitter, bounded by
//! a total deadline. Jitter keeps the clients of a cluster that all lost the
//! same leader from retrying in lock step.

use std::time::{Duration, Instant};

/// Backoff between attempts of one call. The n-th wait is drawn uniformly
/// from [d/2, d] where d = min(first * 2^n, max).
#[derive(Clone, Debug)]
pub struct Backoff {
    next: Duration,
    max: Duration,
    deadline: Option<Instant>,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff { next: first.max(Duration::from_millis(1)), max: max.max(first), deadline: None }
    }

    /// The policy of calls to the masters: 25 ms first, at most 200 ms. While
    /// the masters elect a leader each try costs a follower one quick
    /// refusal, and a short cap finds the new leader soon after it is
    /// elected (it is the last part of a failover's stall).
    pub fn meta() -> Backoff {
        Backoff::new(Duration::from_millis(25), Duration::from_millis(200))
    }

    /// The policy of chunk placement and transfers: 100 ms first, at most 1 s.
    pub fn chunks() -> Backoff {
        Backoff::new(Duration::from_millis(100), Duration::from_secs(1))
    }

    /// Gives up `total` from now.
    pub fn within(mut self, total: Duration) -> Backoff {
        self.deadline = Some(Instant::now() + total);
        self
    }

    pub fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// The next wait, never past the deadline; None once the deadline has
    /// passed (the caller gives up with its last error).
    pub fn next_delay(&mut self) -> Option<Duration> {
        let now = Instant::now();
        if self.deadline.is_some_and(|d| now >= d) {
            return None;
        }
        let cap = self.next;
        self.next = (self.next * 2).min(self.max);
        let half = cap / 2;
        let jitter = Duration::from_nanos(rand::random_range(0..=half.as_nanos() as u64));
        let wait = half + jitter;
        Some(match self.deadline {
            Some(d) => wait.min(d - now),
            None => wait,
        })
    }

    /// Sleeps the next wait; false (at once) if the deadline has passed.
    pub async fn wait(&mut self) -> bool {
        match self.next_delay() {
            Some(d) => {
                tokio::time::sleep(d).await;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_to_the_cap_with_jitter_in_the_upper_half() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let caps = [100, 200, 400, 400, 400];
        for cap in caps {
            let d = b.next_delay().unwrap();
            let cap = Duration::from_millis(cap);
            assert!(d >= cap / 2 && d <= cap, "{d:?} outside [{:?}, {cap:?}]", cap / 2);
        }
    }

    #[test]
    fn stops_at_the_deadline_and_never_sleeps_past_it() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(10)).within(Duration::from_millis(50));
        let d = b.next_delay().unwrap();
        assert!(d <= Duration::from_millis(50));
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.expired());
        assert_eq!(b.next_delay(), None);
    }

    #[tokio::test]
    async fn wait_reports_an_expired_deadline_without_sleeping() {
        let mut b = Backoff::meta().within(Duration::ZERO);
        let t = Instant::now();
        assert!(!b.wait().await);
        assert!(t.elapsed() < Duration::from_millis(20));
    }
}
