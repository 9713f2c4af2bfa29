//! A token bucket shared by concurrent transfers.

use std::time::Duration;
// tokio's clock: the tests run on paused time.
use tokio::sync::Mutex;
use tokio::time::Instant;

pub struct Throttle {
    /// Bytes per second; 0 = unlimited.
    rate: u64,
    state: Mutex<(f64, Instant)>,
}

impl Throttle {
    pub fn new(rate: u64) -> Throttle {
        Throttle { rate, state: Mutex::new((rate as f64, Instant::now())) }
    }

    /// Waits until `n` bytes may be sent.
    pub async fn take(&self, n: u64) {
        if self.rate == 0 {
            return;
        }
        let wait = {
            let mut g = self.state.lock().await;
            let now = Instant::now();
            let refill = now.duration_since(g.1).as_secs_f64() * self.rate as f64;
            // At most one second of burst.
            g.0 = (g.0 + refill).min(self.rate as f64);
            g.1 = now;
            g.0 -= n as f64;
            if g.0 < 0.0 {
                Duration::from_secs_f64(-g.0 / self.rate as f64)
            } else {
                Duration::ZERO
            }
        };
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn limits_rate() {
        let t = Throttle::new(1_000_000);
        let start = Instant::now();
        for _ in 0..3 {
            t.take(1_000_000).await;
        }
        // One second of burst, then 2 MB at 1 MB/s.
        let took = start.elapsed();
        assert!(took >= Duration::from_secs(2) && took < Duration::from_millis(2010), "{took:?}");
    }
}
