//! Requests waiting on the cluster. Each one that leaves the FUSE thread
//! runs under `Inflight::run`: bounded by the mount's I/O timeout (then EIO,
//! like an NFS `soft` mount; `--io-timeout 0` waits forever, like `hard`)
//! and answered EINTR at once when the kernel interrupts it (the waiting
//! process got a signal: Ctrl-C, or SIGKILL, which otherwise leaves it in
//! `D` state until the request finishes). The work itself is not cancelled:
//! it runs to its end in the background (a commit or upload half done must
//! not be dropped), only the caller stops waiting for it.

use fuser::Errno;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Interrupts that arrived before their request was dispatched (another
/// FUSE thread may read the interrupt first) are kept this long.
const EARLY_INTERRUPT_KEPT: Duration = Duration::from_secs(5);

/// A fuser reply that can carry an error.
pub trait Fail {
    fn fail(self, errno: Errno);
}

macro_rules! fail_by_error {
    ($($t:ty),*) => {$(
        impl Fail for $t {
            fn fail(self, errno: Errno) {
                self.error(errno)
            }
        }
    )*};
}
fail_by_error!(
    fuser::ReplyEntry,
    fuser::ReplyAttr,
    fuser::ReplyData,
    fuser::ReplyEmpty,
    fuser::ReplyOpen,
    fuser::ReplyCreate,
    fuser::ReplyWrite,
    fuser::ReplyStatfs,
    fuser::ReplyXattr,
    fuser::ReplyLock,
    fuser::ReplyLseek,
    fuser::ReplyDirectoryPlus
);

#[derive(Default)]
pub struct Inflight {
    /// How long a request may wait on the cluster; None: forever.
    pub io_timeout: Option<Duration>,
    waiting: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    early: Mutex<HashMap<u64, Instant>>,
    /// Requests answered EIO by the timeout and EINTR by an interrupt.
    pub timed_out: std::sync::atomic::AtomicU64,
    pub interrupted: std::sync::atomic::AtomicU64,
}

/// Whether a request gives up after the I/O timeout.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Bound {
    /// Waits on the cluster: EIO after the I/O timeout.
    Timeout,
    /// May wait for another user (a blocking lock): only an interrupt ends it.
    Interruptible,
}

impl Inflight {
    pub fn new(io_timeout: Option<Duration>) -> Inflight {
        Inflight { io_timeout, ..Default::default() }
    }

    /// The kernel interrupted request `unique`.
    pub fn interrupt(&self, unique: u64) {
        let waiter = self.waiting.lock().remove(&unique);
        match waiter {
            Some(tx) => {
                let _ = tx.send(());
            }
            None => {
                let mut early = self.early.lock();
                early.retain(|_, t| t.elapsed() < EARLY_INTERRUPT_KEPT);
                early.insert(unique, Instant::now());
            }
        }
    }

    /// Runs `work` for request `unique` on `rt`; `answer` gets its result,
    /// unless the timeout or an interrupt answers `reply` first.
    pub fn run<R, T>(
        self: &Arc<Self>,
        rt: &tokio::runtime::Handle,
        unique: u64,
        bound: Bound,
        reply: R,
        work: impl Future<Output = T> + Send + 'static,
        answer: impl FnOnce(R, T) + Send + 'static,
    ) where
        R: Fail + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        {
            let mut early = self.early.lock();
            if !early.is_empty() && early.remove(&unique).is_some() {
                drop(early);
                self.interrupted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                reply.fail(Errno::EINTR);
                return;
            }
        }
        self.waiting.lock().insert(unique, tx);
        let me = self.clone();
        let limit = match bound {
            Bound::Timeout => me.io_timeout,
            Bound::Interruptible => None,
        };
        rt.spawn(async move {
            let mut work = tokio::spawn(work);
            let expiry = async {
                match limit {
                    Some(t) => tokio::time::sleep(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = &mut work => match r {
                    Ok(v) => answer(reply, v),
                    Err(e) => {
                        tracing::error!(error = %e, "a request's task failed");
                        reply.fail(Errno::EIO)
                    }
                },
                Ok(()) = rx => {
                    me.interrupted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    reply.fail(Errno::EINTR)
                }
                _ = expiry => {
                    me.timed_out.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(
                        timeout_s = limit.unwrap_or_default().as_secs(),
                        "no answer from the cluster within the I/O timeout: EIO (the work goes on behind)"
                    );
                    reply.fail(Errno::EIO)
                }
            }
            me.waiting.lock().remove(&unique);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    /// What a probe reply was answered, once it was.
    type Answer = Arc<Mutex<Option<Result<u32, Errno>>>>;

    /// A reply that records what it was answered.
    struct Probe(Answer);
    impl Fail for Probe {
        fn fail(self, errno: Errno) {
            *self.0.lock() = Some(Err(errno));
        }
    }

    fn probe() -> (Probe, Answer) {
        let cell = Arc::new(Mutex::new(None));
        (Probe(cell.clone()), cell)
    }

    async fn settle() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    #[tokio::test]
    async fn an_answer_in_time_is_passed_on() {
        let f = Arc::new(Inflight::new(Some(Duration::from_secs(5))));
        let (reply, got) = probe();
        f.run(&tokio::runtime::Handle::current(), 1, Bound::Timeout, reply, async { 7u32 }, |r, v| {
            *r.0.lock() = Some(Ok(v))
        });
        settle().await;
        assert_eq!(*got.lock(), Some(Ok(7)));
        assert!(f.waiting.lock().is_empty());
    }

    #[tokio::test]
    async fn a_stuck_request_gets_eio_after_the_timeout_and_its_work_goes_on() {
        let f = Arc::new(Inflight::new(Some(Duration::from_millis(100))));
        let (reply, got) = probe();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d2 = done.clone();
        let work = async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            d2.store(true, Ordering::SeqCst);
            1u32
        };
        f.run(&tokio::runtime::Handle::current(), 2, Bound::Timeout, reply, work, |r, v| *r.0.lock() = Some(Ok(v)));
        settle().await;
        assert_eq!(*got.lock(), None);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(*got.lock(), Some(Err(Errno::EIO)));
        assert_eq!(f.timed_out.load(Ordering::Relaxed), 1);
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert!(done.load(Ordering::SeqCst), "the work was cancelled");
    }

    #[tokio::test]
    async fn an_interrupt_answers_eintr_at_once_even_when_unbounded() {
        let f = Arc::new(Inflight::new(None));
        let (reply, got) = probe();
        f.run(
            &tokio::runtime::Handle::current(),
            3,
            Bound::Interruptible,
            reply,
            std::future::pending::<u32>(),
            |r, v| *r.0.lock() = Some(Ok(v)),
        );
        settle().await;
        assert_eq!(*got.lock(), None);
        f.interrupt(3);
        settle().await;
        assert_eq!(*got.lock(), Some(Err(Errno::EINTR)));
    }

    #[tokio::test]
    async fn an_interrupt_read_before_its_request_still_counts() {
        let f = Arc::new(Inflight::new(None));
        f.interrupt(4);
        let (reply, got) = probe();
        f.run(&tokio::runtime::Handle::current(), 4, Bound::Timeout, reply, std::future::pending::<u32>(), |r, v| {
            *r.0.lock() = Some(Ok(v))
        });
        assert_eq!(*got.lock(), Some(Err(Errno::EINTR)));
        // Another request is unaffected.
        let (reply, got) = probe();
        f.run(&tokio::runtime::Handle::current(), 5, Bound::Timeout, reply, async { 9u32 }, |r, v| {
            *r.0.lock() = Some(Ok(v))
        });
        settle().await;
        assert_eq!(*got.lock(), Some(Ok(9)));
    }
}
